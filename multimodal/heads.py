"""Numpy helpers for the heads we train and ship under ``models/``: metadata, softmax, temperature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import safe_open


def read_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file (temperature, labels, dimensions...)."""
    with safe_open(str(path), framework="np") as f:
        return dict(f.metadata() or {})


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature that minimises the NLL of soft ``targets`` (N, K) under softmax(logits / T)."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        s = s - s.max(-1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(-1, keepdims=True))
        return float(-(t * logp).sum(-1).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded", options={"xatol": 1e-6}).x))


def fit_va_calibration(raw: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Affine map (scale, shift) per dimension that gives ``raw`` (N, 2) the mean and spread of ``target``."""
    scale = target.std(0) / np.maximum(raw.std(0), 1e-6)
    return scale, target.mean(0) - scale * raw.mean(0)
