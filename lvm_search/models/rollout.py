"""A model trained to predict the next passage, asked for one further ahead: it reads its own
predictions as the newest context passages (the reference work's "multi-step prediction")."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.functional import normalize


class Rollout(nn.Module):
    """Predict ``steps`` passages ahead with a horizon-1 ``model``: predict the next passage, append
    it (normalised, like every passage) to the context, drop the oldest position, and repeat. The
    context length stays the model's k, so padding before a document slides out as predictions
    come in."""

    def __init__(self, model: nn.Module, steps: int):
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.model, self.steps = model, steps

    def forward(self, contexts: torch.Tensor) -> torch.Tensor:
        for _ in range(self.steps):
            prediction = normalize(self.model(contexts).float(), dim=-1)
            contexts = torch.cat([contexts[:, 1:], prediction[:, None].to(contexts.dtype)], dim=1)
        return prediction
