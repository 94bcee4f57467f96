"""Late fusion of the per-signal readings into one mood, and the engine that runs everything."""

from .engine import MoodEngine, analyze, default_engine, recommend
from .late import DEFAULT_PRIORS, METHODS, LateFusion, fuse
from .mood import MoodReading

__all__ = ["DEFAULT_PRIORS", "METHODS", "LateFusion", "MoodEngine", "MoodReading", "analyze", "default_engine",
           "fuse", "recommend"]
