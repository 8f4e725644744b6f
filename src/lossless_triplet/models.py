"""Encoders that map a feature row to a code in [0, 1]^N (a sigmoid head).

The sigmoid bounds every squared distance between codes by N, which the
lossless triplet loss relies on (Arsenault 2018).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .defaults import EMBEDDING_DIM

__all__ = ["Encoder", "encode"]


class Encoder(nn.Module):
    """Multi-layer perceptron with a sigmoid code head.

    Linear -> ReLU blocks of the given hidden widths, then Linear -> sigmoid.

    Args:
        in_features: number of input features F (>= 1).
        embedding_dim: code width N (>= 1; default :data:`~lossless_triplet.defaults.EMBEDDING_DIM`, 16;
            3 in the seed, so the code is its own 3-D picture).
        hidden: widths of the hidden layers (each >= 1); empty for a linear map.

    Shape:
        input (B, F) float32; output (B, N) float32 in [0, 1].

    Raises:
        ValueError: a width below 1.

    Source: the Siamese encoder of M.-O. Arsenault, "Lossless Triplet loss", 2018.
    """

    def __init__(self, in_features: int, embedding_dim: int = EMBEDDING_DIM, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        widths = [in_features, *hidden, embedding_dim]
        if any(int(w) < 1 for w in widths):
            raise ValueError(
                f"in_features={in_features}, hidden={list(hidden)} and embedding_dim={embedding_dim} "
                "must all be >= 1"
            )
        self.in_features = int(in_features)
        self.embedding_dim = int(embedding_dim)
        self.hidden = tuple(int(h) for h in hidden)
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-2], widths[1:-1]):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-2], widths[-1]))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))

    def config(self) -> dict:
        """Constructor arguments, JSON-safe: ``Encoder(**encoder.config())`` rebuilds the architecture."""
        return {"in_features": self.in_features, "embedding_dim": self.embedding_dim, "hidden": list(self.hidden)}


@torch.no_grad()
def encode(model: nn.Module, features: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Codes of many rows, in evaluation mode and without gradients.

    Shape:
        features: (n, F) float (already scaled). Output: (n, N) float32.
    """
    was_training = model.training
    model.eval()
    try:
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        parts = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        n_out = getattr(model, "embedding_dim", None)
        if not parts:
            return np.zeros((0, n_out or 0), dtype=np.float32)
        return torch.cat(parts).numpy()
    finally:
        model.train(was_training)
