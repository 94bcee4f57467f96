from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# everything moodtune writes during the tests (catalogs, journal, profiles) goes to a folder of this run
os.environ["MOODTUNE_HOME"] = tempfile.mkdtemp(prefix="moodtune-test-home-")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from multimodal.datasets import default_data_dir  # noqa: E402
from models.voice.everyday_check import everyday_files  # noqa: E402

DATA = default_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="../shared/data is absent (it is only beside a CI or dev checkout)")


#: Fixtures that load real models, data or servers: a test that uses one is in the slow tier.
SLOW_FIXTURES = {"engine", "text_encoder", "face_encoder", "voice_encoder", "data_dir", "running_app", "client",
                 "ray_cluster", "fer_val", "spoken"}


def pytest_collection_modifyitems(config, items) -> None:
    """Mark the slow tier: tests that load models, data, a browser, Ray or a server process. ``scripts/check --fast``
    (``-m "not slow"``) runs the rest in seconds."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SLOW_FIXTURES or any(item.get_closest_marker(m) for m in ("browser", "ray")):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if DATA is None:
        pytest.skip("../shared/data is absent")
    return DATA


@pytest.fixture(scope="session")
def engine():
    from fusion import MoodEngine

    return MoodEngine()


@pytest.fixture(scope="session")
def text_encoder(engine):
    return engine.text


@pytest.fixture(scope="session")
def face_encoder(engine):
    return engine.face


@pytest.fixture(scope="session")
def voice_encoder(engine):
    return engine.voice


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# -- helpers shared by several test files ------------------------------------------------------------
espeak = shutil.which("espeak-ng")
needs_espeak = pytest.mark.skipif(espeak is None, reason="espeak-ng is not installed (CI installs it with apt)")


#: Recordings of real people from Debian packages (CI installs them with apt): codec2-examples' speech samples (read
#: sentences and amateur-radio calls, several speakers, mostly 8 kHz) and alsa-utils' spoken channel names (one
#: speaker, two words each). Neither is acted and no model here trained on them; two of them hold no speech.
EVERYDAY_SPEECH = [path for files in everyday_files().values() for path in files]
needs_everyday_speech = pytest.mark.skipif(len(EVERYDAY_SPEECH) < 20, reason=(
    "the Debian packages codec2-examples and alsa-utils are not installed (CI installs them with apt)"))


def speech(text: str, tmp_path, name="s.wav") -> str:
    """``text`` spoken by espeak-ng, as a WAV file in ``tmp_path``."""
    path = tmp_path / name
    subprocess.run([espeak, "-w", str(path), text], check=True)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wav_bytes(seconds: float = 2.0) -> bytes:
    """A tone as WAV bytes (an upload)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(np.arange(int(16000 * seconds)) / 7)).astype(np.float32), 16000, format="WAV")
    return buf.getvalue()


def four_faces(images) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A 640×480 frame with four FER faces pasted at different sizes (each found alone at its size), and where
    (side, y, x): the benchmark's frame."""
    from benchmarks.run import FOUR_FACES, paste_four_faces

    return paste_four_faces(images), [(side, y, x) for _, side, y, x in FOUR_FACES]
