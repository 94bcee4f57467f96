"""Tracks and catalogs: the embedded default and CSV files in the common Spotify-feature schemas."""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from multimodal.errors import MoodtuneError
from multimodal.files import is_regular_file, moodtune_home, write_atomic

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_CATALOG = DATA_DIR / "catalog.csv.gz"
DEFAULT_NAME = "embedded (TidyTuesday Spotify songs + Spotify Hit Predictor 1960-2019)"
#: Where ``moodtune catalog import`` and ``moodtune library scan`` keep catalogs (by name).
USER_CATALOG_DIR = moodtune_home() / "catalogs"
EMBEDDED = "embedded"
MAX_CSV_BYTES = 512 * 1024 * 1024  # the largest public schema (Kaggle 1921-2020) is about 30 MB
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,63}")

#: The audio features every catalog carries (ranges are checked on import).
FEATURES: dict[str, tuple[float, float]] = {
    "valence": (0.0, 1.0), "energy": (0.0, 1.0), "danceability": (0.0, 1.0), "tempo": (30.0, 250.0),
    "acousticness": (0.0, 1.0), "mode": (0.0, 1.0),
}
OPTIONAL_FEATURES = ("loudness", "speechiness", "instrumentalness", "liveness", "popularity")

#: Column names used by the public schemas (TidyTuesday spotify_songs.csv, Kaggle "Spotify Tracks
#: Dataset", Kaggle "Spotify 1921–2020" data.csv, our own library scans), first match wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("track_id", "id", "spotify_id", "uri"),
    "name": ("track_name", "name", "title", "song"),
    "artist": ("track_artist", "artists", "artist", "artist_name", "artist_names"),
    "genre": ("playlist_genre", "track_genre", "genre", "genres"),
    "popularity": ("track_popularity", "popularity"),
    "path": ("path",),
}
REQUIRED = ("id", "name", "artist")


class CatalogError(MoodtuneError, ValueError):
    """A catalog file cannot be used (missing columns, unreadable file)."""


@dataclass(frozen=True)
class Track:
    """One recommended (or catalog) track. ``explanation`` says why it was chosen."""

    id: str
    name: str
    artist: str
    genre: str
    features: dict[str, float]
    score: float = 0.0
    explanation: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def spotify_url(self) -> str | None:
        return f"https://open.spotify.com/track/{self.id}" if _is_spotify_id(self.id) else None

    @property
    def embed_url(self) -> str | None:
        return f"https://open.spotify.com/embed/track/{self.id}" if _is_spotify_id(self.id) else None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "artist": self.artist, "genre": self.genre,
                "features": self.features, "score": self.score, "explanation": self.explanation,
                "spotify_url": self.spotify_url, **({"extras": self.extras} if self.extras else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Track":
        """The track :meth:`to_dict` gave (``spotify_url`` is derived from the id, so it is not read back)."""
        return cls(id=str(d["id"]), name=str(d["name"]), artist=str(d["artist"]), genre=str(d.get("genre", "")),
                   features={str(k): float(v) for k, v in d["features"].items()}, score=float(d.get("score", 0.0)),
                   explanation=str(d.get("explanation", "")), extras=dict(d.get("extras", {})))


def _is_spotify_id(track_id: str) -> bool:
    return len(track_id) == 22 and track_id.isalnum()


def _first_artist(value: Any) -> str:
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):  # Kaggle 1921-2020: "['A', 'B']"
        try:
            names = ast.literal_eval(text)
            return ", ".join(map(str, names)) if isinstance(names, (list, tuple)) else text
        except (ValueError, SyntaxError):
            return text.strip("[]'\"")
    return text.replace(";", ", ")  # Kaggle Tracks Dataset: "A;B"


@dataclass
class ImportReport:
    rows: int = 0
    kept: int = 0
    skipped_missing: int = 0
    skipped_out_of_range: int = 0
    merged_duplicates: int = 0

    def __str__(self) -> str:
        return (f"{self.kept:,} tracks from {self.rows:,} rows ({self.skipped_missing:,} skipped for missing values, "
                f"{self.skipped_out_of_range:,} for out-of-range features, {self.merged_duplicates:,} duplicates merged)")


class Catalog:
    """A table of tracks with audio features, held as a pandas DataFrame plus a numpy feature matrix."""

    def __init__(self, frame: pd.DataFrame, name: str = "catalog", report: ImportReport | None = None) -> None:
        missing = [c for c in (*REQUIRED, "genre", *FEATURES) if c not in frame.columns]
        if missing:
            raise CatalogError(f"catalog frame lacks columns {missing}")
        self.frame = frame.reset_index(drop=True)
        self.name = name
        self.report = report or ImportReport(rows=len(frame), kept=len(frame))
        self.matrix = self.frame[list(FEATURES)].to_numpy(dtype=np.float64)
        if not np.isfinite(self.matrix).all():  # one NaN would spread through every track's place in the plane
            raise CatalogError("catalog features must be finite numbers (Catalog.from_frame skips rows that are not)")
        self.artists = self.frame["artist"].to_numpy(dtype=object)
        self.genres = self.frame["genre"].to_numpy(dtype=object)
        self._planes: dict[Any, tuple[np.ndarray, Any]] = {}
        self._cols: dict[str, np.ndarray] | None = None
        self._explicit: np.ndarray | None = None

    def plane(self, mood_map: Any) -> tuple[np.ndarray, Any]:
        """Every track's perceived (valence, arousal) under ``mood_map`` and the scale used, computed once."""
        if mood_map not in self._planes:
            if len(self._planes) >= 4:  # a few maps at a time (a study tries several); never one per call
                self._planes.clear()
            self._planes[mood_map] = mood_map.place(self.matrix)
        return self._planes[mood_map]

    @property
    def explicit(self) -> np.ndarray:
        """True for tracks whose title or artist carries an explicit word or slur (``recommend.explicit``); stored in
        the embedded catalog, found on first use for others."""
        if self._explicit is None:
            if "explicit" in self.frame:
                self._explicit = self.frame["explicit"].fillna(0).astype(bool).to_numpy()
            else:
                from .explicit import explicit_mask

                self._explicit = explicit_mask(self.frame["name"], self.frame["artist"])
        return self._explicit

    def allowed(self, exclude: set[str] | frozenset[str] = frozenset(), *, allow_explicit: bool = False) -> np.ndarray:
        """A mask of the tracks that may be listed: all but the ``exclude``d ids and, unless allowed, explicit ones."""
        allowed = np.ones(len(self), bool) if allow_explicit else ~self.explicit
        if exclude:
            allowed &= ~np.isin(self.frame["id"].to_numpy(), list(exclude))
        return allowed

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[Track]:
        return (self.track(i) for i in range(len(self)))

    def __repr__(self) -> str:
        return f"Catalog({self.name!r}, {len(self):,} tracks)"

    def track(self, i: int, **kw: Any) -> Track:
        i = int(i)
        cols = self._columns()
        feats = {k: float(cols[k][i]) for k in FEATURES}
        feats.update({k: float(cols[k][i]) for k in OPTIONAL_FEATURES if k in cols and pd.notna(cols[k][i])})
        extras: dict[str, Any] = {"path": cols["path"][i]} if "path" in cols and pd.notna(cols["path"][i]) else {}
        if "decade" in cols and pd.notna(cols["decade"][i]):
            extras["decade"] = int(cols["decade"][i])
        if "estimated" in cols and bool(cols["estimated"][i]):
            extras["estimated"] = True
        return Track(id=str(cols["id"][i]), name=str(cols["name"][i]), artist=str(cols["artist"][i]),
                     genre=str(cols["genre"][i]), features=feats, extras={**extras, **kw.pop("extras", {})}, **kw)

    def _columns(self) -> dict[str, np.ndarray]:
        """The frame's columns as numpy arrays, made once (a row of a DataFrame costs ~0.4 ms; this, microseconds)."""
        if self._cols is None:
            self._cols = {c: self.frame[c].to_numpy(dtype=object) for c in self.frame.columns}
        return self._cols

    def index_of(self, track_id: str) -> int | None:
        hits = np.flatnonzero(self.frame["id"].to_numpy() == track_id)
        return int(hits[0]) if len(hits) else None

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def default(cls) -> "Catalog":
        """The embedded catalog: 61,524 real tracks with Spotify audio features (see recommend/data/SOURCES.md)."""
        return load_catalog(EMBEDDED)

    @classmethod
    def from_csv(cls, path: str | Path, name: str | None = None) -> "Catalog":
        """Load a CSV in any of the known schemas; bad rows are skipped and counted in ``catalog.report``."""
        path = Path(path)
        if not path.exists():
            raise CatalogError(f"no catalog file at {path}")
        if not is_regular_file(path):  # a FIFO, a device such as /dev/zero, a link loop
            raise CatalogError(f"{path} is not a regular file")
        if path.stat().st_size > MAX_CSV_BYTES:
            raise CatalogError(f"{path} is larger than {MAX_CSV_BYTES // 2**20} MB")
        try:
            raw = pd.read_csv(path, low_memory=False)
        except FileNotFoundError as exc:
            raise CatalogError(f"no catalog file at {path}") from exc
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise CatalogError(f"{path} is not a readable CSV file ({exc})") from exc
        catalog = cls.from_frame(raw, name=name or path.name)
        if len(catalog) == 0:
            raise CatalogError(f"{path} has no usable track ({catalog.report})")
        return catalog

    @classmethod
    def from_frame(cls, raw: pd.DataFrame, name: str = "catalog") -> "Catalog":
        cols = {c.strip().lower(): c for c in raw.columns}
        frame = pd.DataFrame(index=raw.index)
        for key, options in ALIASES.items():
            src = next((cols[o] for o in options if o in cols), None)
            if src is not None:
                frame[key] = raw[src]
        for feat in (*FEATURES, *OPTIONAL_FEATURES):
            if feat in cols and feat not in frame:
                frame[feat] = pd.to_numeric(raw[cols[feat]], errors="coerce")
        if "decade" in cols:
            frame["decade"] = pd.to_numeric(raw[cols["decade"]], errors="coerce")
        if "explicit" in cols:  # kept by ``save_user_catalog``: the title scan runs once per import
            frame["explicit"] = pd.to_numeric(raw[cols["explicit"]], errors="coerce").fillna(0).astype(int)
        if "estimated" in cols:
            frame["estimated"] = raw[cols["estimated"]].astype(bool)
        absent = [k for k in REQUIRED if k not in frame] + [f for f in FEATURES if f not in frame]
        if absent:
            raise CatalogError(f"the catalog lacks required columns {absent}; it needs an id, a name, an artist and "
                               f"the features {', '.join(FEATURES)} (known spellings: "
                               + "; ".join(f"{k}: {'/'.join(v)}" for k, v in ALIASES.items() if k in REQUIRED) + ")")
        report = ImportReport(rows=len(frame))
        if "genre" not in frame:
            frame["genre"] = "unknown"
        frame["genre"] = frame["genre"].astype(object).fillna("unknown").astype(str).str.strip()
        frame["artist"] = frame["artist"].map(_first_artist)
        frame["name"] = frame["name"].astype(str).str.strip()
        frame["id"] = frame["id"].astype(str).str.strip().str.replace("spotify:track:", "", regex=False)
        needed = list(REQUIRED) + list(FEATURES)
        bad_missing = frame[needed].isna().any(axis=1) | frame["id"].isin(["", "nan"])
        report.skipped_missing = int(bad_missing.sum())
        frame = frame[~bad_missing]
        in_range = np.ones(len(frame), bool)
        for feat, (lo, hi) in FEATURES.items():
            in_range &= frame[feat].between(lo, hi).to_numpy()
        report.skipped_out_of_range = int((~in_range).sum())
        frame = frame[in_range]
        before = len(frame)
        frame = frame.drop_duplicates(subset="id", keep="first")
        key = frame["name"].str.lower() + "\x00" + frame["artist"].str.lower()
        frame = frame[~key.duplicated(keep="first")]
        report.merged_duplicates = before - len(frame)
        report.kept = len(frame)
        return cls(frame, name=name, report=report)

    @classmethod
    def concat(cls, catalogs: list["Catalog"], name: str = "combined") -> "Catalog":
        frame = pd.concat([c.frame for c in catalogs], ignore_index=True).drop_duplicates(subset="id")
        return cls(frame, name=name)


def check_catalog_name(name: str) -> str:
    """A name usable with ``--catalog``: letters, digits, ``._ -``, no folders, not "embedded"."""
    if not _NAME.fullmatch(name or "") or name.strip(". ") != name or name == EMBEDDED:
        raise CatalogError(f"{name!r} cannot name a catalog: use up to 64 letters, digits, '.', '_', '-' or spaces, "
                           f"not starting with a dot, and not {EMBEDDED!r}")
    return name


def save_user_catalog(catalog: Catalog, name: str, force: bool = False) -> Path:
    """Keep ``catalog`` in moodtune's folder under ``name`` (atomically; an existing one only with ``force``)."""
    target = USER_CATALOG_DIR / f"{check_catalog_name(name)}.csv"
    if target.exists() and not force:
        raise CatalogError(f"a catalog named {name!r} exists already; choose another name or pass --force to replace it")
    try:
        USER_CATALOG_DIR.mkdir(parents=True, exist_ok=True)
        write_atomic(target, catalog.frame.assign(explicit=catalog.explicit.astype(int)).to_csv(index=False))
    except OSError as exc:  # MOODTUNE_HOME is a file, read-only, full...
        raise CatalogError(f"cannot keep the catalog in {USER_CATALOG_DIR} ({exc.strerror}); check that "
                           "MOODTUNE_HOME is a folder you can write to") from exc
    return target


def user_catalogs() -> list[str]:
    """Names usable with ``load_catalog``: the embedded one and those imported or scanned by the user."""
    names = sorted(p.stem for p in USER_CATALOG_DIR.glob("*.csv")) if USER_CATALOG_DIR.exists() else []
    return [EMBEDDED, *names]


def _load_embedded() -> Catalog:
    """The embedded catalog, built clean by ``models/music/build_catalog.py``: read as it is, no re-cleaning."""
    frame = pd.read_csv(DEFAULT_CATALOG, dtype={"id": str, "name": str, "artist": str, "genre": str},
                        keep_default_na=False, na_values={f: [""] for f in (*FEATURES, *OPTIONAL_FEATURES, "decade")})
    return Catalog(frame, name=DEFAULT_NAME)


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Catalog:  # noqa: ARG001 - mtime invalidates the cache
    return _load_embedded() if Path(path) == DEFAULT_CATALOG else Catalog.from_csv(path)


def load_catalog(name_or_path: str | Path | None = None) -> Catalog:
    """The embedded catalog (None or "embedded"), a CSV path, or the name of an imported catalog."""
    if name_or_path in (None, "", EMBEDDED):
        return _load_cached(str(DEFAULT_CATALOG), DEFAULT_CATALOG.stat().st_mtime)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        path = USER_CATALOG_DIR / f"{name_or_path}.csv"
    if not path.exists():
        raise CatalogError(f"no catalog file at {name_or_path} and no imported catalog of that name "
                           f"(known: {', '.join(user_catalogs())})")
    return _load_cached(str(path), path.stat().st_mtime)
