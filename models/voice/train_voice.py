"""Recipe: train moodtune's voice heads on English (RAVDESS actors 01–16) and German (EmoDB) acted speech.

    python -m models.voice.train_voice --data ../shared/data

1. Takes: every RAVDESS and EmoDB clip at 16 kHz, labelled over the seven EMOTIONS (RAVDESS "calm" is
   neutral; EmoDB "boredom" is 0.6 neutral / 0.4 sad, as ``labels.EMODB`` says), with a valence/arousal
   target from the emotion table (calm: neutral's valence, lower arousal; RAVDESS "strong" takes pushed a
   third of the way toward the extreme).
2. Features through the inference path (``prepare_voice`` → loudness normalisation → one Whisper pass →
   the second and third layers' states pooled + prosody): the clean take and ``--copies`` corrupted copies
   (``augment.corrupt``: speed, reverberation, band-limiting, codec, level, noise, background), plus two fixed
   corruptions of every take (10 dB pink noise; a quiet take at −45 dBFS with 20 dB babble) used only to measure
   robustness. Cached in ``--work`` one file per pass, so an interrupted run resumes.
3. Speaker-independent folds: fold k leaves out one EmoDB speaker and two RAVDESS actors (one male, one
   female); every candidate head is trained on the other speakers' clean and corrupted takes and scored on
   the left-out speakers' clean takes (and the fixed corruptions).
4. The chosen candidate is refitted on every speaker; its temperature and valence/arousal calibration come
   from the out-of-fold predictions. Output: ``whisper_head.safetensors``, ``prosody_head.safetensors``,
   ``metrics.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soxr
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score
from sklearn.preprocessing import StandardScaler
from torch import nn
from tqdm import tqdm

from models.voice.augment import VERSION as AUGMENT_VERSION
from models.voice.augment import corrupt, noise, rms
from multimodal.files import work_dir
from multimodal.datasets import default_data_dir, load_emodb, load_ravdess
from multimodal.heads import fit_temperature, fit_va_calibration, softmax
from multimodal.labels import EMOTIONS, VA_MATRIX, VALENCE_AROUSAL, blend_valence_arousal
from multimodal.voice import VoiceClip, WhisperEmotionBackend, prepare_voice, prosody_features

HERE = Path(__file__).resolve().parent
SR = 16_000
CALM_VA = (VALENCE_AROUSAL["neutral"][0], -0.6)
STRONG_PUSH = 1 / 3
DIRECT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
EMODB_MALE = {"03", "10", "11", "12", "15"}
ROBUSTNESS = ("noisy", "quiet")
SHORT = "-short"          # suffix of a pass read as the encoder reads emotion alone (no silence after the window)
SCORED = ("clean", "clean" + SHORT, *ROBUSTNESS)
FEATURES_VERSION = 4      # bump when the encoder's features change (3: both passes, 8-kHz pitch; 4: layers 2 and 3)
PROTOCOL = ("8 speaker-independent folds: each leaves out one EmoDB speaker and two RAVDESS actors (one male, one "
            "female); scored on their clean takes and on two fixed corruptions (10 dB pink noise; −45 dBFS with "
            "babble 20 dB below); RAVDESS calm and EmoDB boredom scored as neutral")


@dataclass
class Takes:
    audio: list[np.ndarray]   # float32 16 kHz
    targets: np.ndarray       # (n, 7) soft targets over EMOTIONS
    va: np.ndarray            # (n, 2) valence/arousal targets
    corpus: np.ndarray        # ravdess / emodb
    speaker: np.ndarray       # corpus-prefixed speaker id
    male: np.ndarray          # bool
    gold: np.ndarray          # EMOTIONS index used for scoring (calm → neutral, boredom → neutral)


def va_target(label: str, intensity: str = "normal") -> tuple[float, float]:
    v, a = CALM_VA if label == "calm" else VALENCE_AROUSAL[label]
    if intensity == "strong":
        v, a = (x + STRONG_PUSH * (np.sign(x) - x) for x in (v, a))
    return float(v), float(a)


def load_takes(data: Path) -> Takes:
    rav, db = load_ravdess(data), load_emodb(data)
    audio, targets, va, corpus, speaker, male, gold = [], [], [], [], [], [], []
    for i in range(len(rav)):
        lab = "neutral" if rav.labels[i] == "calm" else rav.labels[i]
        audio.append(rav.clip(i).astype(np.float32) / 32768)
        targets.append(np.eye(7)[EMOTIONS.index(lab)])
        va.append(va_target(rav.labels[i], rav.intensity[i]))
        corpus.append("ravdess"), speaker.append(f"ravdess-{rav.actors[i]}"), male.append(int(rav.actors[i]) % 2 == 1)
        gold.append(EMOTIONS.index(lab))
    soft = db.targets
    for i in range(len(db.labels)):
        audio.append(soxr.resample(db.audio[i].astype(np.float32) / 32768, db.sample_rate, SR).astype(np.float32))
        targets.append(soft[i])
        va.append(tuple(soft[i] @ VA_MATRIX))
        corpus.append("emodb"), speaker.append(f"emodb-{db.speakers[i]}"), male.append(db.speakers[i] in EMODB_MALE)
        gold.append(EMOTIONS.index("neutral" if db.labels[i] == "boredom" else db.labels[i]))
    return Takes(audio, np.array(targets), np.array(va), np.array(corpus), np.array(speaker), np.array(male),
                 np.array(gold))


def folds(takes: Takes) -> np.ndarray:
    """Fold index per take: fold k = the k-th EmoDB speaker and RAVDESS actors 2k+1 (male) and 2k+2 (female)."""
    emodb = sorted({s for s in takes.speaker if s.startswith("emodb")})
    out = np.zeros(len(takes.speaker), int)
    for i, s in enumerate(takes.speaker):
        out[i] = emodb.index(s) if s.startswith("emodb") else (int(s.split("-")[1]) - 1) // 2
    return out


# -- features -------------------------------------------------------------------------------------
def fixed_corruption(y: np.ndarray, kind: str, rng: np.random.Generator, others: list[np.ndarray]) -> np.ndarray:
    if kind == "noisy":  # 10 dB pink noise at a normal level
        y = y / rms(y) * 10 ** (-25 / 20)
        nz = noise("pink", len(y), rng, others)
        return np.clip(y + nz / rms(nz) * rms(y) * 10 ** (-10 / 20), -1, 1).astype(np.float32)
    # quiet: a distant talker at −45 dBFS in a room with other voices at 20 dB below
    y = y / rms(y) * 10 ** (-45 / 20)
    nz = noise("babble", len(y), rng, others)
    return (y + nz / rms(nz) * rms(y) * 10 ** (-20 / 20)).astype(np.float32)


_backend: WhisperEmotionBackend | None = None


def _features(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Head inputs of both encoder passes the encoder runs (padded for a transcript; the window alone for emotion
    only), and the prosody statistics."""
    clip = prepare_voice((SR, y))
    if not isinstance(clip, VoiceClip):
        return None
    prosody = prosody_features(clip)
    assert _backend is not None
    return (_backend.features(clip, _backend.encode(clip.samples, pad=True), prosody),
            _backend.features(clip, _backend.encode(clip.samples, pad=False), prosody), prosody)


def _init_worker() -> None:
    global _backend
    torch.set_num_threads(1)
    _backend = WhisperEmotionBackend(head_path=None, threads=1)


def take_for_pass(y: np.ndarray, kind: str, seed: int, i: int, others: list[np.ndarray]) -> np.ndarray:
    """Take ``i`` as pass ``kind`` has it: as recorded (``clean``), a seeded random corruption (``copyN``) or a fixed
    one (:data:`ROBUSTNESS`); the same in every process."""
    # crc32, not hash(): str hashes differ per process, and the workers are separate processes
    rng = np.random.default_rng([seed, i, zlib.crc32(kind.encode())])
    if kind.startswith("copy"):
        return corrupt(y, rng, others)
    if kind in ROBUSTNESS:
        return fixed_corruption(y, kind, rng, others)
    return y


def babble_sources(takes: Takes, seed: int) -> list[np.ndarray]:
    """Babble comes from other takes: 60 fixed takes, so every worker mixes from the same pool."""
    return [takes.audio[i] for i in np.random.default_rng(seed).choice(len(takes.audio), 60, replace=False)]


def _job(args: tuple[np.ndarray, str, int, int, list[np.ndarray]]):
    y, kind, seed, i, others = args
    return _features(take_for_pass(y, kind, seed, i, others))


def pass_cache(work: Path, stem: str, kind: str, seed: int) -> Path:
    """Where a pass over every take is cached: ``stem`` names what was computed, the augmentation version the copies."""
    version = f"_augment{AUGMENT_VERSION}" if "copy" in kind else ""
    return work / f"{stem}_{kind}_seed{seed}{version}.npz"


def run_pass(takes: Takes, kind: str, seed: int, workers: int, job: Callable, initializer: Callable,
             initargs: tuple = (), desc: str = "features") -> list:
    """``job((audio, kind, seed, index, babble))`` for every take, in spawned workers set up by ``initializer``;
    results in the takes' order (None where the take gave no clip)."""
    from multiprocessing import get_context

    others = babble_sources(takes, seed)
    jobs = [(y, kind, seed, i, others) for i, y in enumerate(takes.audio)]
    with get_context("spawn").Pool(workers, initializer=initializer, initargs=initargs) as pool:
        return list(tqdm(pool.imap(job, jobs, chunksize=8), total=len(jobs), desc=f"{desc} ({kind})"))


def save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` written whole or not at all (an interrupted run must not leave a cache that loads)."""
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def extract(takes: Takes, kind: str, work: Path, seed: int, workers: int, job: Callable = _job,
            stem: str = f"features{FEATURES_VERSION}") -> dict[str, np.ndarray]:
    """Features of one pass over every take (``clean``, ``copyN`` or a robustness corruption), cached; a study
    passes its own ``job`` (same arguments as :func:`_job`) and cache ``stem``."""
    path = pass_cache(work, stem, kind, seed)
    if path.exists():
        return dict(np.load(path))
    results = run_pass(takes, kind, seed, workers, job, _init_worker)
    ok = np.array([r is not None for r in results])
    first = next(r for r in results if r is not None)
    whisper, short, prosody = (np.stack([r[j] if r is not None else np.zeros_like(first[j]) for r in results])
                               for j in range(3))
    out = {"whisper": whisper, "whisper_short": short, "prosody": prosody, "ok": ok}
    save_cache(path, out)
    return out


def load_passes(takes: Takes, work: Path, seed: int, copies: int, workers: int) -> dict[str, dict[str, np.ndarray]]:
    """Every pass the recipe trains and scores on: the clean takes, ``copies`` corrupted copies and the robustness
    corruptions as the encoder reads them with a transcript, and the clean takes and copies as it reads them for
    emotion alone (the same name + :data:`SHORT`)."""
    passes = {}
    for kind in ["clean", *(f"copy{i + 1}" for i in range(copies)), *ROBUSTNESS]:
        f = extract(takes, kind, work, seed, workers)
        passes[kind] = {"whisper": f["whisper"], "prosody": f["prosody"], "ok": f["ok"]}
        if kind not in ROBUSTNESS:
            passes[kind + SHORT] = {"whisper": f["whisper_short"], "prosody": f["prosody"], "ok": f["ok"]}
    return passes


def training_passes(passes: dict, which: str, chosen: tuple[str, ...] | str = "all") -> list[str]:
    """The passes a candidate trains on: ``chosen`` (and their emotion-only reads), or every non-robustness pass.
    The prosody statistics are the same in both reads of a take, so a prosody-only head takes them once."""
    names = [k for k in passes if k not in ROBUSTNESS] if chosen == "all" else \
        [k for c in chosen for k in (c, c + SHORT)]
    return [k for k in names if not (which == "prosody" and k.endswith(SHORT))]


# -- heads ------------------------------------------------------------------------------------------
class MLP(nn.Module):
    """The head as trained: Linear → GELU → Dropout → Linear (7 emotion logits, then valence and arousal).

    Inputs are standardised outside the module; ``multimodal.voice.VoiceHead`` runs the same layers in numpy.
    """

    def __init__(self, in_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(0.1), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, len(EMOTIONS) + 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class FittedHead:
    scaler: StandardScaler
    net: MLP | None = None
    clf: LogisticRegression | None = None

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Emotion logits (n, 7) and raw valence/arousal (n, 2)."""
        z = self.scaler.transform(x)
        if self.clf is not None:
            return self.clf.decision_function(z), np.zeros((len(x), 2))
        with torch.no_grad():
            out = self.net.eval()(torch.tensor(z, dtype=torch.float32)).numpy()
        return out[:, :len(EMOTIONS)], out[:, len(EMOTIONS):]


def sample_weights(takes: Takes, idx: np.ndarray) -> np.ndarray:
    """Each corpus counts the same, and within a corpus each scored class counts the same."""
    w = np.zeros(len(idx))
    for c in ("ravdess", "emodb"):
        in_c = takes.corpus[idx] == c
        for g in np.unique(takes.gold[idx][in_c]):
            m = in_c & (takes.gold[idx] == g)
            w[m] = 1.0 / m.sum()
    return w / w.mean()


def train_mlp(z: np.ndarray, targets: np.ndarray, va: np.ndarray, weights: np.ndarray, seed: int, hidden: int,
              epochs: int, dropout: float) -> MLP:
    """One member: soft-target cross-entropy + squared valence/arousal error, weighted per take (AdamW, one cycle)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = MLP(z.shape[1], hidden, dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    X, T = torch.tensor(z, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32)
    V, W = torch.tensor(va, dtype=torch.float32), torch.tensor(weights, dtype=torch.float32)
    steps = epochs * ((len(X) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        for b in torch.randperm(len(X), generator=g).split(128):
            training_step(net(X[b]), T[b], V[b], W[b], opt, sched)
    return net.eval()


def training_step(out: torch.Tensor, targets: torch.Tensor, va: torch.Tensor, weights: torch.Tensor,
                  opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler) -> None:
    """One step on a batch of head outputs: soft-target cross-entropy + squared valence/arousal error, weighted per
    take."""
    ce = -(targets * torch.log_softmax(out[:, :len(EMOTIONS)], -1)).sum(-1)
    mse = ((out[:, len(EMOTIONS):] - va) ** 2).sum(-1)
    loss = (weights * (ce + mse)).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def merge_members(members: list[MLP]) -> MLP:
    """An ensemble as one MLP: hidden layers side by side, output weights averaged (the mean of the logits)."""
    first = [m for m in members[0].net if isinstance(m, nn.Linear)]
    merged = MLP(first[0].in_features, first[0].out_features * len(members), 0.0)
    l1, l2 = [m for m in merged.net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        pairs = [[m for m in member.net if isinstance(m, nn.Linear)] for member in members]
        l1.weight.copy_(torch.cat([a.weight for a, _ in pairs]))
        l1.bias.copy_(torch.cat([a.bias for a, _ in pairs]))
        l2.weight.copy_(torch.cat([b.weight for _, b in pairs], dim=1) / len(members))
        l2.bias.copy_(torch.stack([b.bias for _, b in pairs]).mean(0))
    return merged.eval()


def fit_head(x: np.ndarray, targets: np.ndarray, va: np.ndarray, weights: np.ndarray, kind: str, seed: int,
             hidden: int = 256, epochs: int = 40, dropout: float = 0.3, members: int = 1) -> FittedHead:
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    if kind == "logreg":
        return FittedHead(scaler, clf=LogisticRegression(C=0.1, max_iter=2000).fit(z, targets.argmax(1),
                                                                                    sample_weight=weights))
    nets = [train_mlp(z, targets, va, weights, seed + k, hidden, epochs, dropout) for k in range(members)]
    return FittedHead(scaler, net=merge_members(nets) if members > 1 else nets[0])


SHIPPED = "MLP, clean + corrupted"
FALLBACK = "MLP prosody only (fallback), clean + corrupted"
CANDIDATES = {  # name: (features, head, training passes, options of fit_head)
    "logreg, clean takes": ("whisper", "logreg", ("clean",), {}),
    "MLP, clean takes": ("whisper", "mlp", ("clean",), {}),
    SHIPPED: ("whisper", "mlp", "all", {"epochs": 30, "members": 3}),
    "MLP, Whisper states only, clean + corrupted": ("states", "mlp", "all", {}),
    FALLBACK: ("prosody", "mlp", "all", {}),
}


def columns(feats: dict[str, np.ndarray], which: str) -> np.ndarray:
    if which == "states":
        return feats["whisper"][:, :feats["whisper"].shape[1] - feats["prosody"].shape[1]]
    return feats[which]


def training_rows(takes: Takes, passes: dict[str, dict[str, np.ndarray]], which: str, names: list[str],
                  idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features, emotion targets, valence/arousal targets and sample weights of the takes ``idx`` in the passes
    ``names``, stacked pass after pass (a take a pass could not read is left out of that pass)."""
    xs, ts, vs, ws = [], [], [], []
    for p in names:
        ok = idx[passes[p]["ok"][idx]]
        xs.append(columns(passes[p], which)[ok]), ts.append(takes.targets[ok]), vs.append(takes.va[ok])
        ws.append(sample_weights(takes, ok))
    return np.concatenate(xs), np.concatenate(ts), np.concatenate(vs), np.concatenate(ws)


def scores(takes: Takes, probs: np.ndarray, idx: np.ndarray) -> dict:
    """Balanced accuracy per corpus, per-gender, predicted shares and per-class recall on ``idx``."""
    pred, gold = probs[idx].argmax(1), takes.gold[idx]
    out = {}
    for c in ("ravdess", "emodb"):
        m = takes.corpus[idx] == c
        labels = sorted(set(gold[m]))
        names = [EMOTIONS[i] for i in labels]
        rec = recall_score(gold[m], pred[m], labels=labels, average=None, zero_division=0)
        # share of predictions per emotion on a class-balanced set (each gold class weighted equally)
        w = np.array([1 / np.sum(gold[m] == g) for g in gold[m]])
        share = {e: float(np.sum(w * (pred[m] == i)) / w.sum()) for i, e in enumerate(EMOTIONS)}
        out[c] = {"n": int(m.sum()), "accuracy": float(np.mean(gold[m] == pred[m])),
                  "macro_f1": float(f1_score(gold[m], pred[m], labels=labels, average="macro", zero_division=0)),
                  "balanced_accuracy": float(balanced_accuracy_score(gold[m], pred[m])),
                  "per_class_recall": dict(zip(names, map(float, rec))),
                  "balanced_accuracy_male": float(balanced_accuracy_score(gold[m & takes.male[idx]],
                                                                          pred[m & takes.male[idx]])),
                  "balanced_accuracy_female": float(balanced_accuracy_score(gold[m & ~takes.male[idx]],
                                                                            pred[m & ~takes.male[idx]])),
                  "predicted_share_balanced": share, "max_predicted_share": max(share.values()),
                  "confusion_matrix": {"labels": list(EMOTIONS),
                                       "rows_gold_cols_pred": confusion_matrix(gold[m], pred[m],
                                                                               labels=range(7)).tolist()}}
    return out


def cross_validate(takes: Takes, passes: dict[str, dict[str, np.ndarray]], fold: np.ndarray, name: str,
                   seed: int, *, scored: tuple[str, ...] = SCORED, chosen: tuple[str, ...] | None = None,
                   **overrides: object) -> dict:
    """Candidate ``name`` trained per fold and scored on the left-out speakers in the passes ``scored``;
    ``chosen`` replaces the candidate's training passes and ``overrides`` the options of :func:`fit_head` for this
    call (e.g. the member count a shipped head was trained with; a study's extra passes)."""
    which, head, own, options = CANDIDATES[name]
    options = {**options, **overrides}
    train_passes = training_passes(passes, which, own if chosen is None else chosen)
    logits = {k: np.zeros((len(fold), 7)) for k in scored}
    va = {k: np.zeros((len(fold), 2)) for k in ("clean", "clean" + SHORT)}
    for k in tqdm(sorted(set(fold)), desc=name, leave=False):
        rows = training_rows(takes, passes, which, train_passes, np.flatnonzero(fold != k))
        fitted = fit_head(*rows, head, seed, **options)
        te = np.flatnonzero(fold == k)
        for p in logits:
            logits[p][te], v = fitted.predict(columns(passes[p], which)[te])
            if p in va:
                va[p][te] = v
    result = {p: scores(takes, softmax(logits[p]), np.flatnonzero(passes[p]["ok"])) for p in logits}
    return {"scores": result, "logits": logits, "va": va}


def save_voice_head(fitted: FittedHead, path: Path, metadata: dict[str, object]) -> None:
    from safetensors.numpy import save_file

    layers = [m for m in fitted.net.net if isinstance(m, nn.Linear)]
    tensors = {"mean": fitted.scaler.mean_, "scale": fitted.scaler.scale_,
               "w1": layers[0].weight.detach().numpy(), "b1": layers[0].bias.detach().numpy(),
               "w2": layers[1].weight.detach().numpy(), "b2": layers[1].bias.detach().numpy()}
    tmp = path.with_suffix(".tmp")
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(tmp),
              metadata={k: str(v) for k, v in metadata.items()})
    os.replace(tmp, path)


def refit_and_save(takes: Takes, passes: dict, candidate: str, cv: dict, out: Path, name: str, seed: int,
                   copies: int, **overrides: object) -> dict:
    """Fit on every speaker; temperature and V/A calibration from the out-of-fold predictions. ``overrides`` as in
    :func:`cross_validate`."""
    which, _, _, options = CANDIDATES[candidate]
    options = {**options, **overrides}
    x, *rest = training_rows(takes, passes, which, training_passes(passes, which), np.arange(len(takes.gold)))
    fitted = fit_head(x, *rest, "mlp", seed, **options)
    # both reads of the clean takes, out of fold: one temperature and one V/A calibration serve both
    ok = np.concatenate([passes["clean"]["ok"]] * 2)
    logits = np.concatenate([cv["logits"]["clean"], cv["logits"]["clean" + SHORT]])[ok]
    raw_va = np.concatenate([cv["va"]["clean"], cv["va"]["clean" + SHORT]])[ok]
    targets, target_va = np.concatenate([takes.targets] * 2)[ok], np.concatenate([takes.va] * 2)[ok]
    temperature = fit_temperature(logits, targets)
    va_scale, va_shift = fit_va_calibration(raw_va, target_va)
    direct = np.clip(raw_va * va_scale + va_shift, -1, 1)
    probs = softmax(logits, temperature)
    table = probs @ VA_MATRIX
    r = lambda a, b: float(np.corrcoef(a, b)[0, 1])  # noqa: E731
    # per dimension, how much of the direct output to use (the rest: the emotion table's value of the probabilities)
    blends = {w: blend_valence_arousal(direct, probs, np.array([w, w])) for w in DIRECT_WEIGHTS}
    weight = [max(DIRECT_WEIGHTS, key=lambda w: r(blends[w][:, d], target_va[:, d])) for d in (0, 1)]
    blend = blend_valence_arousal(direct, probs, np.array(weight))
    save_voice_head(fitted, out / name, {
        "labels": ",".join(EMOTIONS), "temperature": f"{temperature:.5f}", "va": "1",
        "va_scale": ",".join(f"{v:.5f}" for v in va_scale), "va_shift": ",".join(f"{v:.5f}" for v in va_shift),
        "va_direct_weight": ",".join(f"{w:g}" for w in weight),
        "features": which, "in_dim": x.shape[1], "members": options.get("members", 1), "seed": seed,
        "copies": copies, "candidate": candidate,
        "data": "RAVDESS actors 01-16 (CC BY-NC-SA 4.0) + EmoDB 8 speakers"})
    return {"temperature": temperature, "va_scale": va_scale.tolist(), "va_shift": va_shift.tolist(),
            "va_direct_weight": weight,
            **{f"{dim}_r_{how}": r(vals[:, d], target_va[:, d]) for d, dim in enumerate(("valence", "arousal"))
               for how, vals in (("direct", direct), ("from_emotions", table), ("shipped", blend))},
            "va_std_shipped": blend.std(0).tolist(), "va_std_targets": target_va.std(0).tolist()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data_dir(), help="default: $MOODTUNE_DATA or ../shared/data")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--work", type=Path, default=work_dir("voice"),
                    help="feature cache (one file per pass; an interrupted run resumes)")
    ap.add_argument("--copies", type=int, default=3, help="corrupted copies of every take for training")
    ap.add_argument("--workers", type=int, default=2, help="feature-extraction processes")
    ap.add_argument("--members", type=int, default=None,
                    help="networks in the shipped head's ensemble, merged into one (default 3; the model card says "
                         "what 1 and 3 gave)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    # --members changes the shipped candidate for this run only (the table stays as the module defines it)
    overrides = {SHIPPED: {"members": args.members}} if args.members is not None else {}
    takes = load_takes(args.data)
    passes = load_passes(takes, args.work, args.seed, args.copies, args.workers)
    fold = folds(takes)
    cv = {name: cross_validate(takes, passes, fold, name, args.seed, **overrides.get(name, {}))
          for name in tqdm(CANDIDATES, desc="candidates")}
    metrics: dict = {"protocol": PROTOCOL,
                     "data": {"ravdess_clips": int(np.sum(takes.corpus == "ravdess")),
                              "emodb_clips": int(np.sum(takes.corpus == "emodb")), "copies": args.copies},
                     "candidates": {n: c["scores"] for n, c in cv.items()}}
    for name, file in ((SHIPPED, "whisper_head.safetensors"), (FALLBACK, "prosody_head.safetensors")):
        metrics[file.split(".")[0]] = {"candidate": name, **refit_and_save(
            takes, passes, name, cv[name], args.out, file, args.seed, args.copies, **overrides.get(name, {}))}
    tmp = args.out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=1))
    os.replace(tmp, args.out / "metrics.json")
    print(f"{'candidate':50s} {'RAVDESS':>8s} {'EmoDB':>6s} {'(emotion only)':>14s} {'noisy':>6s} {'quiet':>6s} "
          f"{'max share':>9s}")
    for name, result in cv.items():
        ba = {read: {corpus: by_corpus[corpus]["balanced_accuracy"] for corpus in ("ravdess", "emodb")}
              for read, by_corpus in result["scores"].items()}
        print(f"{name:50s} {ba['clean']['ravdess']:8.3f} {ba['clean']['emodb']:6.3f} {ba['clean' + SHORT]['ravdess']:7.3f}"
              f"{ba['clean' + SHORT]['emodb']:7.3f} {ba['noisy']['ravdess']:6.3f} {ba['quiet']['ravdess']:6.3f} "
              f"{result['scores']['clean']['ravdess']['max_predicted_share']:9.2f}")


if __name__ == "__main__":
    main()
