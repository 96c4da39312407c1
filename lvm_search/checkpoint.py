"""Checkpoints: a folder with ``model.safetensors`` and ``config.json``; loading never unpickles.

``config.json`` holds everything needed to rebuild the model (architecture, its config, D, k) and to
check it against data (the data fingerprint), plus the epoch and metrics it was saved at.
Writes are atomic: the folder is written beside its destination and renamed into place.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import UserError
from .models import build_model

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict) -> Path:
    """Write ``model`` and ``meta`` (arch, model_config, dim, k, fingerprint, ...) to folder ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        state = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
        save_file(state, tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_meta(path: str | Path) -> dict:
    config = Path(path) / CONFIG
    if not config.is_file():
        raise UserError(f"{path}: not a checkpoint folder (no {CONFIG})")
    try:
        meta = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{config}: not valid JSON ({e})") from None
    missing = {"arch", "model_config", "dim", "k", "fingerprint"} - set(meta)
    if missing:
        raise UserError(f"{config}: missing field(s) {sorted(missing)}")
    return meta


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the model of checkpoint folder ``path`` in eval mode; returns (model, meta)."""
    meta = read_meta(path)
    model = build_model(meta["arch"], meta["dim"], meta["k"], **meta["model_config"])
    weights = Path(path) / WEIGHTS
    if not weights.is_file():
        raise UserError(f"{path}: not a checkpoint folder (no {WEIGHTS})")
    try:
        state = load_file(weights)  # safetensors: plain tensors only, nothing is executed
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{weights}: not a readable safetensors file ({e})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{weights}: weights do not fit the model in {CONFIG} ({first})") from None
    return model.to(device).eval(), meta


def check_fingerprint(meta: dict, fingerprint: str, where: str | Path) -> None:
    if meta["fingerprint"] != fingerprint:
        raise UserError(
            f"{where}: checkpoint was trained on data with fingerprint {meta['fingerprint']}, "
            f"but this data (or its split) has fingerprint {fingerprint}"
        )
