"""The mood journal: an opt-in, local, append-only log of moods and what the user did with them.

One SQLite file in moodtune's folder (``$MOODTUNE_HOME/journal.sqlite3``, readable by its owner only). Each
analysis is a row with its time, fused valence/arousal, top emotion, confidence, the signals that counted and the
strategy; likes, skips and corrections are rows of their own that point at their analysis. Never an image or
audio; the typed words only when the user turned on "keep my words". Rows are never updated or deleted (a
trigger refuses it); :meth:`Journal.delete` removes the whole file. Every entry is its own transaction in WAL
mode with full sync, so a crash loses at most the entry being written.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from multimodal.errors import MoodtuneError
from multimodal.files import create_exclusive, moodtune_home, not_own_file, write_user_file
from multimodal.labels import EMOTIONS

KINDS = ("analysis", "like", "skip", "correction")
LOCK_WAIT_S = 3.0  # how long a write waits for another process's lock before it gives up (and says so)
MAX_WORDS = 2000  # characters of typed text kept, when the user keeps their words
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ({", ".join(repr(k) for k in KINDS)})),
    analysis_id INTEGER REFERENCES events(id),
    emotion TEXT, valence REAL, arousal REAL, confidence REAL,
    signals TEXT, strategy TEXT, track_id TEXT, track TEXT, words TEXT
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""
COLUMNS = ["id", "time", "kind", "analysis_id", "emotion", "valence", "arousal", "confidence", "signals",
           "strategy", "track_id", "track", "words"]


class JournalError(MoodtuneError):
    """The journal cannot be read or written (not turned on, a file that is not a journal, a full disk)."""


def default_path() -> Path:
    return moodtune_home() / "journal.sqlite3"


class Journal:
    """The journal at ``path`` (default: moodtune's folder). It records only while turned on (:meth:`turn_on`);
    reading a journal that does not exist gives empty tables. Use it as a context manager, or :meth:`close`."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_path()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] = (0, 0)  # (device, inode) of the file the connection opened
        self._lock = threading.Lock()

    # -- connection ---------------------------------------------------------------------------
    def _writer(self) -> sqlite3.Connection:
        """The connection, creating the journal if it does not exist yet."""
        conn = self._connect(create=True)
        assert conn is not None  # create=True always connects or raises
        return conn

    def _connect(self, create: bool = False) -> sqlite3.Connection | None:
        if self._conn is not None and not self._still_there():
            # deleted (or replaced) by another process: stop writing into a file nobody can see
            self._conn.close()
            self._conn = None
        if self._conn is None:
            why = not_own_file(self.path)
            if why:
                raise JournalError(f"{self.path} {why}; moodtune keeps its journal only in a regular file of your "
                                   "own: move it away")
            if not self.path.exists():
                if not create:
                    return None
                self._create()
            try:
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=LOCK_WAIT_S)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(SCHEMA)
                st = os.stat(self.path)
            except sqlite3.OperationalError as exc:
                raise JournalError(f"the journal {self.path} cannot be opened ({exc})") from exc
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"{self.path} is not a moodtune journal ({exc}); move it away or run "
                                   "`moodtune journal delete`") from exc
            except OSError as exc:
                raise JournalError(f"the journal {self.path} cannot be opened ({exc.strerror})") from exc
            self._conn, self._identity = conn, (st.st_dev, st.st_ino)
        return self._conn

    def _create(self) -> None:
        """A new journal file, owner-only, created exclusively (never one that appeared in between)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create the journal in {self.path.parent} ({exc.strerror}); MOODTUNE_HOME "
                               "must be a folder you can write to") from exc
        try:
            create_exclusive(self.path)
        except FileExistsError:
            if not_own_file(self.path):
                raise JournalError(f"{self.path} {not_own_file(self.path)}; moodtune keeps its journal only in a "
                                   "regular file of your own: move it away") from None
        except OSError as exc:
            raise JournalError(f"cannot create the journal {self.path} ({exc.strerror}); check that "
                               f"{self.path.parent} is a folder you can write to (MOODTUNE_HOME)") from exc

    def _still_there(self) -> bool:
        """True while the journal's name still leads to the file this connection opened."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._identity

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # -- settings -----------------------------------------------------------------------------
    def _setting(self, key: str, default: str = "") -> str:
        try:
            with self._lock:
                conn = self._connect()
                row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone() if conn else None
        except sqlite3.Error as exc:
            raise JournalError(f"the journal {self.path} cannot be read ({exc})") from exc
        return row[0] if row else default

    def _set(self, key: str, value: str) -> None:
        try:
            with self._lock:
                self._writer().execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))
        except sqlite3.Error as exc:
            raise JournalError(f"could not write to the journal {self.path}: {exc}") from exc

    @property
    def enabled(self) -> bool:
        return self._setting("enabled") == "1"

    @property
    def keep_words(self) -> bool:
        return self._setting("keep_words") == "1"

    def turn_on(self, keep_words: bool = False) -> "Journal":
        """Start recording (creates the journal); ``keep_words`` also keeps what the user typed."""
        self._set("enabled", "1")
        self._set("keep_words", "1" if keep_words else "0")
        return self

    def turn_off(self) -> None:
        """Stop recording; what is recorded stays until :meth:`delete`."""
        if self.path.exists():
            self._set("enabled", "0")

    def delete(self) -> bool:
        """Delete the whole journal (its file and SQLite's side files); True if there was one. A journal name that
        is a link or not the user's own file is refused (:class:`JournalError`): deleting the link would leave the
        words where it points."""
        self.close()
        why = not_own_file(self.path)
        if not why and self.path.exists() and self.path.stat().st_nlink > 1:  # unlinking one name keeps the data
            why = "has other names (hard links)"
        if why:
            raise JournalError(f"{self.path} {why}: nothing was deleted (moodtune deletes only the journal file it "
                               "made); remove it and what it points to yourself")
        existed = self.path.exists()
        try:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError as exc:
            raise JournalError(f"the journal {self.path} could not be deleted ({exc.strerror})") from exc
        return existed

    # -- writing ------------------------------------------------------------------------------
    def _append(self, kind: str, **values: Any) -> int | None:
        if not self.enabled:
            return None
        values = {"time": values.pop("time", None) or datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "kind": kind, **values}
        names = ", ".join(values)
        try:
            with self._lock:  # one entry, one transaction (autocommit)
                cur = self._writer().execute(
                    f"INSERT INTO events ({names}) VALUES ({', '.join('?' * len(values))})", tuple(values.values()))
        except sqlite3.Error as exc:
            raise JournalError(f"could not write to the journal {self.path}: {exc}") from exc
        return int(cur.lastrowid or 0)

    def record_analysis(self, mood: Any, strategy: str = "", words: str | None = None,
                        time: str | None = None) -> int | None:
        """Log a mood (its fused values and the signals that counted); None when the journal is off or the mood
        had no usable signal. ``words`` is kept only with "keep my words" on."""
        if not getattr(mood, "ok", False):
            return None
        signals = ",".join(m for m, w in mood.weights.items() if w > 0)
        kept = words[:MAX_WORDS] if words and self.keep_words else None
        return self._append("analysis", time=time, emotion=mood.top_emotion, valence=float(mood.valence),
                            arousal=float(mood.arousal), confidence=float(mood.confidence), signals=signals,
                            strategy=strategy, words=kept)

    def record_feedback(self, analysis_id: int | None, kind: str, track: Any) -> int | None:
        """Log a like or skip of a track from the list made for analysis ``analysis_id``."""
        if kind not in ("like", "skip"):
            raise ValueError(f"kind must be like or skip, not {kind!r}")
        return self._append(kind, analysis_id=analysis_id, track_id=str(track.id),
                            track=f"{track.name} — {track.artist}"[:300])

    def record_correction(self, analysis_id: int | None, emotion: str) -> int | None:
        """Log that the user said analysis ``analysis_id`` was really ``emotion``."""
        if emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {emotion!r}")
        return self._append("correction", analysis_id=analysis_id, emotion=emotion)

    # -- reading ------------------------------------------------------------------------------
    def events(self, since: datetime | None = None) -> pd.DataFrame:
        """Every event (since a time, if given), oldest first, with ``time`` as UTC timestamps."""
        try:
            with self._lock:
                conn = self._connect()
                if conn is None:
                    frame = pd.DataFrame(columns=COLUMNS)
                else:
                    query, args = "SELECT * FROM events", []
                    if since is not None:
                        query, args = query + " WHERE time >= ?", [since.astimezone(timezone.utc).isoformat()]
                    frame = pd.read_sql_query(query + " ORDER BY time, id", conn, params=args)
            frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601", errors="coerce")
            # SQLite keeps any value in any column: a row edited by hand must not break the week's view
            for col in ("valence", "arousal", "confidence"):
                if col in frame:
                    frame[col] = pd.to_numeric(frame[col], errors="coerce")
            frame = frame[frame["time"].notna()]
        except (sqlite3.Error, pd.errors.DatabaseError, ValueError, TypeError) as exc:
            raise JournalError(f"the journal {self.path} cannot be read ({str(exc)[:200]})") from exc
        frame["analysis_id"] = frame["analysis_id"].astype("Int64")  # None where the row is an analysis
        return frame

    def days(self, days: int = 7, now: datetime | None = None) -> pd.DataFrame:
        """One row per local day of the last ``days``: analyses, mean valence and arousal, the most frequent
        emotion, likes, skips and corrections."""
        now = now or datetime.now(timezone.utc)
        events = self.events(since=now - timedelta(days=days))
        return daily(events, days=days, now=now)

    def export_csv(self, path: str | Path, force: bool = False) -> Path:
        """Every event as CSV (written to a temp file, then renamed). An existing file is replaced only with
        ``force``, and only if it is the user's own regular file (never a link or a device)."""
        return write_user_file(path, self.events().to_csv(index=False), force, JournalError)


def most_frequent(emotions: pd.Series) -> str:
    """The day's most frequent emotion; a tie names them all ("happy / sad"), not whichever pandas listed first."""
    counts = emotions.value_counts()
    return " / ".join(sorted(counts.index[counts == counts.iloc[0]]))


def daily(events: pd.DataFrame, days: int = 7, now: datetime | None = None) -> pd.DataFrame:
    """Events summarised per local calendar day, the last ``days`` days (empty days included)."""
    now = now or datetime.now(timezone.utc)
    local = events.assign(day=events["time"].dt.tz_convert(_local_zone()).dt.date)
    end = now.astimezone(_local_zone()).date()
    index = pd.Index([end - timedelta(days=i) for i in range(days - 1, -1, -1)], name="day")
    moods = local[local["kind"] == "analysis"].groupby("day")
    out = pd.DataFrame({
        "analyses": moods.size(),
        "valence": moods["valence"].mean(),
        "arousal": moods["arousal"].mean(),
        "emotion": moods["emotion"].agg(most_frequent),
    }).reindex(index)
    for kind in ("like", "skip", "correction"):
        out[kind + "s"] = local[local["kind"] == kind].groupby("day").size().reindex(index)
    counts = ["analyses", "likes", "skips", "corrections"]
    out[counts] = out[counts].fillna(0).astype(int)
    return out


def _local_zone():
    return datetime.now().astimezone().tzinfo
