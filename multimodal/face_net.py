"""The facial-expression CNN (a small VGG-style net for 48x48 grey face crops)."""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Dropout(dropout),
    )


class FaceExpressionNet(nn.Module):
    """Four conv blocks (48→24→12→6→3), global average pooling, a linear classifier.

    Input: float tensor (N, 1, 48, 48) scaled to [0, 1]. Output: logits (N, n_classes).
    """

    def __init__(self, n_classes: int = 7, width: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(1, w, dropout),
            _block(w, 2 * w, dropout),
            _block(2 * w, 4 * w, dropout),
            _block(4 * w, 8 * w, dropout),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.4), nn.Linear(8 * w * 9, 256),
                                  nn.ReLU(inplace=True), nn.Dropout(0.4), nn.Linear(256, n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The conv features (N, 8·width, 3, 3) the head reads, for the same input as :meth:`forward`."""
        return self.features((x - 0.5) / 0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
