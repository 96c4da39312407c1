"""The fitted baselines, kept under the storage folder so that each is fitted once.

``lvm-search ensemble`` fits the recency and ridge baselines at its k as candidates, and
``lvm-search report`` fits them again at every k its rows read: at k=16 and D=384 the ridge's normal
equations and one Cholesky factorisation per lambda take a quarter of a minute on a 2-core CPU, and
the same data gives the same fit. So the fit is kept in ``<storage>/.cache/baselines/``, one
safetensors file per data fingerprint (the vectors, the documents, k, min_context, horizon, the split
and any extra training files) and storage dtype, with what the fit tried (the lambda and decay grids)
in its metadata: anything else is another file or a refit. The package wrote these files, so one that
does not read back is fitted again, never an error; where the folder cannot be written the fit is
simply not kept.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..data.windows import LVMData
from ..store.runs import write_file
from .metrics import (
    RECENCY_DECAYS,
    RIDGE_LAMBDAS,
    RidgeBaseline,
    baseline_predictors,
    fit_baselines,
)

logger = logging.getLogger(__name__)

CACHE = Path(".cache") / "baselines"  # under --storage; a run name cannot start with "."
RIDGE_TENSORS = ("x_mean", "r_mean", "weights")


def fitted_baselines(data: LVMData, storage: str | Path) -> tuple[dict[str, object], dict[str, dict]]:
    """``fit_baselines(data)``, read from ``storage``'s cache where this data was fitted before."""
    path = (
        Path(storage)
        / CACHE
        / f"{data.fingerprint}-{str(data.vectors.dtype).removeprefix('torch.')}.safetensors"
    )
    key = _key(data)
    kept = _read(path, key)
    if kept is not None:
        logger.info(f"baselines at k={data.k}: read back from an earlier fit ({path})")
        return kept
    predictors, fitted = fit_baselines(data)
    ridge = predictors["ridge"]
    meta = {"key": json.dumps(key), "lambda": repr(ridge.lam), "decay": repr(fitted["recency"]["decay"])}
    try:
        write_file(
            path, save({name: getattr(ridge, name).contiguous() for name in RIDGE_TENSORS}, metadata=meta)
        )
    except OSError as e:  # a read-only storage folder: the report still comes, the fit is not kept
        logger.info(f"baselines at k={data.k}: not kept in {path.parent} ({e.strerror or e})")
    return predictors, fitted


def _key(data: LVMData) -> dict:
    return {
        "fingerprint": data.fingerprint,
        "dtype": str(data.vectors.dtype),
        "lambdas": RIDGE_LAMBDAS,
        "decays": [float(d) for d in RECENCY_DECAYS],
    }


def _read(path: Path, key: dict) -> tuple[dict[str, object], dict[str, dict]] | None:
    if not path.is_file():
        return None
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if json.loads(meta.get("key", "null")) != key:
                return None
            tensors = {name: f.get_tensor(name) for name in RIDGE_TENSORS}
            lam, decay = float(meta["lambda"]), float(meta["decay"])
    except (SafetensorError, OSError, ValueError, KeyError) as e:  # ours, and unreadable: fit again
        logger.info(f"{path}: not a readable baseline fit ({e}); fitting again")
        return None
    return baseline_predictors(RidgeBaseline(**tensors, lam=lam), decay)
