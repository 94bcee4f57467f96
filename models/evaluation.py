"""``moodtune evaluate``: per-signal metrics on the validation splits and a fusion study on triplets.

Per signal: accuracy, macro-F1, per-class recall, confusion matrix and expected calibration error (ECE)
before and after temperature scaling (face: FER2013 val; voice: RAVDESS actors and EmoDB speakers left out by
the voice recipe's folds, also under noise and at a low level; text: dair-ai
val and GoEmotions-Ekman dev). Fusion: same-label triplets (a FER2013 val face, a RAVDESS or EmoDB take scored by
the fold that did not see its speaker, a text sentence from the held-out splits) fused with fixed priors,
learned priors and product of experts; again with one signal missing and with one signal corrupted.
Results go to ``<out>/<signal>/metrics.json`` (key ``evaluation``), ``<out>/fusion_metrics.json`` and the model
cards under ``<out>`` (``moodtune evaluate --out models`` in a checkout updates the shipped ones).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score
from tqdm import tqdm

from multimodal.files import write_atomic, work_dir
from multimodal.heads import fit_temperature, softmax
from multimodal.labels import EMOTIONS, VA_MATRIX, valence_arousal
from multimodal.reading import ModalityReading, Status

MODELS = Path(__file__).resolve().parents[1] / "models"


def ece(probs: np.ndarray, gold: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence (equal-width bins)."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(float((pred[m] == gold[m]).mean()) - float(conf[m].mean()))
    return float(total)


def classification_report(logits: np.ndarray, gold: np.ndarray, labels: list[str], temperature: float | None = None,
                          fit_on: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Metrics of argmax(logits) against gold indices; ECE at T=1 and at the given or fitted temperature."""
    pred = logits.argmax(1)
    idx = list(range(len(labels)))
    if temperature is None:
        fl, fg = fit_on if fit_on is not None else (logits, gold)
        temperature = fit_temperature(fl, np.eye(len(labels))[fg])
    return {
        "n": int(len(gold)), "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, labels=idx, average="macro", zero_division=0)),
        "balanced_accuracy": float(np.mean(recall_score(gold, pred, labels=idx, average=None, zero_division=0))),
        "per_class_recall": dict(zip(labels, map(float, recall_score(gold, pred, labels=idx, average=None,
                                                                        zero_division=0)))),
        "confusion_matrix": {"labels": labels, "rows_gold_cols_pred": confusion_matrix(gold, pred, labels=idx).tolist()},
        "ece_before_temperature": ece(softmax(logits), gold), "temperature": float(temperature),
        "ece_after_temperature": ece(softmax(logits, temperature), gold),
    }


# -- per signal --------------------------------------------------------------------------------
def evaluate_face(data: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    from multimodal.datasets import load_fer2013
    from multimodal.face import FerCnnBackend

    images, labels = load_fer2013(data, "val")
    backend = FerCnnBackend()
    logits = np.concatenate([backend.logits(images[i:i + 256]) for i in tqdm(range(0, len(images), 256), desc="face")])
    report = classification_report(logits, labels, list(EMOTIONS), temperature=backend.temperature)
    report["data"] = "FER2013 PublicTest (fer2013_val.npz), whole image as the face crop, flip TTA"
    return report, softmax(logits, backend.temperature), labels


@dataclass
class VoiceOutOfFold:
    """Out-of-fold voice readings of the recipe's speaker-independent folds (clean takes)."""

    probs: np.ndarray   # (n, 7) over EMOTIONS, calibrated
    va: np.ndarray      # (n, 2) valence/arousal as the encoder reports them; NaN where it has no direct value
    gold: np.ndarray    # EMOTIONS index (calm and boredom scored as neutral)
    ok: np.ndarray      # bool: the take was read (every clean take is)


def evaluate_voice(data: Path) -> tuple[dict, VoiceOutOfFold]:
    """The shipped head's candidate, cross-validated by the recipe's folds on RAVDESS + EmoDB speakers it left out.

    Features come from the recipe's cache (``$MOODTUNE_HOME/work/voice``) or are extracted (about 20 minutes).
    """
    from models.voice import train_voice as recipe
    from multimodal.labels import blend_valence_arousal
    from multimodal.voice import WHISPER_HEAD, VoiceHead

    head = VoiceHead(WHISPER_HEAD)
    seed, copies = int(head.meta.get("seed", 0)), int(head.meta.get("copies", 3))
    takes = recipe.load_takes(data)
    work = work_dir("voice")
    work.mkdir(parents=True, exist_ok=True)
    passes = recipe.load_passes(takes, work, seed, copies, workers=2)
    cv = recipe.cross_validate(takes, passes, recipe.folds(takes), recipe.SHIPPED, seed,
                               members=int(head.meta.get("members", 1)))  # as the head was trained
    ok = passes["clean"]["ok"]
    logits = cv["logits"]["clean"]
    report: dict[str, Any] = {"data": recipe.PROTOCOL, "temperature": head.temperature, **cv["scores"],
                              "calibration": {}}
    for corpus in ("ravdess", "emodb"):
        m = ok & (takes.corpus == corpus)
        report["calibration"][corpus] = {"ece_before_temperature": ece(softmax(logits[m]), takes.gold[m]),
                                         "ece_after_temperature": ece(softmax(logits[m], head.temperature),
                                                                      takes.gold[m])}
    # as the encoder reports them; NaN where the head gives no direct value (fusion then reads the table there too)
    probs = softmax(logits, head.temperature)
    va = blend_valence_arousal(head.calibrate(cv["va"]["clean"]), probs, head.direct_weight)
    report["valence_arousal_r"] = {d: float(np.corrcoef(va[ok, i], takes.va[ok, i])[0, 1])
                                   for i, d in enumerate(("valence", "arousal"))}
    return report, VoiceOutOfFold(probs, np.where(head.direct_weight > 0, va, np.nan), takes.gold, ok)


@dataclass
class TextHeldOut:
    """The text encoder's readings of the held-out splits: probabilities and direct (valence, arousal) per row."""

    probs: dict[str, np.ndarray]
    va: dict[str, np.ndarray]       # (n, 2), NaN where the model reports no direct value
    splits: dict[str, Any]


def multilabel_macro_f1(probs: np.ndarray, labels: list[list[str]], threshold: float = 0.3) -> float:
    """Macro-F1 of multi-label predictions: a class counts when its probability ≥ ``threshold`` or it is on top."""
    pred = probs >= threshold
    pred[np.arange(len(probs)), probs.argmax(1)] = True
    gold = np.zeros_like(pred)
    for i, labs in enumerate(labels):
        gold[i, [EMOTIONS.index(lab) for lab in labs]] = True
    return float(f1_score(gold, pred, average="macro", zero_division=0))


def _read_texts(encoder, texts: list[str], desc: str) -> list[ModalityReading]:
    return [r for i in tqdm(range(0, len(texts), 512), desc=desc) for r in encoder.predict_batch(texts[i:i + 512])]


def evaluate_text(data: Path) -> tuple[dict, TextHeldOut]:
    """Held-out splits (situations, dialogue, tweets, Reddit) through the encoder's own path (chunks, clauses),
    EmoBank dev's valence/arousal, and the hand-written probe sentences."""
    import csv

    from multimodal.datasets import load_emobank, load_text_split
    from multimodal.text import TextEncoder

    encoder = TextEncoder()
    backend = encoder.backend
    out: dict[str, Any] = {}
    held = TextHeldOut({}, {}, {})
    for corpus, split in (("ed", "val"), ("dailydialog", "val"), ("dair", "val"), ("goemotions", "dev")):
        s = load_text_split(data, corpus, split)
        t_saved = backend.temperature
        cover = s.coverage
        per_t, va = {}, None
        for t in (1.0, t_saved):  # calibrated as used; and at T=1 for the "before" ECE
            backend.temperature = t
            try:
                readings = _read_texts(encoder, s.texts, f"text {s.name} (T={t:.2f})")
            finally:
                backend.temperature = t_saved
            per_t[t] = np.where(cover, np.log(np.clip(np.stack([r.vector for r in readings]), 1e-12, None)), -1e4)
            va = np.array([[np.nan if x is None else x for x in (r.valence, r.arousal)] for r in readings])
        logits = per_t[t_saved]  # log-probabilities as used; argmax and thresholds apply to these
        gold_top = np.array([EMOTIONS.index(labs[0]) for labs in s.labels])
        rep = classification_report(logits, gold_top, list(EMOTIONS), temperature=1.0)
        rep["temperature"] = float(t_saved)
        rep["ece_before_temperature"] = ece(softmax(per_t[1.0]), gold_top)
        present = [e for e in EMOTIONS if cover[EMOTIONS.index(e)] and (gold_top == EMOTIONS.index(e)).any()]
        rep["per_class_recall"] = {e: v for e, v in rep["per_class_recall"].items() if e in present}
        idx = [EMOTIONS.index(e) for e in present]
        rep["macro_f1"] = float(f1_score(gold_top, logits.argmax(1), labels=idx, average="macro", zero_division=0))
        rep["balanced_accuracy"] = float(np.mean(list(rep["per_class_recall"].values())))  # over present classes
        large = [k for k in idx if (gold_top == k).sum() >= 10]
        if len(large) < len(idx):  # DailyDialog val has 4 fear and 2 disgust rows
            rep["macro_f1_classes_with_10_or_more"] = float(
                f1_score(gold_top, logits.argmax(1), labels=large, average="macro", zero_division=0))
        if corpus == "goemotions":
            rep["macro_f1_multilabel"] = multilabel_macro_f1(softmax(logits), s.labels)
        rep["data"] = f"{s.name} ({len(s)} rows); argmax over the classes the corpus can express"
        out[s.name] = rep
        held.probs[s.name], held.va[s.name], held.splits[s.name] = softmax(logits), va, s
    bank = load_emobank(data, "dev")
    readings = _read_texts(encoder, bank.texts, "text emobank_dev")
    truth = np.stack([bank.valence, bank.arousal], 1)
    direct = np.array([r.valence_arousal() for r in readings])
    table = np.array([valence_arousal(r.vector) for r in readings])
    out["emobank_dev"] = {"n": len(truth), **{
        f"{dim}_r_{how}": float(np.corrcoef(vals[:, d], truth[:, d])[0, 1])
        for d, dim in enumerate(("valence", "arousal")) for how, vals in (("shipped", direct), ("from_emotions", table))},
        "data": "EmoBank dev split: Pearson r against the mean of reader and writer ratings"}
    with open(MODELS / "text" / "probe_sentences.tsv", encoding="utf-8", newline="") as f:
        probes = list(csv.DictReader(f, delimiter="\t"))
    readings = encoder.predict_batch([p["text"] for p in probes])
    hits = [r.top_emotion == p["emotion"] for p, r in zip(probes, readings)]
    kinds = sorted({p["kind"] for p in probes})
    out["probe_sentences"] = {"n": len(hits), "accuracy": float(np.mean(hits)), "by_kind": {
        k: float(np.mean([h for h, p in zip(hits, probes) if p["kind"] == k])) for k in kinds},
        "misses": [f"{p['text']} → {r.top_emotion} (expected {p['emotion']})"
                   for h, p, r in zip(hits, probes, readings) if not h]}
    return out, held


# -- fusion --------------------------------------------------------------------------------------
@dataclass
class Triplets:
    labels: np.ndarray              # EMOTIONS indices
    readings: list[dict[str, ModalityReading]]


FUSION_EMOTIONS = EMOTIONS  # every signal can express all seven now (the voice learned surprise from RAVDESS)


def build_triplets(face_probs, face_gold, voice: VoiceOutOfFold, text: TextHeldOut, n: int = 1400,
                   seed: int = 0) -> Triplets:
    rng = np.random.default_rng(seed)
    voice_gold = np.where(voice.ok, voice.gold, -1)
    text_pool: dict[int, list[tuple[str, int]]] = {}
    for name, split in text.splits.items():
        for i, labs in enumerate(split.labels):
            if len(labs) == 1:
                text_pool.setdefault(EMOTIONS.index(labs[0]), []).append((name, i))
    labels, readings = [], []
    for k in range(n):
        emo = EMOTIONS.index(FUSION_EMOTIONS[k % len(FUSION_EMOTIONS)])
        f = rng.choice(np.flatnonzero(face_gold == emo))
        v = rng.choice(np.flatnonzero(voice_gold == emo))
        name, t = text_pool[emo][rng.integers(len(text_pool[emo]))]
        labels.append(emo)
        readings.append({
            "face": ModalityReading.from_probs("face", face_probs[f]),
            "voice": ModalityReading.from_probs("voice", voice.probs[v], **{
                d: float(x) for d, x in zip(("valence", "arousal"), voice.va[v]) if np.isfinite(x)}),
            "text": ModalityReading.from_probs("text", text.probs[name][t], coverage=text.splits[name].coverage, **{
                d: float(x) for d, x in zip(("valence", "arousal"), text.va[name][t]) if np.isfinite(x)}),
        })
    return Triplets(np.array(labels), readings)


def corrupted(readings: dict[str, ModalityReading], which: str, off_topic: ModalityReading) -> dict:
    out = dict(readings)
    out[which] = {"face": ModalityReading.failed("face", Status.NO_FACE, "noise image: no face found"),
                  "voice": ModalityReading.failed("voice", Status.SILENCE, "silence"),
                  "text": off_topic}[which]
    return out


def fusion_study(tr: Triplets, off_topic: ModalityReading) -> dict[str, Any]:
    from fusion.late import LateFusion

    half = len(tr.labels) // 2
    fit_x, fit_y = tr.readings[:half], [EMOTIONS[i] for i in tr.labels[:half]]
    test_x, test_y = tr.readings[half:], tr.labels[half:]

    def acc(model, xs) -> float:
        return float(np.mean(model.predict_proba(xs).argmax(1) == test_y))

    no_discount = {"text": 0.0, "speech_text": 0.0}
    models = {"fixed priors (linear)": LateFusion("linear"), "product of experts": LateFusion("poe"),
              "learned priors (linear)": LateFusion("linear").fit(fit_x, fit_y),
              "learned priors (poe)": LateFusion("poe").fit(fit_x, fit_y),
              "fixed priors (linear), no neutral discount": LateFusion("linear", neutral_discount=no_discount),
              "product of experts, no neutral discount": LateFusion("poe", neutral_discount=no_discount)}
    singles = {m: float(np.mean([r[m].vector.argmax() == y for r, y in zip(test_x, test_y)]))
               for m in ("face", "voice", "text")}
    result: dict[str, Any] = {"n_test": int(len(test_y)), "emotions": list(FUSION_EMOTIONS), "single_signal": singles,
                              "all_signals": {k: acc(m, test_x) for k, m in models.items()},
                              "learned_priors": models["learned priors (linear)"].priors_}
    result["va_factors"] = fit_va_factors(tr.readings[:half], tr.labels[:half], test_x, test_y)
    for m in ("face", "voice", "text"):
        missing = [{k: v for k, v in r.items() if k != m} for r in test_x]
        broken = [corrupted(r, m, off_topic) for r in test_x]
        result[f"without_{m}"] = {k: acc(model, missing) for k, model in models.items()}
        result[f"corrupted_{m}"] = {k: acc(model, broken) for k, model in models.items()}
    return result


SAD_TILTS = (6.0, 20.0, 100.0)  # the biased users' faces: each reading's "sad" multiplied by this, renormalised


def sadder_face(readings: dict[str, ModalityReading], tilt: float) -> dict[str, ModalityReading]:
    """The same readings with a face that reads sadder than the person feels (a shifted FER stream)."""
    face = readings["face"]
    p = face.vector * np.where(np.array(EMOTIONS) == "sad", tilt, 1.0)
    return {**readings, "face": ModalityReading.from_probs("face", p / p.sum(), quality=face.quality)}


def corrections_study(tr: Triplets, users: int = 40, corrections: int = 10, horizon: int = 100,
                      seed: int = 0) -> dict[str, Any]:
    """Simulated users, each a stream of held-out triplets of their own: an unbiased user and users whose face
    reads sadder than they feel (by each of :data:`SAD_TILTS`). Each user corrects the first analyses that were wrong (the mood they saw, made
    with the corrections so far) until ``corrections`` are made; the next ``horizon`` analyses are then scored
    with and without the learned calibration. Returns the fused accuracy before/after, averaged over users."""
    from fusion.calibration import Calibration
    from fusion.late import LateFusion

    fusion = LateFusion()
    half = len(tr.labels) // 2
    pool = np.arange(half, len(tr.labels))  # the half the fusion study tests on
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"users": users, "corrections": corrections, "horizon": horizon,
                           "protocol": "each user corrects only the analyses that were wrong, in order"}
    kinds: dict[str, Any] = {"unbiased user": lambda r: r}
    kinds.update({f"face reads sadder (sad x{t:g})": (lambda r, t=t: sadder_face(r, t)) for t in SAD_TILTS})
    for kind, transform in kinds.items():
        before, after, made = [], [], []
        for _ in tqdm(range(users), desc=f"corrections: {kind}"):
            order = rng.permutation(pool)
            stream = [(transform(tr.readings[i]), EMOTIONS[tr.labels[i]]) for i in order]
            cal, used = Calibration(), 0
            for readings, truth in stream:
                if len(cal.corrections) == corrections:
                    break
                used += 1
                mood = fusion.fuse(readings, calibration=cal)
                if mood.top_emotion != truth:
                    cal = cal.corrected(mood.readings, mood.weights, truth)
            test = stream[used:used + horizon]
            before.append(np.mean([fusion.fuse(r).top_emotion == t for r, t in test]))
            after.append(np.mean([fusion.fuse(r, calibration=cal).top_emotion == t for r, t in test]))
            made.append(len(cal.corrections))
        out[kind] = {"accuracy_without": float(np.mean(before)), "accuracy_with": float(np.mean(after)),
                     "gain_points": float(100 * (np.mean(after) - np.mean(before))),
                     "worst_user_gain_points": float(100 * np.min(np.subtract(after, before))),
                     "corrections_made": float(np.mean(made))}
    return out


def corrections_until_read(tr: Triplets, trials: int = 60, cap: int = 12, seed: int = 0) -> dict[str, Any]:
    """How many times a user must correct the same one-signal reading to one emotion before it reads as that
    emotion ("fine." typed, corrected to sad each time), per signal, over held-out readings and random other
    emotions: the median, the share read right within 4 corrections, and the share not within ``cap``."""
    from fusion.calibration import Calibration
    from fusion.late import LateFusion

    fusion, rng = LateFusion(), np.random.default_rng(seed)
    half = len(tr.labels) // 2
    out: dict[str, Any] = {"trials": trials, "cap": cap}
    for signal in ("face", "voice", "text"):
        counts = []
        for _ in range(trials):
            readings = {signal: tr.readings[int(rng.integers(half, len(tr.labels)))][signal]}
            target = str(rng.choice([e for e in FUSION_EMOTIONS if e != readings[signal].top_emotion]))
            cal, n = Calibration(), 0
            mood = fusion.fuse(readings)
            while mood.top_emotion != target and n <= cap:
                cal, n = cal.corrected(mood.readings, mood.weights, target), n + 1
                mood = fusion.fuse(readings, calibration=cal)
            counts.append(n)
        out[signal] = {"median": float(np.median(counts)), "within_4": float(np.mean(np.array(counts) <= 4)),
                       "not_within_cap": float(np.mean(np.array(counts) > cap))}
    return out


VA_FACTOR_GRID = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def fit_va_factors(fit_x, fit_y, test_x, test_y) -> dict[str, Any]:
    """The voice's (valence, arousal) factors that best place the fused mood at its emotion's table point.

    Fitted on half the triplets by a grid per dimension; the other half reports mean squared error and
    Pearson r of the fused values against the table values of the true emotions, with factors 1 and fitted.
    """
    from fusion.late import fuse

    def fused_va(xs, factors) -> np.ndarray:
        return np.array([[m.valence, m.arousal] for m in (fuse(r, va_factors={"voice": factors}) for r in xs)])

    gold_fit, gold_test = VA_MATRIX[np.asarray(fit_y)], VA_MATRIX[np.asarray(test_y)]
    grid = {f: fused_va(fit_x, (f, f)) for f in VA_FACTOR_GRID}  # each dimension only depends on its own factor
    best = tuple(float(min(VA_FACTOR_GRID, key=lambda f: np.mean((grid[f][:, d] - gold_fit[:, d]) ** 2)))
                 for d in (0, 1))
    out: dict[str, Any] = {"voice": list(best), "grid": list(VA_FACTOR_GRID)}
    for name, factors in (("factors 1", (1.0, 1.0)), ("fitted", best)):
        va = fused_va(test_x, factors)
        out[name] = {f"{d}_{k}": v for i, d in enumerate(("valence", "arousal"))
                     for k, v in (("mse", float(np.mean((va[:, i] - gold_test[:, i]) ** 2))),
                                  ("r", float(np.corrcoef(va[:, i], gold_test[:, i])[0, 1])))}
    return out


def _update_metrics(signal: str, out: Path, evaluation: dict) -> None:
    """``out/<signal>/metrics.json``: the shipped metrics (training numbers) with ``evaluation`` replaced."""
    path = out / signal / "metrics.json"
    source = path if path.exists() else MODELS / signal / "metrics.json"
    current = json.loads(source.read_text()) if source.exists() else {}
    current["evaluation"] = evaluation
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(current, indent=1))


def metrics_markdown(rep: dict[str, Any]) -> str:
    """A markdown block with the headline numbers, per-class recall and the confusion matrix."""
    lines = [f"Data: {rep['data']}.", "",
             "| accuracy | macro-F1 | balanced accuracy | ECE (T=1) | ECE (calibrated, T={:.2f}) |".format(rep["temperature"]),
             "|---|---|---|---|---|",
             f"| {rep['accuracy']:.3f} | {rep.get('macro_f1_multilabel', rep['macro_f1']):.3f} | "
             f"{rep['balanced_accuracy']:.3f} | {rep['ece_before_temperature']:.3f} | {rep['ece_after_temperature']:.3f} |",
             "", "Per-class recall: " + ", ".join(f"{k} {v:.2f}" for k, v in rep["per_class_recall"].items()), ""]
    cm = rep["confusion_matrix"]
    labels = cm["labels"]
    lines += ["| gold \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {labels[i]} | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(cm["rows_gold_cols_pred"])]
    return "\n".join(lines)


def voice_blocks(rep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The voice report as one markdown block per corpus, in the shape :func:`metrics_markdown` reads."""
    blocks = {}
    for corpus, title in (("ravdess", "RAVDESS actors left out"), ("emodb", "EmoDB speakers left out")):
        r = dict(rep["clean"][corpus])
        r.update(temperature=rep["temperature"], data=f"{title}; {rep['data']}", **rep["calibration"][corpus])
        blocks[title] = r
    return blocks


def voice_extra_markdown(rep: dict[str, Any]) -> str:
    """Balanced accuracy per way of reading the left-out speakers' takes, below the voice model's blocks."""
    from models.voice.train_voice import SHORT

    passes = {"clean": "clean, with a transcript (the demo's path)", "clean" + SHORT: "clean, emotion only",
              "noisy": "10 dB pink noise", "quiet": "−45 dBFS with babble 20 dB below"}
    lines = ["**Balanced accuracy by how the take was read**", "", "| read | RAVDESS | EmoDB |", "|---|---|---|"]
    lines += [f"| {name} | {rep[p]['ravdess']['balanced_accuracy']:.3f} | {rep[p]['emodb']['balanced_accuracy']:.3f} |"
              for p, name in passes.items() if p in rep]
    return "\n".join(lines)


def text_extra_markdown(rep: dict[str, Any]) -> str:
    """EmoBank valence/arousal correlations and the probe sentences, below the text model's split blocks."""
    bank, probe = rep["emobank_dev"], rep["probe_sentences"]
    lines = ["**EmoBank dev (valence/arousal)**", "", "| | valence r | arousal r |", "|---|---|---|",
             f"| shipped (direct, calibrated) | {bank['valence_r_shipped']:.3f} | {bank['arousal_r_shipped']:.3f} |",
             f"| from the emotion table | {bank['valence_r_from_emotions']:.3f} | {bank['arousal_r_from_emotions']:.3f} |",
             "", f"**Probe sentences** (`models/text/probe_sentences.tsv`, {probe['n']} hand-written everyday "
             f"sentences): top-1 accuracy {probe['accuracy']:.3f}; by kind: "
             + ", ".join(f"{k} {v:.2f}" for k, v in probe["by_kind"].items()) + "."]
    if probe["misses"]:
        lines += ["", "Missed: " + "; ".join(probe["misses"]) + "."]
    return "\n".join(lines)


def write_card_metrics(card: Path, blocks: dict[str, dict[str, Any]], extra: str = "", source: Path | None = None) -> None:
    """Write ``card``: ``source`` (default: ``card`` itself) with the block between its metrics markers replaced by
    freshly measured numbers."""
    source = source if source is not None and not card.exists() else card
    if not source.exists():
        return
    text = source.read_text()
    start, end = "<!-- metrics:start -->", "<!-- metrics:end -->"
    if start not in text or end not in text:
        return
    body = "\n\n".join((f"**{name}**\n\n" if len(blocks) > 1 else "") + metrics_markdown(rep) for name, rep in blocks.items())
    body += f"\n\n{extra}" if extra else ""
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    card.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(card, f"{before}{start}\n_Measured by `moodtune evaluate --data ../shared/data --out models`._\n\n{body}\n{end}{after}")


def run(data: Path, out: Path | None = None) -> dict[str, Any]:
    """Every measurement; with ``out``, written there as ``<signal>/metrics.json``, ``<signal>/MODEL_CARD.md``
    (the shipped card with fresh numbers) and ``fusion_metrics.json``. ``out=models/`` in a checkout updates the
    repository's own files."""
    from multimodal import TextEncoder

    face_rep, face_probs, face_gold = evaluate_face(data)
    voice_rep, voice_oof = evaluate_voice(data)
    text_rep, text_held = evaluate_text(data)
    off_topic = TextEncoder().predict("The quarterly report is due on the third floor printer by 4 pm.")
    triplets = build_triplets(face_probs, face_gold, voice_oof, text_held)
    fusion = fusion_study(triplets, off_topic)
    fusion["corrections"] = corrections_study(triplets)
    fusion["corrections"]["until_read"] = corrections_until_read(triplets)
    report = {"face": face_rep, "voice": voice_rep, "text": text_rep, "fusion": fusion}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for signal, rep in (("face", face_rep), ("voice", voice_rep), ("text", text_rep)):
            _update_metrics(signal, out, rep)
        write_atomic(out / "fusion_metrics.json", json.dumps(fusion, indent=1))
        card = lambda signal: (out / signal / "MODEL_CARD.md", MODELS / signal / "MODEL_CARD.md")  # noqa: E731
        write_card_metrics(card("face")[0], {"face": face_rep}, source=card("face")[1])
        write_card_metrics(card("voice")[0], voice_blocks(voice_rep), voice_extra_markdown(voice_rep),
                           source=card("voice")[1])
        write_card_metrics(card("text")[0], {k: v for k, v in text_rep.items() if "confusion_matrix" in v},
                           text_extra_markdown(text_rep), source=card("text")[1])
    return report
