"""One encoder per signal (face, voice, text), all reporting over the shared label set EMOTIONS."""

import os

# onnxruntime 1.32 writes a device id and an event queue under ~/.cache/Microsoft/DeveloperTools/ unless this is set
# before its environment starts (disable_telemetry_events() comes too late for that); moodtune keeps nothing there.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from .base import Encoder, InputError, ModelSpec
from .errors import MoodtuneError
from .face import FaceEncoder
from .labels import EMOTIONS, LABEL_MAPS, VALENCE_AROUSAL, LabelMap, label_map_for, valence_arousal
from .reading import ModalityReading, Status
from .text import TextEncoder
from .voice import VoiceEncoder

__all__ = ["EMOTIONS", "LABEL_MAPS", "VALENCE_AROUSAL", "Encoder", "FaceEncoder", "InputError", "LabelMap", "MoodtuneError",
           "ModalityReading", "ModelSpec", "Status", "TextEncoder", "VoiceEncoder", "label_map_for", "valence_arousal"]
