"""Per-user calibration learned from corrections ("that's not my mood: I feel happy").

Each correction keeps, per signal, the uncalibrated distribution and the fusion weight it had, and the emotion
the user says was true. The calibration has two kinds of parameters per signal ``s``: a log weight factor
``g_s`` (how much more or less to trust that signal for this person) and a log bias ``b_s`` over the seven
emotions (how this person's face, voice or words read differently from how they feel). A calibrated reading is
``p_s ∝ p_s · exp(b_s)`` with weight ``w_s · exp(g_s)``; the parameters maximise the likelihood of the corrected
emotions under the fused (linear) mood, with an L2 penalty strong enough that a few corrections only nudge the
model (three contrary corrections do not overturn a confident reading; ten consistent ones move it).

It is data that travels with the user (``to_dict``/``from_dict``), never state of the shared engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from multimodal.errors import MoodtuneError
from multimodal.labels import EMOTIONS, valence_arousal
from multimodal.reading import ModalityReading

MAX_CORRECTIONS = 200        # the most recent are kept
WEIGHT_PENALTY = 2.0         # L2 on each log weight factor
BIAS_PENALTY = 0.5           # L2 on each log bias
MAX_LOG = 3.0                # no parameter goes beyond ×20 or ÷20
SIGNAL_NAMES = {"face": "face", "voice": "voice", "text": "typed words", "speech_text": "spoken words"}
SIGNAL_WORDS = {"face": "face reads", "voice": "voice reads", "text": "typed words read",
                "speech_text": "spoken words read"}
SIGNALS = tuple(SIGNAL_WORDS)  # the only signals a correction may name (made-up ones made the fit take a minute)
MORE = {"angry": "angrier", "disgust": "more disgusted", "fear": "more afraid", "happy": "happier",
        "sad": "sadder", "surprise": "more surprised", "neutral": "calmer (more neutral)"}
LESS = {"angry": "less angry", "disgust": "less disgusted", "fear": "less afraid", "happy": "less happy",
        "sad": "less sad", "surprise": "less surprised", "neutral": "less neutral"}


class CalibrationError(MoodtuneError, ValueError):
    """A correction or a stored calibration cannot be used."""


@dataclass(frozen=True)
class Correction:
    """One "that's not my mood": the true emotion and, per signal used, (uncalibrated probabilities, weight) and
    the model that read it (``models``: a correction teaches about that model only; no words are kept)."""

    emotion: str
    signals: dict[str, tuple[tuple[float, ...], float]]
    time: str = ""
    models: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"emotion": self.emotion, "time": self.time,
                "signals": {m: {"probabilities": list(p), "weight": w, "model": self.models.get(m, "")}
                            for m, (p, w) in self.signals.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Correction":
        emotion = d["emotion"]
        if emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {emotion!r}")
        signals = dict(_checked_signal(m, s["probabilities"], s["weight"]) for m, s in dict(d["signals"]).items())
        # "": saved before corrections recorded the model that read each signal (dropped by for_models)
        models = {str(m): str(s.get("model", ""))[:200] for m, s in dict(d["signals"]).items()}
        return cls(emotion, signals, str(d.get("time", ""))[:40], models)

    def for_models(self, current: Mapping[str, str]) -> "Correction":
        """This correction without the signals whose model is not the ``current`` one (signal → model name;
        a signal missing from ``current`` is kept: nothing says its model changed)."""
        keep = {m: v for m, v in self.signals.items() if m not in current or self.models.get(m) == current[m]}
        return replace(self, signals=keep, models={m: self.models.get(m, "") for m in keep})


def _checked_signal(m: Any, probabilities: Any, weight: Any) -> tuple[str, tuple[tuple[float, ...], float]]:
    """(signal, (probabilities, weight)) once they are a known signal, seven finite probabilities and a weight ≥ 0."""
    if m not in SIGNALS:
        raise ValueError(f"unknown signal {str(m)[:40]!r}; expected one of {', '.join(SIGNALS)}")
    p = tuple(float(x) for x in list(probabilities)[:len(EMOTIONS) + 1])
    w = float(weight)
    if len(p) != len(EMOTIONS) or not np.all(np.isfinite(p)) or min(p) < 0 or max(p) > 1 + 1e-6 \
            or not np.isfinite(w) or w < 0:
        raise ValueError(f"signal {m!r}: expected {len(EMOTIONS)} probabilities from 0 to 1 and a finite weight ≥ 0")
    return str(m), (p, w)


@dataclass(frozen=True)
class Calibration:
    """A user's corrections and the parameters fitted to them (``weight_factors_``, ``biases_``); empty by default.

    :meth:`corrected` returns a new calibration with one more correction, refitted; :meth:`apply` turns
    readings into calibrated readings and says how much to scale each signal's prior.
    """

    corrections: tuple[Correction, ...] = ()
    weight_factors_: dict[str, float] = field(default_factory=dict)
    biases_: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.corrections)

    def corrected(self, readings: Mapping[str, ModalityReading], weights: Mapping[str, float],
                  emotion: str) -> "Calibration":
        """This calibration plus one correction: the signals' readings (calibrated or not: the uncalibrated
        distribution is recovered) and fusion weights of a mood the user says was really ``emotion``."""
        if emotion not in EMOTIONS:
            raise CalibrationError(f"unknown emotion {emotion!r}; choose one of {', '.join(EMOTIONS)}")
        signals, models = {}, {}
        try:  # a mood from a client: its signals and numbers are checked like a stored correction's
            for m, r in readings.items():
                if r.ok and weights.get(m, 0.0) > 0:
                    raw = r.extras.get("uncalibrated", r.probabilities)
                    factor = self.weight_factors_.get(m, 1.0)  # the mood's weight had it: store the uncalibrated one
                    _, signals[m] = _checked_signal(m, [round(float(raw.get(e, 0.0)), 5) for e in EMOTIONS],
                                                    round(float(weights[m]) / factor, 5))
                    models[m] = str(r.model)[:200]
        except (AttributeError, TypeError, ValueError, OverflowError) as exc:
            raise CalibrationError(f"the mood cannot be learned from: {str(exc)[:200]}") from exc
        if not signals:
            raise CalibrationError("this mood used no signal, so there is nothing to learn from the correction")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        current = self.for_models(models)[0]  # what an older model taught does not go into the refit
        kept = (*current.corrections, Correction(emotion, signals, now, models))[-MAX_CORRECTIONS:]
        return fit_calibration(kept)

    def for_models(self, current: Mapping[str, str]) -> tuple["Calibration", str]:
        """The calibration learned for the ``current`` models (signal → model name, e.g. each reading's
        ``model``) and a message naming what was dropped ("" when nothing was): a correction of an older face,
        voice or text model says nothing about the new one."""
        kept = tuple(c.for_models(current) for c in self.corrections)
        dropped = sorted({m for c, k in zip(self.corrections, kept) for m in c.signals if m not in k.signals})
        if not dropped:
            return self, ""
        n = sum(len(c.signals) != len(k.signals) for c, k in zip(self.corrections, kept))
        names = ", ".join(SIGNAL_NAMES.get(m, m) for m in dropped)
        message = (f"{n} earlier correction{'s' if n != 1 else ''} of your {names} no longer appl"
                   f"{'y' if n != 1 else 'ies'}: {'they were' if n != 1 else 'it was'} made for an older model")
        return fit_calibration(tuple(k for k in kept if k.signals)), message

    def apply(self, readings: Mapping[str, ModalityReading]) -> tuple[dict[str, ModalityReading], dict[str, float]]:
        """Calibrated readings (the uncalibrated distribution kept in ``extras["uncalibrated"]``) and the factor
        for each signal's fusion prior."""
        out = dict(readings)
        for m, r in readings.items():
            bias = self.biases_.get(m)
            if bias is None or not r.ok:
                continue
            p = r.vector * np.exp(np.asarray(bias))
            p = p / p.sum() if p.sum() > 0 else r.vector
            # A model's direct valence/arousal moves by as much as the table's reading of the shifted distribution.
            dv, da = valence_arousal(p) - np.asarray(valence_arousal(r.vector))
            moved = {d: (None if x is None else float(np.clip(x + dx, -1, 1)))
                     for d, x, dx in (("valence", r.valence, dv), ("arousal", r.arousal, da))}
            # confidence and quality stay as the model gave them: the weight factor says how far to trust it
            out[m] = replace(r, probabilities={e: float(x) for e, x in zip(EMOTIONS, p)},
                             extras={**r.extras, "uncalibrated": dict(r.probabilities)},
                             valence=moved["valence"], arousal=moved["arousal"])
        return out, dict(self.weight_factors_)

    def explain(self, threshold: float = 0.25) -> list[str]:
        """What the corrections taught, in words ("your face reads sadder than you feel; its weight is now 0.6×")."""
        lines = []
        for m in sorted(set(self.biases_) | set(self.weight_factors_)):
            bias = np.asarray(self.biases_.get(m, np.zeros(len(EMOTIONS))))
            bias = bias - bias.mean()
            parts = []
            k = int(np.argmax(np.abs(bias)))
            if abs(bias[k]) >= threshold:  # negative: the signal shows more of it than the user feels
                parts.append(f"{(MORE if bias[k] < 0 else LESS)[EMOTIONS[k]]} than you feel")
            factor = self.weight_factors_.get(m, 1.0)
            if abs(np.log(factor)) >= threshold / 2:
                parts.append(f"its weight is now {factor:.1f}× the default")
            if parts:
                subject = SIGNAL_WORDS.get(m, f"{m} reads")
                lines.append(f"your {subject} {parts[0]}" if parts[0].endswith("feel") else
                             f"your {subject.rsplit(' ', 1)[0]}: {parts[0]}")
                lines[-1] += "".join(f"; {x}" for x in parts[1:])
        n = len(self.corrections)
        return lines or ([f"{n} correction{'s' if n != 1 else ''} so far: not enough to change anything yet"] if n else [])

    def to_dict(self) -> dict[str, Any]:
        return {"corrections": [c.to_dict() for c in self.corrections],
                "weight_factors": dict(self.weight_factors_), "biases": {m: list(b) for m, b in self.biases_.items()}}

    @classmethod
    def from_dict(cls, d: Any) -> "Calibration":
        """A calibration from :meth:`to_dict` (refitted from its corrections, so stored parameters cannot be
        tampered into extreme values)."""
        try:
            if not isinstance(d, Mapping) or not isinstance(d.get("corrections", []), list):
                raise ValueError("expected an object with a list of 'corrections'")
            corrections = tuple(Correction.from_dict(c) for c in d.get("corrections", [])[-MAX_CORRECTIONS:])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: a 400-digit integer
            raise CalibrationError(f"not a moodtune calibration ({str(exc)[:200]})") from exc
        # a client sends the same calibration with every request: fit it once
        return _fit_once(tuple((c.emotion, c.time, tuple(sorted((m, p, w, c.models.get(m, ""))
                                                                for m, (p, w) in c.signals.items())))
                               for c in corrections))


@lru_cache(maxsize=64)
def _fit_once(key: tuple) -> Calibration:
    """:func:`fit_calibration` of the corrections ``key`` spells out (hashable; the result is immutable)."""
    return fit_calibration(tuple(Correction(e, {m: (p, w) for m, p, w, _ in signals}, t,
                                            {m: v for m, _, _, v in signals}) for e, t, signals in key))


def fit_calibration(corrections: tuple[Correction, ...], weight_penalty: float = WEIGHT_PENALTY,
                    bias_penalty: float = BIAS_PENALTY) -> Calibration:
    """Fit the biases, then the weight factors, to the corrections (maximum a posteriori, L-BFGS).

    Each signal's bias is fitted to that signal's own readings of the corrected moods (so "your face reads
    sadder" is about the face, whatever the others said); the weight factors then to the fused mood of the
    calibrated readings.
    """
    if not corrections:
        return Calibration()
    from scipy.optimize import minimize  # 0.4-0.8 s to import: only a profile with corrections needs it

    signals = sorted({m for c in corrections for m in c.signals})
    n, s, k = len(corrections), len(signals), len(EMOTIONS)
    probs = np.full((n, s, k), 1 / k)
    weights = np.zeros((n, s))
    for i, c in enumerate(corrections):
        for j, m in enumerate(signals):
            if m in c.signals:
                p, w = c.signals[m]
                probs[i, j] = np.asarray(p) / max(sum(p), 1e-12)
                weights[i, j] = w
    truth = np.array([EMOTIONS.index(c.emotion) for c in corrections])
    log_p = np.log(np.clip(probs, 1e-6, None))

    def shifted(j: int | slice, b: np.ndarray) -> np.ndarray:
        logits = log_p[:, j] + b
        p = np.exp(logits - logits.max(-1, keepdims=True))
        return p / p.sum(-1, keepdims=True)

    onehot = np.eye(k)[truth]
    biases = np.zeros((s, k))
    for j in range(s):
        seen = weights[:, j] > 0

        # loss and its gradient (L-BFGS with an exact gradient: 200 corrections fit in milliseconds, where finite
        # differences took 0.2 s)
        def signal_loss(b: np.ndarray, j: int = j, seen: np.ndarray = seen) -> tuple[float, np.ndarray]:
            p = shifted(j, b)[seen]
            nll = -np.log(np.clip(p[np.arange(len(p)), truth[seen]], 1e-9, None)).sum()
            grad = (p - onehot[seen]).sum(0) + 2 * bias_penalty * b
            return float(nll + bias_penalty * (b ** 2).sum()), grad

        biases[j] = minimize(signal_loss, np.zeros(k), jac=True, method="L-BFGS-B",
                             bounds=[(-MAX_LOG, MAX_LOG)] * k).x
    calibrated = np.stack([shifted(j, biases[j]) for j in range(s)], 1)
    true_p = calibrated[np.arange(n), :, truth]  # (n, s): each signal's calibrated probability of the truth

    def fused_loss(g: np.ndarray) -> tuple[float, np.ndarray]:
        w = weights * np.exp(g)[None]
        total = np.clip(w.sum(1), 1e-12, None)
        fused = np.clip((w * true_p).sum(1) / total, 1e-9, None)
        # d fused_i / d g_j = w_ij (true_p_ij - fused_i) / total_i
        grad = -(w * (true_p - fused[:, None]) / (total * fused)[:, None]).sum(0) + 2 * weight_penalty * g
        return float(-np.log(fused).sum() + weight_penalty * (g ** 2).sum()), grad

    g = minimize(fused_loss, np.zeros(s), jac=True, method="L-BFGS-B", bounds=[(-MAX_LOG, MAX_LOG)] * s).x
    return Calibration(corrections, {m: round(float(np.exp(g[j])), 4) for j, m in enumerate(signals)},
                       {m: tuple(round(float(x), 4) for x in biases[j]) for j, m in enumerate(signals)})
