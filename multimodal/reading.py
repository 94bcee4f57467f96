"""What an encoder returns: a :class:`ModalityReading`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

import numpy as np

from .labels import EMOTIONS, valence_arousal


class Status(str, Enum):
    """Outcome of reading one signal. Only ``OK`` readings carry probabilities that fusion uses."""

    OK = "ok"
    MISSING = "missing"          # the signal was not given
    NO_FACE = "no_face"          # an image without a detectable face
    SILENCE = "silence"          # audio without enough speech
    EMPTY = "empty"              # text that is empty or whitespace
    INVALID = "invalid"          # input we cannot read (wrong type, corrupt file, NaN audio, ...)
    UNSUPPORTED = "unsupported"  # this signal is not available in this installation
    UNRELIABLE = "unreliable"    # read, but the model's own checks reject it (a transcript that repeats itself)
    ERROR = "error"              # the model failed unexpectedly

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ModalityReading:
    """One signal's reading: a distribution over :data:`EMOTIONS` or a status that says why not (immutable:
    ``dataclasses.replace`` makes a changed copy).

    ``confidence`` (0–1) is how peaked the calibrated distribution is (1 − normalised entropy over the
    emotions the model can express); ``quality`` (0–1) is how good the input was (face size, share of
    speech, language). ``coverage`` lists the emotions the model can express at all. ``valence`` and
    ``arousal`` are the model's direct estimates where it has them; fusion otherwise reads them off the
    probabilities through the emotion table.
    """

    modality: str
    status: Status
    probabilities: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0
    quality: float = 0.0
    message: str = ""
    latency_ms: float = 0.0
    model: str = ""
    coverage: tuple[str, ...] = EMOTIONS
    extras: dict[str, Any] = field(default_factory=dict)
    valence: float | None = None   # the model's own valence (−1..1), None where it has no such output
    arousal: float | None = None   # the model's own arousal (−1..1), idem

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @property
    def vector(self) -> np.ndarray:
        """Probabilities as an array in EMOTIONS order (zeros when the reading is not OK)."""
        return np.array([self.probabilities.get(e, 0.0) for e in EMOTIONS], dtype=np.float64)

    @property
    def coverage_mask(self) -> np.ndarray:
        return np.array([e in self.coverage for e in EMOTIONS])

    @property
    def top_emotion(self) -> str | None:
        return max(self.probabilities, key=lambda e: self.probabilities[e]) if self.ok and self.probabilities else None

    def valence_arousal(self, probs: np.ndarray | None = None) -> tuple[float, float]:
        """The model's direct (valence, arousal) where it has them, else the emotion table's of ``probs`` (by
        default its own distribution; fusion passes the distribution completed on uncovered emotions)."""
        v, a = valence_arousal(self.vector if probs is None else probs)
        return (v if self.valence is None else self.valence), (a if self.arousal is None else self.arousal)

    @classmethod
    def failed(cls, modality: str, status: Status, message: str, **kw: Any) -> "ModalityReading":
        return cls(modality=modality, status=status, message=message, **kw)

    @classmethod
    def from_probs(cls, modality: str, probs: np.ndarray, *, coverage: np.ndarray | None = None,
                   quality: float = 1.0, message: str = "", model: str = "", **kw: Any) -> "ModalityReading":
        """An OK reading from a probability vector over EMOTIONS; confidence from its entropy."""
        probs = np.clip(np.asarray(probs, dtype=np.float64), 0, None)
        probs = probs / probs.sum() if probs.sum() > 0 else np.full(len(EMOTIONS), 1 / len(EMOTIONS))
        mask = np.ones(len(EMOTIONS), bool) if coverage is None else np.asarray(coverage, bool)
        return cls(modality=modality, status=Status.OK,
                   probabilities={e: float(p) for e, p in zip(EMOTIONS, probs)},
                   confidence=entropy_confidence(probs, mask), quality=float(np.clip(quality, 0, 1)),
                   message=message, model=model, coverage=tuple(e for e, m in zip(EMOTIONS, mask) if m), **kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["coverage"] = list(self.coverage)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModalityReading":
        """The reading :meth:`to_dict` gave (unknown keys are ignored, so newer fields do not break older readers)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["status"] = Status(d["status"])
        kw["coverage"] = tuple(d.get("coverage", EMOTIONS))
        kw["probabilities"] = {str(k): float(v) for k, v in d.get("probabilities", {}).items()}
        return cls(**kw)


def entropy_confidence(probs: np.ndarray, mask: np.ndarray | None = None) -> float:
    """1 − normalised Shannon entropy over the covered classes: 1 for one-hot, 0 for uniform."""
    p = np.asarray(probs, dtype=np.float64)
    if mask is not None:
        p = p[np.asarray(mask, bool)]
    k = len(p)
    total = p.sum()
    if k < 2 or total <= 0:
        return 0.0
    p = p / total
    nz = p[p > 0]
    return float(np.clip(1 + (nz * np.log(nz)).sum() / np.log(k), 0.0, 1.0))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits (0..1) of two distributions (normalised first): what
    ``scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2`` gives, without importing scipy.spatial (0.2 s)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = (a > 0) & (m > 0)  # m underflows to 0 beside a subnormal a: a term of about 0
        return float((a[nz] * np.log2(a[nz] / m[nz])).sum())

    return max(0.0, (kl(p) + kl(q)) / 2)
