"""Voice encoder: how someone sounds, and what they said.

preprocess (any audio → mono 16 kHz → voice activity → the most voiced ≤ 10-s window) → forward
(Whisper tiny.en encoder, int8 CTranslate2, pooled over the voiced frames) → postprocess (our
EmoDB-trained head, temperature, label map with boredom split into neutral/sad; surprise not covered).
The same Whisper model transcribes the window; the engine reads the transcript as its own signal.

If the Whisper package is missing or altered, a lighter documented fallback runs instead: our head
over librosa prosody/MFCC statistics (and no transcript). ``VoiceEncoder(model="superb/wav2vec2-base-superb-er")``
or a local folder uses any transformers audio-classification model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .audio_io import (MIN_SPEECH_S, TARGET_SR, Audio, SpeechActivity, detect_speech, most_voiced_window,
                       to_mono_16k)
from .backbones import BackboneError, whisper_tiny_en_dir
from .base import Encoder, guard
from .heads import softmax
from .labels import EMODB, LabelMap, label_map_for
from .reading import ModalityReading, Status

log = logging.getLogger("moodtune")
VOICE_DIR = Path(__file__).resolve().parents[1] / "models" / "voice"
WHISPER_HEAD = VOICE_DIR / "whisper_head.safetensors"
PROSODY_HEAD = VOICE_DIR / "prosody_head.safetensors"
TRANSCRIBE_FRAMES = 1000  # 10 s of 10-ms mel frames: the analysis window is at most 10 s


@dataclass
class VoiceClip:
    """The part of the input we analyse, with what we learned about it."""

    samples: np.ndarray      # float32 16 kHz, at most MAX_WINDOW_S
    frames: np.ndarray       # bool speech mask per 20-ms frame of ``samples``
    activity: SpeechActivity
    quality: float
    notes: list[str]
    seconds: float


def voice_quality(audio: Audio, activity: SpeechActivity) -> float:
    """0..1 from the amount of speech, its level and clipping."""
    amount = float(np.clip(activity.speech_seconds / 2.0, 0.25, 1.0))
    level = float(np.clip((activity.loudness_dbfs + 50) / 25, 0.3, 1.0))  # −50 dBFS → 0.3, −25 dBFS → 1
    clip = 1.0 - float(np.clip(audio.clipped * 20, 0, 0.5))
    return round(amount * level * clip, 3)


def prepare_voice(x: Any) -> VoiceClip | ModalityReading:
    audio = to_mono_16k(x)
    activity = detect_speech(audio)
    notes = list(audio.notes)
    if audio.source_rate != TARGET_SR:
        notes.append(f"resampled from {audio.source_rate:,} Hz")
    if audio.clipped > 0.01:
        notes.append(f"{audio.clipped:.0%} of the samples are clipped")
    if activity.speech_seconds < MIN_SPEECH_S:
        what = "silence" if float(np.abs(audio.samples).max()) < 1e-3 else "no speech (silence, steady noise or a tone)"
        return ModalityReading.failed("voice", Status.SILENCE,
                                      f"{what}: found {activity.speech_seconds:.1f} s of speech in {audio.seconds:.1f} s "
                                      f"of audio; speak for at least {MIN_SPEECH_S:g} s",
                                      extras={"speech_seconds": activity.speech_seconds, "seconds": audio.seconds})
    start, end = most_voiced_window(audio, activity)
    if end - start < len(audio.samples):
        notes.append(f"long recording ({audio.seconds:.0f} s): analysed the most voiced {(end - start) / TARGET_SR:.0f} s "
                     f"from {start / TARGET_SR:.0f} s")
    hop = SpeechActivity.HOP
    frames = activity.frames[start // hop:(end + hop - 1) // hop]
    return VoiceClip(audio.samples[start:end], frames, activity, voice_quality(audio, activity), notes, audio.seconds)


def pool_states(states: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of encoder states (T, D) over the speech frames → (2D,)."""
    n = min(len(states), len(frames))
    mask = frames[:n] if frames[:n].any() else np.ones(n, bool)
    chosen = states[:n][mask]
    return np.concatenate([chosen.mean(0), chosen.std(0)]).astype(np.float32)


class LinearHead:
    """Standardise → linear → softmax with a temperature; trained with scikit-learn, stored as safetensors."""

    def __init__(self, path: Path) -> None:
        from safetensors.numpy import load_file

        from .heads import read_metadata

        if not path.exists():
            raise FileNotFoundError(f"the voice head {path} is missing; reinstall moodtune")
        t = load_file(str(path))
        self.meta = read_metadata(path)
        self.mean, self.scale, self.weight, self.bias = t["mean"], t["scale"], t["weight"], t["bias"]
        self.labels = self.meta["labels"].split(",")
        self.temperature = float(self.meta.get("temperature", 1.0))

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        z = ((features - self.mean) / self.scale) @ self.weight.T + self.bias
        return softmax(z, self.temperature)


class VoiceBackend:
    name: str
    label_map: LabelMap = EMODB
    can_transcribe: bool = False

    def probabilities(self, clips: list[VoiceClip]) -> np.ndarray:
        raise NotImplementedError

    def transcribe(self, clip: VoiceClip) -> str:
        return ""


class WhisperEmotionBackend(VoiceBackend):
    """Whisper tiny.en encoder (CTranslate2 int8) + our head; also transcribes."""

    can_transcribe = True

    def __init__(self, head_path: Path | None = WHISPER_HEAD, threads: int = 0) -> None:
        import ctranslate2
        import tokenizers

        folder = whisper_tiny_en_dir()
        self.model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="int8", intra_threads=threads)
        self.tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.prompt = [self.tokenizer.token_to_id(t) for t in ("<|startoftranscript|>", "<|notimestamps|>")]
        self.head = LinearHead(head_path) if head_path else None  # None: feature extraction only (training)
        self.name = "moodtune-voice (Whisper tiny.en encoder + our EmoDB head)"

    @cached_property
    def feature_extractor(self):
        from transformers import WhisperFeatureExtractor

        return WhisperFeatureExtractor(feature_size=80)

    def mel(self, samples: np.ndarray) -> np.ndarray:
        n_frames = int(np.ceil(len(samples) / 160 / 2) * 2)
        feats = self.feature_extractor(samples, sampling_rate=TARGET_SR, return_tensors="np").input_features
        return np.ascontiguousarray(feats[:, :, :max(2, min(n_frames, 3000))], dtype=np.float32)

    def encode(self, samples: np.ndarray):
        import ctranslate2

        return self.model.encode(ctranslate2.StorageView.from_array(self.mel(samples)), to_cpu=True)

    def embed(self, clip: VoiceClip) -> np.ndarray:
        states = np.array(self.encode(clip.samples))[0]
        return pool_states(states, clip.frames)

    def features(self, clip: VoiceClip) -> np.ndarray:
        """What the head reads: pooled Whisper states followed by the prosody statistics."""
        return np.concatenate([self.embed(clip), prosody_features(clip)])

    def probabilities(self, clips: list[VoiceClip]) -> np.ndarray:
        feats = np.stack([self.features(c) for c in clips])
        return EMODB.to_emotions(self.head.probabilities(feats), self.head.labels)

    def transcribe(self, clip: VoiceClip) -> str:
        """Greedy Whisper decoding of the window, padded to 10 s (as good as 30 s here, and 2–3× faster)."""
        import ctranslate2

        mel = self.feature_extractor(clip.samples, sampling_rate=TARGET_SR, return_tensors="np").input_features
        mel = np.ascontiguousarray(mel[:, :, :TRANSCRIBE_FRAMES], dtype=np.float32)
        result = self.model.generate(ctranslate2.StorageView.from_array(mel), [self.prompt], max_length=120,
                                     beam_size=1, return_no_speech_prob=True, suppress_blank=True,
                                     no_repeat_ngram_size=3)[0]
        if result.no_speech_prob > 0.6:
            return ""
        return self.tokenizer.decode(result.sequences_ids[0]).strip()


def prosody_features(clip: VoiceClip) -> np.ndarray:
    """Statistics of MFCCs, their deltas, pitch, level and spectral shape over the speech frames."""
    import librosa

    y, sr = clip.samples, TARGET_SR
    hop = SpeechActivity.HOP
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_fft=512, hop_length=hop)
    delta = librosa.feature.delta(mfcc)
    rms = librosa.feature.rms(y=y, frame_length=512, hop_length=hop)
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=512, hop_length=hop) / 4000
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=512, hop_length=hop)
    f0 = librosa.yin(y, fmin=60, fmax=400, sr=sr, frame_length=1024, hop_length=hop)[None, :] / 200
    n = min(mfcc.shape[1], f0.shape[1], len(clip.frames))
    frames = np.concatenate([mfcc[:, :n], delta[:, :n], 20 * np.log10(rms[:, :n] + 1e-6) / 20, centroid[:, :n],
                             zcr[:, :n], np.log(f0[:, :n])], axis=0).T
    return pool_states(frames, clip.frames[:n])


class ProsodyEmotionBackend(VoiceBackend):
    """The light fallback: our head over librosa prosody/MFCC statistics. Less accurate, no transcript."""

    def __init__(self, head_path: Path = PROSODY_HEAD) -> None:
        self.head = LinearHead(head_path)
        self.name = "moodtune-voice-prosody (MFCC/pitch statistics + our EmoDB head; fallback)"

    def probabilities(self, clips: list[VoiceClip]) -> np.ndarray:
        feats = np.stack([prosody_features(c) for c in clips])
        return EMODB.to_emotions(self.head.probabilities(feats), self.head.labels)


class HubVoiceBackend(VoiceBackend):
    """Any transformers audio-classification model (wav2vec2, HuBERT, WavLM...), labels mapped into EMOTIONS."""

    def __init__(self, ref: str) -> None:
        import torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        self._torch = torch
        self.extractor = AutoFeatureExtractor.from_pretrained(ref)
        self.model = AutoModelForAudioClassification.from_pretrained(ref).eval()
        id2label = self.model.config.id2label
        self.label_map = label_map_for([str(id2label[i]) for i in range(len(id2label))], name=ref)
        self.name = ref

    def probabilities(self, clips: list[VoiceClip]) -> np.ndarray:
        out = []
        with self._torch.inference_mode():
            for clip in clips:
                inputs = self.extractor(clip.samples, sampling_rate=TARGET_SR, return_tensors="pt")
                out.append(softmax(self.model(**inputs).logits.numpy())[0])
        return self.label_map.to_emotions(np.stack(out))


class VoiceEncoder(Encoder[VoiceBackend]):
    """Emotion in the voice (and, with the default model, the words: ``extras["transcript"]``)."""

    modality = "voice"

    def __init__(self, model: str | Path | None = None, *, transcribe: bool = True) -> None:
        super().__init__(model)
        self.transcribe = transcribe

    def _load_embedded(self) -> VoiceBackend:
        try:
            return WhisperEmotionBackend()
        except (BackboneError, ImportError) as exc:
            note = f"Whisper tiny.en unavailable ({exc}); using the lighter prosody model, without a transcript"
            log.warning("voice encoder: %s", note)
            self._load_note = note
            return ProsodyEmotionBackend()

    def _load_transformers(self, ref: str) -> VoiceBackend:
        return HubVoiceBackend(ref)

    def _predict_many(self, xs: list[Any], **_: Any) -> list[ModalityReading]:
        prepared = [guard(self.modality, prepare_voice, x) for x in xs]
        clips = [p for p in prepared if isinstance(p, VoiceClip)]
        backend = self.backend if clips else None
        probs = iter(backend.probabilities(clips)) if clips else iter(())
        out: list[ModalityReading] = []
        for p in prepared:
            if not isinstance(p, VoiceClip):
                p.modality = self.modality
                out.append(p)
                continue
            extras: dict[str, Any] = {"speech_seconds": round(p.activity.speech_seconds, 2),
                                      "speech_ratio": round(p.activity.speech_ratio, 3),
                                      "loudness_dbfs": round(p.activity.loudness_dbfs, 1), "seconds": round(p.seconds, 2)}
            if self.transcribe and backend.can_transcribe:
                extras["transcript"] = backend.transcribe(p)
            out.append(ModalityReading.from_probs(self.modality, next(probs), coverage=backend.label_map.coverage,
                                                  quality=p.quality, message="; ".join(p.notes), model=backend.name,
                                                  extras=extras))
        return out
