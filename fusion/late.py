"""Late fusion of per-signal readings into one mood.

Each usable signal ``s`` gets the weight ``w_s = prior_s × quality_s × confidence_s × (1 − d_s · p_s(neutral))``
(quality: how good the input was; confidence: 1 − normalised entropy of its calibrated distribution).
The neutral discount ``d_s`` applies to words (typed text, speech transcripts): a line without emotional
content ("the report is due at 4 pm") is weak evidence about mood, and should not outvote an angry voice
or face by reading confidently "neutral". Missing or failed signals drop out and the others renormalise.

Valence and arousal: each signal contributes its model's direct value where it has one (the voice head) and
otherwise the emotion table's value of its completed distribution; the fused value is their weighted mean,
each signal's weight multiplied by a per-dimension factor (the voice counts more for arousal than for
valence). The factors are fitted by the fusion study (``models/fusion_metrics.json``, ``va_factors``).

Coverage: a model that cannot express an emotion (a 4-class speech model has no "disgust") has no
opinion on it, rather than a vote of zero. Before pooling, each reading's distribution is completed on
its uncovered emotions with the weighted opinion of the signals that do cover them, scaled so it still
sums to 1. Pooling is then a weighted average (``linear``, robust) or a weighted product of experts
(``poe``: p ∝ Π p_s^{w_s / max w}, sharper when signals agree).
"""

from __future__ import annotations

from itertools import combinations
from typing import Iterable, Mapping, Sequence

import numpy as np

from multimodal.labels import EMOTIONS
from multimodal.reading import ModalityReading, entropy_confidence, js_divergence

from .calibration import Calibration
from .mood import MoodReading, MoodStatus

METHODS = ("linear", "poe")
#: Prior trust in each signal before looking at the input (typed text is the most reliable signal we
#: have, the acted-speech voice model the least). ``fit`` learns these from labelled readings.
DEFAULT_PRIORS: dict[str, float] = {"text": 1.0, "face": 0.8, "speech_text": 0.7, "voice": 0.5}
#: How much a signal's weight shrinks when it reads "neutral": 1 − d × p(neutral). See the module docstring;
#: the fusion study in ``moodtune evaluate`` reports accuracy with and without it.
DEFAULT_NEUTRAL_DISCOUNT: dict[str, float] = {"text": 0.9, "speech_text": 0.9}  # < 1: never zero
#: Per-signal (valence, arousal) factors on the fusion weight; 1 where not listed. Fitted by the fusion study
#: (``models/fusion_metrics.json`` → ``va_factors``), with the text's direct values: the voice counts three times
#: for arousal (fused arousal MSE 0.074 → 0.058, r 0.80 → 0.85 on held-out triplets; 3 is the grid's top) and
#: one and a half times for valence (MSE 0.0646 → 0.0640: hardly a change).
DEFAULT_VA_FACTORS: dict[str, tuple[float, float]] = {"voice": (1.5, 3.0)}
EPS = 1e-6
MIN_WEIGHT = 1e-4


def _as_dict(readings: Mapping[str, ModalityReading] | Iterable[ModalityReading]) -> dict[str, ModalityReading]:
    if isinstance(readings, Mapping):
        return dict(readings)
    return {r.modality: r for r in readings}


def complete_coverage(probs: np.ndarray, masks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Fill each row's uncovered emotions with the weighted opinion of the rows that cover them.

    probs, masks: (S, 7); weights: (S,). Returns (S, 7) rows that sum to 1. Emotions no row covers stay 0.
    """
    probs = np.where(masks, probs, 0.0)
    w = weights[:, None] * masks
    reference = np.divide((w * probs).sum(0), w.sum(0), out=np.zeros(probs.shape[1]), where=w.sum(0) > 0)
    out = probs.copy()
    for s in range(len(probs)):
        missing = ~masks[s]
        if not missing.any():
            continue
        fill = reference * missing
        ref_total = reference.sum()
        fill_mass = fill.sum() / ref_total if ref_total > 0 else 0.0
        covered = probs[s] / max(probs[s].sum(), EPS)
        out[s] = covered * (1 - fill_mass) + (fill / ref_total if ref_total > 0 else 0)
    return out / np.clip(out.sum(1, keepdims=True), EPS, None)


def agreement_score(probs: np.ndarray, weights: np.ndarray) -> float | None:
    """1 − weighted mean pairwise Jensen–Shannon divergence (base 2) between the signals; None if < 2."""
    if len(probs) < 2:
        return None
    total, norm = 0.0, 0.0
    for i, j in combinations(range(len(probs)), 2):
        pair_w = weights[i] * weights[j]
        total += pair_w * js_divergence(probs[i], probs[j])
        norm += pair_w
    return float(np.clip(1 - total / norm, 0.0, 1.0)) if norm > 1e-12 else None


def pool(probs: np.ndarray, weights: np.ndarray, method: str = "linear") -> np.ndarray:
    """Combine completed distributions (S, 7) with normalised weights (S,).

    ``poe`` raises each expert to the power w_s / max(w): the most trusted one counts fully, so experts
    that agree sharpen the result (unlike a geometric mean).
    """
    if method == "linear":
        fused = weights @ probs
    elif method == "poe":
        fused = np.exp((weights / weights.max()) @ np.log(np.clip(probs, EPS, None)))
    else:
        raise ValueError(f"unknown fusion method {method!r}; choose one of {', '.join(METHODS)}")
    return fused / fused.sum()


def fused_valence_arousal(va: np.ndarray, weights: np.ndarray, factors: np.ndarray) -> tuple[float, float]:
    """Weighted mean of per-signal (valence, arousal) (S, 2) with weights (S,) times factors (S, 2)."""
    w = weights[:, None] * factors
    v, a = (w * va).sum(0) / np.clip(w.sum(0), EPS, None)
    return float(np.clip(v, -1, 1)), float(np.clip(a, -1, 1))


def fuse(readings: Mapping[str, ModalityReading] | Sequence[ModalityReading], *, method: str = "linear",
         priors: Mapping[str, float] | None = None,
         neutral_discount: Mapping[str, float] | None = None,
         va_factors: Mapping[str, tuple[float, float]] | None = None) -> MoodReading:
    """Fuse readings (a dict by modality, or a list) into a :class:`MoodReading`.

    ``priors``, ``neutral_discount`` and ``va_factors`` override :data:`DEFAULT_PRIORS`,
    :data:`DEFAULT_NEUTRAL_DISCOUNT` and :data:`DEFAULT_VA_FACTORS` per modality (a discount of 0 turns it off).
    """
    if method not in METHODS:
        raise ValueError(f"unknown fusion method {method!r}; choose one of {', '.join(METHODS)}")
    readings = _as_dict(readings)
    priors = {**DEFAULT_PRIORS, **(priors or {})}
    discount = {**DEFAULT_NEUTRAL_DISCOUNT, **(neutral_discount or {})}
    raw_all = {m: priors.get(m, 0.5) * r.quality * r.confidence
               * (1 - float(np.clip(discount.get(m, 0.0), 0, 1)) * r.probabilities.get("neutral", 0.0))
               for m, r in readings.items() if r.ok}
    usable = [m for m, w in raw_all.items() if w > MIN_WEIGHT]  # a flat (uninformative) reading has no say
    raw = np.array([raw_all[m] for m in usable])
    if not usable:
        why = "; ".join(f"{m}: {r.message or r.status}" for m, r in readings.items()) or "no input was given"
        return MoodReading(probabilities={e: 0.0 for e in EMOTIONS}, top_emotion=None, confidence=0.0,
                           valence=0.0, arousal=0.0, readings=readings, weights={m: 0.0 for m in readings},
                           agreement=None, status=MoodStatus.NO_SIGNAL, method=method,
                           message=f"no usable signal ({why})")
    weights = raw / raw.sum()
    probs = np.stack([readings[m].vector for m in usable])
    masks = np.stack([readings[m].coverage_mask for m in usable])
    completed = complete_coverage(probs, masks, weights)
    fused = pool(completed, weights, method)
    factors = {**DEFAULT_VA_FACTORS, **(va_factors or {})}
    va = np.array([readings[m].valence_arousal(completed[i]) for i, m in enumerate(usable)])
    v, a = fused_valence_arousal(va, weights, np.array([factors.get(m, (1.0, 1.0)) for m in usable]))
    agreement = agreement_score(completed, weights)
    confidence = entropy_confidence(fused)
    if agreement is not None:
        confidence *= 0.5 + 0.5 * agreement  # conflicting signals make the result less certain
    top = EMOTIONS[int(fused.argmax())]
    all_weights = {m: 0.0 for m in readings}
    all_weights.update({m: float(w) for m, w in zip(usable, weights)})
    dropped = [m for m, r in readings.items() if not r.ok and r.status != "missing"]
    message = f"{top} from {', '.join(usable)}" + (f" ({', '.join(dropped)} not usable)" if dropped else "")
    return MoodReading(probabilities={e: float(p) for e, p in zip(EMOTIONS, fused)}, top_emotion=top,
                       confidence=float(confidence), valence=v, arousal=a, readings=readings, weights=all_weights,
                       agreement=agreement, method=method, message=message)


class LateFusion:
    """scikit-learn-style fusion estimator: ``fit`` learns per-signal priors from labelled readings.

    ``X`` is a sequence of reading sets (each a dict modality → ModalityReading); ``y`` the true
    emotions (names or indices into EMOTIONS). ``predict_proba(X)`` → (n, 7); ``predict(X)`` → names.
    """

    def __init__(self, method: str = "linear", priors: Mapping[str, float] | None = None,
                 neutral_discount: Mapping[str, float] | None = None,
                 va_factors: Mapping[str, tuple[float, float]] | None = None) -> None:
        self.method = method
        self.va_factors = {**DEFAULT_VA_FACTORS, **(va_factors or {})}
        self.priors = dict(priors) if priors else dict(DEFAULT_PRIORS)
        self.neutral_discount = {**DEFAULT_NEUTRAL_DISCOUNT, **(neutral_discount or {})}
        self.classes_ = np.array(EMOTIONS)

    def fuse(self, readings: Mapping[str, ModalityReading] | Sequence[ModalityReading],
             calibration: Calibration | None = None) -> MoodReading:
        """One mood from the readings; with a user's ``calibration``, its biases and weight factors first."""
        priors = self.priors_
        if calibration:
            readings, factors = calibration.apply(_as_dict(readings))
            priors = {m: priors.get(m, 0.5) * factors.get(m, 1.0) for m in {*priors, *factors}}
        return fuse(readings, method=self.method, priors=priors, neutral_discount=self.neutral_discount,
                    va_factors=self.va_factors)

    @property
    def priors_(self) -> dict[str, float]:
        return getattr(self, "learned_priors_", self.priors)

    def fit(self, X: Sequence[Mapping[str, ModalityReading]], y: Sequence[str | int]) -> "LateFusion":
        """Learn priors that minimise the negative log-likelihood of the true emotions."""
        targets = np.array([EMOTIONS.index(t) if isinstance(t, str) else int(t) for t in y])
        modalities = sorted({m for readings in X for m, r in readings.items() if r.ok})
        if not modalities:
            raise ValueError("fit needs readings with at least one usable signal")

        def nll(log_priors: np.ndarray) -> float:
            priors = dict(zip(modalities, np.exp(log_priors)))
            loss = 0.0
            for readings, t in zip(X, targets):
                p = fuse(readings, method=self.method, priors=priors,
                         neutral_discount=self.neutral_discount).vector[t]
                loss -= np.log(max(p, EPS))
            return loss / len(targets) + 1e-3 * float(np.sum(log_priors ** 2))

        start = np.log([self.priors.get(m, 0.5) for m in modalities])
        from scipy.optimize import minimize  # 0.4-0.8 s to import: only when priors are fitted

        result = minimize(nll, start, method="Nelder-Mead", options={"maxiter": 400, "xatol": 1e-3, "fatol": 1e-5})
        learned = np.exp(result.x)
        self.learned_priors_ = dict(zip(modalities, (learned / learned.max()).tolist()))
        self.n_features_in_ = len(modalities)
        return self

    def predict_proba(self, X: Sequence[Mapping[str, ModalityReading]]) -> np.ndarray:
        return np.stack([self.fuse(readings).vector for readings in X])

    def predict(self, X: Sequence[Mapping[str, ModalityReading]]) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def score(self, X: Sequence[Mapping[str, ModalityReading]], y: Sequence[str]) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))
