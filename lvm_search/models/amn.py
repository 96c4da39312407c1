"""Attention mixture network: attend over the context from its mean, then an MLP.

Reference sizes at D=768: query Linear(768->256) 196,864 and key Linear(768->256) 196,864 (one
head; the values are the raw context vectors), then an MLP on [base, attended] 1536->512->256->768
with GELU + LayerNorm after each hidden layer (786,944 + 1,024 + 131,328 + 512 + 197,376) = 1,510,912.
The reference AMN learns a residual over the context mean: ``residual`` (see residual.py).
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from .registry import DEFAULT_BASE_DECAY, DEFAULT_RESIDUAL, register
from .residual import LVM, context_mean, real_positions, zero_init


@dataclass
class AMNConfig:
    depth: int = 2  # hidden MLP layers, each half as wide as the one before
    width: int = 512  # first hidden layer
    key_dim: int = 256
    dropout: float = 0.0
    residual: bool = DEFAULT_RESIDUAL
    base_decay: float = DEFAULT_BASE_DECAY

    def validate(self):
        if (
            self.depth < 1
            or self.key_dim < 1
            or self.width >> (self.depth - 1) < 1
            or not 0 <= self.dropout < 1
        ):
            raise UserError(
                "amn: depth, width (halved per layer) and key_dim must stay >= 1, "
                f"0 <= dropout < 1, got {self}"
            )


@register("amn", AMNConfig)
class AMNModel(LVM):
    def __init__(self, cfg: AMNConfig, dim: int, k: int):
        super().__init__()
        self.cfg = cfg
        self.query = nn.Linear(dim, cfg.key_dim)
        self.key = nn.Linear(dim, cfg.key_dim)
        layers, width_in = [], 2 * dim
        for i in range(cfg.depth):
            width = cfg.width >> i
            layers += [nn.Linear(width_in, width), nn.GELU(), nn.LayerNorm(width), nn.Dropout(cfg.dropout)]
            width_in = width
        self.mlp = nn.Sequential(*layers, nn.Linear(width_in, dim))
        if cfg.residual:
            zero_init(self.mlp[-1])

    def attention(self, x: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """[B, k] the weight of each context position in the attended vector: a softmax over the real
        positions (it sums to 1 over them), queried from the recency-weighted context mean; padding
        gets 0. A context with no passage at all (context dropout can make one) attends uniformly
        over zeros rather than dividing by zero."""
        if base is None:
            base = context_mean(x, self.cfg.base_decay)
        scores = torch.einsum("bd,bkd->bk", self.query(base), self.key(x)) / self.cfg.key_dim**0.5
        scores = scores.masked_fill(~real_positions(x), torch.finfo(scores.dtype).min)
        return scores.softmax(dim=-1)

    def network(self, x):
        base = context_mean(x, self.cfg.base_decay)
        attended = torch.einsum("bk,bkd->bd", self.attention(x, base), x)
        return self.mlp(torch.cat([base, attended], dim=-1))
