"""Listening-session feedback: likes and skips shift the targets of the next list.

Nothing is written to disk unless you call :meth:`Session.save` (the demo and CLI only do that when the
user asks for it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from multimodal.errors import MoodtuneError
from multimodal.files import is_regular_file, write_atomic

from .catalog import FEATURES, Track
from .targets import Target

LIKE_STEP = 0.35   # move this share of the way toward a liked track's features
SKIP_STEP = 0.20   # and this share away from a skipped one's
MAX_PROFILE_BYTES = 1024 * 1024
MAX_IDS = 1000  # liked/skipped ids kept in a profile (the most recent)


class ProfileError(MoodtuneError, ValueError):
    """A profile file cannot be read."""


MAX_OFFSET = {"valence": 0.3, "energy": 0.3, "danceability": 0.3, "tempo": 30.0, "acousticness": 0.3, "mode": 0.3}


@dataclass
class Session:
    """Per-session offsets added to every target, plus the tracks the user skipped (not shown again)."""

    offsets: dict[str, float] = field(default_factory=lambda: {f: 0.0 for f in FEATURES})
    liked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    last_target: Target | None = None

    def _move(self, track: Track, step: float) -> None:
        if self.last_target is None:
            return
        base = self.last_target
        for f in FEATURES:
            delta = track.features[f] - (getattr(base, f) + self.offsets[f])
            limit = MAX_OFFSET[f]
            self.offsets[f] = float(np.clip(self.offsets[f] + step * delta, -limit, limit))

    def like(self, track: Track) -> None:
        """Steer the next lists toward this track's sound."""
        self._move(track, LIKE_STEP)
        if track.id not in self.liked:
            self.liked.append(track.id)

    def skip(self, track: Track) -> None:
        """Steer away from this track's sound and do not show it again."""
        self._move(track, -SKIP_STEP)
        if track.id not in self.skipped:
            self.skipped.append(track.id)

    def apply(self, targets: list[Target]) -> list[Target]:
        return [t.shifted(self.offsets) for t in targets]

    def save(self, path: str | Path) -> Path:
        """Write the profile (offsets, liked and skipped ids) to a JSON file, only when asked (atomically)."""
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({"offsets": self.offsets, "liked": self.liked, "skipped": self.skipped}, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Session":
        """A profile saved by :meth:`save`; :class:`ProfileError` says what is wrong with a file that is not one."""
        path = Path(path).expanduser()
        if not is_regular_file(path) or path.stat().st_size > MAX_PROFILE_BYTES:
            raise ProfileError(f"{path} is not a profile file (missing, not a regular file, or too large)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            raw = data.get("offsets", {})
            offsets = {f: float(np.clip(float(raw.get(f, 0.0)), -MAX_OFFSET[f], MAX_OFFSET[f])) for f in FEATURES}
            if not all(np.isfinite(v) for v in offsets.values()):
                raise ValueError("offsets must be finite numbers")
            liked, skipped = (list(map(str, data.get(k, [])))[-MAX_IDS:] for k in ("liked", "skipped"))
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path} is not a valid moodtune profile ({exc})") from exc
        return cls(offsets=offsets, liked=liked, skipped=skipped)
