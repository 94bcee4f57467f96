"""Turn whatever audio a user gives into mono float32 at 16 kHz, and find the speech in it.

Accepted: ``(sample_rate, samples)`` as Gradio gives (any int or float dtype, mono ``(n,)`` or
multi-channel ``(n, c)``), ``{"raw": samples, "sampling_rate": sr}`` as transformers pipelines take, a
file path (wav/flac/ogg through soundfile; other formats through librosa/ffmpeg where ffmpeg exists),
or the encoded bytes of such a file.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .base import InputError

TARGET_SR = 16_000
MAX_WINDOW_S = 10.0      # analyse at most this much: the most voiced window
MIN_SPEECH_S = 0.5       # less speech than this is "silence"
MAX_INPUT_S = 60 * 60    # refuse more than an hour of audio (from the file's header, before decoding)
MAX_READ_S = 10 * 60     # read at most the first ten minutes (a mood reading needs one 10-s window of them)
# Decode at most this many samples over all channels (10 min × 48 kHz × 2 channels): the header's channels × rate
# decide how many frames that is, so 8 channels at 96 kHz read 75 s rather than 1.8 GB of float32.
MAX_SAMPLES = MAX_READ_S * 48_000 * 2
BLOCK_FRAMES = 1 << 16   # frames decoded at once and mixed down to mono before the next block
UNKNOWN_FRAMES = 2 ** 62  # libsndfile reports a length it does not know as SF_COUNT_MAX
MAX_FILE_BYTES = 200 * 1024 * 1024
MIN_RATE, MAX_RATE = 1_000, 768_000
# Containers ffmpeg may open for us, by their first bytes. Anything else (a text playlist, a concat list, an
# HLS manifest named .wav...) could make ffmpeg read other files or URLs, so it is refused before ffmpeg runs.
FFMPEG_MAGIC = (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xf1", b"\xff\xf9", b"OggS", b"fLaC", b"RIFF",
                b"\x1aE\xdf\xa3", b"#!AMR", b"FORM", b".snd", b"caff", b"MAC ", b"wvpk")


@dataclass
class Audio:
    samples: np.ndarray        # float32 mono in [-1, 1] at TARGET_SR
    sample_rate: int = TARGET_SR
    source_rate: int = TARGET_SR
    notes: list[str] = field(default_factory=list)
    clipped: float = 0.0       # share of samples at full scale

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def _too_long(seconds: float) -> InputError:
    return InputError(f"the audio is {seconds / 60:,.0f} minutes long, more than the {MAX_INPUT_S // 60} minutes "
                      "moodtune accepts; send a shorter recording")


def frames_to_read(frames: int, rate: int, channels: int) -> int:
    """How many of a recording's frames to decode: its first ten minutes, and no more than MAX_SAMPLES over all
    its channels."""
    # the last term bounds the mono buffer too: a mono file at 768 kHz is read like one at 48 kHz, not 12× longer
    return max(0, min(frames, MAX_READ_S * rate, MAX_SAMPLES // max(1, channels), MAX_READ_S * 48_000))


def _cut_note(frames: int, rate: int) -> str:
    return (f"only the first {MAX_READ_S // 60} minutes were read" if frames >= MAX_READ_S * rate
            else f"only the first {frames / rate:,.0f} s were read (the recording has many channels or a high rate)")


def _blocks(f: Any, wanted: int, unknown: bool) -> Iterator[np.ndarray]:
    """Up to ``wanted`` frames of ``f``, block by block. Of a file of unknown length libsndfile reads until it fails
    to seek past the end: small blocks then, so that failure costs at most a few milliseconds of the end."""
    import soundfile as sf

    if not unknown:
        yield from f.blocks(blocksize=BLOCK_FRAMES, frames=wanted, dtype="float32", always_2d=True)
        return
    left = wanted
    while left > 0:
        try:
            block = f.read(min(4096, left), dtype="float32", always_2d=True)
        except sf.LibsndfileError:
            return
        if not len(block):
            return
        left -= len(block)
        yield block


def _read_soundfile(data: bytes | Path) -> tuple[int, np.ndarray, list[str]]:
    """wav/flac/ogg through libsndfile: rate, channels and length come from the header and are checked before any
    sample is decoded; then at most :func:`frames_to_read` frames, block by block, each mixed down to mono."""
    import soundfile as sf

    with sf.SoundFile(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as f:
        sr, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
        if not MIN_RATE <= sr <= MAX_RATE:
            raise InputError(f"the file's sample rate {sr} Hz is not plausible ({MIN_RATE:,}–{MAX_RATE:,} Hz)")
        unknown = frames >= UNKNOWN_FRAMES  # a streamed FLAC leaves its length out; decoding stops at the cap
        if not unknown and frames / sr > MAX_INPUT_S:
            raise _too_long(frames / sr)
        wanted = frames_to_read(frames, sr, channels)
        mono = np.empty(wanted, np.float32)  # the only full-length buffer: mono, within MAX_SAMPLES
        got = 0
        for block in _blocks(f, wanted, unknown):
            mono[got:got + len(block)] = block.mean(axis=1)
            got += len(block)
    notes = [f"{channels} channels mixed down to mono"] if channels > 1 else []
    cut = got >= wanted if unknown else frames > wanted
    return sr, mono[:got], notes + ([_cut_note(wanted, sr)] if cut else [])


def is_ffmpeg_container(path: Path) -> bool:
    """True when the file starts like an audio container we let ffmpeg open (not a playlist or a text list)."""
    with open(path, "rb") as f:
        head = f.read(12)
    return head.startswith(FFMPEG_MAGIC) or head[4:8] == b"ftyp" or head[:2] in (b"\xff\xe3", b"\xff\xfa")


def _read_file(data: bytes | Path) -> tuple[int, np.ndarray, list[str]]:
    import soundfile as sf

    try:
        return _read_soundfile(data)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if shutil.which("ffmpeg") is None:
            raise InputError("the audio file is corrupt or in a format that needs ffmpeg (install ffmpeg for "
                             f"mp3/m4a/webm; wav, flac and ogg work without it): {str(exc)[:120]}") from exc
        if isinstance(data, bytes):
            raise InputError("the audio data is corrupt or not wav/flac/ogg (pass other formats as a file path)")
        if not is_ffmpeg_container(data):
            raise InputError("the file is not an audio format moodtune reads (wav, flac, ogg, mp3, m4a, webm...)") from exc
        import librosa

        try:  # audioread streams through ffmpeg and stops at what frames_to_read allows (to_mono_16k says so)
            import audioread

            with audioread.audio_open(str(data)) as probe:
                rate, channels = int(probe.samplerate), int(probe.channels)
            seconds = (frames_to_read(MAX_INPUT_S * rate, rate, channels) + 1) / max(rate, 1)
            samples, sr = librosa.load(str(data), sr=None, mono=False, duration=seconds, dtype=np.float32)
            return int(sr), np.asarray(samples).T, []
        except InputError:
            raise
        except Exception as exc2:  # noqa: BLE001 - decoders raise many types
            raise InputError(f"the audio file could not be decoded ({type(exc2).__name__})") from exc2


def _sample_rate(value: Any) -> int:
    try:
        sr = float(value)
    except (TypeError, ValueError):
        raise InputError(f"the sample rate must be a number of Hz, not {value!r:.40}") from None
    if not np.isfinite(sr) or not MIN_RATE <= sr <= MAX_RATE:
        raise InputError(f"the sample rate {value!r:.40} Hz is not plausible (expected {MIN_RATE:,}–{MAX_RATE:,} Hz)")
    return int(sr)


def _unpack(audio: Any) -> tuple[int, np.ndarray, list[str]]:
    """(rate, samples, notes): files are decoded within the limits; arrays are taken as given."""
    if isinstance(audio, dict):
        raw = audio.get("raw", audio.get("array"))
        sr = audio.get("sampling_rate", audio.get("sample_rate"))
        if raw is None or sr is None:
            raise InputError('an audio dict needs "raw" (samples) and "sampling_rate"')
        return _sample_rate(sr), np.asarray(raw), []
    if isinstance(audio, tuple) and len(audio) == 2:
        a, b = audio
        if np.isscalar(a) and not np.isscalar(b):
            return _sample_rate(a), np.asarray(b), []
        if np.isscalar(b) and not np.isscalar(a):
            return _sample_rate(b), np.asarray(a), []
        raise InputError("audio as a tuple must be (sample_rate, samples)")
    if isinstance(audio, (str, Path)):
        path = Path(audio)
        if not path.is_file():
            raise InputError(f"no audio file at {path}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"the audio file is larger than {MAX_FILE_BYTES // 2**20} MB")
        return _read_file(path)
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return _read_file(bytes(audio))
    if isinstance(audio, np.ndarray):
        raise InputError("the sample rate is unknown: pass (sample_rate, samples) or {'raw': ..., 'sampling_rate': ...}")
    raise InputError(f"audio must be (sample_rate, samples), a dict, a file path or bytes, not {type(audio).__name__}")


def _chunks(x: np.ndarray, size: int = 1 << 20) -> Iterator[np.ndarray]:
    """Views of ``x`` a million rows at a time, for checks that would otherwise copy the whole array."""
    return (x[i:i + size] for i in range(0, len(x), size))


def to_mono_16k(audio: Any) -> Audio:
    """Decode, check, downmix, scale to [-1, 1] and resample (soxr, high quality) to 16 kHz."""
    import soxr

    sr, x, notes = _unpack(audio)
    if x.dtype == object or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise InputError(f"audio samples must be real numbers, not {x.dtype}")
    if x.ndim == 2:
        if x.shape[0] < x.shape[1] and x.shape[0] <= 64:  # planar (channels, n) → (n, channels)
            x = x.T
        notes += [f"{x.shape[1]} channels mixed down to mono"] if x.shape[1] > 1 else []
    elif x.ndim != 1:
        raise InputError(f"audio samples must be (n,) or (n, channels); got shape {x.shape}")
    if x.size == 0:
        raise InputError("the audio is empty (no samples)")
    if x.shape[0] / sr > MAX_INPUT_S:
        raise _too_long(x.shape[0] / sr)
    keep = frames_to_read(x.shape[0], sr, x.shape[1] if x.ndim == 2 else 1)
    if x.shape[0] > keep:  # a view: nothing beyond it is converted
        x = x[:keep]
        notes.append(_cut_note(keep, sr))
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        y = x.astype(np.float32)
        if info.min == 0:  # unsigned PCM (uint8)
            y = (y - (info.max + 1) / 2) / ((info.max + 1) / 2)
        else:
            y = y / float(-info.min)
    else:
        if not all(np.isfinite(c).all() for c in _chunks(x)):  # in blocks: no full-length temporary
            raise InputError("the audio contains NaN or infinite samples")
        if x.dtype == np.float32:
            y = x  # a decoded file is float32 already: no second copy
        else:
            with np.errstate(over="ignore"):
                y = np.clip(x, -3.4e38, 3.4e38).astype(np.float32)
        peak = max(float(np.abs(c).max()) for c in _chunks(y))
        if peak > 1.0:
            if peak <= 32768.0 and np.allclose(y, np.round(y)):
                y = y / 32768.0
                notes.append("float samples looked like 16-bit integers and were rescaled")
            else:
                y = y / peak
                notes.append("float samples beyond [-1, 1] were normalised")
    if y.ndim == 2:
        y = y.mean(axis=1)
    clipped = sum(int(np.count_nonzero(np.abs(c) >= 0.999)) for c in _chunks(y)) / max(1, len(y))
    if sr != TARGET_SR:
        y = soxr.resample(y, sr, TARGET_SR, quality="HQ").astype(np.float32)
    if len(y) < TARGET_SR // 100:
        raise InputError(f"the audio is too short ({1000 * x.shape[0] / sr:.1f} ms) to contain speech")
    return Audio(np.clip(y, -1, 1), TARGET_SR, sr, notes, clipped)


@dataclass
class SpeechActivity:
    """Where the speech is: a boolean per 20-ms frame, plus summary numbers."""

    frames: np.ndarray          # bool per frame (hop 320 samples = 20 ms)
    speech_seconds: float
    speech_ratio: float
    loudness_dbfs: float        # RMS level of the speech frames

    HOP = 320


def detect_speech(audio: Audio) -> SpeechActivity:
    """Energy-based voice activity: frames within 35 dB of the peak that are not steady noise or a tone.

    librosa finds the non-silent intervals; a frame then counts as speech only where the signal also
    varies (speech has syllable-rate level changes) and is not spectrally flat (white noise).
    """
    import librosa

    y, hop = audio.samples, SpeechActivity.HOP
    n_frames = 1 + len(y) // hop
    active = np.zeros(n_frames, bool)
    if len(y) < 2 * hop or float(np.abs(y).max()) < 1e-4:
        return SpeechActivity(active, 0.0, 0.0, -120.0)
    for start, end in librosa.effects.split(y, top_db=35, frame_length=2 * hop, hop_length=hop):
        active[start // hop:(end + hop - 1) // hop] = True
    rms = librosa.feature.rms(y=y, frame_length=2 * hop, hop_length=hop)[0][:n_frames]
    db = 20 * np.log10(np.maximum(rms, 1e-6))
    flat = librosa.feature.spectral_flatness(y=y, n_fft=2 * hop, hop_length=hop)[0][:n_frames]
    active = active[:len(db)]
    # Level variation over ~1 s windows: speech moves by > 6 dB, a tone or hum barely moves.
    win = 50
    pad = np.pad(db, (win // 2, win - win // 2 - 1), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(pad, win)
    spread = np.percentile(windows, 90, axis=1) - np.percentile(windows, 10, axis=1)
    active &= (spread > 6.0) & (flat < 0.3)
    speech_s = float(active.sum() * hop / audio.sample_rate)
    loud = float(20 * np.log10(np.sqrt(np.mean(rms[active] ** 2)) + 1e-9)) if active.any() else -120.0
    return SpeechActivity(active, speech_s, speech_s / max(audio.seconds, 1e-9), loud)


def most_voiced_window(audio: Audio, activity: SpeechActivity, seconds: float = MAX_WINDOW_S) -> tuple[int, int]:
    """(start, end) sample indices of the ``seconds``-long window with the most speech."""
    hop = SpeechActivity.HOP
    width = int(seconds * audio.sample_rate / hop)
    if len(activity.frames) <= width:
        return 0, len(audio.samples)
    counts = np.convolve(activity.frames.astype(np.int32), np.ones(width, np.int32), mode="valid")
    start = int(np.argmax(counts)) * hop
    return start, min(len(audio.samples), start + width * hop)
