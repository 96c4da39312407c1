"""Checkpoints: a folder with ``model.safetensors`` and ``config.json``; loading never unpickles.

``config.json`` holds everything needed to rebuild the model (architecture, its config, D, k), to
check it against data (the data fingerprint and summary), the epoch and metrics it was saved at,
and its provenance. A save replaces an existing folder only if that folder is itself a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError, reason
from ..models import build_model
from ..store.runs import check_replaceable, read_json, write_folder

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
# Checkpoints written before provenance was recorded (lvm-search 0.1) left out settings whose
# defaults have changed since; they mean what 0.1's defaults meant.
V01_MODEL_DEFAULTS = {"residual": False, "base_decay": 1.0}


def is_checkpoint(path: Path) -> bool:
    """A folder holding a config.json and at most the weights beside it: one that save_checkpoint wrote."""
    path = Path(path)
    return (
        path.is_dir() and (path / CONFIG).is_file() and {p.name for p in path.iterdir()} <= {WEIGHTS, CONFIG}
    )


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict) -> Path:
    """Write ``model`` and ``meta`` (arch, model_config, dim, k, fingerprint, ...) to folder ``path``."""

    def fill(folder: Path) -> None:
        state = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
        save_file(state, folder / WEIGHTS)
        (folder / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))

    return write_folder(Path(path), fill, is_checkpoint, "a checkpoint folder")


def check_checkpoint_path(path: str | Path) -> None:
    """Refuse now a path ``save_checkpoint`` would refuse after training."""
    check_replaceable(Path(path), is_checkpoint, "a checkpoint folder")


def read_meta(path: str | Path) -> dict:
    config = Path(path) / CONFIG
    if not config.is_file():
        raise UserError(f"{path}: not a checkpoint folder (no {CONFIG})")
    meta = read_json(config)
    if not isinstance(meta, dict):
        raise UserError(f"{config}: expected a JSON object")
    missing = {"arch", "model_config", "dim", "k", "fingerprint"} - set(meta)
    if missing:
        raise UserError(f"{config}: missing field(s) {sorted(missing)}")
    if not isinstance(meta["model_config"], dict):
        raise UserError(f"{config}: model_config: expected an object")
    for key in ("dim", "k"):
        if isinstance(meta[key], bool) or not isinstance(meta[key], int) or meta[key] < 1:
            raise UserError(f"{config}: {key}: expected a positive integer, got {meta[key]!r}")
    if not isinstance(meta["fingerprint"], str):
        raise UserError(f"{config}: fingerprint: expected text")
    if "provenance" not in meta:
        if meta["arch"] == "amn" and not meta["model_config"].get("residual", False):
            raise UserError(
                f"{config}: an AMN saved by lvm-search 0.1 with residual off predicts mean + MLP, "
                "which residual: false no longer means; retrain it"
            )
        meta["model_config"] = {**V01_MODEL_DEFAULTS, **meta["model_config"]}
    return meta


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the model of checkpoint folder ``path`` in eval mode; returns (model, meta)."""
    meta = read_meta(path)
    try:
        model = build_model(meta["arch"], meta["dim"], meta["k"], **meta["model_config"])
    except UserError as e:
        raise UserError(f"{Path(path) / CONFIG}: {e}") from None
    weights = Path(path) / WEIGHTS
    if not weights.is_file():
        raise UserError(f"{path}: not a checkpoint folder (no {WEIGHTS})")
    try:
        state = load_file(weights)  # safetensors: plain tensors only, nothing is executed
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{weights}: not a readable safetensors file ({reason(e)})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = reason(e)
        raise UserError(f"{weights}: weights do not fit the model in {CONFIG} ({first})") from None
    return model.to(device).eval(), meta


def check_fingerprint(meta: dict, fingerprint: str, where: str | Path) -> None:
    if meta["fingerprint"] != fingerprint:
        raise UserError(
            f"{where}: checkpoint was trained on data with fingerprint {meta['fingerprint']}, "
            f"but this data (or its split) has fingerprint {fingerprint}"
        )


def check_dimension(meta: dict, dim: int, where: str | Path, data_source: str) -> None:
    if meta["dim"] != dim:
        raise UserError(f"{where}: the model reads D={meta['dim']} vectors, but {data_source} has D={dim}")
