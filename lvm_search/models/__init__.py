"""The architecture registry: name -> (config dataclass, model class).

Every model maps contexts [B, k, D] to an L2-normalised prediction [B, D]. Adding an architecture
means one module here (a config dataclass plus an ``nn.Module`` decorated with ``@register``) and
one YAML under ``spaces/``.
"""
from .registry import ARCHITECTURES, Architecture, build_model, config_fields, get_architecture, register
from . import amn, gru, lstm, transformer  # noqa: F401  (importing registers them)

__all__ = ["ARCHITECTURES", "Architecture", "build_model", "config_fields", "get_architecture", "register"]
