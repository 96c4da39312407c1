"""Stacked LSTM; the last step's hidden state is projected back to the embedding space.

Reference sizes at D=768: LSTM(768->512, 2 layers) 4,726,784 + Linear(512->768) 393,984 = 5,120,768.
"""

from dataclasses import dataclass

from torch import nn

from ..errors import UserError
from .registry import DEFAULT_BASE_DECAY, DEFAULT_RESIDUAL, register
from .residual import LVM, zero_init


@dataclass
class LSTMConfig:
    depth: int = 2  # LSTM layers
    width: int = 512  # hidden size
    dropout: float = 0.2  # between LSTM layers (PyTorch applies it only when depth > 1)
    residual: bool = DEFAULT_RESIDUAL  # see residual.py
    base_decay: float = DEFAULT_BASE_DECAY  # the residual base's recency weighting (1 = plain mean)

    def validate(self):
        if self.depth < 1 or self.width < 1 or not 0 <= self.dropout < 1:
            raise UserError(f"lstm: depth and width must be >= 1 and 0 <= dropout < 1, got {self}")


@register("lstm", LSTMConfig)
class LSTMModel(LVM):
    def __init__(self, cfg: LSTMConfig, dim: int, k: int):
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(
            dim, cfg.width, cfg.depth, batch_first=True, dropout=cfg.dropout if cfg.depth > 1 else 0.0
        )
        self.out = nn.Linear(cfg.width, dim)
        if cfg.residual:
            zero_init(self.out)

    def network(self, x):
        h, _ = self.lstm(x)
        return self.out(h[:, -1])
