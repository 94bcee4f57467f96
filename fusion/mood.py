"""The fused result: a :class:`MoodReading`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np

from multimodal.labels import EMOTIONS, valence_arousal
from multimodal.reading import ModalityReading


class MoodStatus(str, Enum):
    """Whether fusion found a usable signal (a ``str`` enum: ``mood.status == "ok"`` holds too)."""

    OK = "ok"
    NO_SIGNAL = "no_signal"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class MoodReading:
    """One mood from all signals.

    ``probabilities`` is the fused distribution over EMOTIONS; ``valence`` and ``arousal`` (−1..1) are its
    expectation on the circumplex; ``weights`` says how much each signal counted (they sum to 1 over
    the signals used); ``agreement`` (0..1, None with fewer than two signals) is 1 − the mean
    Jensen–Shannon divergence between the signals used. ``status`` is ``ok`` or ``no_signal``.
    """

    probabilities: dict[str, float]
    top_emotion: str | None
    confidence: float
    valence: float
    arousal: float
    readings: dict[str, ModalityReading]
    weights: dict[str, float]
    agreement: float | None
    status: MoodStatus = MoodStatus.OK
    message: str = ""
    method: str = "linear"
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == MoodStatus.OK

    @property
    def vector(self) -> np.ndarray:
        return np.array([self.probabilities.get(e, 0.0) for e in EMOTIONS])

    @property
    def faces(self) -> list[dict[str, Any]]:
        """Each face read in group mode (``faces="all"``): box, top emotion, probabilities, weight; else empty."""
        face = self.readings.get("face")
        return list(face.extras.get("faces", [])) if face is not None and face.ok else []

    def ranked(self) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])

    def summary(self) -> str:
        if not self.ok:
            return self.message
        (e1, p1), (e2, p2) = self.ranked()[:2]
        return (f"{e1} ({p1:.0%}), then {e2} ({p2:.0%}); valence {self.valence:+.2f}, arousal {self.arousal:+.2f}; "
                f"confidence {self.confidence:.0%}")

    def given(self, emotion: str) -> "MoodReading":
        """The mood the user says they feel instead of this reading ("that's my mood"): all on ``emotion``, at its
        point on the valence–arousal plane, with this reading's signals kept for reference; music for it is
        music for what they said. ValueError for an emotion not in EMOTIONS."""
        if emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {emotion!r}; choose one of {', '.join(EMOTIONS)}")
        probs = {e: float(e == emotion) for e in EMOTIONS}
        valence, arousal = valence_arousal(np.array(list(probs.values())))
        return replace(self, probabilities=probs, top_emotion=emotion, confidence=1.0, valence=valence,
                       arousal=arousal, status=MoodStatus.OK, message=f"{emotion}: the mood you gave",
                       extras={**self.extras, "given": True})

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": MoodStatus(self.status).value, "message": self.message, "top_emotion": self.top_emotion,
            "probabilities": self.probabilities, "confidence": self.confidence, "valence": self.valence,
            "arousal": self.arousal, "weights": self.weights, "agreement": self.agreement, "method": self.method,
            "readings": {k: r.to_dict() for k, r in self.readings.items()}, "extras": self.extras,
            "faces": self.faces,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MoodReading":
        """The mood :meth:`to_dict` gave, readings included (for a client, a queue or another process)."""
        return cls(probabilities={str(k): float(v) for k, v in d["probabilities"].items()},
                   top_emotion=d.get("top_emotion"), confidence=float(d.get("confidence", 0.0)),
                   valence=float(d["valence"]), arousal=float(d["arousal"]),
                   readings={k: ModalityReading.from_dict(r) for k, r in d.get("readings", {}).items()},
                   weights={str(k): float(v) for k, v in d.get("weights", {}).items()},
                   agreement=d.get("agreement"), status=MoodStatus(d.get("status", "ok")), message=d.get("message", ""),
                   method=d.get("method", "linear"), extras=dict(d.get("extras", {})))
