"""Bad input never escapes ``analyze``: each case yields a status and a message, and the other signals still count."""

import io
import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from multimodal import InputError, Status
from multimodal.audio_io import to_mono_16k
from multimodal.image_io import to_rgb
from multimodal.text import prepare_text

rng = np.random.default_rng(7)
GOOD_TEXT = "I am furious with you"

BAD_IMAGES = {
    "blank": np.zeros((480, 640, 3), np.uint8),
    "white": np.full((480, 640, 3), 255, np.uint8),
    "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
    "tiny": np.zeros((3, 3, 3), np.uint8),
    "one pixel": np.zeros((1, 1), np.uint8),
    "huge": np.full((5000, 5000, 3), 60, np.uint8),
    "nan": np.full((64, 64, 3), np.nan),
    "inf": np.full((64, 64), np.inf),
    "wrong shape": np.zeros((2, 2, 2, 2)),
    "five channels": np.zeros((20, 20, 5), np.uint8),
    "zero size": np.zeros((0, 10, 3), np.uint8),
    "complex": np.zeros((8, 8), np.complex64),
    "strings": np.array([["x", "y"]]),
    "corrupt png": b"\x89PNG\r\n\x1a\n" + bytes(100),
    "random bytes": bytes(rng.integers(0, 256, 5000, dtype=np.uint8)),
    "missing path": "/definitely/not/here.jpg",
    "a number": 3.14,
    "a list": [[1, 2], [3, 4]],
}
BAD_AUDIO = {
    "silence": (16000, np.zeros(48000, np.int16)),
    "tone": (44100, (0.5 * np.sin(np.arange(44100 * 2) * 0.06)).astype(np.float32)),
    "white noise": (16000, rng.standard_normal(32000).astype(np.float32) * 0.2),
    "clipped square": (16000, np.sign(np.sin(np.arange(32000) * 0.05)).astype(np.float32)),
    "0.05 s": (16000, rng.standard_normal(800).astype(np.float32)),
    "10 minutes of silence": (8000, np.zeros(8000 * 600, np.int16)),
    "nan": (16000, np.full(16000, np.nan, np.float32)),
    "inf": (16000, np.full(16000, np.inf, np.float32)),
    "no sample rate": np.zeros(16000, np.float32),
    "rate 3 Hz": (3, np.zeros(100, np.float32)),
    "rate 10 MHz": (10_000_000, np.zeros(100, np.float32)),
    "3-d array": (16000, np.zeros((10, 10, 10), np.float32)),
    "empty": (16000, np.zeros(0, np.float32)),
    "strings": (16000, np.array(["a", "b"])),
    "corrupt wav": b"RIFF\x00\x00\x00\x00WAVEfmt garbage",
    "missing path": "/nope/voice.wav",
    "dict without rate": {"raw": np.zeros(100)},
    "a number": 42,
}
BAD_TEXT = {
    "empty": "", "spaces": "    ", "newlines": "\n\n\t", "punctuation": "?!...", "50,000 characters": "meh " * 12_500,
    "binary": bytes(range(256)) * 10, "invalid utf-8": b"\xff\xfe\xfa" * 100, "a number": 12345,
    "a list": ["happy"], "control chars": "\x00\x01\x02\x03" * 50, "non-English": "Estoy muy cansado y triste hoy",
    "zero-width only": "\u200b\u200b\u200b",
}


def _check(mood, failed_signal):
    reading = mood.readings[failed_signal]
    assert reading.status != Status.ERROR, reading.message  # a handled status, not a crash
    assert reading.message or reading.ok
    assert mood.ok  # the other signal still counts


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_bad_images(engine, name):
    mood = engine.analyze(image=BAD_IMAGES[name], text=GOOD_TEXT)
    _check(mood, "face")
    assert mood.top_emotion == "angry"


@pytest.mark.parametrize("name", list(BAD_AUDIO))
def test_bad_audio(engine, name):
    mood = engine.analyze(audio=BAD_AUDIO[name], text=GOOD_TEXT)
    _check(mood, "voice")
    assert mood.readings["voice"].status in (Status.SILENCE, Status.INVALID)
    assert mood.top_emotion == "angry"


@pytest.mark.parametrize("name", list(BAD_TEXT))
def test_bad_text(engine, name):
    mood = engine.analyze(image=np.zeros((10, 10), np.uint8), text=BAD_TEXT[name])
    reading = mood.readings["text"]
    assert reading.status != Status.ERROR, reading.message
    if not reading.ok:
        assert reading.message and not mood.ok and "no usable signal" in mood.message


def test_all_signals_missing(engine):
    mood = engine.analyze()
    assert mood.status == "no_signal" and all(r.status == Status.MISSING for r in mood.readings.values())


def test_nothing_raw_is_logged(engine, caplog):
    caplog.set_level(logging.DEBUG)
    secret_text = "my-very-private-diary-line"
    engine.analyze(image=BAD_IMAGES["noise"], audio=BAD_AUDIO["white noise"], text=secret_text)
    assert secret_text not in caplog.text


# -- fuzzing the input normalisers ----------------------------------------------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
                  shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=40)))
def test_image_normaliser_returns_rgb_or_input_error(arr):
    try:
        out = to_rgb(arr)
    except InputError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(-10, 400_000),
       hnp.arrays(dtype=st.sampled_from([np.int16, np.int32, np.uint8, np.float32, np.float64]),
                  shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=300)))
def test_audio_normaliser_returns_16k_mono_or_input_error(rate, arr):
    try:
        audio = to_mono_16k((rate, arr))
    except InputError:
        return
    assert audio.samples.ndim == 1 and audio.sample_rate == 16000
    assert np.isfinite(audio.samples).all() and np.abs(audio.samples).max() <= 1.0


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=500), st.binary(max_size=500)))
def test_text_normaliser_never_raises_anything_but_input_error(x):
    try:
        out = prepare_text(x)
    except InputError:
        return
    assert out is not None


def test_one_bad_item_fails_alone_in_a_batch(text_encoder):
    """A text the tokenizer cannot take (a lone surrogate) used to turn every reading of its batch into an error."""
    readings = text_encoder.predict_batch(["I am furious", "x \ud800", "what a lovely day"])
    assert [r.ok for r in readings] == [True, False, True]
    assert readings[0].top_emotion == "angry" and readings[2].top_emotion == "happy"
    assert "failed" in readings[1].message
