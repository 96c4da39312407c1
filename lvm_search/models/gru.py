"""GRU blocks with a residual connection and LayerNorm, between an in- and an out-projection.

Reference sizes at D=768: Linear(768->512) 393,728 + 4 x [GRU(512->512) 1,575,936 + LayerNorm 1,024]
+ Linear(512->768) 393,984 = 7,095,552.
"""

from dataclasses import dataclass

from torch import nn

from ..errors import UserError
from .registry import DEFAULT_BASE_DECAY, DEFAULT_RESIDUAL, register
from .residual import LVM, zero_init


@dataclass
class GRUConfig:
    depth: int = 4  # GRU blocks
    width: int = 512
    dropout: float = 0.1  # on each block's GRU output, before the residual add
    residual: bool = DEFAULT_RESIDUAL  # see residual.py
    base_decay: float = DEFAULT_BASE_DECAY  # the residual base's recency weighting (1 = plain mean)

    def validate(self):
        if self.depth < 1 or self.width < 1 or not 0 <= self.dropout < 1:
            raise UserError(f"gru: depth and width must be >= 1 and 0 <= dropout < 1, got {self}")


class GRUBlock(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.gru = nn.GRU(width, width, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width)

    def forward(self, h):
        return self.norm(h + self.drop(self.gru(h)[0]))


@register("gru", GRUConfig)
class GRUModel(LVM):
    def __init__(self, cfg: GRUConfig, dim: int, k: int):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(dim, cfg.width)
        self.blocks = nn.Sequential(*[GRUBlock(cfg.width, cfg.dropout) for _ in range(cfg.depth)])
        self.out = nn.Linear(cfg.width, dim)
        if cfg.residual:
            zero_init(self.out)

    def network(self, x):
        h = self.blocks(self.inp(x))
        return self.out(h[:, -1])
