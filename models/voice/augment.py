"""Training-time corruptions that make acted studio speech look like a real microphone.

Each function takes and returns float32 mono audio at 16 kHz. :func:`corrupt` draws a random chain of them:
an LPC vocoder (a buzzy, robotic source), speed/pitch, room reverberation, band-limiting or a codec-like quantisation, a random level, additive noise
(white, pink or babble made of other clips) and leading/trailing background. Level is randomised before the
noise, so loud and quiet takes reach the encoder with the noise floor a real microphone would give them.
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy.signal import butter, fftconvolve, sosfilt

SR = 16_000
VERSION = 2  # bump when corrupt() changes: the recipe's cached features of corrupted copies carry it


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))) + 1e-12)


def speed(y: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (tempo and pitch together, like Kaldi's speed perturbation)."""
    return soxr.resample(y, SR * factor, SR).astype(np.float32)


def reverb(y: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response: a direct path and exponentially decaying noise."""
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.3
    rir[0] = 1.0
    wet = fftconvolve(y, rir)[:len(y)]
    return (wet * rms(y) / rms(wet)).astype(np.float32)


def band_limit(y: np.ndarray, low: float, high: float) -> np.ndarray:
    """A telephone- or laptop-microphone-like band-pass."""
    sos = butter(4, [low, min(high, SR / 2 - 100)], btype="band", fs=SR, output="sos")
    return sosfilt(sos, y).astype(np.float32)


def mu_law(y: np.ndarray, bits: int = 8) -> np.ndarray:
    """8-bit mu-law round trip: the quantisation noise of a narrow-band codec."""
    mu = 2 ** bits - 1
    peak = max(float(np.abs(y).max()), 1e-9)
    x = y / peak
    enc = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    enc = np.round((enc + 1) / 2 * mu) / mu * 2 - 1
    return (np.sign(enc) * ((1 + mu) ** np.abs(enc) - 1) / mu * peak).astype(np.float32)


def noise(kind: str, n: int, rng: np.random.Generator, others: list[np.ndarray]) -> np.ndarray:
    if kind == "white":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "pink":
        spec = np.fft.rfft(rng.standard_normal(n))
        spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
        return np.fft.irfft(spec, n).astype(np.float32)
    babble = np.zeros(n, np.float32)  # three other takes, looped: a room with people talking
    for k in rng.choice(len(others), 3, replace=False):
        o = others[k]
        babble += np.resize(o / rms(o), n)
    return babble


def corrupt(y: np.ndarray, rng: np.random.Generator, others: list[np.ndarray]) -> np.ndarray:
    """A random chain of corruptions (each step drawn independently)."""
    y = y.astype(np.float32)
    if rng.random() < 0.2:
        y = lpc_vocoder(y, rng)
    if rng.random() < 0.5:
        y = speed(y, float(rng.uniform(0.9, 1.1)))
    if rng.random() < 0.4:
        y = reverb(y, float(rng.uniform(0.15, 0.8)), rng)
    r = rng.random()
    if r < 0.25:
        y = band_limit(y, float(rng.uniform(100, 350)), float(rng.uniform(3200, 7000)))
    elif r < 0.35:
        y = mu_law(band_limit(y, 300, 3400))
    y = y / rms(y) * 10 ** (rng.uniform(-45, -15) / 20)  # a random speech level (dBFS)
    if rng.random() < 0.7:
        kind = str(rng.choice(["white", "pink", "babble"]))
        pad = int(rng.uniform(0, 1.5) * SR), int(rng.uniform(0, 1.5) * SR)
        y = np.pad(y, pad)
        nz = noise(kind, len(y), rng, others)
        snr = rng.uniform(5, 30)
        y = y + nz / rms(nz) * rms(y) * 10 ** (-snr / 20)
    return np.clip(y, -1, 1).astype(np.float32)


def lpc_vocoder(y: np.ndarray, rng: np.random.Generator, order: int = 16) -> np.ndarray:
    """An LPC-10-style vocoder round trip: the spectral envelope kept, the voice source replaced by a pulse train.

    Narrow-band LPC codecs, robotic VoIP concealment and formant speech synthesisers all sound like this: a
    buzzy source without the breath, jitter and shimmer of a real voice. Seen only on angry takes, buzziness
    becomes a cue for anger; applied to every emotion, it stops being one.
    """
    import librosa
    from scipy.signal import lfilter

    frame, hop = 400, 160
    n = len(y)
    f0 = librosa.yin(y, fmin=70, fmax=400, sr=SR, frame_length=1024, hop_length=hop)
    rms_frames = librosa.feature.rms(y=y, frame_length=frame, hop_length=hop)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=frame, hop_length=hop)[0]
    m = min(len(f0), len(rms_frames), len(zcr))
    voiced = (rms_frames[:m] > rms_frames[:m].max() * 10 ** (-35 / 20)) & (zcr[:m] < 0.25)
    # pulse train from the frame pitch (interpolated per sample), noise where unvoiced
    f0_samples = np.interp(np.arange(n), np.arange(m) * hop, np.where(voiced, f0[:m], 0.0))
    phase = np.cumsum(f0_samples / SR)
    pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    noise_src = rng.standard_normal(n) * 0.3
    voiced_samples = f0_samples > 0
    excitation = np.where(voiced_samples, pulses * np.sqrt(np.maximum(f0_samples, 1) / 100), noise_src)
    window = np.hanning(frame)
    out = np.zeros(n + frame)
    norm = np.zeros(n + frame)
    padded_y = np.pad(y.astype(np.float64), (0, frame))
    padded_e = np.pad(excitation, (0, frame))
    for start in range(0, n, hop):
        seg = padded_y[start:start + frame] * window
        if np.abs(seg).max() < 1e-6:
            continue
        a = librosa.lpc(seg + rng.standard_normal(frame) * 1e-6, order=order)
        gain = rms(lfilter(a, [1.0], seg))
        exc = padded_e[start:start + frame]
        synth = lfilter([1.0], a, exc / rms(exc)) * gain
        out[start:start + frame] += synth * window
        norm[start:start + frame] += window ** 2
    out = out[:n] / np.maximum(norm[:n], 1e-3)
    return (out * rms(y) / rms(out)).astype(np.float32)
