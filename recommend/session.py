"""Listening-session feedback: likes and skips shift the targets of the next list.

A session is data: nothing is written to disk here (``fusion.Profile.save`` writes a user's profile, session
included, only where the user asks).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from multimodal.errors import MoodtuneError

from .catalog import FEATURES, Track
from .targets import Target, target_from_va

LIKE_STEP = 0.35   # move this share of the way toward a liked track's features
SKIP_STEP = 0.20   # and this share away from a skipped one's
MAX_PROFILE_BYTES = 1024 * 1024
MAX_IDS = 1000  # liked/skipped ids kept in a session (the most recent)


class ProfileError(MoodtuneError, ValueError):
    """A profile file cannot be read."""


MAX_OFFSET = {"valence": 0.3, "energy": 0.3, "danceability": 0.3, "tempo": 30.0, "acousticness": 0.3, "mode": 0.3}


@dataclass(frozen=True)
class Session:
    """Per-session offsets added to every target, plus the tracks the user liked and skipped (skipped ones are not
    shown again). Immutable data: :meth:`like` and :meth:`skip` return a new session, so a session can travel with
    each request (``to_dict``/``from_dict``) and any process can answer the next one."""

    offsets: dict[str, float] = field(default_factory=lambda: {f: 0.0 for f in FEATURES})
    liked: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    def _moved(self, track: Track, step: float, mood: Any) -> dict[str, float]:
        """Offsets moved ``step`` of the way from the mood's target toward (or away from) the track's sound."""
        base = target_from_va(float(mood.valence), float(mood.arousal))
        out = dict(self.offsets)
        for f in FEATURES:
            delta = track.features[f] - (getattr(base, f) + self.offsets.get(f, 0.0))
            out[f] = float(np.clip(out.get(f, 0.0) + step * delta, -MAX_OFFSET[f], MAX_OFFSET[f]))
        return out

    def like(self, track: Track, mood: Any) -> "Session":
        """A session whose next lists lean toward this track's sound, from where ``mood`` (anything with
        ``valence`` and ``arousal``: the mood the list was made for) put them."""
        return replace(self, offsets=self._moved(track, LIKE_STEP, mood),
                       liked=_bounded((*(i for i in self.liked if i != track.id), track.id)))

    def skip(self, track: Track, mood: Any) -> "Session":
        """A session whose next lists lean away from this track's sound and never show it again."""
        return replace(self, offsets=self._moved(track, -SKIP_STEP, mood),
                       skipped=_bounded((*(i for i in self.skipped if i != track.id), track.id)))

    def to_dict(self) -> dict[str, Any]:
        return {"offsets": dict(self.offsets), "liked": list(self.liked), "skipped": list(self.skipped)}

    @classmethod
    def from_dict(cls, data: Any) -> "Session":
        """A session from :meth:`to_dict`'s shape; :class:`ProfileError` says what is wrong with anything else.
        Offsets are clipped to their limits and id lists keep the most recent :data:`MAX_IDS`."""
        try:
            raw = data.get("offsets", {}) if isinstance(data, dict) else None
            if not isinstance(raw, dict):
                raise ValueError("expected an object with 'offsets', 'liked' and 'skipped'")
            offsets = {f: float(np.clip(float(raw.get(f, 0.0)), -MAX_OFFSET[f], MAX_OFFSET[f])) for f in FEATURES}
            if not all(np.isfinite(v) for v in offsets.values()):
                raise ValueError("offsets must be finite numbers")
            lists = [data.get(k, []) for k in ("liked", "skipped")]
            if not all(isinstance(v, list) for v in lists):
                raise ValueError("'liked' and 'skipped' must be lists of track ids")
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:  # OverflowError: a 400-digit integer
            raise ProfileError(f"not a moodtune session ({str(exc)[:200]})") from exc
        return cls(offsets=offsets, liked=_bounded(tuple(map(str, lists[0]))), skipped=_bounded(tuple(map(str, lists[1]))))

    def apply(self, targets: list[Target]) -> list[Target]:
        return [t.shifted(self.offsets) for t in targets]


def _bounded(ids: tuple[str, ...]) -> tuple[str, ...]:
    return ids[-MAX_IDS:]
