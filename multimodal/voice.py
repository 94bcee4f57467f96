"""Voice encoder: how someone sounds, and what they said.

preprocess (any audio → mono 16 kHz → voice activity → the most voiced ≤ 10-s window → loudness
normalised) → forward (one Whisper tiny.en encoder pass in torch; the states of its second and third layers
pooled over the voiced frames, with prosody statistics) → postprocess (our head trained on English and German acted
speech: seven emotions with a temperature, plus direct valence and arousal). The same encoder pass feeds the
transcript (CTranslate2's decoder over its last layer); the engine reads the transcript as its own signal.

If the Whisper package is missing or altered, a lighter documented fallback runs instead: our head
over librosa prosody/MFCC statistics (and no transcript). ``VoiceEncoder(model="superb/wav2vec2-base-superb-er")``
or a local folder uses any transformers audio-classification model.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .audio_io import (MIN_SPEECH_S, TARGET_SR, Audio, SpeechActivity, detect_speech, most_voiced_window,
                       to_mono_16k)
from .backbones import BackboneError, file_sha256, whisper_tiny_en_dir
from .base import Encoder
from .heads import softmax
from .labels import EMOTIONS, LabelMap, blend_valence_arousal, label_map_for
from .reading import ModalityReading, Status
from .runtime import configured_threads, single_thread_blas

log = logging.getLogger("moodtune")
VOICE_DIR = Path(__file__).resolve().parents[1] / "models" / "voice"
WHISPER_HEAD = VOICE_DIR / "whisper_head.safetensors"
PROSODY_HEAD = VOICE_DIR / "prosody_head.safetensors"
TARGET_DBFS = -23.0       # speech level every clip is brought to before any feature is computed
MAX_GAIN_DB = 40.0        # never lift a whisper by more than this (it would be mostly noise)
#: Silence appended to the window before the Whisper pass when a transcript is wanted. Emotion and transcript share
#: that pass; with less than ~3 s after the speech, greedy decoding often repeats the sentence (measured on RAVDESS
#: and espeak). Emotion alone encodes the window as it is (about 40% less encoder time for a 4-s clip); the head is
#: trained on both kinds of pass.
ENCODE_PAD_S = 3.0
MAX_MEL_FRAMES = 1000     # 10 s of 10-ms mel frames: the analysis window is at most 10 s
#: The encoder layers whose states the head reads: the second and third of Whisper tiny's four read emotion better
#: than the last (which serves the decoder) on speakers left out; see the model card.
EMOTION_LAYERS = (2, 3)


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
    samples = normalise_loudness(audio.samples[start:end], activity.loudness_dbfs)
    return VoiceClip(samples, frames, activity, voice_quality(audio, activity), notes, audio.seconds)


def normalise_loudness(samples: np.ndarray, speech_dbfs: float, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Scale so the speech sits at ``target_dbfs`` (peak-limited): how loud a microphone is must not be a cue.

    Acted corpora are loud when angry and quiet when sad; left as is, the level alone decides the emotion.
    """
    peak = float(np.abs(samples).max())
    gain_db = min(target_dbfs - speech_dbfs, MAX_GAIN_DB, -20 * np.log10(max(peak, 1e-9)) - 0.1)
    return (samples * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def speech_states(states: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The rows of per-frame states (T, D) that fall on speech frames (all of them if none does)."""
    n = min(len(states), len(frames))
    return states[:n][frames[:n] if frames[:n].any() else np.ones(n, bool)]


def pool_states(states: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of encoder states (T, D) over the speech frames → (2D,)."""
    chosen = speech_states(states, frames)
    return np.concatenate([chosen.mean(0), chosen.std(0)]).astype(np.float32)


@dataclass(frozen=True)
class VoiceOutput:
    """What a backend read from one clip: probabilities over EMOTIONS and, where the model has them, V/A."""

    probabilities: np.ndarray
    valence: float | None = None
    arousal: float | None = None
    transcript: Transcript | None = None


MAX_COMPRESSION_RATIO = 2.4  # Whisper's own threshold: a transcript that zlib shrinks more than this repeats itself
MIN_AVG_LOGPROB = -1.0       # Whisper's own threshold: below it the decoder was guessing
NO_SPEECH_PROB = 0.6         # Whisper's own threshold: above it the window holds no speech
MAX_WORDS_PER_SECOND = 6.0   # fast speech is 4-5 words a second; more words than this invent speech


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard, with its own guards: ``problem`` says why fusion must not use it ("" when it may);
    ``note`` says what was repaired (a phrase repeated back to back is kept once)."""

    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    words_per_second: float = 0.0
    problem: str = ""
    note: str = ""

    def guards(self) -> dict[str, float]:
        """The numbers the checks read, for ``extras["transcript_guards"]``."""
        return {"avg_logprob": round(self.avg_logprob, 3), "no_speech_prob": round(self.no_speech_prob, 3),
                "compression_ratio": round(self.compression_ratio, 2),
                "words_per_second": round(self.words_per_second, 1)}


def compression_ratio(text: str) -> float:
    """Whisper's measure of repetition: the UTF-8 length over its zlib-compressed length."""
    import zlib

    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def _word_keys(text: str) -> list[str]:
    return [w for w in (t.strip(".,!?;:…\"'-").lower() for t in text.split()) if w]


def collapse_repeats(text: str) -> tuple[str, int]:
    """The text once if the recogniser looped on it, and how many times it said it (1 when it did not loop).

    Greedy decoding of a short clip loops on the sentence it heard (it sees seconds of padding after the speech):
    "Good morning. Good morning! Good morning..." or "Dogs are sitting by the door. Dogs are sitting by the
    doorway. Dogs or sitting by" (RAVDESS). Two kinds are kept once: one phrase said again and again back to back
    ("no no no no" → "no"), and a first sentence whose opening words start most of the sentences after it."""
    words, keys = text.split(), _word_keys(text)
    if len(words) == len(keys):  # (a word that is all punctuation would shift the phrase)
        for period in range(1, len(keys) // 2 + 1):
            if all(keys[i] == keys[i % period] for i in range(len(keys))):
                return " ".join(words[:period]), -(-len(keys) // period)
    sentences = [t for t in re.split(r"(?<=[.!?…])\s+", text.strip()) if _word_keys(t)]
    opening = _word_keys(sentences[0])[:2] if sentences else []
    again = sum(_word_keys(t)[:len(opening)] == opening for t in sentences[1:])
    if len(sentences) > 1 and again * 2 >= len(sentences) - 1:
        return sentences[0], 1 + again
    return text, 1


def check_transcript(text: str, avg_logprob: float, no_speech_prob: float, speech_seconds: float) -> Transcript:
    """The transcript with Whisper's guards applied (repetition repaired first, then compression ratio,
    average log-probability, and the words the speech had time for)."""
    said, times = collapse_repeats(text)
    note = f"the recogniser looped on “{said}” ({times} times); kept once" if times > 1 else ""
    ratio = compression_ratio(said)
    rate = len(_word_keys(said)) / max(speech_seconds, 0.1)
    problem = ""
    if no_speech_prob > NO_SPEECH_PROB:
        problem = f"the recogniser found no speech (no-speech probability {no_speech_prob:.2f})"
    elif ratio > MAX_COMPRESSION_RATIO:
        problem = f"it repeats itself (compression ratio {ratio:.1f} > {MAX_COMPRESSION_RATIO})"
    elif avg_logprob < MIN_AVG_LOGPROB:
        problem = f"the recogniser was guessing (average log-probability {avg_logprob:.2f} < {MIN_AVG_LOGPROB:g})"
    elif rate > MAX_WORDS_PER_SECOND and len(_word_keys(said)) > 2:
        problem = f"more words than the speech can hold ({rate:.0f} a second in {speech_seconds:.1f} s)"
    return Transcript(said, avg_logprob, no_speech_prob, ratio, rate, problem, note)


class VoiceHead:
    """Our shipped head, run in numpy: standardise → Linear → GELU → Linear → 7 emotion logits + (valence, arousal).

    Emotion logits go through a fitted temperature; valence/arousal through a fitted affine map that gives them
    the spread of the emotion table (``labels.VALENCE_AROUSAL``), so the music moves as far as for other signals.
    """

    def __init__(self, path: Path) -> None:
        from safetensors.numpy import load_file

        from .heads import read_metadata

        if not path.exists():
            raise FileNotFoundError(f"the voice head {path} is missing; reinstall moodtune")
        self.tensors = load_file(str(path))
        self.meta = read_metadata(path)
        self.labels = self.meta["labels"].split(",")
        self.temperature = float(self.meta.get("temperature", 1.0))
        self.va_scale = np.array([float(v) for v in self.meta.get("va_scale", "1,1").split(",")])
        self.va_shift = np.array([float(v) for v in self.meta.get("va_shift", "0,0").split(",")])
        self.has_va = self.meta.get("va", "0") == "1"
        self.version = file_sha256(path)[:8]  # in the backend's name: corrections learned for it keep it
        #: per dimension, the share of the direct output in the reported value (the rest: the emotion table's value
        #: of the probabilities); chosen by the recipe on speakers it left out. 0: the head has no direct value there
        self.direct_weight = np.array([float(v) for v in self.meta.get("va_direct_weight", "1,1").split(",")])

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, F) features → probabilities over ``labels`` (N, K) and valence/arousal (N, 2) or None."""
        from scipy.special import erf

        t = self.tensors
        h = (features - t["mean"]) / t["scale"]
        h = h @ t["w1"].T + t["b1"]
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))  # exact GELU, as torch's nn.GELU() in training
        out = h @ t["w2"].T + t["b2"]
        k = len(self.labels)
        return softmax(out[:, :k], self.temperature), self.calibrate(out[:, k:k + 2]) if self.has_va else None

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """The network's raw valence/arousal (N, 2) mapped onto the emotion table's spread, within −1..1."""
        return np.clip(raw * self.va_scale + self.va_shift, -1, 1)


class VoiceBackend:
    name: str
    label_map: LabelMap
    can_transcribe: bool = False

    def read(self, clips: list[VoiceClip], transcribe: bool = False) -> list[VoiceOutput]:
        raise NotImplementedError


class HeadBackend(VoiceBackend):
    """A backend whose features go through our :class:`VoiceHead`."""

    def __init__(self, head_path: Path | None) -> None:
        self.head = VoiceHead(head_path) if head_path else None  # None: feature extraction only (training)
        self.label_map = label_map_for(self.head.labels, name="moodtune-voice") if self.head else label_map_for(EMOTIONS)

    def outputs(self, feats: np.ndarray, transcripts: list[Transcript | None]) -> list[VoiceOutput]:
        if self.head is None:
            raise RuntimeError("this backend extracts features only (it was built without a head)")
        probs, direct = self.head(feats)
        probs = self.label_map.to_emotions(probs, self.head.labels)
        w = self.head.direct_weight
        va = None if direct is None else blend_valence_arousal(direct, probs, w)
        out = []
        for i, (p, t) in enumerate(zip(probs, transcripts)):
            v, a = (None, None) if va is None else (float(va[i, d]) if w[d] > 0 else None for d in (0, 1))
            out.append(VoiceOutput(p, v, a, transcript=t))
        return out


class WhisperEmotionBackend(HeadBackend):
    """Whisper tiny.en encoder (torch, every layer) + our head over its second and third layers; one encoder pass
    serves emotion and transcript (CTranslate2 decodes from its last layer)."""

    can_transcribe = True

    def __init__(self, head_path: Path | None = WHISPER_HEAD, threads: int = 0) -> None:
        import ctranslate2
        import tokenizers

        import librosa  # noqa: F401  (the prosody statistics need it; its scipy's BLAS must be loaded before the next line)

        from .whisper_encoder import WhisperEncoder

        single_thread_blas()
        super().__init__(head_path)
        folder = whisper_tiny_en_dir()
        self.encoder = WhisperEncoder(folder)
        # CTranslate2 decodes the transcript from our encoder's last layer (its own encoder is not used)
        self.model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="int8", intra_threads=threads)
        self.tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.prompt = [self.tokenizer.token_to_id(t) for t in ("<|startoftranscript|>", "<|notimestamps|>")]
        self.name = f"moodtune-voice (Whisper tiny.en encoder + our English/German head {self.head.version if self.head else '(none)'})"

    @cached_property
    def feature_extractor(self):
        from transformers import WhisperFeatureExtractor

        return WhisperFeatureExtractor(feature_size=80)

    def mel(self, samples: np.ndarray, pad: bool = True) -> np.ndarray:
        """Log-mel of the window, followed by :data:`ENCODE_PAD_S` of silence when ``pad``; at most 10 s."""
        padded = np.pad(samples, (0, int(ENCODE_PAD_S * TARGET_SR) if pad else 0))[:MAX_MEL_FRAMES * 160]
        feats = self.feature_extractor(padded, sampling_rate=TARGET_SR, return_tensors="np",
                                       padding="longest").input_features
        n_frames = min(MAX_MEL_FRAMES, feats.shape[-1] // 2 * 2)
        return np.ascontiguousarray(feats[:, :, :n_frames], dtype=np.float32)

    def encode(self, samples: np.ndarray, pad: bool = True) -> list[np.ndarray]:
        """The Whisper encoder's states after each layer, (1, frames, 384) each: every layer when ``pad`` (with the
        silence the decoder needs after the speech, see :data:`ENCODE_PAD_S`), else up to the last of
        :data:`EMOTION_LAYERS`."""
        return self.encoder.states(self.mel(samples, pad), None if pad else max(EMOTION_LAYERS))

    def features(self, clip: VoiceClip, encoded: list[np.ndarray] | None = None,
                 prosody: np.ndarray | None = None) -> np.ndarray:
        """What the head reads: the states of each of :data:`EMOTION_LAYERS` pooled over the speech frames, then the
        prosody statistics (``prosody``: the clip's :func:`prosody_features` when the caller has them already)."""
        states = self.encode(clip.samples, pad=False) if encoded is None else encoded
        # Whisper frames are 20 ms, like the speech mask's; padding frames fall outside the mask
        pooled = [pool_states(states[layer - 1][0], clip.frames) for layer in EMOTION_LAYERS]
        return np.concatenate([*pooled, prosody_features(clip) if prosody is None else prosody])

    def transcribe(self, encoded: list[np.ndarray], speech_seconds: float) -> Transcript:
        """Greedy Whisper decoding from the encoder pass the emotion head used (its last layer), checked by
        :func:`check_transcript`. CTranslate2's score is the sum of the tokens' log-probabilities over the length
        (length penalty 1): Whisper's average log-probability."""
        import ctranslate2

        result = self.model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[-1])),
                                     [self.prompt], max_length=120, beam_size=1, return_no_speech_prob=True,
                                     return_scores=True, suppress_blank=True, no_repeat_ngram_size=3)[0]
        text = self.tokenizer.decode(result.sequences_ids[0]).strip()
        return check_transcript(text, float(result.scores[0]), float(result.no_speech_prob), speech_seconds)

    def read(self, clips: list[VoiceClip], transcribe: bool = False) -> list[VoiceOutput]:
        feats, transcripts = [], []
        for clip in clips:
            encoded = self.encode(clip.samples, pad=transcribe)
            feats.append(self.features(clip, encoded))
            transcripts.append(self.transcribe(encoded, clip.activity.speech_seconds) if transcribe else None)
        return self.outputs(np.stack(feats), transcripts)


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=TARGET_SR, n_fft=512)


def prosody_features(clip: VoiceClip) -> np.ndarray:
    """Statistics of MFCCs, their deltas, pitch, level and spectral shape over the speech frames.

    The clip is loudness-normalised first (:func:`normalise_loudness`), so the level statistics describe how the
    level moves within the clip, not how loud the microphone was.
    """
    import librosa
    import soxr

    y, sr = clip.samples, TARGET_SR
    hop = SpeechActivity.HOP
    magnitude = np.abs(librosa.stft(y, n_fft=512, hop_length=hop))  # one STFT for the MFCCs and the centroid
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(_mel_basis() @ magnitude ** 2), n_mfcc=20)
    delta = librosa.feature.delta(mfcc)
    rms = librosa.feature.rms(y=y, frame_length=512, hop_length=hop)
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=sr) / 4000
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=512, hop_length=hop)
    # pitch below 400 Hz needs no more than 8 kHz: half the samples, a quarter of YIN's work
    f0 = librosa.yin(soxr.resample(y, sr, sr // 2), fmin=60, fmax=400, sr=sr // 2, frame_length=512, hop_length=hop // 2)[None, :] / 200
    n = min(mfcc.shape[1], f0.shape[1], len(clip.frames))
    frames = np.concatenate([mfcc[:, :n], delta[:, :n], 20 * np.log10(rms[:, :n] + 1e-6) / 20, centroid[:, :n],
                             zcr[:, :n], np.log(f0[:, :n])], axis=0).T
    return pool_states(frames, clip.frames[:n])


class ProsodyEmotionBackend(HeadBackend):
    """The light fallback: our head over librosa prosody/MFCC statistics. Less accurate, no transcript."""

    def __init__(self, head_path: Path = PROSODY_HEAD) -> None:
        super().__init__(head_path)
        self.name = f"moodtune-voice-prosody (MFCC/pitch statistics + our head {self.head.version if self.head else '(none)'}; fallback)"

    def read(self, clips: list[VoiceClip], transcribe: bool = False) -> list[VoiceOutput]:
        return self.outputs(np.stack([prosody_features(c) for c in clips]), [None] * len(clips))


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

    def read(self, clips: list[VoiceClip], transcribe: bool = False) -> list[VoiceOutput]:
        out = []
        with self._torch.inference_mode():
            for clip in clips:
                inputs = self.extractor(clip.samples, sampling_rate=TARGET_SR, return_tensors="pt")
                out.append(VoiceOutput(self.label_map.to_emotions(softmax(self.model(**inputs).logits.numpy())[0])))
        return out


class VoiceEncoder(Encoder[VoiceBackend]):
    """Emotion in the voice (and, with the default model, the words: ``extras["transcript"]``)."""

    modality = "voice"

    def __init__(self, model: str | Path | None = None, *, transcribe: bool = True) -> None:
        super().__init__(model)
        self.transcribe = transcribe

    def _load_embedded(self) -> VoiceBackend:
        try:
            return WhisperEmotionBackend(threads=configured_threads() or 0)  # 0: CTranslate2's default
        except (BackboneError, ImportError) as exc:
            note = f"Whisper tiny.en unavailable ({exc}); using the lighter prosody model, without a transcript"
            log.warning("voice encoder: %s", note)
            self._load_note = note
            return ProsodyEmotionBackend()

    def _load_transformers(self, ref: str) -> VoiceBackend:
        return HubVoiceBackend(ref)

    @property
    def _transcribing(self) -> bool:
        return bool(self.transcribe and self.backend.can_transcribe)

    def preprocess(self, x: Any, /, **_: Any) -> VoiceClip | ModalityReading:
        return prepare_voice(x)

    def _forward(self, clips: list[VoiceClip], /, **_: Any) -> list[Any]:
        return self.backend.read(clips, transcribe=self._transcribing)

    def postprocess(self, clip: VoiceClip, read: Any, /, **_: Any) -> ModalityReading:
        backend = self.backend
        extras: dict[str, Any] = {"speech_seconds": round(clip.activity.speech_seconds, 2),
                                  "speech_ratio": round(clip.activity.speech_ratio, 3),
                                  "loudness_dbfs": round(clip.activity.loudness_dbfs, 1), "seconds": round(clip.seconds, 2)}
        if self._transcribing:
            heard = read.transcript or Transcript("")
            # a transcript the guards reject is shown, never used: the engine gives it no weight (problem)
            extras.update(transcript=heard.text if heard.no_speech_prob <= NO_SPEECH_PROB else "",
                          transcript_guards=heard.guards(), transcript_problem=heard.problem,
                          transcript_note=heard.note)
        return ModalityReading.from_probs(self.modality, read.probabilities, coverage=backend.label_map.coverage,
                                          quality=clip.quality, message="; ".join(clip.notes), model=backend.name,
                                          valence=read.valence, arousal=read.arousal, extras=extras)
