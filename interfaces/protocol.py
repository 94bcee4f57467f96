"""uvicorn's HTTP/1.1 protocol with a deadline for a request's line and headers.

uvicorn times out idle keep-alive connections and the app times out slow bodies (``interfaces.http.BodyDeadline``),
but nothing ends a connection that never finishes its headers ("slowloris"): 512 of them would hold every slot of
``moodtune serve`` (``MAX_CONNECTIONS``) for good. Each connection here gets :data:`HEADER_SECONDS` to send a
request's headers, counted from when it opens or from the end of its last response; then it is closed with one
log line.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 20.0
log = logging.getLogger("moodtune.http")


class HeaderDeadlineProtocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request headers are not complete in time."""

    _header_timer: asyncio.TimerHandle | None = None

    def _start_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(HEADER_SECONDS, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            client = "%s:%d" % self.client if self.client else "a client"
            log.warning("dropped %s: no complete request headers within %.0f s", client, HEADER_SECONDS)
            self.transport.close()
