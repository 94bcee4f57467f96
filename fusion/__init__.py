"""Late fusion of the per-signal readings into one mood, and the engine that runs everything.

Names are imported on first use, so that ``moodtune --help`` (``interfaces.cli``) does not load numpy, pandas or
any model package.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"MoodEngine": "engine", "analyze": "engine", "default_engine": "engine", "recommend": "engine",
          "DEFAULT_PRIORS": "late", "METHODS": "late", "LateFusion": "late", "fuse": "late", "MoodReading": "mood", "MoodStatus": "mood",
          "Profile": "profile", "Calibration": "calibration", "CalibrationError": "calibration"}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'fusion' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value
