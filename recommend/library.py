"""Your own music as a catalog: estimate audio features of local files with librosa.

The numbers are **estimates** from the signal (tempo, loudness, spectral centroid, onset rate, key mode),
not Spotify's features; every scanned track is marked ``estimated``. Results are cached per file (path,
size, modification time) so a rescan only reads new or changed files. Only the features are cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from multimodal.files import is_regular_file, moodtune_home, write_atomic

from .catalog import Catalog

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aiff", ".aif", ".opus"}
CACHE = moodtune_home() / "library_cache.json"
# Triad templates (root, third, fifth) for the mode estimate: major third = 4 semitones, minor = 3.
_MAJOR = np.zeros(12)
_MAJOR[[0, 4, 7]] = 1
_MINOR = np.zeros(12)
_MINOR[[0, 3, 7]] = 1


@dataclass
class Estimate:
    valence: float
    energy: float
    danceability: float
    tempo: float
    acousticness: float
    mode: float
    loudness: float


def _key_mode(chroma_frames: np.ndarray) -> tuple[float, float]:
    """(major score 0..1, best template correlation) from per-frame chroma (12, T): frames vote by triad."""
    chroma = chroma_frames / (np.linalg.norm(chroma_frames, axis=0, keepdims=True) + 1e-9)
    major = np.stack([np.roll(_MAJOR, k) for k in range(12)]) @ chroma  # (12, T)
    minor = np.stack([np.roll(_MINOR, k) for k in range(12)]) @ chroma
    votes = major.max(0) - minor.max(0)
    return float(np.mean(votes > 0)), float(max(major.max(), minor.max()))


def estimate_features(path: str | Path, seconds: float = 60.0) -> Estimate:
    """Estimate Spotify-like features from up to ``seconds`` of the file (from its middle)."""
    import librosa

    import soundfile as sf

    try:
        total = float(sf.info(str(path)).duration)
    except Exception:  # noqa: BLE001 - formats soundfile cannot open go through librosa/ffmpeg
        from multimodal.audio_io import is_ffmpeg_container

        if Path(path).suffix.lower() in {".wav", ".flac", ".ogg", ".aiff", ".aif"} or not is_ffmpeg_container(Path(path)):
            raise ValueError("unreadable audio file") from None
        total = librosa.get_duration(path=str(path))
    offset = max(0.0, total / 2 - seconds / 2)
    y, sr = librosa.load(str(path), sr=22050, mono=True, offset=offset, duration=seconds)
    if len(y) < sr:
        raise ValueError("shorter than one second")
    # one log-mel spectrogram (as onset_strength would compute it) for both onset envelopes
    mel_db = librosa.power_to_db(np.abs(librosa.feature.melspectrogram(y=y, sr=sr, fmax=sr / 2)))
    # beat_track's own tempo estimate without its beat placement, whose numba kernel librosa never caches (2 s of
    # compiling in every process that scans, 10 s on busy cores)
    beat_env = librosa.onset.onset_strength(S=mel_db, sr=sr, aggregate=np.median)
    tempo = (float(librosa.feature.tempo(onset_envelope=beat_env, sr=sr)[0]) if beat_env.any() else 0.0) or 100.0
    rms = librosa.feature.rms(y=y)[0]
    loud = float(20 * np.log10(np.sqrt(np.mean(rms ** 2)) + 1e-9))
    onset_env = librosa.onset.onset_strength(S=mel_db, sr=sr)
    onset_rate = len(librosa.onset.onset_detect(onset_envelope=onset_env, sr=sr)) / (len(y) / sr)
    centroid = float(np.mean(librosa.feature.spectral_centroid(y=y, sr=sr)))
    flatness = float(np.mean(librosa.feature.spectral_flatness(y=y)))
    major, _ = _key_mode(librosa.feature.chroma_cqt(y=y, sr=sr))
    pulse = float(np.clip(np.std(onset_env) / (np.mean(onset_env) + 1e-9) / 3, 0, 1))  # beat salience
    energy = np.clip(0.45 * (loud + 35) / 30 + 0.3 * min(onset_rate / 6, 1) + 0.25 * min(centroid / 3500, 1), 0, 1)
    valence = np.clip(0.2 + 0.45 * major + 0.2 * np.clip((tempo - 70) / 90, 0, 1) + 0.15 * min(centroid / 3500, 1), 0, 1)
    dance = np.clip(0.3 + 0.4 * pulse + 0.3 * (1 - abs(tempo - 120) / 60), 0, 1)
    acoustic = np.clip(1 - 0.6 * min(centroid / 3500, 1) - 1.5 * flatness - 0.2 * energy, 0, 1)
    return Estimate(float(valence), float(energy), float(dance), float(np.clip(tempo, 30, 250)), float(acoustic),
                    float(round(major)), loud)


def _key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}"


def music_files(folder: Path) -> tuple[list[Path], list[str]]:
    """Regular audio files under ``folder`` (links to folders not followed); what was skipped, and why."""
    files, skipped = [], []
    for here, _dirs, names in os.walk(Path(folder).expanduser(), followlinks=False):
        for name in names:
            path = Path(here) / name
            if path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            if is_regular_file(path):
                files.append(path)
            else:
                why = "a dangling or looping link" if path.is_symlink() else "not a regular file (a pipe or a device)"
                skipped.append(f"{path.name}: {why}")
    return sorted(files), skipped


def artist_of(path: Path, root: Path) -> str:
    """The first folder below ``root`` (Music/Artist/Album/track.mp3); for files directly in ``root``, "Artist - Title"
    gives the artist and otherwise the file's own name, so that a flat folder is not one artist (the ranker
    allows two tracks per artist)."""
    parts = path.relative_to(root).parts
    if len(parts) > 1:
        return parts[0]
    head, sep, _ = path.stem.partition(" - ")
    return head.strip() if sep and head.strip() else path.stem


def _read_cache(cache: Path | None) -> dict[str, dict]:
    if cache is None or not cache.exists():
        return {}
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):  # "[]", "null" or another shape: start again
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and set(v) == set(Estimate.__dataclass_fields__)}


def scan(folder: str | Path, cache: Path | None = CACHE, progress: bool = True) -> tuple[Catalog, list[str]]:
    """Scan a folder (recursively) into a catalog; returns it and the files that could not be read."""
    from tqdm import tqdm

    root = Path(folder).expanduser()
    files, failed = music_files(root)
    cached = _read_cache(cache)
    rows = []
    for path in tqdm(files, desc="scanning your music", disable=not progress):
        key = _key(path)
        if key not in cached:
            try:
                cached[key] = asdict(estimate_features(path))
            except Exception as exc:  # noqa: BLE001 - decoders raise many types; the file is reported
                failed.append(f"{path.name}: {type(exc).__name__}")
                continue
        rows.append({"id": hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16], "name": path.stem,
                     "artist": artist_of(path, root), "genre": "local", "path": str(path), "estimated": True,
                     **cached[key]})
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, json.dumps(cached))
    frame = pd.DataFrame(rows, columns=["id", "name", "artist", "genre", "path", "estimated", "valence", "energy",
                                        "danceability", "tempo", "acousticness", "mode", "loudness"])
    return Catalog.from_frame(frame, name=f"library: {Path(folder).name}"), failed

