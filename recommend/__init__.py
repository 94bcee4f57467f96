"""Mood → audio-feature targets → ranked, diverse tracks from a catalog."""

from __future__ import annotations

import numpy as np

from .catalog import EMBEDDED, FEATURES, USER_CATALOG_DIR, Catalog, CatalogError, Track, load_catalog, user_catalogs
from .perceived import PERCEIVED, MoodMap
from .playlists import PlaylistError, export_playlist, to_csv, to_m3u
from .ranking import rank
from .session import ProfileError, Session
from .targets import STRATEGIES, Target, target_from_va, target_path


def recommend_tracks(valence: float, arousal: float, catalog: Catalog | None = None, *, n: int = 10,
                     strategy: str = "match", session: Session | None = None, mmr_lambda: float = 0.7,
                     max_per_artist: int = 2, mood_map: MoodMap = PERCEIVED, allow_explicit: bool = False) -> list[Track]:
    """Rank ``catalog`` (default: the embedded one) for a mood given as valence and arousal (−1..1); tracks with
    explicit words in their title or artist are left out unless ``allow_explicit``."""
    if not (np.isfinite(valence) and np.isfinite(arousal)):
        raise ValueError("valence and arousal must be finite numbers")
    catalog = catalog if catalog is not None else Catalog.default()
    n = max(0, min(int(n), len(catalog)))  # the path is made for the list, never for more than the catalog holds
    targets = target_path(valence, arousal, n, strategy)
    exclude: set[str] = set()
    if session is not None:  # read, never changed: feedback makes a new session (Session.like/skip)
        targets = session.apply(targets)
        exclude = set(session.skipped)
    return rank(catalog, targets, n=n, mmr_lambda=mmr_lambda, max_per_artist=max_per_artist, exclude=exclude,
                mood_map=mood_map, allow_explicit=allow_explicit)


__all__ = ["EMBEDDED", "FEATURES", "STRATEGIES", "USER_CATALOG_DIR", "Catalog", "CatalogError", "MoodMap", "PERCEIVED", "PlaylistError", "export_playlist", "to_csv", "to_m3u", "ProfileError", "Session", "Target", "Track",
           "load_catalog", "rank", "recommend_tracks", "target_from_va", "target_path", "user_catalogs"]
