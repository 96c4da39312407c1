"""lvm-search: hyperparameter search and ensembling for latent vector models.

Public API: ``load_data``, ``load_model`` (a checkpoint folder), ``load_ensemble`` (an ensemble
folder) and ``predict``. Ray is imported only by ``lvm_search.search``.
"""
from .checkpoint import load_model
from .data import load_data
from .ensemble import load_ensemble
from .metrics import predict

__all__ = ["load_data", "load_ensemble", "load_model", "predict"]
__version__ = "0.1.0"
