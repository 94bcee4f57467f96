"""The voice encoder with the embedded Whisper tiny.en backbone and our head."""

import io
import subprocess

import numpy as np
import pytest
import soundfile as sf

from multimodal import EMOTIONS, Status, VoiceEncoder
from multimodal.audio_io import TARGET_SR, detect_speech, to_mono_16k

from .conftest import EVERYDAY_SPEECH, espeak, needs_data, needs_espeak, needs_everyday_speech, speech

SR = 48_000
@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    if espeak is None:
        pytest.skip("espeak-ng is not installed")
    return speech("I am so happy today, this is the best day of my life", tmp_path_factory.mktemp("voice"))


def tone(seconds=3.0, sr=SR, freq=440.0):
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


@pytest.mark.parametrize("name,audio", [
    ("silence", (SR, np.zeros(SR * 3, np.int16))),
    ("tone", (SR, tone())),
    ("white noise", (SR, (np.random.default_rng(0).standard_normal(SR * 3) * 0.1).astype(np.float32))),
    ("0.1 s", (16_000, tone(0.1, 16_000))),
    ("stereo 48 kHz int16 tone", (SR, np.stack([(tone() * 20000).astype(np.int16)] * 2, axis=1))),
])
def test_no_speech_gives_silence(voice_encoder, name, audio):
    r = voice_encoder.predict(audio)
    assert r.status == Status.SILENCE, (name, r.message)
    assert "speech" in r.message


@pytest.mark.parametrize("audio,fragment", [
    ((SR, np.full(1000, np.nan, np.float32)), "NaN"),
    (np.zeros(16000, np.float32), "sample rate is unknown"),
    ((5, np.zeros(100, np.float32)), "not plausible"),
    (b"RIFF....WAVEjunk", "corrupt"),
    ("/no/such/file.wav", "no audio file"),
    ((SR, np.zeros((2, 2, 2), np.float32)), "shape"),
    ((SR, np.array([], np.float32)), "empty"),
    ({"raw": [0.0]}, "sampling_rate"),
])
def test_bad_audio_gives_invalid_with_a_message(voice_encoder, audio, fragment):
    r = voice_encoder.predict(audio)
    assert r.status == Status.INVALID and fragment in r.message


def test_input_normalisation_dtypes_and_layouts():
    x = tone(1.0)
    as_int16 = to_mono_16k((SR, (x * 32767).astype(np.int16)))
    as_float = to_mono_16k({"raw": x, "sampling_rate": SR})
    channels_first = to_mono_16k((SR, np.stack([x, x])))
    assert as_int16.sample_rate == TARGET_SR and len(as_float.samples) == pytest.approx(TARGET_SR, abs=2)
    assert np.allclose(as_int16.samples, as_float.samples, atol=1e-3)
    assert np.allclose(channels_first.samples, as_float.samples, atol=1e-6)
    assert "mixed down" in " ".join(channels_first.notes)
    as_uint8 = to_mono_16k((8000, ((x[::6] + 1) * 127.5).astype(np.uint8)))
    assert abs(float(as_uint8.samples.mean())) < 0.02


@needs_espeak
def test_real_speech_is_read_and_transcribed(voice_encoder, spoken):
    r = voice_encoder.predict(spoken)
    assert r.ok, r.message
    assert sum(r.probabilities.values()) == pytest.approx(1.0)
    assert set(r.coverage) == set(EMOTIONS)  # trained on RAVDESS too, the head can say surprise
    assert -1 <= r.arousal <= 1 and r.to_dict()["arousal"] == r.arousal
    words = r.extras["transcript"].lower()
    assert "happy" in words and "of my life" in words
    assert 0 < r.quality <= 1 and r.extras["speech_seconds"] > 1.5


@needs_espeak
def test_gradio_style_stereo_int16_48k_speech(voice_encoder, spoken):
    y, fs = sf.read(spoken, dtype="float32")
    import soxr

    y48 = soxr.resample(y, fs, SR)
    stereo = (np.stack([y48, y48], 1) * 30000).astype(np.int16)
    r = voice_encoder.predict((SR, stereo))
    assert r.ok and "happy" in r.extras["transcript"].lower()
    assert "resampled from 48,000 Hz" in r.message and "mixed down" in r.message


@needs_espeak
def test_clipping_and_bytes_input(voice_encoder, spoken):
    y, fs = sf.read(spoken, dtype="float32")
    r = voice_encoder.predict((fs, np.clip(y * 30, -1, 1)))
    assert r.ok and "clipped" in r.message
    buf = io.BytesIO()
    sf.write(buf, y, fs, format="FLAC")
    assert voice_encoder.predict(buf.getvalue()).ok


@needs_espeak
def test_ten_minutes_are_cut_to_the_most_voiced_window(voice_encoder, spoken):
    y, fs = sf.read(spoken, dtype="float32")
    minutes = np.zeros(fs * 600, np.float32)
    minutes[fs * 300:fs * 300 + len(y)] = y  # speech in the middle of 10 minutes of silence
    r = voice_encoder.predict((fs, minutes))
    assert r.ok and "most voiced" in r.message
    assert "happy" in r.extras["transcript"].lower()


def test_speech_activity_counts_speech_not_tones():
    a = to_mono_16k((SR, tone()))
    assert detect_speech(a).speech_seconds == 0


@needs_data
def test_emodb_sample_is_read_sensibly(voice_encoder, data_dir):
    from multimodal.datasets import load_emodb

    db = load_emodb(data_dir)
    idx = np.random.default_rng(0).choice(len(db.labels), 40, replace=False)
    readings = voice_encoder.predict_batch([(db.sample_rate, db.audio[i]) for i in idx])
    assert all(r.ok for r in readings)
    # the shipped head saw these clips in training; this is a sanity check, the honest number is LOSO in metrics.json
    gold = db.targets[idx].argmax(1)
    acc = np.mean([EMOTIONS.index(r.top_emotion) == g for r, g in zip(readings, gold)])
    assert acc > 0.8


@needs_espeak
def test_hub_path_with_a_tiny_local_wav2vec2(tmp_path, spoken):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                            conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
                            num_feat_extract_layers=3, vocab_size=10, classifier_proj_size=16,
                            num_labels=4, id2label={0: "neu", 1: "hap", 2: "ang", 3: "sad"},
                            label2id={"neu": 0, "hap": 1, "ang": 2, "sad": 3})
    Wav2Vec2ForSequenceClassification(config).save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(tmp_path)
    enc = VoiceEncoder(model=str(tmp_path))
    r = enc.predict(spoken)
    assert r.ok and set(r.coverage) == {"angry", "happy", "sad", "neutral"}
    assert r.probabilities["disgust"] == 0 and sum(r.probabilities.values()) == pytest.approx(1.0)
    assert r.model == str(tmp_path)


# An espeak-ng probe of four emotions, each spoken with the prosody a person would give it (rate, pitch,
# level) in three voices. It is synthetic speech: the test asks only that the head is not biased toward one
# emotion (the EmoDB-only head called 100% of it "angry") and that calm, neutral speech is not read as anger.
PROBE = {
    "neutral": ("The meeting is on Tuesday at ten, in the small room next to the kitchen.", ["-s", "160", "-p", "50"]),
    "happy": ("I am so happy today, this is the best day of my life!", ["-s", "190", "-p", "75", "-a", "140"]),
    "sad": ("I miss her so much. Nothing feels right any more.", ["-s", "115", "-p", "30", "-a", "60"]),
    "angry": ("Get out of my way right now, I am sick of this!", ["-s", "210", "-p", "40", "-a", "200"]),
}
VOICES = ("en-us", "en", "en-us+m3")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    if espeak is None:
        pytest.skip("espeak-ng is not installed")
    folder = tmp_path_factory.mktemp("probe")
    out = []
    for emotion, (text, args) in PROBE.items():
        for voice in VOICES:
            path = folder / f"{emotion}-{voice}.wav"
            subprocess.run([espeak, "-v", voice, *args, "-w", str(path), text], check=True)
            out.append((emotion, str(path)))
    return out


@pytest.mark.xfail(strict=True, reason=(
    "known gap (issue 18, models/voice/MODEL_CARD.md): espeak-ng's formant voice is outside what the head has heard; "
    "read with a transcript, 9 of these 12 takes are angry, 1 of the 3 neutral ones (emotion only: 10 and 2). Strict: "
    "this test fails the run once it passes, so the marker is removed when the gap is closed. Fused with the words, "
    "the same probe passes: the next test"))
def test_espeak_probe_is_not_read_as_one_emotion(voice_encoder, probe):
    readings = voice_encoder.predict_batch([path for _, path in probe])
    assert all(r.ok for r in readings), [r.message for r in readings]
    tops = [r.top_emotion for r in readings]
    share = {e: tops.count(e) / len(tops) for e in set(tops)}
    assert max(share.values()) <= 0.5, share
    neutral = [r for (emotion, _), r in zip(probe, readings) if emotion == "neutral"]
    assert all(r.top_emotion != "angry" for r in neutral), [r.probabilities for r in neutral]


def test_espeak_probe_fused_with_its_words_is_not_one_emotion(engine, probe):
    """What a user of the engine gets from the same probe: the voice fused with what was said (the issue's case was a
    neutral sentence fused to "angry 80%"). The voice alone still leans angry (the strict xfail above); fused, the
    neutral takes read as something other than anger and no emotion takes more than half of the probe."""
    moods = [engine.analyze(audio=path) for _, path in probe]
    assert all(m.ok and m.readings["voice"].ok and m.readings["speech_text"].ok for m in moods), [m.message for m in moods]
    tops = [m.top_emotion for m in moods]
    share = {e: tops.count(e) / len(tops) for e in set(tops)}
    assert max(share.values()) <= 0.5, share
    assert all(top != "angry" for (emotion, _), top in zip(probe, tops) if emotion == "neutral"), tops
    assert all(m.weights["voice"] > 0 for m in moods)  # the voice is fused, not dropped


@needs_everyday_speech
def test_real_peoples_everyday_speech_is_not_read_as_anger(voice_encoder):
    """Recordings of real people that nobody acted (Debian's codec2 and ALSA samples: read sentences, radio calls,
    channel names; telephone-band and studio). The EmoDB-only head read most English speech as angry; here no take
    may read angry beyond one in ten, the plainly read sentences read neutral, and the two files without speech say
    so."""
    readings = voice_encoder.predict_batch([str(p) for p in EVERYDAY_SPEECH])
    silent = [p.name for p, r in zip(EVERYDAY_SPEECH, readings) if r.status == Status.SILENCE]
    assert silent == ["david4.wav", "Noise.wav"], silent
    heard = [(p, r) for p, r in zip(EVERYDAY_SPEECH, readings) if r.ok]
    assert len(heard) == len(EVERYDAY_SPEECH) - 2, [r.message for r in readings if not r.ok]
    tops = [r.top_emotion for _, r in heard]
    assert tops.count("angry") <= 0.1 * len(tops), tops
    sentences = [r.top_emotion for p, r in heard if "codec2" in str(p)]
    assert sentences.count("neutral") >= 0.6 * len(sentences), sentences


def test_emotion_alone_reads_the_window_without_the_transcripts_silence(voice_encoder, spoken):
    """Without a transcript the encoder reads the speech alone (less encoder work than with the silence the decoder
    needs); the head, trained on both kinds of pass, reads the two alike."""
    from multimodal.voice import ENCODE_PAD_S, prepare_voice

    alone = VoiceEncoder(transcribe=False).load()
    clip = prepare_voice(spoken)
    short, padded = (alone.backend.mel(clip.samples, pad=p).shape[-1] for p in (False, True))
    assert padded - short >= ENCODE_PAD_S * 100 - 2  # 10-ms mel frames
    a, b = alone.predict(spoken), voice_encoder.predict(spoken)
    assert a.ok and b.ok and "transcript" not in a.extras
    assert np.abs(a.vector - b.vector).max() < 0.15, (a.probabilities, b.probabilities)


def test_level_is_not_a_cue(voice_encoder, spoken):
    """The same speech 30 dB quieter reads the same: every clip is brought to one speech level first."""
    y, fs = sf.read(spoken, dtype="float32")
    y = y / np.abs(y).max()
    loud = voice_encoder.predict((fs, y * 0.9))
    quiet = voice_encoder.predict((fs, y * 0.9 * 10 ** (-30 / 20)))
    assert loud.ok and quiet.ok
    assert quiet.extras["loudness_dbfs"] < loud.extras["loudness_dbfs"] - 25
    assert np.abs(loud.vector - quiet.vector).max() < 0.02
    assert quiet.arousal == pytest.approx(loud.arousal, abs=0.02)


@needs_data
def test_direct_arousal_follows_the_clips_and_keeps_the_tables_spread(voice_encoder, data_dir):
    """On RAVDESS takes (seen in training: a check of the calibration's spread, not of generalisation)."""
    from models.voice.train_voice import va_target
    from multimodal.datasets import load_ravdess

    rav = load_ravdess(data_dir)
    idx = np.random.default_rng(1).choice(len(rav), 48, replace=False)
    readings = voice_encoder.predict_batch([(rav.sample_rate, rav.clip(i)) for i in idx])
    got = np.array([r.arousal for r in readings])
    want = np.array([va_target(rav.labels[i], rav.intensity[i])[1] for i in idx])
    assert np.corrcoef(got, want)[0, 1] > 0.6
    assert 0.6 < got.std() / want.std() < 1.5  # the music moves as far as the table would move it


def test_the_numpy_head_is_the_trained_module():
    """multimodal.voice.VoiceHead (numpy, no torch at inference) gives the training module's outputs."""
    import torch

    from models.voice.train_voice import MLP
    from multimodal.voice import WHISPER_HEAD, VoiceHead

    head = VoiceHead(WHISPER_HEAD)
    t = head.tensors
    net = MLP(t["w1"].shape[1], t["w1"].shape[0], 0.0).eval()
    linear = [m for m in net.net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for layer, (w, b) in zip(linear, (("w1", "b1"), ("w2", "b2"))):
            layer.weight.copy_(torch.from_numpy(t[w]))
            layer.bias.copy_(torch.from_numpy(t[b]))
    x = np.random.default_rng(0).normal(size=(5, len(t["mean"]))).astype(np.float32) * t["scale"] + t["mean"]
    probs, va = head(x)
    with torch.no_grad():
        out = net(torch.from_numpy((x - t["mean"]) / t["scale"]).float()).numpy()
    from multimodal.heads import softmax

    assert np.allclose(probs, softmax(out[:, :7], head.temperature), atol=1e-5)
    assert np.allclose(va, np.clip(out[:, 7:] * head.va_scale + head.va_shift, -1, 1), atol=1e-5)
    assert head.labels == list(EMOTIONS)


def test_an_ensemble_merges_into_one_network_with_the_mean_logits():
    import torch

    from models.voice.train_voice import MLP, merge_members

    members = [MLP(12, 8, 0.3).eval() for _ in range(3)]
    merged = merge_members(members)
    x = torch.randn(4, 12)
    with torch.no_grad():
        assert torch.allclose(merged(x), torch.stack([m(x) for m in members]).mean(0), atol=1e-5)


def test_the_pooling_study_pools_as_the_encoder_does():
    """The study's mean pooling is the shipped ``pool_states``; attentive pooling with a flat scorer is the same and
    never reads the padding."""
    import torch

    from models.voice.pooling_study import PooledHead, padded
    from multimodal.voice import pool_states

    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 384)).astype(np.float32) for n in (30, 7)]
    x, mask = padded(seqs)
    x[1, 7:] = 1e3  # whatever sits in the padding must not count
    attentive = PooledHead("attentive", prosody=4)
    with torch.no_grad():
        attentive.score[-1].weight.zero_()
        pooled = {kind: head.pool(x, mask).numpy() for kind, head in (("mean", PooledHead("mean", 4)),
                                                                       ("attentive", attentive))}
    for i, s in enumerate(seqs):
        want = pool_states(s, np.ones(len(s), bool))
        assert np.allclose(pooled["mean"][i], want, atol=1e-4)
        assert np.allclose(pooled["attentive"][i], want, atol=1e-4)


def test_the_torch_encoder_is_whisper_as_ctranslate2_runs_it(voice_encoder, spoken):
    """Our encoder over the package's weights gives CTranslate2's last layer (to within its int8 rounding); the read
    for emotion alone stops at the last layer the head reads, with the same states up to there."""
    import ctranslate2

    from multimodal.voice import EMOTION_LAYERS, prepare_voice

    backend = voice_encoder.backend
    clip = prepare_voice(spoken)
    mel = backend.mel(clip.samples, pad=True)
    ours = backend.encoder.states(mel)
    theirs = np.array(backend.model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))
    assert len(ours) == 4 and ours[-1].shape == theirs.shape
    cosine = (ours[-1] * theirs).sum(-1) / np.linalg.norm(ours[-1], axis=-1) / np.linalg.norm(theirs, axis=-1)
    assert cosine.mean() > 0.99 and np.linalg.norm(ours[-1] - theirs) / np.linalg.norm(theirs) < 0.1
    # a different layer is a different representation, not a copy of the last
    for layer in EMOTION_LAYERS:
        assert np.linalg.norm(ours[layer - 1] - ours[-1]) / np.linalg.norm(ours[-1]) > 0.2
    short = backend.encode(clip.samples, pad=False)
    assert len(short) == max(EMOTION_LAYERS) < 4
    assert all(np.allclose(a, b) for a, b in zip(short, backend.encoder.states(backend.mel(clip.samples, pad=False))))


def test_a_model_file_moodtune_cannot_read_is_a_backbone_error(tmp_path):
    import struct

    from multimodal.backbones import BackboneError, whisper_tiny_en_dir
    from multimodal.whisper_encoder import read_ct2_model

    weights = read_ct2_model(whisper_tiny_en_dir() / "model.bin", prefix="encoder/")
    assert weights["conv1/weight"].shape == (384, 80, 3) and weights["conv1/weight"].dtype == np.float16
    old = tmp_path / "model.bin"
    old.write_bytes(struct.pack("I", 2) + b"\0" * 64)
    with pytest.raises(BackboneError, match="format 2"):
        read_ct2_model(old)


def test_the_voice_model_runs_numpy_blas_on_one_thread(voice_encoder):
    """Idle BLAS threads busy-wait beside torch's; the voice backend sets every BLAS loaded by then to one thread."""
    from threadpoolctl import threadpool_info

    voice_encoder.load()
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas), blas


def test_whisper_guards_give_repeated_or_guessed_transcripts_no_weight():
    from multimodal.voice import MAX_COMPRESSION_RATIO, check_transcript, collapse_repeats, compression_ratio

    looped = "I am so so so so so so so so so so so so so so so so so so so so so so so so sad today"
    assert compression_ratio(looped) > MAX_COMPRESSION_RATIO
    assert "repeats itself" in check_transcript(looped, -0.3, 0.1, 12.0).problem
    assert "guessing" in check_transcript("I got the job.", -1.4, 0.1, 1.5).problem
    assert "no speech" in check_transcript("Thank you.", -0.3, 0.8, 1.0).problem
    assert "more words than the speech can hold" in check_transcript(
        "one two three four five six seven eight nine ten", -0.3, 0.1, 1.0).problem
    fine = check_transcript("I got the job and I am so happy about it.", -0.14, 0.08, 2.1)
    assert fine.problem == "" and fine.note == "" and fine.text == "I got the job and I am so happy about it."
    # the decoder's loops after a short clip are kept once, and the note says so
    assert collapse_repeats("Good morning. Good morning! Good morning... Good morning, good morning...") == (
        "Good morning.", 5)
    assert collapse_repeats("Dogs are sitting by the door. Dogs are sitting by the doorway. Dogs or sitting by")[0] == (
        "Dogs are sitting by the door.")
    assert collapse_repeats("I'm fine. I'm really fine.") == ("I'm fine. I'm really fine.", 1)
    assert collapse_repeats("I said no, no.") == ("I said no, no.", 1)


@needs_espeak
def test_a_one_second_good_morning_reads_with_its_real_words(engine, tmp_path):
    """Cut to 1 s, "Good morning" came back as "Good morning. Good morning! Good morning..." with weight 0.76."""
    y, fs = sf.read(speech("Good morning", tmp_path), dtype="float32")
    mood = engine.analyze(audio=(fs, y[:fs]))
    said = mood.readings["speech_text"]
    assert mood.readings["voice"].extras["transcript"] == "Good morning."
    assert said.ok and "looped on “Good morning.”" in said.message


@needs_espeak
def test_a_transcript_the_guards_reject_is_shown_but_gets_no_weight(engine, tmp_path, monkeypatch):
    from multimodal.voice import WhisperEmotionBackend, check_transcript

    looped = "so " * 30 + "sad"
    monkeypatch.setattr(WhisperEmotionBackend, "transcribe",
                        lambda self, encoded, seconds: check_transcript(looped, -0.3, 0.1, seconds))
    mood = engine.analyze(audio=speech("I am so happy today", tmp_path))
    said = mood.readings["speech_text"]
    assert said.status == Status.UNRELIABLE and "were not used: it repeats itself" in said.message
    assert mood.weights.get("speech_text", 0.0) == 0.0 and mood.readings["voice"].ok
    assert mood.readings["voice"].extras["transcript_problem"].startswith("it repeats itself")
