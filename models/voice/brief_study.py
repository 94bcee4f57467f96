"""Study: does the voice head read a second of speech better when it trains on seconds of speech?

    python -m models.voice.brief_study --data ../shared/data

The actors say whole sentences; people often say two words. This study adds two passes to the recipe's cached
ones (run the recipe first, or let this run it): ``brief``, the middle second of every take with a quarter second
of silence each side (scored, never trained on), and ``briefcopy1``, a random 0.7-1.5 s window of every take put
through the recipe's random corruptions (a training copy). It cross-validates the shipped candidate (three merged
networks, 30 epochs, speaker-independent folds) with and without the short copy, prints balanced accuracy per corpus
on the left-out speakers for every scored pass, then fits both on every take and reads the real people's recordings
of Debian's codec2-examples and alsa-utils (see ``models.voice.everyday_check``) when they are installed.
"""

from __future__ import annotations

import argparse
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.voice import train_voice as tv
from models.voice.augment import corrupt
from models.voice.everyday_check import everyday_files
from multimodal.files import work_dir
from multimodal.datasets import default_data_dir
from multimodal.labels import EMOTIONS
from multimodal.voice import VoiceClip, WhisperEmotionBackend, prepare_voice

BRIEF = ("brief", "briefcopy1")
PAD = 4_000  # a quarter second of silence each side, as a short utterance has


def brief_take(y: np.ndarray, kind: str, seed: int, i: int, others: list[np.ndarray]) -> np.ndarray:
    """Take ``i`` cut short: the middle second (``brief``) or a seeded random 0.7-1.5 s window, corrupted."""
    rng = np.random.default_rng([seed, i, zlib.crc32(kind.encode())])
    if kind == "brief":
        n = tv.SR
        start = max(0, (len(y) - n) // 2)
    else:
        n = int(rng.uniform(0.7, 1.5) * tv.SR)
        start = int(rng.integers(0, max(1, len(y) - n)))
    cut = np.pad(y[start:start + n], PAD)
    return cut if kind == "brief" else corrupt(cut, rng, others)


def _brief_job(args: tuple[np.ndarray, str, int, int, list[np.ndarray]]):
    y, kind, seed, i, others = args
    return tv._features(brief_take(y, kind, seed, i, others))


def brief_passes(takes: tv.Takes, work: Path, seed: int, workers: int) -> dict[str, dict[str, np.ndarray]]:
    """Both brief passes, read as the encoder reads with a transcript and for emotion alone (cached)."""
    passes = {}
    for kind in BRIEF:
        f = tv.extract(takes, kind, work, seed, workers, job=_brief_job, stem=f"features{tv.FEATURES_VERSION}_brief")
        passes[kind] = {"whisper": f["whisper"], "prosody": f["prosody"], "ok": f["ok"]}
        passes[kind + tv.SHORT] = {"whisper": f["whisper_short"], "prosody": f["prosody"], "ok": f["ok"]}
    return passes


def everyday_features() -> tuple[list[str], np.ndarray] | None:
    """Head inputs of the installed real-people recordings, read with a transcript's padding (the default)."""
    paths = [(source, p) for source, files in everyday_files().items() for p in files]
    if not paths:
        return None
    backend = WhisperEmotionBackend(head_path=None)
    names, feats = [], []
    for source, path in paths:
        clip = prepare_voice(str(path))
        if isinstance(clip, VoiceClip):
            names.append(f"{source}/{path.name}")
            feats.append(backend.features(clip, backend.encode(clip.samples, pad=True)))
    return names, np.stack(feats)


def fit_all(takes: tv.Takes, passes: dict, chosen: tuple[str, ...], seed: int) -> tv.FittedHead:
    """The shipped candidate fitted on every take of ``chosen`` (as the recipe refits it)."""
    which, head, _, options = tv.CANDIDATES[tv.SHIPPED]
    rows = tv.training_rows(takes, passes, which, tv.training_passes(passes, which, chosen), np.arange(len(takes.gold)))
    return tv.fit_head(*rows, head, seed, **options)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data_dir(), help="default: $MOODTUNE_DATA or ../shared/data")
    ap.add_argument("--work", type=Path, default=work_dir("voice"))
    ap.add_argument("--copies", type=int, default=3, help="the recipe's corrupted copies (as it was run)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.data is None:
        ap.error("no data folder: pass --data or set MOODTUNE_DATA")
    takes = tv.load_takes(args.data)
    passes = {**tv.load_passes(takes, args.work, args.seed, args.copies, args.workers),
              **brief_passes(takes, args.work, args.seed, args.workers)}
    fold = tv.folds(takes)
    base = ("clean", *(f"copy{i + 1}" for i in range(args.copies)))
    variants = {"shipped recipe": base, "+ a brief copy": (*base, "briefcopy1")}
    scored = (*tv.SCORED, "brief", "brief" + tv.SHORT)
    print(f"{'variant':16s} " + " ".join(f"{p + ' R/E':>19s}" for p in scored) + "  brief max share (RAVDESS)")
    for name, chosen in tqdm(variants.items(), desc="variants"):
        res = tv.cross_validate(takes, passes, fold, tv.SHIPPED, args.seed, scored=scored, chosen=chosen)["scores"]
        cells = [f"{res[p]['ravdess']['balanced_accuracy']:9.3f}/{res[p]['emodb']['balanced_accuracy']:.3f}"
                 for p in scored]
        print(f"{name:16s} " + " ".join(f"{c:>19s}" for c in cells)
              + f"  {res['brief']['ravdess']['max_predicted_share']:.2f}", flush=True)
    real = everyday_features()
    if real is None:
        print("codec2-examples / alsa-utils not installed: no real recordings read")
        return
    names, feats = real
    for name, chosen in variants.items():
        tops = [EMOTIONS[i] for i in fit_all(takes, passes, chosen, args.seed).predict(feats)[0].argmax(1)]
        for source in ("codec2", "alsa"):
            counts = Counter(t for n, t in zip(names, tops) if n.startswith(source))
            print(f"{name:16s} real people, {source}: " + ", ".join(f"{e} {k}" for e, k in counts.most_common()))


if __name__ == "__main__":
    main()
