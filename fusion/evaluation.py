"""``moodtune evaluate``: per-signal metrics on the validation splits and a fusion study on triplets.

Per signal: accuracy, macro-F1, per-class recall, confusion matrix and expected calibration error (ECE)
before and after temperature scaling (face: FER2013 val; voice: EmoDB leave-one-speaker-out; text: dair-ai
val and GoEmotions-Ekman dev). Fusion: same-label triplets (a FER2013 val face, an EmoDB clip scored by the
fold that did not see its speaker, a text sentence from the held-out splits) fused with fixed priors,
learned priors and product of experts; again with one signal missing and with one signal corrupted.
Results go to ``models/*/metrics.json`` (key ``evaluation``), ``models/fusion_metrics.json`` and the model cards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score
from tqdm import tqdm

from multimodal.heads import fit_temperature, softmax
from multimodal.labels import EMODB, EMOTIONS
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


def evaluate_voice(data: Path) -> tuple[dict, np.ndarray, Any]:
    """Leave-one-speaker-out with the shipped recipe's features and C; returns out-of-fold EMOTIONS probs."""
    from safetensors import safe_open

    from models.voice.train_voice import loso_logits
    from multimodal.datasets import load_emodb
    from multimodal.voice import WHISPER_HEAD, WhisperEmotionBackend, prepare_voice

    db = load_emodb(data)
    with safe_open(str(WHISPER_HEAD), framework="np") as f:
        c = float((f.metadata() or {}).get("C", 0.3))
    backend = WhisperEmotionBackend(head_path=None)
    feats = np.stack([backend.features(prepare_voice((db.sample_rate, a))) for a in tqdm(db.audio, desc="voice")])
    logits, classes = loso_logits(feats, db.labels, db.speakers, c)
    gold = np.array([classes.index(s) for s in db.labels])
    half = db.speakers < sorted(set(db.speakers))[len(set(db.speakers)) // 2]  # fit T on half the speakers
    report = classification_report(logits, gold, classes, fit_on=(logits[half], gold[half]))
    report["data"] = "EmoDB (8 speakers), leave-one-speaker-out; 7 EmoDB classes incl. boredom"
    probs = EMODB.to_emotions(softmax(logits, report["temperature"]), classes)
    return report, probs, db


def evaluate_text(data: Path) -> tuple[dict, dict[str, np.ndarray], dict]:
    from multimodal.datasets import load_text_split
    from multimodal.text import TextEncoder

    encoder = TextEncoder()
    backend = encoder.backend
    out, probs, splits = {}, {}, {}
    for corpus, split in (("dair", "val"), ("goemotions", "dev")):
        s = load_text_split(data, corpus, split)
        # the encoder's own path (chunks, clauses), as used: calibrated; and at T=1 for the "before" ECE
        t_saved = backend.temperature
        cover = s.coverage
        per_t = {}
        for t in (1.0, t_saved):
            backend.temperature = t
            try:
                p = np.stack([r.vector for i in tqdm(range(0, len(s.texts), 512), desc=f"text {corpus} (T={t:.2f})")
                              for r in encoder.predict_batch(s.texts[i:i + 512])])
            finally:
                backend.temperature = t_saved
            per_t[t] = np.where(cover, np.log(np.clip(p, 1e-12, None)), -1e4)
        logits = per_t[t_saved]  # log-probabilities as used; argmax and thresholds apply to these
        gold_top = np.array([EMOTIONS.index(labs[0]) for labs in s.labels])
        rep = classification_report(logits, gold_top, list(EMOTIONS), temperature=1.0)
        rep["temperature"] = float(t_saved)
        rep["ece_before_temperature"] = ece(softmax(per_t[1.0]), gold_top)
        rep["per_class_recall"] = {e: v for e, v in rep["per_class_recall"].items() if cover[EMOTIONS.index(e)]}
        if corpus == "goemotions":  # multi-label: a class is predicted when p ≥ 0.3 or it is the top class
            from models.text.train_text import evaluate as multilabel

            rep["multilabel"] = multilabel(softmax(logits), s)
            rep["macro_f1_multilabel"] = rep["multilabel"]["macro_f1"]
        rep["data"] = f"{s.name} ({len(s)} rows); argmax over the classes the corpus can express"
        out[s.name] = rep
        probs[s.name] = softmax(logits)
        splits[s.name] = s
    return out, probs, splits


# -- fusion --------------------------------------------------------------------------------------
@dataclass
class Triplets:
    labels: np.ndarray              # EMOTIONS indices
    readings: list[dict[str, ModalityReading]]


FUSION_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "neutral")  # what all three data sets share


def build_triplets(face_probs, face_gold, voice_probs, voice_db, text_probs, text_splits, n: int = 1200,
                   seed: int = 0) -> Triplets:
    rng = np.random.default_rng(seed)
    voice_gold = np.array([EMOTIONS.index(s) if s in EMOTIONS else -1 for s in voice_db.labels])
    text_pool: dict[int, list[tuple[str, int]]] = {}
    for name, split in text_splits.items():
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
            "voice": ModalityReading.from_probs("voice", voice_probs[v], coverage=EMODB.coverage),
            "text": ModalityReading.from_probs("text", text_probs[name][t], coverage=text_splits[name].coverage),
        })
    return Triplets(np.array(labels), readings)


def corrupted(readings: dict[str, ModalityReading], which: str, off_topic: ModalityReading) -> dict:
    out = dict(readings)
    out[which] = {"face": ModalityReading.failed("face", Status.NO_FACE, "noise image: no face found"),
                  "voice": ModalityReading.failed("voice", Status.SILENCE, "silence"),
                  "text": off_topic}[which]
    return out


def fusion_study(tr: Triplets, off_topic: ModalityReading) -> dict[str, Any]:
    from .late import LateFusion

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
    for m in ("face", "voice", "text"):
        missing = [{k: v for k, v in r.items() if k != m} for r in test_x]
        broken = [corrupted(r, m, off_topic) for r in test_x]
        result[f"without_{m}"] = {k: acc(model, missing) for k, model in models.items()}
        result[f"corrupted_{m}"] = {k: acc(model, broken) for k, model in models.items()}
    return result


def _update_metrics(folder: Path, evaluation: dict) -> None:
    path = folder / "metrics.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current["evaluation"] = evaluation
    path.write_text(json.dumps(current, indent=1))


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


def write_card_metrics(card: Path, blocks: dict[str, dict[str, Any]]) -> None:
    """Replace the block between the metrics markers of a model card with freshly measured numbers."""
    if not card.exists():
        return
    text = card.read_text()
    start, end = "<!-- metrics:start -->", "<!-- metrics:end -->"
    if start not in text or end not in text:
        return
    body = "\n\n".join((f"**{name}**\n\n" if len(blocks) > 1 else "") + metrics_markdown(rep) for name, rep in blocks.items())
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    card.write_text(f"{before}{start}\n_Measured by `moodtune evaluate --data ../shared/data`._\n\n{body}\n{end}{after}")


def run(data: Path, write: bool = True) -> dict[str, Any]:
    from multimodal import TextEncoder

    face_rep, face_probs, face_gold = evaluate_face(data)
    voice_rep, voice_probs, db = evaluate_voice(data)
    text_rep, text_probs, splits = evaluate_text(data)
    off_topic = TextEncoder().predict("The quarterly report is due on the third floor printer by 4 pm.")
    triplets = build_triplets(face_probs, face_gold, voice_probs, db, text_probs, splits)
    fusion = fusion_study(triplets, off_topic)
    report = {"face": face_rep, "voice": voice_rep, "text": text_rep, "fusion": fusion}
    if write:
        _update_metrics(MODELS / "face", face_rep)
        _update_metrics(MODELS / "voice", voice_rep)
        _update_metrics(MODELS / "text", text_rep)
        (MODELS / "fusion_metrics.json").write_text(json.dumps(fusion, indent=1))
        write_card_metrics(MODELS / "face" / "MODEL_CARD.md", {"face": face_rep})
        write_card_metrics(MODELS / "voice" / "MODEL_CARD.md", {"voice": voice_rep})
        write_card_metrics(MODELS / "text" / "MODEL_CARD.md", text_rep)
    return report
