"""The shared label space, valence/arousal anchors and maps from every source label set into it.

Every encoder reports probabilities over :data:`EMOTIONS`. A source model with another label set is
mapped through a :class:`LabelMap`: a (source labels x EMOTIONS) matrix plus a *coverage* mask that
marks the emotions the source can express at all. Fusion uses the mask so that a model that cannot
say "disgust" does not vote zero on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
N_EMOTIONS = len(EMOTIONS)

#: Valence and arousal of each emotion on [-1, 1] (Russell's circumplex, centred).
#: angry, disgust, fear and sad: the NRC-VAD lexicon v1 (Mohammad, ACL 2018) entries for "anger",
#: "disgust", "fear" and "sadness" (0..1 scores v, a mapped as 2x-1). happy, surprise and neutral: our
#: placements on Russell's (1980) circumplex (happy: pleasant and moderately activated; surprise:
#: slightly pleasant and highly activated; neutral: the centre, slightly deactivated).
VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "angry": (-0.666, 0.730),
    "disgust": (-0.896, 0.550),
    "fear": (-0.854, 0.680),
    "happy": (0.900, 0.500),
    "sad": (-0.896, -0.424),
    "surprise": (0.300, 0.750),
    "neutral": (0.000, -0.200),
}
VA_MATRIX = np.array([VALENCE_AROUSAL[e] for e in EMOTIONS], dtype=np.float64)  # (7, 2)


@dataclass(frozen=True)
class LabelMap:
    """Maps a source model's label set into :data:`EMOTIONS`.

    ``mapping[source_label]`` is a dict of target emotion -> share (shares sum to 1), so one source
    class can be split (EmoDB's "boredom") or merged (dair-ai's "love" and "joy" both -> happy).
    """

    name: str
    mapping: dict[str, dict[str, float]]
    source_labels: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_labels", tuple(self.mapping))
        for src, shares in self.mapping.items():
            unknown = set(shares) - set(EMOTIONS)
            if unknown:
                raise ValueError(f"{self.name}: {src!r} maps to unknown emotions {sorted(unknown)}")

    @property
    def matrix(self) -> np.ndarray:
        """(len(source_labels), 7) matrix M so that p_emotions = p_source @ M."""
        m = np.zeros((len(self.source_labels), N_EMOTIONS))
        for i, src in enumerate(self.source_labels):
            for emo, share in self.mapping[src].items():
                m[i, EMOTIONS.index(emo)] = share
        return m

    @property
    def coverage(self) -> np.ndarray:
        """Boolean mask over EMOTIONS: True where this source can express the emotion."""
        return self.matrix.sum(axis=0) > 0

    def to_emotions(self, probs: np.ndarray, source_labels: list[str] | tuple[str, ...] | None = None) -> np.ndarray:
        """Map probabilities over the source labels (in ``source_labels`` order) onto EMOTIONS."""
        probs = np.asarray(probs, dtype=np.float64)
        if source_labels is not None and tuple(source_labels) != self.source_labels:
            order = [list(source_labels).index(s) for s in self.source_labels]
            probs = probs[..., order]
        out = probs @ self.matrix
        total = out.sum(axis=-1, keepdims=True)
        return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


def _one(label: str) -> dict[str, float]:
    return {label: 1.0}


FER2013 = LabelMap("fer2013", {e: _one(e) for e in EMOTIONS})
GOEMOTIONS_EKMAN = LabelMap("goemotions_ekman", {
    "anger": _one("angry"), "disgust": _one("disgust"), "fear": _one("fear"), "joy": _one("happy"),
    "neutral": _one("neutral"), "sadness": _one("sad"), "surprise": _one("surprise"),
})
DAIR_EMOTION = LabelMap("dair_emotion", {
    "sadness": _one("sad"), "joy": _one("happy"), "love": _one("happy"), "anger": _one("angry"),
    "fear": _one("fear"), "surprise": _one("surprise"),
})
#: EmoDB's "boredom" has no class of its own in EMOTIONS. It is a low-arousal, mildly unpleasant state,
#: so we split it 0.6 neutral / 0.4 sad: its mass lands between the two nearest points of the circumplex
#: instead of being dropped or forced into one class.
EMODB = LabelMap("emodb", {
    "angry": _one("angry"), "boredom": {"neutral": 0.6, "sad": 0.4}, "disgust": _one("disgust"),
    "fear": _one("fear"), "happy": _one("happy"), "sad": _one("sad"), "neutral": _one("neutral"),
})
SUPERB_ER = LabelMap("superb_er", {"neu": _one("neutral"), "hap": _one("happy"), "ang": _one("angry"), "sad": _one("sad")})

LABEL_MAPS: dict[str, LabelMap] = {m.name: m for m in (FER2013, GOEMOTIONS_EKMAN, DAIR_EMOTION, EMODB, SUPERB_ER)}

#: Spellings of emotion labels seen in public models, used to map an arbitrary hub model's labels.
ALIASES: dict[str, dict[str, float]] = {
    **{e: _one(e) for e in EMOTIONS},
    "anger": _one("angry"), "ang": _one("angry"), "mad": _one("angry"), "annoyance": _one("angry"),
    "disgusted": _one("disgust"), "dis": _one("disgust"), "contempt": _one("disgust"),
    "fearful": _one("fear"), "fea": _one("fear"), "scared": _one("fear"), "anxiety": _one("fear"),
    "joy": _one("happy"), "happiness": _one("happy"), "hap": _one("happy"), "love": _one("happy"),
    "excited": _one("happy"), "calm": _one("neutral"),
    "sadness": _one("sad"), "sa": _one("sad"),
    "surprised": _one("surprise"), "sur": _one("surprise"), "ps": _one("surprise"),
    "neu": _one("neutral"), "no emotion": _one("neutral"), "others": _one("neutral"),
    "boredom": {"neutral": 0.6, "sad": 0.4}, "bored": {"neutral": 0.6, "sad": 0.4},
}


def label_map_for(labels: list[str] | tuple[str, ...], name: str = "hub") -> LabelMap:
    """Build a LabelMap for an arbitrary model's labels via :data:`ALIASES`.

    Labels we cannot interpret are kept with no target (their probability mass is dropped and the
    rest renormalised). Raises ValueError when none of the labels is an emotion we know.
    """
    mapping = {lab: dict(ALIASES.get(str(lab).strip().lower(), {})) for lab in labels}
    if not any(mapping.values()):
        raise ValueError(f"none of the model's labels {list(labels)} is an emotion moodtune knows; "
                         f"expected labels such as {', '.join(EMOTIONS)}")
    return LabelMap(name, mapping)


def valence_arousal(probs: np.ndarray) -> tuple[float, float]:
    """Expected (valence, arousal) of a distribution over EMOTIONS."""
    v, a = np.asarray(probs, dtype=np.float64) @ VA_MATRIX
    return float(v), float(a)


def blend_valence_arousal(direct: np.ndarray, probs: np.ndarray, direct_weight: np.ndarray) -> np.ndarray:
    """What a signal reports (N, 2): per dimension, ``direct_weight`` of the model's calibrated direct output and the
    rest the emotion table's value of ``probs`` (N, 7, over EMOTIONS). A weight of 0 means no direct value there."""
    return direct_weight * direct + (1 - direct_weight) * (probs @ VA_MATRIX)
