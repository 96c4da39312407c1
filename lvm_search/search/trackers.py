"""Ray Tune's own experiment trackers, opt-in: ``--log tensorboard|mlflow|wandb`` or ``loggers:``.

Each is Tune's callback, given what this search knows: TensorBoard event files in every trial's
folder of the run (``tensorboard --logdir runs/lstm``); MLflow runs in the experiment named after the
run, in ``MLFLOW_TRACKING_URI`` where set, else a local SQLite store in the run folder (``mlflow.db``:
MLflow 3 refuses its old file store; ``mlflow ui --backend-store-uri sqlite:///runs/lstm/mlflow.db``);
Weights & Biases runs in the project named after the run (``WANDB_MODE=offline`` keeps them local).
Each needs an optional package; a missing one is one line naming the extra, before Ray starts.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from urllib.parse import urlparse

from ..errors import UserError

MLFLOW_DB = "mlflow.db"
# tracker -> (the module it imports, the extra that installs it)
NEEDS = {
    "tensorboard": ("tensorboardX", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
}


def check_installed(names: tuple[str, ...]) -> None:
    """Every tracker asked for can start: its package is here, and MLflow's store is one it takes."""
    for name in names:
        module, extra = NEEDS[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(
                f"tracker {name} (--log or loggers:): needs the {module} package, which is not installed: "
                f"pip install 'lvm-search[{extra}]'"
            )
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if "mlflow" in names and uri and urlparse(uri).scheme in ("", "file"):
        raise UserError(
            f"MLFLOW_TRACKING_URI={uri}: a file store, which MLflow 3 refuses; give a database "
            "(sqlite:///path/mlflow.db) or a tracking server, or unset it for the run folder's mlflow.db"
        )


def callbacks(names: tuple[str, ...], folder: Path) -> list:
    """Tune callbacks for ``names``, for the run in ``folder``."""
    made = []
    for name in names:
        if name == "tensorboard":
            from ray.tune.logger import TBXLoggerCallback

            made.append(TBXLoggerCallback())
        elif name == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{folder / MLFLOW_DB}"
            made.append(MLflowLoggerCallback(tracking_uri=uri, experiment_name=folder.name))
        elif name == "wandb":
            from ray.air.integrations.wandb import WandbLoggerCallback

            made.append(WandbLoggerCallback(project=folder.name))
    return made
