"""Uploaded files of the web demo: read into memory, then deleted once no request can still need them.

Gradio stores an upload under a folder named by the hash of its content, so two requests that send the
same bytes (a photo analysed twice, two users with the same file) share one path. Deleting it the moment
the first request has read it would make the other request fail. An :class:`UploadJanitor` therefore
deletes a file ``grace_s`` seconds after its last use (and after its last re-upload), and everything it
still holds when the process exits.

Given the folder Gradio writes uploads to (``watch``), it also deletes what no request ever read: the copy Gradio
makes when it converts an RGBA or palette photo, and the files of a request that failed before our code ran,
``orphan_s`` seconds after they were written; and on exit, everything in that folder.
"""

from __future__ import annotations

import atexit
import threading
import time
from pathlib import Path


class UploadJanitor:
    """Reads uploads into memory and deletes them shortly after their last use.

    >>> janitor = UploadJanitor(grace_s=30)
    >>> data = janitor.consume(path)   # bytes; the file is gone ≤ 30 s after the last request that used it
    """

    def __init__(self, grace_s: float = 30.0, interval_s: float = 1.0, orphan_s: float = 60.0) -> None:
        self.grace_s = grace_s
        self.interval_s = interval_s
        self.orphan_s = orphan_s
        self.folder: Path | None = None
        self._due: dict[Path, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        atexit.register(self.sweep, force=True)

    def watch(self, folder: str | Path) -> None:
        """Also delete every file under ``folder`` ``orphan_s`` after it was written (and all of it on exit)."""
        self.folder = Path(folder)
        self._start()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="moodtune-upload-janitor", daemon=True)
            self._thread.start()

    def _orphans(self, now: float, force: bool) -> int:
        deleted = 0
        for p in sorted(self.folder.rglob("*"), reverse=True) if self.folder and self.folder.exists() else []:
            try:
                if p.is_dir():
                    # an empty folder only once it has been left alone for a while: Gradio makes some right before
                    # it writes into them (removing one in between fails Gradio's mkdir(exist_ok=True))
                    if force or (not any(p.iterdir()) and now >= p.stat().st_mtime + self.orphan_s):
                        p.rmdir()
                elif p not in self._due and (force or now >= p.stat().st_mtime + self.orphan_s):
                    p.unlink()
                    deleted += 1
            except OSError:
                pass  # gone already, or a folder still being written to
        if force and self.folder and self.folder.exists():
            try:
                self.folder.rmdir()  # the watched folder is the demo's own (mkdtemp): leave nothing behind
            except OSError:
                pass
        return deleted

    def consume(self, path: str | Path | None) -> bytes | None:
        """The file's bytes (None for no path); the file is scheduled for deletion."""
        if not path:
            return None
        p = Path(path)
        try:
            return p.read_bytes()
        except FileNotFoundError:  # deleted while the request waited in the queue: that signal is missing
            return None
        finally:
            with self._lock:
                self._due[p] = time.time() + self.grace_s
                self._start()

    @property
    def pending(self) -> list[Path]:
        """Files read but not deleted yet."""
        with self._lock:
            return list(self._due)

    def sweep(self, now: float | None = None, force: bool = False) -> int:
        """Delete the files whose time has come (all of them with ``force``); returns how many were deleted."""
        now = time.time() if now is None else now
        deleted = 0
        with self._lock:
            for p, due in list(self._due.items()):
                try:
                    uploaded = p.stat().st_mtime
                except FileNotFoundError:
                    del self._due[p]
                    continue
                if not force and (now < due or now < uploaded + self.grace_s):  # re-uploaded copies wait too
                    continue
                p.unlink(missing_ok=True)
                del self._due[p]
                deleted += 1
                try:
                    p.parent.rmdir()  # Gradio's per-upload folder, when now empty
                except OSError:
                    pass
            deleted += self._orphans(now, force)
        return deleted

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            self.sweep()
            with self._lock:
                if not self._due and self.folder is None:
                    self._thread = None
                    return
