"""Study: which Whisper encoder layer should the voice head read?

    python -m models.voice.layer_study --data ../shared/data

CTranslate2 returns only the encoder's last layer, which Whisper trains to serve its decoder. This study reads
every layer with :class:`multimodal.whisper_encoder.WhisperEncoder` (the same weights, in torch) and pools each
layer's speech frames into their mean and standard deviation, for every take read both ways the encoder reads it
(clean and the recipe's corrupted copies; the two fixed corruptions with a transcript's padding), cached in
``--work``. It then cross-validates the shipped head (three merged networks, 30 epochs, prosody statistics beside
the states, the recipe's passes and speaker-independent folds) over each choice of layers, taking the prosody
statistics from the recipe's own feature cache (run the recipe first, or let this run it). It prints the balanced
accuracy per corpus on the left-out speakers; the model card reports what it gave.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from models.voice import train_voice as tv
from multimodal.files import work_dir
from multimodal.datasets import default_data_dir
from multimodal.voice import VoiceClip, WhisperEmotionBackend, pool_states, prepare_voice

_backend: WhisperEmotionBackend | None = None


def _init_worker() -> None:
    global _backend
    torch.set_num_threads(1)
    _backend = WhisperEmotionBackend(head_path=None, threads=1)


def _reads(kind: str) -> tuple[bool, ...]:
    """How a pass is read: with the transcript's padding, and (not for the fixed corruptions) the window alone."""
    return (True,) if kind in tv.ROBUSTNESS else (True, False)


def _job(args: tuple[np.ndarray, str, int, int, list[np.ndarray]]) -> list[np.ndarray] | None:
    y, kind, seed, i, others = args
    clip = prepare_voice((tv.SR, tv.take_for_pass(y, kind, seed, i, others)))
    if not isinstance(clip, VoiceClip):
        return None
    assert _backend is not None
    return [np.stack([pool_states(s[0], clip.frames) for s in _backend.encoder.states(_backend.mel(clip.samples, pad))])
            for pad in _reads(kind)]


def layer_features(takes: tv.Takes, kind: str, work: Path, seed: int, workers: int) -> dict[str, np.ndarray]:
    """Pooled states of every layer, (takes, layers, 768), per read (``long``: with the transcript's padding;
    ``short``: the window alone, not for the fixed corruptions), cached."""
    path = tv.pass_cache(work, "layers", kind, seed)
    if not path.exists():
        res = tv.run_pass(takes, kind, seed, workers, _job, _init_worker, desc="layers")
        first = next(r for r in res if r is not None)
        out = {"ok": np.array([r is not None for r in res])}
        for j, read in enumerate(("long", "short")[:len(_reads(kind))]):
            out[read] = np.stack([r[j] if r is not None else np.zeros_like(first[j]) for r in res])
        tv.save_cache(path, out)
    return dict(np.load(path))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data_dir(), help="default: $MOODTUNE_DATA or ../shared/data")
    ap.add_argument("--work", type=Path, default=work_dir("voice"),
                    help="the recipe's feature cache; the layers are cached beside it (about 60 MB a pass)")
    ap.add_argument("--choices", nargs="+", default=["4", "3", "2", "2+3", "3+4"],
                    help="layers (1 to 4) whose pooled states the head reads, joined with + to read several")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    takes = tv.load_takes(args.data)
    recipe = tv.load_passes(takes, args.work, args.seed, copies=3, workers=args.workers)  # prosody and ok
    layers = {k: layer_features(takes, k, args.work, args.seed, args.workers)
              for k in ("clean", "copy1", "copy2", "copy3", *tv.ROBUSTNESS)}
    fold = tv.folds(takes)
    print(f"{'layers':8s} " + " ".join(f"{p + ' RAVDESS':>20s} {'EmoDB':>6s}" for p in tv.SCORED))
    for choice in args.choices:
        chosen = [int(c) - 1 for c in choice.split("+")]
        passes = {}
        for name, p in recipe.items():
            kind, read = (name[:-len(tv.SHORT)], "short") if name.endswith(tv.SHORT) else (name, "long")
            states = layers[kind][read][:, chosen].reshape(len(takes.audio), -1)
            passes[name] = {**p, "whisper": np.concatenate([states, p["prosody"]], 1)}
        start = time.time()
        result = tv.cross_validate(takes, passes, fold, tv.SHIPPED, args.seed, members=args.members)["scores"]
        print(f"{choice:8s} " + " ".join(f"{result[p]['ravdess']['balanced_accuracy']:20.3f} "
                                         f"{result[p]['emodb']['balanced_accuracy']:6.3f}" for p in tv.SCORED)
              + f"   ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
