"""One encoder per signal (face, voice, text), all reporting over the shared label set EMOTIONS."""

from .base import Encoder, InputError, ModelSpec
from .face import FaceEncoder
from .labels import EMOTIONS, LABEL_MAPS, VALENCE_AROUSAL, LabelMap, label_map_for, valence_arousal
from .reading import ModalityReading, Status
from .text import TextEncoder
from .voice import VoiceEncoder

__all__ = ["EMOTIONS", "LABEL_MAPS", "VALENCE_AROUSAL", "Encoder", "FaceEncoder", "InputError", "LabelMap",
           "ModalityReading", "ModelSpec", "Status", "TextEncoder", "VoiceEncoder", "label_map_for", "valence_arousal"]
