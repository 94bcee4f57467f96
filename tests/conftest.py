from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# everything moodtune writes during the tests (catalogs, journal, profiles) goes to a folder of this run
os.environ["MOODTUNE_HOME"] = tempfile.mkdtemp(prefix="moodtune-test-home-")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from multimodal.datasets import default_data_dir  # noqa: E402

DATA = default_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="../shared/data is absent (it is only beside a CI or dev checkout)")


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
