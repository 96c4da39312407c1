"""Stacked LSTM; the last step's hidden state is projected back to the embedding space.

Seed defaults at D=768: LSTM(768->512, 2 layers) 4,726,784 + Linear(512->768) 393,984 = 5,120,768.
"""
from dataclasses import dataclass

from torch import nn

from ..errors import UserError
from .registry import finish, register, zero_init


@dataclass
class LSTMConfig:
    depth: int = 2  # LSTM layers
    width: int = 512  # hidden size
    dropout: float = 0.2  # between LSTM layers (PyTorch applies it only when depth > 1)
    residual: bool = False  # predict a correction to the context mean, last layer starting at zero
    base_decay: float = 1.0  # residual base: recency-weighted context mean (1 = plain mean)

    def validate(self):
        if self.depth < 1 or self.width < 1 or not 0 <= self.dropout < 1:
            raise UserError(f"lstm: depth and width must be >= 1 and 0 <= dropout < 1, got {self}")


@register("lstm", LSTMConfig)
class LSTMModel(nn.Module):
    def __init__(self, cfg: LSTMConfig, dim: int, k: int):
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(dim, cfg.width, cfg.depth, batch_first=True, dropout=cfg.dropout if cfg.depth > 1 else 0.0)
        self.out = nn.Linear(cfg.width, dim)
        if cfg.residual:
            zero_init(self.out)

    def forward(self, x):
        h, _ = self.lstm(x)
        return finish(x, self.out(h[:, -1]), self.cfg)
