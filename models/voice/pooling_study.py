"""Study: does attentive statistics pooling over the Whisper speech frames beat their mean and standard deviation?

    python -m models.voice.pooling_study --data ../shared/data

The shipped head pools the encoder's speech frames into their mean and standard deviation. This study keeps the
frames themselves (of one encoder layer, ``--layer``: by default the last, which the head read when this study
ran; every take read as ``VoiceEncoder(transcribe=False)`` reads it: clean, the recipe's three corrupted copies and
its two fixed corruptions; float16, about 100 MB a pass, cached in ``--work``) and trains the same head (prosody
statistics beside the pooled states, Linear → GELU → Linear, one network, soft targets plus valence/arousal) over
each pooling on the recipe's speaker-independent folds:

- ``mean``: mean and standard deviation of the frames (what ships, here learned from the frames);
- ``attentive``: attentive statistics pooling (Okabe et al., Interspeech 2018): a small network scores every
  frame, and the mean and standard deviation are weighted by the softmax of the scores;
- ``--crop F``: in training, half the takes are cut to a random stretch of F..1 of their speech frames.

It prints the balanced accuracy per corpus on the left-out speakers (clean, noisy, quiet). The model card
reports what it gave.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.voice.train_voice import (ROBUSTNESS, SR, Takes, folds, load_takes, pass_cache, run_pass, sample_weights,
                                      save_cache, scores, take_for_pass, training_step)
from multimodal.files import work_dir
from multimodal.datasets import default_data_dir
from multimodal.heads import softmax
from multimodal.labels import EMOTIONS
from multimodal.voice import VoiceClip, WhisperEmotionBackend, prepare_voice, prosody_features, speech_states

TRAIN = ("clean", "copy1", "copy2", "copy3")
SCORED = ("clean", *ROBUSTNESS)
WIDTH = 384  # Whisper tiny's state size

_backend: WhisperEmotionBackend | None = None
_layer = 4


def _init_worker(layer: int) -> None:
    global _backend, _layer
    _layer = layer
    torch.set_num_threads(1)
    _backend = WhisperEmotionBackend(head_path=None, threads=1)


def _job(args: tuple[np.ndarray, str, int, int, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray] | None:
    clip = prepare_voice((SR, take_for_pass(*args)))  # the recipe's take, corrupted as the recipe corrupts it
    if not isinstance(clip, VoiceClip):
        return None
    assert _backend is not None
    states = _backend.encoder.states(_backend.mel(clip.samples, pad=False), _layer)[-1][0]
    return speech_states(states, clip.frames).astype(np.float16), prosody_features(clip)


def speech_frames(takes: Takes, kind: str, work: Path, seed: int, workers: int, layer: int) -> dict[str, np.ndarray]:
    """Speech-frame states of every take (concatenated, with ``offsets``) and its prosody statistics, cached."""
    path = pass_cache(work, f"frames_layer{layer}", kind, seed)
    if not path.exists():
        res = run_pass(takes, kind, seed, workers, _job, _init_worker, (layer,), desc="frames")
        frames = [r[0] if r is not None else np.zeros((1, WIDTH), np.float16) for r in res]
        prosody = np.stack([r[1] if r is not None else np.zeros_like(next(r for r in res if r)[1]) for r in res])
        save_cache(path, {"frames": np.concatenate(frames),
                          "offsets": np.concatenate([[0], np.cumsum([len(f) for f in frames])]),
                          "prosody": prosody, "ok": np.array([r is not None for r in res])})
    return dict(np.load(path))


class PooledHead(nn.Module):
    """Pooling over the frames, then the shipped head's layers over [pooled states, prosody]."""

    def __init__(self, pooling: str, prosody: int, hidden: int = 256, attention: int = 64, dropout: float = 0.3):
        super().__init__()
        self.pooling = pooling
        if pooling == "attentive":
            self.score = nn.Sequential(nn.Linear(WIDTH, attention), nn.Tanh(), nn.Linear(attention, 1))
        self.mlp = nn.Sequential(nn.Dropout(0.1), nn.Linear(2 * WIDTH + prosody, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, len(EMOTIONS) + 2))

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) frames with a (B, T) mask of real frames → (B, 2D): weighted mean and standard deviation."""
        if self.pooling == "attentive":
            w = torch.softmax(self.score(x).masked_fill(~mask.unsqueeze(-1), -1e4), 1)
        else:
            w = mask.float().unsqueeze(-1) / mask.sum(1, keepdim=True).unsqueeze(-1)
        mean = (w * x).sum(1)
        std = ((w * x * x).sum(1) - mean * mean).clamp_min(1e-5).sqrt()
        return torch.cat([mean, std], -1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, prosody: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.pool(x, mask), prosody], -1))


def padded(seqs: list[np.ndarray], crop: float | None = None,
           rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of (standardised) frame sequences, zero-padded, with its mask; ``crop``: random stretches."""
    if crop and rng is not None:
        cut = []
        for s in seqs:
            if len(s) > 20 and rng.random() < 0.5:
                keep = int(len(s) * rng.uniform(crop, 1.0))
                start = rng.integers(0, len(s) - keep + 1)
                s = s[start:start + keep]
            cut.append(s)
        seqs = cut
    x = np.zeros((len(seqs), max(len(s) for s in seqs), WIDTH), np.float32)
    mask = np.zeros(x.shape[:2], bool)
    for i, s in enumerate(seqs):
        x[i, :len(s)], mask[i, :len(s)] = s, True
    return torch.tensor(x), torch.tensor(mask)


def cross_validate(takes: Takes, passes: dict, fold: np.ndarray, pooling: str, seed: int, epochs: int,
                   crop: float | None) -> dict[str, np.ndarray]:
    """Out-of-fold emotion logits per scored pass."""
    logits = {k: np.zeros((len(fold), len(EMOTIONS))) for k in SCORED}
    for k in tqdm(sorted(set(fold)), desc=pooling, leave=False):
        tr = np.flatnonzero(fold != k)
        seqs, pros, t, v, w = [], [], [], [], []
        for p in TRAIN:
            ok = tr[passes[p]["ok"][tr]]
            seqs += [passes[p]["seqs"][i] for i in ok]
            pros.append(passes[p]["prosody"][ok]), t.append(takes.targets[ok]), v.append(takes.va[ok])
            w.append(sample_weights(takes, ok))
        pm, ps = np.concatenate(pros).mean(0), np.concatenate(pros).std(0) + 1e-6
        P = torch.tensor((np.concatenate(pros) - pm) / ps, dtype=torch.float32)
        T, V, W = (torch.tensor(np.concatenate(a), dtype=torch.float32) for a in (t, v, w))
        torch.manual_seed(seed + k)
        rng = np.random.default_rng(seed + k)
        net = PooledHead(pooling, P.shape[1])
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
        per_epoch = (len(seqs) + 127) // 128
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=epochs * per_epoch + 50)
        lengths = np.array([len(s) for s in seqs])
        net.train()
        for _ in range(epochs):
            # batches of similar length (sorted within chunks of about 8 batches) waste less on padding
            chunks = [c[np.argsort(lengths[c])] for c in np.array_split(rng.permutation(len(seqs)), max(1, per_epoch // 8))]
            batches = [b for c in chunks for b in np.array_split(c, max(1, len(c) // 128))]
            for j in rng.permutation(len(batches)):
                b = batches[j]
                training_step(net(*padded([seqs[i] for i in b], crop, rng), P[b]), T[b], V[b], W[b], opt, sched)
        net.eval()
        te = np.flatnonzero(fold == k)
        with torch.no_grad():
            for p in SCORED:
                for b in np.array_split(te, max(1, len(te) // 64)):
                    pz = torch.tensor((passes[p]["prosody"][b] - pm) / ps, dtype=torch.float32)
                    logits[p][b] = net(*padded([passes[p]["seqs"][i] for i in b]), pz)[:, :len(EMOTIONS)].numpy()
    return logits


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data_dir(), help="default: $MOODTUNE_DATA or ../shared/data")
    ap.add_argument("--work", type=Path, default=work_dir("voice-frames"),
                    help="frame cache, one file per pass (about 100 MB each)")
    ap.add_argument("--poolings", nargs="+", default=["mean", "attentive"], choices=["mean", "attentive"])
    ap.add_argument("--crop", type=float, default=None, help="train on random stretches of CROP..1 of the speech")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--layer", type=int, default=4, choices=range(1, 5), help="the encoder layer whose frames to pool")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    takes = load_takes(args.data)
    passes = {}
    for kind in dict.fromkeys(TRAIN + SCORED):
        f = speech_frames(takes, kind, args.work, args.seed, args.workers, args.layer)
        passes[kind] = {"seqs": np.split(f["frames"], f["offsets"][1:-1]), "prosody": f["prosody"], "ok": f["ok"]}
    # one standardisation of the states for every pass, from the clean takes
    clean = np.concatenate(passes["clean"]["seqs"]).astype(np.float32)
    mu, sd = clean.mean(0), clean.std(0) + 1e-5
    for p in passes.values():
        p["seqs"] = [(s.astype(np.float32) - mu) / sd for s in p["seqs"]]
    fold = folds(takes)
    print(f"{'pooling':24s} " + " ".join(f"{p + ' RAVDESS':>14s} {p + ' EmoDB':>12s}" for p in SCORED))
    for pooling in args.poolings:
        start = time.time()
        logits = cross_validate(takes, passes, fold, pooling, args.seed, args.epochs, args.crop)
        ba = {p: scores(takes, softmax(logits[p]), np.flatnonzero(passes[p]["ok"])) for p in SCORED}
        name = pooling + (f", crop {args.crop:g}" if args.crop else "")
        print(f"{name:24s} " + " ".join(f"{ba[p]['ravdess']['balanced_accuracy']:14.3f} "
                                        f"{ba[p]['emodb']['balanced_accuracy']:12.3f}" for p in SCORED)
              + f"   ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
