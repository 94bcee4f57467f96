"""Spotify, the way it works for a new app in 2026 (spotipy, client-credentials flow).

What works: ``search`` (at most 10 results a call), ``tracks`` (album art, links) and embed URLs. What a new app
gets 403/404 for: ``recommendations``, ``audio_features``, ``audio_analysis``; so moodtune ranks its own catalog
by audio features and uses Spotify for finding playable tracks and enriching them. ``recommendations`` is
only tried behind an explicit setting (``allow_recommendations=True`` or ``MOODTUNE_SPOTIFY_RECOMMENDATIONS=1``)
for apps that still have access.

Credentials come only from the environment (``SPOTIPY_CLIENT_ID``, ``SPOTIPY_CLIENT_SECRET``); the token is
kept in memory (no ``.cache`` file) and secrets are never printed or logged. Every failure (no credentials,
400, 401, 403, 404, 429, 5xx, timeout) falls back to the catalog with one clear message.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import pandas as pd

from multimodal.errors import MoodtuneError

from .catalog import DATA_DIR, Track
from .targets import Target

log = logging.getLogger("moodtune")
GENRES_CSV = DATA_DIR / "data_by_genres.csv"
MAX_SEARCH_LIMIT = 10
MAX_RETRY_AFTER_S = 5.0


class SpotifyUnavailable(MoodtuneError, RuntimeError):
    """Spotify could not answer; the message says why in words a user understands."""


@lru_cache(maxsize=1)
def genre_means() -> pd.DataFrame:
    """Audio-feature means of 2,664 Spotify genres (Kaggle "Spotify 1921-2020"; see data/SOURCES.md)."""
    frame = pd.read_csv(GENRES_CSV)
    return frame[(frame["genres"].astype(str).str.len() > 2) & (frame["popularity"] >= 40)].reset_index(drop=True)


def genres_for(target: Target, k: int = 3) -> list[str]:
    """The genres whose mean valence/energy/acousticness lie nearest the target (for search queries)."""
    g = genre_means()
    d = ((g["valence"] - target.valence) ** 2 + (g["energy"] - target.energy) ** 2
         + 0.5 * (g["acousticness"] - target.acousticness) ** 2 + 0.2 * ((g["tempo"] - target.tempo) / 60) ** 2)
    return g.loc[np.argsort(d.to_numpy())[:k], "genres"].astype(str).tolist()


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "http_status", None)
    reasons = {400: "the request was rejected (400)", 401: "the credentials were refused (401)",
               403: "this app is not allowed to use that endpoint (403; new apps lose some endpoints)",
               404: "the endpoint or item was not found (404)", 429: "Spotify is rate-limiting us (429)"}
    if status in reasons:
        return reasons[status]
    if isinstance(status, int) and status >= 500:
        return f"Spotify had a server error ({status})"
    name = type(exc).__name__
    if "Timeout" in name or "Connection" in name:
        return "Spotify could not be reached (timeout or no network)"
    if name == "SpotifyOauthError":
        return "the credentials were refused"
    return f"Spotify failed ({name})"


@dataclass
class SpotifyClient:
    """A small, failure-proof facade over spotipy. ``available`` is False without credentials."""

    prefix: str | None = None          # API base, e.g. a local fake server in tests
    token_url: str | None = None       # token endpoint, ditto
    timeout: float = 5.0
    allow_recommendations: bool = False
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self._sp = None
        self.allow_recommendations = self.allow_recommendations or os.environ.get(
            "MOODTUNE_SPOTIFY_RECOMMENDATIONS", "") == "1"

    @property
    def available(self) -> bool:
        return bool(os.environ.get("SPOTIPY_CLIENT_ID") and os.environ.get("SPOTIPY_CLIENT_SECRET"))

    #: What ``_client`` says when :attr:`available` is False.
    missing = "no Spotify credentials (set SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET)"

    def _auth(self) -> Any:
        """The app's own sign-in (client credentials), its token in memory only."""
        from spotipy.cache_handler import MemoryCacheHandler
        from spotipy.oauth2 import SpotifyClientCredentials

        return SpotifyClientCredentials(client_id=os.environ["SPOTIPY_CLIENT_ID"],
                                        client_secret=os.environ["SPOTIPY_CLIENT_SECRET"],
                                        cache_handler=MemoryCacheHandler(), requests_timeout=self.timeout)

    def _client(self) -> Any:
        if not self.available:
            raise SpotifyUnavailable(self.missing)
        if self._sp is None:
            import requests
            import spotipy

            auth = self._auth()
            if self.token_url:
                auth.OAUTH_TOKEN_URL = self.token_url
            # a plain session: no silent urllib3 retries, so a 429 reaches us with its Retry-After header
            sp = spotipy.Spotify(auth_manager=auth, requests_session=requests.Session(), requests_timeout=self.timeout)
            if self.prefix:
                sp.prefix = self.prefix
            self._sp = sp
        return self._sp

    def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        """Run one API call; honour one short Retry-After on 429; turn every failure into SpotifyUnavailable."""
        import requests
        from spotipy.exceptions import SpotifyException
        from spotipy.oauth2 import SpotifyOauthError

        sp = self._client()
        for attempt in (1, 2):
            try:
                return fn(sp)
            except SpotifyException as exc:
                retry = float((exc.headers or {}).get("Retry-After", 0) or 0)
                if exc.http_status == 429 and attempt == 1 and 0 < retry <= MAX_RETRY_AFTER_S:
                    self.sleep(retry)
                    continue
                raise SpotifyUnavailable(f"{what}: {_describe(exc)}") from None
            except (SpotifyOauthError, requests.RequestException) as exc:
                raise SpotifyUnavailable(f"{what}: {_describe(exc)}") from None
        raise SpotifyUnavailable(f"{what}: Spotify is rate-limiting us (429)")

    # -- what works for a new app --------------------------------------------------------------
    def search(self, target: Target, n: int = 10) -> list[Track]:
        """Playable tracks from Spotify search for the genres nearest the target (≤ 10 per call)."""
        tracks: list[Track] = []
        seen: set[str] = set()
        genres = genres_for(target, k=3)
        g = genre_means().set_index("genres")
        for genre in genres:
            if len(tracks) >= n:
                break
            limit = min(MAX_SEARCH_LIMIT, n)
            result = self._call("search", lambda sp: sp.search(q=f'genre:"{genre}"', type="track", limit=limit))
            for item in (result or {}).get("tracks", {}).get("items", []):
                if item.get("id") in seen or len(tracks) >= n:
                    continue
                seen.add(item["id"])
                m = g.loc[genre]
                feats = {"valence": float(m["valence"]), "energy": float(m["energy"]),
                         "danceability": float(m["danceability"]), "tempo": float(m["tempo"]),
                         "acousticness": float(m["acousticness"]), "mode": float(m["mode"])}
                tracks.append(Track(id=item["id"], name=item.get("name", "?"),
                                    artist=", ".join(a.get("name", "?") for a in item.get("artists", [])),
                                    genre=genre, features=feats,
                                    explanation=(f"Spotify search in '{genre}' (genre mean valence {m['valence']:.2f}, "
                                                 f"energy {m['energy']:.2f}; target {target.valence:.2f}, "
                                                 f"{target.energy:.2f})"),
                                    extras=_extras(item)))
        return tracks

    def enrich(self, tracks: list[Track]) -> list[Track]:
        """Add album art, preview and links to catalog tracks (``tracks`` endpoint, 50 ids a call)."""
        ids = [t.id for t in tracks if t.spotify_url]
        found: dict[str, dict] = {}
        for i in range(0, len(ids), 50):
            chunk = ids[i:i + 50]
            result = self._call("tracks", lambda sp: sp.tracks(chunk))
            found.update({item["id"]: item for item in (result or {}).get("tracks", []) if item})
        return [Track(**{**t.__dict__, "extras": {**t.extras, **_extras(found[t.id])}}) if t.id in found else t
                for t in tracks]

    def recommendations(self, target: Target, n: int = 10) -> list[Track]:
        """Spotify's own recommendations: only for apps that still have access, behind an explicit setting.

        Spotify gives no audio features for them any more (``audio_features`` is 403 for new apps), so each track
        carries the target it was asked for, and says so.
        """
        if not self.allow_recommendations:
            raise SpotifyUnavailable("recommendations are off (new apps get 403/404; set "
                                     "MOODTUNE_SPOTIFY_RECOMMENDATIONS=1 if yours still has access)")
        genres = [g.replace(" ", "-") for g in genres_for(target, k=2)]
        result = self._call("recommendations", lambda sp: sp.recommendations(
            seed_genres=genres, limit=min(n, 100), target_valence=round(target.valence, 3),
            target_energy=round(target.energy, 3), target_tempo=round(target.tempo, 1)))
        feats = {f: float(getattr(target, f)) for f in ("valence", "energy", "danceability", "tempo", "acousticness",
                                                         "mode")}
        return [Track(id=item["id"], name=item.get("name", "?"),
                      artist=", ".join(a.get("name", "?") for a in item.get("artists", [])), genre="/".join(genres),
                      features=feats, extras=_extras(item),
                      explanation=(f"Spotify recommendations for valence {target.valence:.2f}, energy "
                                   f"{target.energy:.2f}, tempo {target.tempo:.0f} BPM (seeds: {', '.join(genres)})"))
                for item in (result or {}).get("tracks", [])[:n] if item and item.get("id")]


def _extras(item: dict) -> dict[str, Any]:
    images = (item.get("album") or {}).get("images") or []
    return {k: v for k, v in {"album_art": images[0]["url"] if images else None,
                              "preview_url": item.get("preview_url"),
                              "spotify_link": (item.get("external_urls") or {}).get("spotify"),
                              "popularity": item.get("popularity")}.items() if v is not None}


def with_spotify(tracks: list[Track], target: Target, client: SpotifyClient, *, source: str = "catalog",
                 n: int = 10) -> tuple[list[Track], str]:
    """Enrich catalog tracks (``source="catalog"``) or search Spotify (``"spotify"``); fall back with a message."""
    try:
        if source == "spotify":
            note = ""
            if client.allow_recommendations:
                try:
                    found = client.recommendations(target, n=n)
                    if found:
                        return found, f"{len(found)} tracks from Spotify recommendations"
                    note = "Spotify recommendations found nothing; "
                except SpotifyUnavailable as exc:  # 403/404 for apps made since late 2024: search still works
                    note = f"Spotify recommendations unavailable ({exc}); "
            found = client.search(target, n=n)
            if found:
                return found, f"{note}{len(found)} tracks from Spotify search"
            return tracks, f"{note}Spotify search found nothing for this mood; showing the catalog"
        return client.enrich(tracks), "catalog tracks enriched with Spotify links and album art"
    except SpotifyUnavailable as exc:
        log.info("spotify: %s", exc)
        return tracks, f"Spotify unavailable ({exc}); showing the catalog"
