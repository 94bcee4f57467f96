"""From a mood to audio-feature targets.

The fused mood gives valence V and arousal A on [−1, 1] (Russell's circumplex, 1980; emotion anchors
from the NRC-VAD lexicon, see ``multimodal.labels``). Music-emotion research maps them onto audio
features: perceived arousal follows energy/loudness, tempo and (inversely) acousticness; perceived
valence follows Spotify's valence, major mode and danceability (Eerola & Vuoskoski 2011, "A comparison
of the discrete and dimensional models of emotion in music"; Gabrielsson & Lindström 2010, "The role of
structure in the musical expression of emotions"). The linear map below is ours, documented here:

    valence      = 0.50 + 0.42·V
    energy       = 0.55 + 0.40·A
    danceability = 0.55 + 0.20·V + 0.15·A
    tempo (BPM)  = 110 + 30·A
    acousticness = 0.30 − 0.25·A + 0.05·(−V)
    mode         = 0.50 + 0.40·V      (probability of a major key)

Strategies: ``match`` keeps the whole list at the mood's target (mood-congruent listening);
``uplift`` follows the iso principle of music therapy (Altshuler 1948; Heiderscheit & Madson 2015):
start at the current mood and move step by step toward a calm, pleasant goal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .catalog import FEATURES

STRATEGIES = ("match", "uplift")
#: Where "uplift" leads: pleasant and calm-to-moderately active.
UPLIFT_GOAL = (0.65, 0.15)


@dataclass(frozen=True)
class Target:
    """Audio-feature targets (Spotify's scales; tempo in BPM) with the (valence, arousal) they come from."""

    valence: float
    energy: float
    danceability: float
    tempo: float
    acousticness: float
    mode: float
    mood_valence: float = 0.0
    mood_arousal: float = 0.0

    def as_array(self) -> np.ndarray:
        return np.array([getattr(self, f) for f in FEATURES])

    def shifted(self, offsets: dict[str, float]) -> "Target":
        """This target moved by per-feature offsets (session feedback), clipped to valid ranges."""
        changes = {f: float(np.clip(getattr(self, f) + offsets.get(f, 0.0), *FEATURES[f])) for f in FEATURES}
        return replace(self, **changes)


def target_from_va(valence: float, arousal: float) -> Target:
    v, a = float(np.clip(valence, -1, 1)), float(np.clip(arousal, -1, 1))
    return Target(valence=0.50 + 0.42 * v, energy=0.55 + 0.40 * a, danceability=0.55 + 0.20 * v + 0.15 * a,
                  tempo=110 + 30 * a, acousticness=float(np.clip(0.30 - 0.25 * a - 0.05 * v, 0, 1)),
                  mode=0.50 + 0.40 * v, mood_valence=v, mood_arousal=a)


def target_path(valence: float, arousal: float, n: int, strategy: str = "match") -> list[Target]:
    """One target per list position: constant for ``match``, a straight walk to the goal for ``uplift``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy == "match" or n <= 1:
        return [target_from_va(valence, arousal)] * max(n, 1)
    gv, ga = UPLIFT_GOAL
    return [target_from_va(valence + (gv - valence) * t, arousal + (ga - arousal) * t)
            for t in np.linspace(0.0, 1.0, n)]
