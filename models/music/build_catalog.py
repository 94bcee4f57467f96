"""Build the embedded catalog: the de-duplicated union of two public Spotify-feature catalogs.

    python -m models.music.build_catalog [--data ../shared/data] [--out recommend/data/catalog.csv.gz]

Sources (both in ``../shared/data/music``, see its PROVENANCE.md and ``recommend/data/SOURCES.md``):
TidyTuesday 2020-01-21 ``spotify_songs`` (32,833 rows, 6 playlist genres; MIT) and the Kaggle "Spotify Hit
Predictor Dataset 1960-2019" (41,106 tracks, no genre; the copy comes from a GPL-3.0 repository).

De-duplication rule: one row per Spotify track id, then one per normalised (first artist, title): both
case-folded, accents removed, bracketed parts ("(feat. X)", "[Live]") and a trailing " - ... Remaster..."
dropped, every other run of non-alphanumerics read as one space. TidyTuesday rows come first (they carry a
genre); a kept row takes the decade of a dropped duplicate when it has none. Rows with a missing or
out-of-range feature are dropped and counted.
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from recommend.catalog import FEATURES
from recommend.explicit import explicit_mask

EXTRA = ("loudness", "speechiness", "instrumentalness", "liveness")
COLUMNS = ("id", "name", "artist", "genre", "decade", *FEATURES, *EXTRA, "popularity", "explicit")
_BRACKETS = re.compile(r"[(\[].*?[)\]]")
_REMASTER = re.compile(r"\s+-\s+[^-]*\b(remaster|remastered|mono|stereo|single version|radio edit)\b.*$")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> str:
    """The key text used to find one song under two spellings (see the module docstring)."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode().casefold()
    text = _REMASTER.sub("", _BRACKETS.sub(" ", text))
    text = re.split(r"\s(?:feat\.?|ft\.?|featuring)\s", text)[0]
    return _NON_ALNUM.sub(" ", text).strip()


def first_artist(artist: str) -> str:
    return re.split(r"\s*(?:,|&|\bfeat\.?|\bft\.?|\bfeaturing\b|\bx\b|\bwith\b)\s*", str(artist).strip())[0]


def _tidytuesday(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    year = pd.to_numeric(raw["track_album_release_date"].astype(str).str[:4], errors="coerce")
    return pd.DataFrame({
        "id": raw["track_id"], "name": raw["track_name"], "artist": raw["track_artist"],
        "genre": raw["playlist_genre"], "decade": (year // 10 * 10), "popularity": raw["track_popularity"],
        **{f: raw[f] for f in (*FEATURES, *EXTRA)}})


def _hit_predictor(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    return pd.DataFrame({
        "id": raw["uri"].astype(str).str.replace("spotify:track:", "", regex=False), "name": raw["track"],
        "artist": raw["artist"], "genre": "", "decade": pd.to_numeric(raw["decade"].astype(str).str[:4], errors="coerce"),
        "popularity": np.nan, **{f: raw[f] for f in (*FEATURES, *EXTRA)}})


def build(data: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The union, cleaned and de-duplicated, with counts of what each step removed."""
    music = data / "music"
    tt, hp = _tidytuesday(music / "spotify_songs_tidytuesday_full.csv"), _hit_predictor(music / "hit_predictor_1960_2019.csv")
    frame = pd.concat([tt, hp], ignore_index=True)
    counts = {"tidytuesday_rows": len(tt), "hit_predictor_rows": len(hp)}
    ok = frame[["id", "name", "artist", *FEATURES]].notna().all(axis=1)
    ok &= frame["id"].astype(str).str.fullmatch(r"[0-9A-Za-z]{22}")
    for f, (lo, hi) in FEATURES.items():
        ok &= frame[f].between(lo, hi)
    counts["dropped_missing_or_out_of_range"] = int((~ok).sum())
    frame = frame[ok].copy()
    frame["name"] = frame["name"].astype(str).str.strip()
    frame["artist"] = frame["artist"].astype(str).str.strip()
    frame["key"] = frame["artist"].map(lambda a: normalise(first_artist(a))) + "\x00" + frame["name"].map(normalise)
    # A dropped duplicate's decade fills a kept row's gap (TidyTuesday rows carry a genre, the others a decade).
    decade = frame.dropna(subset=["decade"]).groupby("key")["decade"].first()
    before = len(frame)
    frame = frame.drop_duplicates(subset="id", keep="first")
    counts["duplicate_ids"] = before - len(frame)
    before = len(frame)
    frame = frame.drop_duplicates(subset="key", keep="first")
    counts["duplicate_artist_title"] = before - len(frame)
    frame["decade"] = frame["decade"].fillna(frame["key"].map(decade))
    frame["genre"] = frame["genre"].fillna("").astype(str).str.strip()
    counts["tracks"] = len(frame)
    counts["with_genre"] = int((frame["genre"] != "").sum())
    counts["with_decade"] = int(frame["decade"].notna().sum())
    # Computed once here for the embedded catalog (about a second for 60,000 titles): loading it costs nothing.
    frame["explicit"] = explicit_mask(frame["name"], frame["artist"]).astype(int)
    counts["explicit_words_hidden_by_default"] = int(frame["explicit"].sum())
    out = frame[list(COLUMNS)].reset_index(drop=True)
    out["decade"] = out["decade"].astype("Int64")
    out["popularity"] = out["popularity"].astype("Int64")
    out["mode"] = out["mode"].astype(int)
    return out, counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "recommend/data/catalog.csv.gz")
    args = parser.parse_args(argv)
    frame, counts = build(args.data)
    for key, value in counts.items():
        print(f"{key:34s} {value:>7,}")
    tmp = args.out.with_suffix(".tmp")
    # Rounded to the precision the sources carry (3 decimals; tempo 0.1 BPM, loudness 0.01 dB): the file stays small.
    frame.round({**{f: 3 for f in (*FEATURES, *EXTRA)}, "tempo": 1, "loudness": 2}).to_csv(
        tmp, index=False, compression={"method": "gzip", "compresslevel": 9, "mtime": 0})
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
