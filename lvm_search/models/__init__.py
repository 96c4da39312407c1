"""The architecture registry: name -> (config dataclass, model class).

Every model maps contexts [B, k, D] to an L2-normalised prediction [B, D]; ``residual`` and the
padding convention are defined once, in ``residual.py``. Adding an architecture means one module
here (a config dataclass plus an ``nn.Module`` decorated with ``@register``) and one YAML under
``spaces/``.
"""

from . import amn, gru, lstm, transformer  # noqa: F401  (importing registers them)
from .registry import (
    ARCHITECTURES,
    Architecture,
    build_model,
    config_fields,
    get_architecture,
    make_config,
    register,
)
from .residual import context_mean, real_positions
from .rollout import Rollout

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Rollout",
    "build_model",
    "config_fields",
    "context_mean",
    "get_architecture",
    "make_config",
    "real_positions",
    "register",
]
