"""Save a list to the user's own Spotify account as a private playlist (Authorization Code with PKCE).

The app needs only its client id (``SPOTIPY_CLIENT_ID``; PKCE has no client secret) and a redirect URI registered
in Spotify's dashboard: ``http://127.0.0.1:PORT/callback`` (Spotify refuses ``localhost``; the port is
``MOODTUNE_SPOTIFY_PORT``, default 8888). The only scope asked is ``playlist-modify-private``. The user's token is
kept in ``$MOODTUNE_HOME/spotify_token.json`` (owner-only, written whole), never printed, and removed by
``moodtune spotify logout``. Every failure becomes one :class:`~recommend.spotify.SpotifyUnavailable` message;
the list itself is never lost (the caller still has it, and can export it with :mod:`recommend.playlists`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from spotipy.cache_handler import CacheHandler

from multimodal.files import moodtune_home, write_atomic

from .catalog import Track
from .spotify import SpotifyClient, SpotifyUnavailable

SCOPE = "playlist-modify-private"
TOKEN_FILE = "spotify_token.json"
MAX_ITEMS_PER_CALL = 100  # Spotify's limit for adding items to a playlist
SIGN_IN_SECONDS = 180.0


def token_path() -> Path:
    return moodtune_home() / TOKEN_FILE


def redirect_uri() -> str:
    port = os.environ.get("MOODTUNE_SPOTIFY_PORT", "8888")
    if not port.isdigit() or not 1024 <= int(port) <= 65535:
        raise SpotifyUnavailable(f"MOODTUNE_SPOTIFY_PORT must be a port from 1024 to 65535, not {port!r}")
    return f"http://127.0.0.1:{int(port)}/callback"


class TokenFile(CacheHandler):
    """spotipy's cache handler over moodtune's own folder: owner-only, atomic, unreadable = no token."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or token_path()

    def get_cached_token(self) -> dict[str, Any] | None:
        try:
            token = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return token if isinstance(token, dict) and "access_token" in token else None

    def save_token_to_cache(self, token_info: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(token_info))  # mkstemp: mode 0600


def logout(path: Path | None = None) -> bool:
    """Forget the user's Spotify token; True if there was one."""
    path = path or token_path()
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


@dataclass(frozen=True)
class SavedPlaylist:
    """What Spotify made: the playlist's id and link, and how many of the tracks it holds."""

    id: str
    url: str | None
    added: int
    asked: int


class SpotifyUser(SpotifyClient):
    """A :class:`SpotifyClient` signed in as the user (PKCE) instead of as the app."""

    def __init__(self, *, cache: Any = None, open_browser: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache if cache is not None else TokenFile()
        self.open_browser = open_browser

    @property
    def available(self) -> bool:
        return bool(os.environ.get("SPOTIPY_CLIENT_ID"))

    missing = "no Spotify app (set SPOTIPY_CLIENT_ID to your app's client id)"

    def _auth(self) -> Any:
        """The user's sign-in (PKCE: no client secret), its token in :class:`TokenFile`."""
        from spotipy.oauth2 import SpotifyPKCE

        return SpotifyPKCE(client_id=os.environ["SPOTIPY_CLIENT_ID"], redirect_uri=redirect_uri(), scope=SCOPE,
                           cache_handler=self.cache, open_browser=self.open_browser, requests_timeout=self.timeout)

    def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        try:
            return super()._call(what, fn)
        except (OSError, EOFError) as exc:  # a local file or socket, or a prompt with no one to answer it
            raise SpotifyUnavailable(f"{what}: {getattr(exc, 'strerror', None) or type(exc).__name__}") from None

    def signed_in(self) -> bool:
        """True when a token for the playlist scope is kept (it may need a refresh, which needs no browser)."""
        auth = self._client().auth_manager
        return auth.validate_token(self.cache.get_cached_token()) is not None

    def login(self, timeout: float = SIGN_IN_SECONDS, say: Callable[[str], Any] = print) -> None:
        """Sign in once: print the address (and open it in a browser where there is one), wait up to ``timeout``
        seconds for Spotify to send the browser back to 127.0.0.1, and keep the token."""
        import webbrowser

        from spotipy.oauth2 import start_local_http_server

        auth = self._client().auth_manager
        url, port = auth.get_authorize_url(), urlparse(redirect_uri()).port
        try:
            server = start_local_http_server(port)
        except OSError as exc:
            raise SpotifyUnavailable(f"sign-in: cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); set "
                                     "MOODTUNE_SPOTIFY_PORT to a free port registered for your app") from None
        say(f"Open this address to sign in to Spotify (waiting {timeout:.0f} s): {url}")
        if self.open_browser:
            try:
                webbrowser.open(url)
            except webbrowser.Error:
                pass  # the address is printed above
        deadline = time.monotonic() + timeout
        try:
            while server.auth_code is None and server.error is None and time.monotonic() < deadline:
                server.timeout = max(0.1, min(1.0, deadline - time.monotonic()))
                server.handle_request()  # returns after server.timeout when nobody calls
        finally:
            server.server_close()
        if server.error is not None:
            raise SpotifyUnavailable(f"sign-in: Spotify answered {server.error}")
        if server.auth_code is None:
            raise SpotifyUnavailable(f"sign-in: the browser did not come back within {timeout:.0f} s")
        code = server.auth_code
        self._call("sign-in", lambda sp: sp.auth_manager.get_access_token(code=code, check_cache=False))

    def save_playlist(self, name: str, tracks: list[Track], description: str = "") -> SavedPlaylist:
        """A new private playlist ``name`` in the user's account with ``tracks`` in order (Spotify tracks only)."""
        uris = [f"spotify:track:{t.id}" for t in tracks if t.spotify_url]
        if not uris:
            raise SpotifyUnavailable("none of these tracks is on Spotify (local files have no Spotify id)")
        if not self.signed_in():  # never start a browser sign-in in the middle of a command
            raise SpotifyUnavailable("not signed in to Spotify: run 'moodtune spotify login' once first")
        name = " ".join(str(name).split())[:100] or "moodtune"
        made = self._call("create playlist", lambda sp: sp.current_user_playlist_create(
            name, public=False, description=description[:300]))
        playlist_id = str((made or {}).get("id", ""))
        if not playlist_id:
            raise SpotifyUnavailable("create playlist: Spotify answered without a playlist id")
        url = ((made or {}).get("external_urls") or {}).get("spotify")
        added = 0
        for i in range(0, len(uris), MAX_ITEMS_PER_CALL):
            chunk = uris[i:i + MAX_ITEMS_PER_CALL]
            try:
                self._call("add tracks", lambda sp: sp.playlist_add_items(playlist_id, chunk))
            except SpotifyUnavailable as exc:
                raise SpotifyUnavailable(f"{exc} (the playlist was made with {added} of {len(uris)} tracks)") from None
            added += len(chunk)
        return SavedPlaylist(id=playlist_id, url=url, added=added, asked=len(uris))
