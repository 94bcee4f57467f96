"""Readers for the training/validation data in ``../shared/data`` (see its README).

The data is never shipped with moodtune; these readers are used by the training recipes under
``models/``, by ``moodtune evaluate`` and by tests that skip when the data is absent.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .labels import DAIR_EMOTION, EMODB, EMOTIONS, FER2013, GOEMOTIONS_EKMAN, LabelMap

TEXT_SPLITS = {
    ("goemotions", "train"): "goemotions_ekman_train.tsv", ("goemotions", "dev"): "goemotions_ekman_dev.tsv",
    ("dair", "train"): "dair_emotion_train.tsv", ("dair", "val"): "dair_emotion_val.tsv",
    ("ed", "train"): "ed_situations_train.tsv", ("ed", "val"): "ed_situations_val.tsv",
    ("enisear", "train"): "enisear.tsv",
    ("dailydialog", "train"): "dailydialog_train.tsv", ("dailydialog", "val"): "dailydialog_val.tsv",
}
#: Sets already labelled in EMOTIONS, and the emotions each can have (a label a set cannot have is unknown there,
#: not a negative: its loss is a softmax over these only).
SITUATION_COVERAGE = {
    "ed": ("angry", "disgust", "fear", "happy", "sad", "surprise"),
    "enisear": ("angry", "disgust", "fear", "happy", "sad"),
    "dailydialog": EMOTIONS,
}


def default_data_dir() -> Path | None:
    """``$MOODTUNE_DATA``, else ``../shared/data`` beside the project checkout, if it exists."""
    env = os.environ.get("MOODTUNE_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    candidates.append(Path.cwd().parent / "shared" / "data")
    return next((c for c in candidates if (c / "README.md").exists()), None)


@dataclass
class TextSplit:
    """Texts with soft targets over EMOTIONS and the mask of emotions the source could express."""

    name: str
    texts: list[str]
    targets: np.ndarray   # (n, 7), rows sum to 1
    coverage: np.ndarray  # (7,) bool
    labels: list[list[str]]  # the gold EMOTIONS labels of each row (several for multi-label rows)

    def __len__(self) -> int:
        return len(self.texts)


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _to_emotions(source_labels: list[str], label_map: LabelMap) -> list[str]:
    out: list[str] = []
    for s in source_labels:
        for emo in label_map.mapping[s]:
            if emo not in out:
                out.append(emo)
    return out


def load_text_split(data_dir: Path, corpus: str, split: str) -> TextSplit:
    """``corpus`` is ``goemotions`` (multi-label Ekman groups), ``dair``, ``ed`` (EmpatheticDialogues situations),
    ``enisear`` or ``dailydialog``; labels mapped into EMOTIONS."""
    if (corpus, split) not in TEXT_SPLITS:
        raise ValueError(f"unknown text split {corpus}/{split}; choose from {sorted(TEXT_SPLITS)}")
    rows = _read_tsv(Path(data_dir) / "text" / TEXT_SPLITS[corpus, split])
    if corpus in SITUATION_COVERAGE:
        cover = np.array([e in SITUATION_COVERAGE[corpus] for e in EMOTIONS])
        texts = [r["text"] for r in rows]
        labels = [[r["label"]] for r in rows]
        targets = np.eye(len(EMOTIONS))[[EMOTIONS.index(r["label"]) for r in rows]]
        return TextSplit(f"{corpus}_{split}", texts, targets, cover, labels)
    label_map = GOEMOTIONS_EKMAN if corpus == "goemotions" else DAIR_EMOTION
    texts, labels = [], []
    for row in rows:
        raw = row["labels"] if corpus == "goemotions" else row["label"]
        labels.append(_to_emotions([s.strip() for s in raw.split(",") if s.strip()], label_map))
        texts.append(row["text"])
    targets = np.zeros((len(texts), len(EMOTIONS)))
    for i, labs in enumerate(labels):
        for lab in labs:
            targets[i, EMOTIONS.index(lab)] += 1 / len(labs)
    return TextSplit(f"{corpus}_{split}", texts, targets, label_map.coverage, labels)


@dataclass
class EmoBank:
    """EmoBank sentences with valence and arousal on 1–5 (mean of reader and writer ratings)."""

    texts: list[str]
    valence: np.ndarray
    arousal: np.ndarray


def load_emobank(data_dir: Path, split: str) -> EmoBank:
    """``split`` is ``train`` or ``dev`` (EmoBank's own test split is kept back)."""
    rows = [r for r in _read_tsv(Path(data_dir) / "text" / "emobank_train_dev.tsv") if r["split"] == split]
    if not rows:
        raise ValueError(f"no EmoBank rows in split {split!r}; choose train or dev")
    return EmoBank([r["text"] for r in rows], np.array([float(r["valence"]) for r in rows]),
                   np.array([float(r["arousal"]) for r in rows]))


def load_fer2013(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Grey 48x48 uint8 images (n, 48, 48) and label indices into EMOTIONS."""
    d = np.load(Path(data_dir) / "face" / f"fer2013_{split}.npz")
    return d["images"], np.array([EMOTIONS.index(FER2013.source_labels[FER2013.source_labels.index(str(s))])
                                  for s in d["labels"]])


@dataclass
class EmoDB:
    audio: np.ndarray      # int16 (n, samples)
    sample_rate: int
    labels: np.ndarray     # EmoDB labels (incl. boredom)
    speakers: np.ndarray
    ids: np.ndarray

    @property
    def targets(self) -> np.ndarray:
        """Soft targets over EMOTIONS (boredom split as the EMODB label map says)."""
        return EMODB.to_emotions(np.eye(len(EMODB.source_labels))[[EMODB.source_labels.index(s) for s in self.labels]])


def load_emodb(data_dir: Path) -> EmoDB:
    d = np.load(Path(data_dir) / "voice" / "emodb.npz")
    return EmoDB(d["audio"], int(d["sample_rate"]), d["labels"].astype(str), d["speakers"].astype(str), d["ids"].astype(str))


@dataclass
class Ravdess:
    """RAVDESS speech clips (16 kHz int16, variable length); clip i is ``audio[offsets[i]:offsets[i + 1]]``."""

    audio: np.ndarray
    offsets: np.ndarray
    sample_rate: int
    labels: np.ndarray     # neutral, calm, happy, sad, angry, fear, disgust, surprise
    actors: np.ndarray     # '01'…'16'; odd actors are male
    intensity: np.ndarray  # normal or strong

    def clip(self, i: int) -> np.ndarray:
        return self.audio[self.offsets[i]:self.offsets[i + 1]]

    def __len__(self) -> int:
        return len(self.labels)


def load_ravdess(data_dir: Path) -> Ravdess:
    d = np.load(Path(data_dir) / "voice" / "ravdess_actors01-16.npz")
    return Ravdess(d["audio"], d["offsets"], int(d["sample_rate"]), d["labels"].astype(str), d["actors"].astype(str),
                   d["intensity"].astype(str))
