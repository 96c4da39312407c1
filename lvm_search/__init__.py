"""lvm-search: hyperparameter search and ensembling for latent vector models.

Public API: ``load_data``, ``load_model`` (a checkpoint folder), ``load_ensemble`` (an ensemble
folder), ``load_predictor`` (any of: a checkpoint, a run folder, an ensemble) and ``predict``.
Ray is imported only by the search (``lvm_search.search``).
"""

__version__ = "0.2.0"

from .checkpoint import load_model  # noqa: E402
from .data import load_data  # noqa: E402
from .ensemble import load_ensemble  # noqa: E402
from .evaluate import load_predictor  # noqa: E402
from .metrics import predict  # noqa: E402

__all__ = ["__version__", "load_data", "load_ensemble", "load_model", "load_predictor", "predict"]
