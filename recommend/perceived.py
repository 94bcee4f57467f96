"""Where a track sits in the mood plane: a perceived valence and arousal from its audio features.

Each dimension is a weighted sum of a few audio features, each standardised over the catalog being ranked
(z-scores), and the sum is standardised again, so both axes are in standard deviations of that catalog.
It is a ranking rule written by hand, not a model: Spotify's terms forbid training models on its features,
so the weights are round numbers from the music-emotion literature, and the listener-rated dev file
(``models/music/mood_study.py``) only chose between five written candidates, on artists it held out.
The candidates, the study's numbers and where each weight comes from: ``recommend/MUSIC_CARD.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .catalog import FEATURES

_FEATURE_INDEX = {f: i for i, f in enumerate(FEATURES)}


def _frozen(weights: Mapping[str, float]) -> Mapping[str, float]:
    unknown = set(weights) - set(FEATURES)
    if unknown:
        raise ValueError(f"a mood map reads only the catalog features {list(FEATURES)}; not {sorted(unknown)}")
    return MappingProxyType(dict(weights))


@dataclass(frozen=True, eq=False)  # hashed by identity: catalogs cache each map's plane
class MoodMap:
    """Per dimension, round weights over standardised audio features (see the module docstring)."""

    name: str
    valence: Mapping[str, float]
    arousal: Mapping[str, float]
    source: str = ""
    #: How far an asked mood reaches into the plane: valence or arousal 1 lies this many standard deviations out.
    reach: float = 2.0
    #: The width of the ranking's kernel around the asked point, in standard deviations.
    width: float = 1.0
    _w: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "valence", _frozen(self.valence))
        object.__setattr__(self, "arousal", _frozen(self.arousal))
        w = np.zeros((len(FEATURES), 2))
        for col, weights in enumerate((self.valence, self.arousal)):
            for f, value in weights.items():
                w[_FEATURE_INDEX[f], col] = value
        object.__setattr__(self, "_w", w)

    def place(self, matrix: np.ndarray) -> tuple[np.ndarray, "PlaneScale"]:
        """Each row's (valence, arousal) in standard deviations of ``matrix``'s own tracks, and the scale used."""
        scale = PlaneScale.of(matrix, self._w)
        return scale.apply(matrix), scale

    def settings(self, reach: float, width: float) -> "MoodMap":
        """The same formula with another reach and kernel width."""
        return replace(self, reach=reach, width=width)

    def weights_matrix(self) -> np.ndarray:
        """The (features × 2) weight matrix, in the order of :data:`recommend.catalog.FEATURES`."""
        return self._w.copy()


@dataclass(frozen=True)
class PlaneScale:
    """How one catalog's features become plane coordinates: feature means and spreads, and each axis's spread."""

    mean: np.ndarray
    sd: np.ndarray
    axis_sd: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, matrix: np.ndarray, weights: np.ndarray) -> "PlaneScale":
        mean = matrix.mean(0) if len(matrix) else np.zeros(matrix.shape[1])
        sd = matrix.std(0) if len(matrix) > 1 else np.ones(matrix.shape[1])
        sd = np.where(sd > 1e-9, sd, 1.0)  # a feature every track shares (all major, say) carries no information
        raw = ((matrix - mean) / sd) @ weights
        axis_sd = raw.std(0) if len(matrix) > 1 else np.ones(2)
        return cls(mean=mean, sd=sd, axis_sd=np.where(axis_sd > 1e-9, axis_sd, 1.0), weights=weights)

    def apply(self, matrix: np.ndarray) -> np.ndarray:
        return (((matrix - self.mean) / self.sd) @ self.weights) / self.axis_sd

    def shift(self, offsets: Mapping[str, float]) -> np.ndarray:
        """How far per-feature offsets (a session's likes and skips) move a point of the plane."""
        delta = np.array([offsets.get(f, 0.0) for f in FEATURES], dtype=float)
        return ((delta / self.sd) @ self.weights) / self.axis_sd


#: The shipped map, picked on every artist fold by ``models/music/mood_study.py`` from five written candidates
#: (see recommend/MUSIC_CARD.md). Valence: Spotify's valence, and danceability at half weight (their r with
#: listeners' valence in the dev file: 0.43, 0.27). Arousal: energy and Spotify's valence alike (r with listeners'
#: arousal 0.30 and 0.29), acousticness against it at half weight (-0.17); Eerola & Vuoskoski 2011 also find
#: perceived arousal rising with brightness and positive tone, not with loudness alone.
PERCEIVED = MoodMap(
    name="singles",
    valence={"valence": 1.0, "danceability": 0.5},
    arousal={"energy": 1.0, "valence": 1.0, "acousticness": -0.5},
    source="dev-file single features; Eerola & Vuoskoski 2011",
    reach=2.0, width=1.0,
)
