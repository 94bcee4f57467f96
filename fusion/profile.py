"""A user's profile: the listening session (likes, skips, offsets) and the calibration learned from corrections.

It is the user's data: it travels with each request (``to_dict``/``from_dict``) and is written only where the
user asks (:meth:`Profile.save`), atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multimodal.files import is_regular_file, write_atomic
from recommend import Session
from recommend.session import MAX_PROFILE_BYTES, ProfileError

from .calibration import Calibration, CalibrationError

PROFILE_VERSION = 2


@dataclass(frozen=True)
class Profile:
    """``session`` shapes the music; ``calibration`` (empty until the user corrects a mood) shapes the reading."""

    session: Session = field(default_factory=Session)
    calibration: Calibration = field(default_factory=Calibration)

    def to_dict(self) -> dict[str, Any]:
        return {"version": PROFILE_VERSION, "session": self.session.to_dict(),
                "calibration": self.calibration.to_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> "Profile":
        """A profile from :meth:`to_dict`, or a bare session (what moodtune saved before corrections existed)."""
        if isinstance(data, dict) and "session" not in data and "offsets" in data:
            return cls(Session.from_dict(data))
        if not isinstance(data, dict):
            raise ProfileError("not a moodtune profile (expected an object with 'session' and 'calibration')")
        try:
            calibration = Calibration.from_dict(data.get("calibration") or {"corrections": []})
        except CalibrationError as exc:
            raise ProfileError(str(exc)) from exc
        return cls(Session.from_dict(data.get("session") or {}), calibration)

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON (a temp file, then renamed: a failed write leaves the old one)."""
        path = Path(path).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(self.to_dict(), indent=1))
        except OSError as exc:  # a read-only folder, a full disk: the profile on disk stays as it was
            raise ProfileError(f"cannot save the profile {path} ({exc.strerror})") from exc
        return path

    @classmethod
    def load(cls, path: str | Path, missing_ok: bool = False) -> "Profile":
        """A saved profile; with ``missing_ok`` an empty one where no file exists yet. :class:`ProfileError` says
        what is wrong with a file that is not a profile."""
        path = Path(path).expanduser()
        if missing_ok and not path.exists():
            return cls()
        if not is_regular_file(path) or path.stat().st_size > MAX_PROFILE_BYTES:
            raise ProfileError(f"{path} is not a profile file (missing, not a regular file, or too large)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: deep nesting
            raise ProfileError(f"{path} is not a valid moodtune profile ({str(exc)[:200] or 'nested too deeply'})") from exc
        except OSError as exc:
            raise ProfileError(f"{path} cannot be read ({exc.strerror})") from exc
        try:
            return cls.from_dict(data)
        except ProfileError as exc:
            raise ProfileError(f"{path} is not a valid moodtune profile: {exc}") from exc
