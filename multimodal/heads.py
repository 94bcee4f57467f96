"""Small classifier heads that we train and ship under ``models/`` as safetensors files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn


class MLPHead(nn.Module):
    """LayerNorm → Linear → GELU → Dropout → Linear: features (N, in_dim) to logits (N, n_out)."""

    def __init__(self, in_dim: int, n_out: int, hidden: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def save_head(head: nn.Module, path: Path, metadata: dict[str, object]) -> None:
    """Save a head's weights with string metadata (temperature, labels, dimensions...)."""
    tensors = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    save_file(tensors, str(path), metadata={k: str(v) for k, v in metadata.items()})


def read_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_mlp_head(path: Path) -> tuple[MLPHead, dict[str, str]]:
    """Load an :class:`MLPHead` saved by :func:`save_head` (dimensions come from its metadata)."""
    meta = read_metadata(path)
    head = MLPHead(int(meta["in_dim"]), int(meta["n_out"]), int(meta["hidden"]))
    with safe_open(str(path), framework="pt") as f:
        head.load_state_dict({k: f.get_tensor(k) for k in f.keys()})
    head.eval()
    return head, meta


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature that minimises the NLL of soft ``targets`` (N, K) under softmax(logits / T)."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    t = torch.as_tensor(targets, dtype=torch.float64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = -(t * torch.log_softmax(z / log_t.exp(), dim=-1)).sum(-1).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())
