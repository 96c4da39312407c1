"""A small registry in the spirit of Optuna's samplers: architectures announce themselves by name."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ..data import context_mean
from ..errors import UserError


@dataclass(frozen=True)
class Architecture:
    name: str
    config_cls: type
    model_cls: type


ARCHITECTURES: dict[str, Architecture] = {}


def register(name: str, config_cls: type):
    """Class decorator: ``@register("lstm", LSTMConfig)`` on the model class."""

    def wrap(model_cls):
        ARCHITECTURES[name] = Architecture(name, config_cls, model_cls)
        model_cls.arch_name = name
        return model_cls

    return wrap


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise UserError(f"unknown architecture '{name}' (known: {', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[name]


def config_fields(name: str) -> dict[str, object]:
    """The config fields of an architecture with their seed defaults."""
    return {f.name: f.default for f in dataclasses.fields(get_architecture(name).config_cls)}


def build_model(name: str, dim: int, k: int, **overrides) -> nn.Module:
    arch = get_architecture(name)
    defaults = config_fields(name)
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise UserError(f"{name}: unknown model setting(s) {sorted(unknown)} (known: {sorted(defaults)})")
    for key, value in overrides.items():
        if not _same_kind(value, defaults[key]):
            raise UserError(f"{name}: setting '{key}' expects a {type(defaults[key]).__name__}, got {value!r}")
    cfg = arch.config_cls(**overrides)
    if hasattr(cfg, "validate"):
        cfg.validate()
    if not 0 <= cfg.base_decay <= 1:
        raise UserError(f"{name}: base_decay must be in [0, 1] (1 = plain mean), got {cfg.base_decay}")
    return arch.model_cls(cfg, dim, k)


def _same_kind(value, default) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return True


def finish(contexts: torch.Tensor, out: torch.Tensor, cfg) -> torch.Tensor:
    """Add the (recency-weighted) context mean when the model predicts a residual, then L2-normalise."""
    if cfg.residual:
        out = context_mean(contexts, cfg.base_decay) + out
    return nn.functional.normalize(out.float(), dim=-1)


def zero_init(layer: nn.Linear) -> None:
    """A zero last layer makes a fresh residual model score exactly the mean-of-context baseline."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
