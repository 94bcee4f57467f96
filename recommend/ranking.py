"""Ranking a catalog for a mood: nearness in the perceived mood plane, MMR diversity in feature space, artist cap.

Relevance is a Gaussian kernel of the distance between a track's perceived (valence, arousal)
(``recommend.perceived``) and the asked mood's point in that plane, both in standard deviations of the
catalog. Diversity (maximal marginal relevance) still looks at the whole sound: a feature-space kernel plus a
bonus for a shared genre, where both tracks have one. All scoring is vectorised numpy over the whole
catalog; the greedy MMR step only looks at a shortlist, so a 1,000,000-track catalog ranks in tens of ms.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from .catalog import FEATURES, Catalog, Track
from .perceived import PERCEIVED, MoodMap, PlaneScale
from .targets import Target, target_from_va

#: For diversity only: how much each feature counts in the distance between two tracks, and the scale that
#: makes features comparable (tempo differences are divided by 60 BPM, the rest are already on 0..1).
FEATURE_WEIGHTS = {"valence": 1.0, "energy": 1.0, "danceability": 0.4, "tempo": 0.3, "acousticness": 0.4, "mode": 0.2}
FEATURE_SCALES = {"valence": 1.0, "energy": 1.0, "danceability": 1.0, "tempo": 60.0, "acousticness": 1.0, "mode": 1.0}
_W = np.array([FEATURE_WEIGHTS[f] for f in FEATURES])
_S = np.array([FEATURE_SCALES[f] for f in FEATURES])
KERNEL_WIDTH = 0.25
_NO_GENRE = ("", "unknown", "nan")


def plane_point(target: Target, scale: PlaneScale, mood_map: MoodMap = PERCEIVED) -> np.ndarray:
    """Where ``target`` asks to be in the plane: its mood, moved by the session offsets it carries."""
    base = target_from_va(target.mood_valence, target.mood_arousal)
    offsets = {f: getattr(target, f) - getattr(base, f) for f in FEATURES}
    return mood_map.reach * np.array([target.mood_valence, target.mood_arousal]) + scale.shift(offsets)


def distance2(plane: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Squared distance of each track to ``point`` in the plane (two columns: faster than a sum over axis 1)."""
    dv, da = plane[:, 0] - point[0], plane[:, 1] - point[1]
    return dv * dv + da * da


def relevance(plane: np.ndarray, point: np.ndarray, width: float = PERCEIVED.width) -> np.ndarray:
    """Gaussian kernel of each track's distance to ``point`` in the plane, in (0, 1]; 1 means on the point."""
    return np.exp(-distance2(plane, point) / (2 * width ** 2))


def similarity(matrix: np.ndarray, i: int, others: np.ndarray, genres: np.ndarray) -> np.ndarray:
    """How alike track i is to each of ``others``: feature-space kernel, plus a bonus for a genre both have.
    A missing genre is no genre: tracks without one are never alike for it."""
    d2 = (((matrix[others] - matrix[i]) / _S) ** 2 * _W).sum(1) / _W.sum()
    shared = (genres[others] == genres[i]) & (genres[i] not in _NO_GENRE)
    return 0.7 * np.exp(-d2 / (2 * KERNEL_WIDTH ** 2)) + 0.3 * shared


_WORDS = {"energy": ("high energy", "low energy"), "valence": ("cheerful", "gloomy"),
          "danceability": ("danceable", "not for dancing"), "tempo": ("fast", "slow"),
          "acousticness": ("acoustic", "electronic"), "mode": ("major key", "minor key")}


def describe(features: np.ndarray, z: np.ndarray, point: np.ndarray, mood_map: MoodMap = PERCEIVED) -> str:
    """Why a track fits, in words: how it feels (its place in the plane) and the features of the map that put it
    there, strongest first ("calm and warm: low energy, acoustic (92 BPM)")."""
    v, a = point
    if a > 0.5:
        feel = "upbeat" if v > 0.5 else "tense" if v < -0.5 else "energetic"
    elif a < -0.5:
        feel = "calm and warm" if v > 0.5 else "sad and quiet" if v < -0.5 else "calm"
    else:
        feel = "bright" if v > 0.5 else "dark" if v < -0.5 else "balanced"
    pull = np.abs(z) * np.abs(mood_map.weights_matrix()).sum(1)  # how far each feature moves the track in the map
    said = [_WORDS[f][0 if z[k] > 0 else 1] for k in np.argsort(-pull)[:3]
            for f in [list(FEATURES)[k]] if pull[k] > 0 and abs(z[k]) >= 0.75]
    tempo = features[list(FEATURES).index("tempo")]
    return f"{feel}: {', '.join(said) if said else 'middle of the road'} ({tempo:.0f} BPM)"


def rank(catalog: Catalog, targets: Sequence[Target], *, n: int = 10, mmr_lambda: float = 0.7,
         max_per_artist: int = 2, exclude: set[str] | frozenset[str] = frozenset(),
         shortlist: int = 400, mood_map: MoodMap = PERCEIVED, allow_explicit: bool = False) -> list[Track]:
    """Pick ``n`` tracks; position k is chosen against ``targets[k]`` (a path for "uplift").

    Each pick maximises ``λ·relevance − (1−λ)·max similarity to the tracks already picked`` (maximal
    marginal relevance), skipping artists that already have ``max_per_artist`` tracks and, unless
    ``allow_explicit``, tracks whose title or artist carries an explicit word (``recommend.explicit``).
    """
    n = min(int(n), len(catalog))  # never more than the catalog holds (n=10**8 must not allocate for it)
    if n <= 0:
        return []
    if not 0.0 <= mmr_lambda <= 1.0:
        raise ValueError("mmr_lambda must be between 0 and 1")
    targets = list(targets) + [targets[-1]] * max(0, n - len(targets))
    matrix = catalog.matrix
    plane, scale = catalog.plane(mood_map)
    allowed = catalog.allowed(exclude, allow_explicit=allow_explicit)
    # Shortlist: the tracks nearest any target on the path; the kernel is computed for those alone.
    points = {id(t): plane_point(t, scale, mood_map) for t in targets}
    nearest = np.minimum.reduce([distance2(plane, p) for p in points.values()])
    nearest[~allowed] = np.inf
    k = min(len(catalog), max(shortlist, 20 * n))
    pool = np.argpartition(nearest, k - 1)[:k] if k < len(catalog) else np.arange(len(catalog))
    pool = pool[np.isfinite(nearest[pool])]
    rel_by_target = {key: relevance(plane[pool], p, mood_map.width) for key, p in points.items()}
    pool_artists = catalog.artists[pool]
    taken = np.zeros(len(pool), bool)
    max_sim = np.zeros(len(pool))  # similarity of each shortlisted track to its nearest pick so far
    per_artist: Counter[str] = Counter()
    out: list[Track] = []
    for pos in range(n):
        target = targets[pos]
        rel = rel_by_target[id(target)]
        ok = np.array([per_artist[a] < max_per_artist for a in pool_artists], dtype=bool)
        ok[taken] = False
        if not ok.any():
            break
        mmr = mmr_lambda * rel - (1 - mmr_lambda) * max_sim
        mmr[~ok] = -np.inf
        pick = int(np.argmax(mmr))
        j = int(pool[pick])
        taken[pick] = True
        max_sim = np.maximum(max_sim, similarity(matrix, j, pool, catalog.genres))
        per_artist[catalog.artists[j]] += 1
        score = float(rel[pick])
        z = (matrix[j] - scale.mean) / scale.sd
        out.append(catalog.track(j, score=round(score, 4), explanation=describe(matrix[j], z, plane[j], mood_map)))
    return out
