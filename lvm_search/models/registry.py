"""A small registry in the spirit of Optuna's samplers: architectures announce themselves by name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from ..errors import UserError, expected_kind, is_finite_number, shown
from ..limits import MAX_DEPTH, MAX_LAYER_SIZE

# The recipe that won on validation (reports/quality.md): every best trial of every architecture
# predicted a residual over a recency-weighted mean, with decays of 0.67 to 0.79.
DEFAULT_RESIDUAL = True
DEFAULT_BASE_DECAY = 0.75
# Sizes that nothing else bounds (a width of 10**9 would be found out by the allocator, mid-search).
SIZE_BOUNDS = {
    "depth": MAX_DEPTH,
    "width": MAX_LAYER_SIZE,
    "ff": MAX_LAYER_SIZE,
    "key_dim": MAX_LAYER_SIZE,
    "heads": MAX_LAYER_SIZE,
}


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
        return model_cls

    return wrap


def get_architecture(name: str) -> Architecture:
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise UserError(f"unknown architecture {name!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[name]


def config_fields(name: str) -> dict[str, object]:
    """The config fields of an architecture with their defaults."""
    return {f.name: f.default for f in dataclasses.fields(get_architecture(name).config_cls)}


def make_config(name: str, **overrides):
    """The architecture's config dataclass with ``overrides``, validated (no model is built)."""
    arch = get_architecture(name)
    defaults = config_fields(name)
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise UserError(f"{name}: unknown model setting(s) {sorted(unknown)} (known: {sorted(defaults)})")
    for key, value in overrides.items():
        if not _same_kind(value, defaults[key]):
            raise UserError(
                f"{name}: setting '{key}' expects {expected_kind(type(defaults[key]))}, got {shown(value)}"
            )
    for key, bound in SIZE_BOUNDS.items():
        value = overrides.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > bound:
            raise UserError(f"{name}: {key} must be at most {bound:,}, got {shown(value)}")
    cfg = arch.config_cls(**overrides)
    cfg.validate()
    if not 0 <= cfg.base_decay <= 1:
        raise UserError(f"{name}: base_decay must be in [0, 1] (1 = plain mean), got {shown(cfg.base_decay)}")
    return cfg


def build_model(name: str, dim: int, k: int, **overrides) -> nn.Module:
    return get_architecture(name).model_cls(make_config(name, **overrides), dim, k)


def _same_kind(value, default) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return is_finite_number(value)
    return True
