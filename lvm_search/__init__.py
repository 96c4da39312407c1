"""lvm-search: hyperparameter search and ensembling for latent vector models.

Public API: ``load_data``, ``load_model`` (a checkpoint folder), ``load_ensemble`` (an ensemble
folder), ``load_predictor`` (any of: a checkpoint, a run folder, an ensemble) and ``predict``.
They are imported on first use, so ``lvm-search --version`` and ``--help`` load neither torch nor
Ray. Ray is imported only by the search (``lvm_search.search.tuner``). The package logs to the
``lvm_search`` logger and prints nothing unless the caller configures logging.
"""

import importlib
import logging

__version__ = "0.3.0"

# name -> the module that defines it
_API = {
    "load_data": "data.windows",
    "load_ensemble": "ensemble.build",
    "load_model": "models.checkpoint",
    "load_predictor": "report.evaluate",
    "predict": "scoring.metrics",
}
__all__ = ["__version__", *sorted(_API)]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
