"""The text model's lexical half: TF-IDF over words, word pairs and letter n-grams, with linear heads for the seven
emotion logits and the two raw valence/arousal values, added to the network's outputs before calibration.

Why: a fine-tuned MiniLM-L6 and a bag of words make different mistakes (EmpatheticDialogues situations 0.791 alone,
0.75 for the bag of words, more together; the model card has the numbers). Written once: the recipe
(``models/text/train_text.py``) fits it with scikit-learn over :func:`terms` and saves it with
:meth:`LexicalModel.save`; the encoder computes the same features here in numpy, because importing scikit-learn
takes about 2 s, most of the text encoder's 2.5-s cold-start budget.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .files import write_atomic

_WORD = re.compile(r"\b\w\w+\b")  # scikit-learn's default token pattern
CHAR_SIZES = (2, 3, 4, 5)
#: Texts with fewer typed words than this (emoji aside) are read by the network alone: on the dev splits the lexical
#: half gains nothing there (GoEmotions 0.793 -> 0.782 on 188 such rows, DailyDialog equal on 30), and it reads spelled
#: emoji ("party popper (happy)") as words.
MIN_WORDS = 3


def replace_emoji(text: str, replace: str | Callable[[str, dict], str]) -> str:
    """``emoji.replace_emoji``, skipped for ASCII text: no emoji is ASCII, and the scan is most of the time cleaning
    a text takes."""
    if text.isascii():
        return text
    import emoji

    return emoji.replace_emoji(text, replace=replace)


def lexical_source(raw: str, cleaned: str) -> str | None:
    """What the lexical half reads of a text: ``cleaned``, or None (nothing) when ``raw`` has fewer than
    :data:`MIN_WORDS` words once emoji are removed."""
    return cleaned if len(_WORD.findall(replace_emoji(raw, " "))) >= MIN_WORDS else None


def terms(text: str) -> list[str]:
    """Lower-cased words and word pairs (``w:``), and the letter 2- to 5-grams of each space-padded word (``c:``)."""
    low = text.lower()
    words = _WORD.findall(low)
    out = [f"w:{w}" for w in words] + [f"w:{a} {b}" for a, b in zip(words, words[1:])]
    for token in low.split():
        padded = f" {token} "
        for n in CHAR_SIZES:
            out += [f"c:{padded[i:i + n]}" for i in range(max(len(padded) - n + 1, 1))]
            if n >= len(padded):  # a short word's n-grams are the word itself from here on: count it once
                break
    return out


@dataclass(frozen=True)
class LexicalModel:
    """TF-IDF (sublinear term frequency, smoothed idf, L2 norm: scikit-learn's ``TfidfVectorizer`` settings the
    recipe uses) and a linear map to 7 emotion logits and 2 raw valence/arousal values (EmoBank z-scores).
    ``weights`` (9,) says how much of each output is added to the network's."""

    vocabulary: dict[str, int]
    idf: np.ndarray        # (V,)
    coef: np.ndarray       # (9, V)
    intercept: np.ndarray  # (9,)
    weights: np.ndarray    # (9,)

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero TF-IDF entries of ``text``: column indices and values."""
        counts = Counter(i for i in map(self.vocabulary.get, terms(text)) if i is not None)
        idx = np.fromiter(counts, dtype=np.int64, count=len(counts))
        values = (1 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self.idf[idx]
        norm = np.sqrt(values @ values)
        return idx, values / norm if norm > 0 else values

    def outputs(self, texts: list[str | None]) -> np.ndarray:
        """(N, 9): each text's emotion logits and raw valence/arousal, times :attr:`weights` (what the network's
        outputs get added); zeros for None (see :func:`lexical_source`)."""
        out = np.zeros((len(texts), len(self.intercept)), dtype=np.float32)
        for row, text in enumerate(texts):
            if text is not None:
                idx, values = self.features(text)
                out[row] = self.coef[:, idx] @ values + self.intercept
        return out * self.weights

    def save(self, path: Path) -> None:
        """One compressed ``.npz`` (no pickles), written whole or not at all."""
        words = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        buf = io.BytesIO()
        np.savez_compressed(buf, terms=np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8),
                            idf=self.idf.astype(np.float32), coef=self.coef.astype(np.float16),
                            intercept=self.intercept.astype(np.float32), weights=self.weights.astype(np.float32))
        write_atomic(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> LexicalModel:
        with np.load(path, allow_pickle=False) as f:
            words = f["terms"].tobytes().decode("utf-8").split("\n")
            return cls({w: i for i, w in enumerate(words)}, f["idf"].astype(np.float64),
                       f["coef"].astype(np.float32), f["intercept"], f["weights"])
