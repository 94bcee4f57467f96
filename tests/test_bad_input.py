"""Bad input never escapes ``analyze``: each case yields a status and a message, and the other signals still count."""

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

from .hostile_inputs import BAD_AUDIO, BAD_IMAGES, BAD_TEXT, GOOD_TEXT, flac_bomb, flac_of_silence, png_header_only

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
@pytest.mark.slow  # a process, a model or many cases: seconds
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
@pytest.mark.slow  # a process, a model or many cases: seconds
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


def test_one_bad_item_fails_alone_in_a_batch(text_encoder, monkeypatch):
    """An item the model fails on used to turn every reading of its batch into an error (a lone surrogate did)."""
    run = text_encoder.backend.run
    poison = text_encoder.backend.encode("xylophone", False)[0]

    def fragile(chunks, *a, **k):
        if any(poison in c for c in chunks):
            raise RuntimeError("the model failed on this input")
        return run(chunks, *a, **k)

    monkeypatch.setattr(text_encoder.backend, "run", fragile)
    readings = text_encoder.predict_batch(["I am furious", "x xylophone", "what a lovely day"])
    assert [r.ok for r in readings] == [True, False, True]
    assert readings[0].top_emotion == "angry" and readings[2].top_emotion == "happy"
    assert "failed" in readings[1].message


def test_bombs_are_refused_from_their_headers_quickly():
    import time

    for image in (png_header_only(30_000, 30_000), np.broadcast_to(np.float32(0.5), (20_000, 20_000))):
        t = time.perf_counter()
        with pytest.raises(InputError, match="megapixels"):
            to_rgb(image)
        assert time.perf_counter() - t < 1.0
    bomb = flac_of_silence(61)
    t = time.perf_counter()
    with pytest.raises(InputError, match="61 minutes"):
        to_mono_16k(bomb)
    assert time.perf_counter() - t < 1.0


def test_long_audio_is_read_up_to_ten_minutes_and_says_so():
    audio = to_mono_16k(flac_of_silence(12))
    assert audio.seconds == pytest.approx(600, abs=0.01) and "first 10 minutes" in " ".join(audio.notes)


def test_sixteen_bit_images_keep_their_contrast():
    grey = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)  # 0..65520
    rgb = to_rgb(grey)
    assert rgb.min() == 0 and rgb.max() == 254 and len(np.unique(rgb)) > 200


def test_planar_audio_is_channels_not_samples():
    audio = to_mono_16k((16000, np.zeros((9, 48000), np.float32)))
    assert audio.seconds == pytest.approx(3.0) and "9 channels" in audio.notes[0]


def test_a_text_playlist_named_wav_is_not_given_to_ffmpeg(tmp_path, monkeypatch):
    """With ffmpeg installed or not (it is pretended present; the decoder that would call it must not run)."""
    import librosa

    from multimodal import audio_io

    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"")
    playlist = tmp_path / "song.wav"
    playlist.write_text(f"#EXTM3U\n{secret}\n")
    monkeypatch.setattr(audio_io.shutil, "which", lambda name: f"/usr/bin/{name}")

    def ffmpeg_would_run(*_, **__):
        raise AssertionError("the playlist reached the ffmpeg decoder")

    monkeypatch.setattr(librosa, "load", ffmpeg_would_run)
    with pytest.raises(InputError, match="not an audio format"):
        to_mono_16k(str(playlist))


def test_text_is_capped_and_zero_width_characters_do_not_split_words():
    from multimodal.text import MAX_TEXT_CHARS, clean_text

    p = prepare_text("I am happy. " * 10_000)
    assert len(p.text) <= MAX_TEXT_CHARS and "only its start was read" in p.notes[0]
    assert clean_text("hap\u200bpy") == "happy"
    assert "\ufffd" in clean_text("furious \ud800")


def test_a_many_channel_high_rate_flac_is_decoded_within_the_sample_limit_and_says_so():
    """8 channels × 96 kHz × 2 min: 92 M samples; only MAX_SAMPLES of them (75 s) are decoded, mixed to mono."""
    from multimodal.audio_io import MAX_SAMPLES

    audio = to_mono_16k(flac_bomb(minutes=2))
    assert audio.seconds == pytest.approx(MAX_SAMPLES / 8 / 96_000, abs=0.01)
    notes = " ".join(audio.notes)
    assert "8 channels mixed down" in notes and "first 75 s" in notes


def test_an_in_memory_array_is_cut_by_samples_too():
    from multimodal.audio_io import MAX_SAMPLES

    many = np.broadcast_to(np.float32(0), (MAX_SAMPLES // 16 + 48_000, 32))  # 32 channels at 48 kHz, no memory used
    audio = to_mono_16k((48_000, many))
    assert audio.seconds == pytest.approx(MAX_SAMPLES / 32 / 48_000, abs=0.01) and "32 channels" in audio.notes[0]


def test_a_flac_of_unknown_length_is_read_and_a_high_rate_mono_file_is_bounded():
    import io

    import soundfile as sf

    from multimodal.audio_io import MAX_READ_S, to_mono_16k

    buf = io.BytesIO()
    sf.write(buf, (0.1 * np.sin(np.arange(48000 * 3) / 7)).astype(np.float32), 48000, format="FLAC")
    data = bytearray(buf.getvalue())
    data[8 + 13] &= 0xF0  # STREAMINFO's total-sample count set to 0 ("unknown"), as streaming encoders write it
    data[8 + 14:8 + 18] = b"\0\0\0\0"
    audio = to_mono_16k(bytes(data))
    assert 2.9 < audio.seconds <= 3.0 and not audio.notes
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", 655_350, 1, format="FLAC") as f:  # ten minutes of silence at 655 kHz: 1.5 MB
        for _ in range(60):
            f.write(np.zeros(655_350 * 10, np.float32))
    audio = to_mono_16k(buf.getvalue())
    assert audio.seconds <= MAX_READ_S * 48_000 / 655_350 + 0.01 and "were read" in audio.notes[-1]
