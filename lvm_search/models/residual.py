"""What every architecture shares: the context convention and the residual over a context mean.

The input contract: contexts [B, k, D], oldest position first; a position that is all zeros is
padding (the document had fewer than k earlier passages) and carries no passage.

``residual: true`` means the same for all four architectures: the prediction is the recency-weighted
context mean (the *base*, ``base_decay ** age`` per position, 1 = the plain mean) plus what the
network outputs, and the network's last layer starts at zero, so a fresh model predicts exactly the
base and can only learn from there. ``residual: false``: the prediction is the network's output alone.
"""

from __future__ import annotations

import torch
from torch import nn


def real_positions(contexts: torch.Tensor) -> torch.Tensor:
    """[B, k] True where a context position holds a passage, False at padding (all zeros)."""
    return contexts.abs().sum(-1) > 0


def context_mean(contexts: torch.Tensor, decay: float = 1.0) -> torch.Tensor:
    """Recency-weighted mean of the real context vectors [B, k, D] -> [B, D].

    Position i gets weight ``decay ** (k - 1 - i)`` (1 = plain mean, 0 = last vector); padding gets
    none, so the mean is over the passages that exist.
    """
    k = contexts.shape[1]
    weights = decay ** torch.arange(k - 1, -1, -1, dtype=contexts.dtype, device=contexts.device)
    real = real_positions(contexts).to(contexts.dtype) * weights
    return (contexts * weights[:, None]).sum(1) / real.sum(1, keepdim=True).clamp(min=1e-12)


class LVM(nn.Module):
    """The base of every architecture: ``network(contexts)`` is what it computes, and ``forward``
    turns that into the prediction the same way for all (``self.cfg`` has residual and base_decay)."""

    def network(self, contexts: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, contexts: torch.Tensor) -> torch.Tensor:
        out = self.network(contexts)
        if self.cfg.residual:
            out = context_mean(contexts, self.cfg.base_decay) + out
        return nn.functional.normalize(out.float(), dim=-1)


def zero_init(layer: nn.Linear) -> None:
    """A zero last layer makes a fresh residual model predict exactly its base."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
