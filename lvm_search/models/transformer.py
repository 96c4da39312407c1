"""A causal Transformer decoder over the context, read out at the last position.

Reference sizes at D=768: Linear(768->512) 393,728 + sinusoidal positions (no parameters)
+ 4 x TransformerDecoderLayer(512, 8 heads, ff 2048) 3,152,384 + 1,051,648 (the cross-attention to
the context and its norm) + head Linear(512->512) 262,656, GELU, LayerNorm 1,024, Linear(512->768)
393,984 = 17,867,520.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from .registry import DEFAULT_BASE_DECAY, DEFAULT_RESIDUAL, register
from .residual import LVM, zero_init


@dataclass
class TransformerConfig:
    depth: int = 4  # decoder layers
    width: int = 512  # d_model
    heads: int = 8
    ff: int = 2048
    dropout: float = 0.1
    residual: bool = DEFAULT_RESIDUAL  # see residual.py
    base_decay: float = DEFAULT_BASE_DECAY  # the residual base's recency weighting (1 = plain mean)

    def validate(self):
        if min(self.depth, self.width, self.heads, self.ff) < 1 or not 0 <= self.dropout < 1:
            raise UserError(f"transformer: sizes must be >= 1 and 0 <= dropout < 1, got {self}")
        if self.width % self.heads:
            raise UserError(f"transformer: width {self.width} is not divisible by heads {self.heads}")


def sinusoidal_positions(k: int, width: int) -> torch.Tensor:
    pos = torch.arange(k, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(k, width)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: width // 2])
    return table


@register("transformer", TransformerConfig)
class TransformerModel(LVM):
    def __init__(self, cfg: TransformerConfig, dim: int, k: int):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(dim, cfg.width)
        self.register_buffer("positions", sinusoidal_positions(k, cfg.width), persistent=False)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(k), persistent=False)
        layer = nn.TransformerDecoderLayer(cfg.width, cfg.heads, cfg.ff, cfg.dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.depth)
        self.head = nn.Sequential(
            nn.Linear(cfg.width, cfg.width), nn.GELU(), nn.LayerNorm(cfg.width), nn.Linear(cfg.width, dim)
        )
        if cfg.residual:
            zero_init(self.head[-1])

    def network(self, x):
        h = self.inp(x) + self.positions
        # The context is both the sequence and the memory; both masks keep every position causal.
        h = self.decoder(
            h, h, tgt_mask=self.causal, memory_mask=self.causal, tgt_is_causal=True, memory_is_causal=True
        )
        return self.head(h[:, -1])
