"""Warm starts (``--init``): a trained model's weights as the starting point of training.

The init is a checkpoint folder, a run folder (its best trial's checkpoint), or a folder holding one
of those per architecture, named after it (``lstm/``, ``gru/``...), for a run of several spaces. The
model trained from it must have the init's shapes, so the settings that size the weights (width,
depth, heads, ...: found by building the model on PyTorch's meta device, not listed by hand) take the
init's values: a setting the user left at its default or searched is fixed at the init's value, one
the user fixed to another value is refused in one line. Everything else (the recipe: lr, epochs,
decay, weight decay, dropout) is trained or searched as usual. Checkpoints and runs record the init
with a digest of its files, so a resume with another init, or with the same folder retrained in
between, is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import UserError, shown
from .models import build_model, config_fields
from .models.checkpoint import CONFIG, load_model
from .store.runs import SUMMARY, files_digest, read_summary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmStart:
    source: str  # what the user named, absolute: a checkpoint or run folder
    checkpoint: str  # the checkpoint folder the weights come from
    digest: str  # of the checkpoint's files (weights and config.json)
    arch: str
    dim: int
    k: int
    model_config: dict
    state: dict[str, torch.Tensor] = field(repr=False)  # on the CPU

    def describe(self) -> dict:
        """What a checkpoint and a run record of their init."""
        return {"source": self.source, "checkpoint": self.checkpoint, "digest": self.digest}


def load_init(path: str | Path, arch: str) -> WarmStart:
    """The weights of a checkpoint folder, or of a run folder's best trial. A folder that is neither
    but holds one such folder per architecture, named after it, gives the one of ``arch``: so one
    ``--init`` serves a run of several spaces."""
    source = Path(path).expanduser().resolve()
    if not (source / SUMMARY).is_file() and not (source / CONFIG).is_file():
        by_arch = source / arch
        if (by_arch / SUMMARY).is_file() or (by_arch / CONFIG).is_file():
            source = by_arch
    if (source / SUMMARY).is_file():
        summary = read_summary(source)
        if summary.best is None:
            raise UserError(f"{source}: --init: this run has no finished trial to start from")
        checkpoint = source / summary.best.checkpoint
    elif (source / CONFIG).is_file():
        checkpoint = source
    else:
        raise UserError(
            f"{source}: --init: not a checkpoint or run folder (no {CONFIG} or {SUMMARY}), "
            f"nor a folder with one for {arch} in {arch}/"
        )
    model, meta = load_model(checkpoint)
    return WarmStart(
        source=str(source),
        checkpoint=str(checkpoint),
        digest=files_digest(checkpoint),
        arch=meta["arch"],
        dim=meta["dim"],
        k=meta["k"],
        model_config=dict(meta["model_config"]),
        state={name: t.detach().cpu() for name, t in model.state_dict().items()},
    )


def same_init(recorded: dict | None, init: WarmStart | None) -> bool:
    if recorded is None or init is None:
        return recorded is None and init is None
    return recorded == init.describe()


def _shapes(arch: str, dim: int, k: int, model: dict) -> dict[str, tuple]:
    with torch.device("meta"):  # shapes only: no memory, no time
        return {name: tuple(t.shape) for name, t in build_model(arch, dim, k, **model).state_dict().items()}


def settings_from_init(
    init: WarmStart, arch: str, dim: int, given: dict, searched: dict[str, list], where: str
) -> dict:
    """The settings to fix so that the model has the init's shapes: each model setting (and ``k``) that
    sizes the weights, at the init's value. ``given``: the settings the user fixed (refused if one
    sizes them otherwise); ``searched``: the candidate values of each searched setting."""
    if arch != init.arch:
        raise UserError(f"{init.source}: --init is a checkpoint of arch {init.arch}, not {arch} ({where})")
    if dim != init.dim:
        raise UserError(f"{init.source}: --init reads D={init.dim} vectors; the data has D={dim}")
    values = {**init.model_config, "k": init.k}
    reference = _shapes(arch, dim, init.k, init.model_config)
    defaults = config_fields(arch)
    fixed = {}
    for name in (*defaults, "k"):
        candidates = searched.get(name) or [given.get(name, defaults.get(name, init.k))]
        if all(_sizes_alike(arch, dim, values, name, c, reference) for c in candidates):
            continue
        if name in given and name not in searched:
            theirs = shown(values[name])
            raise UserError(
                f"{where}: {name}={shown(given[name])} sizes the weights otherwise than --init "
                f"{init.source} ({name}={theirs}); leave it out or set it to {theirs}"
            )
        fixed[name] = values[name]
    if fixed:
        logger.info(
            f"--init {init.source}: "
            + ", ".join(f"{name}={shown(value)}" for name, value in fixed.items())
            + " (the init's: "
            + ("they size" if len(fixed) > 1 else "it sizes")
            + " the weights)"
        )
    return fixed


def _sizes_alike(arch: str, dim: int, values: dict, name: str, candidate, reference: dict) -> bool:
    settings = {**values, name: candidate}
    k = settings.pop("k")
    try:
        return _shapes(arch, dim, k, settings) == reference
    except (UserError, ValueError, TypeError, RuntimeError):  # a value this model cannot be built with
        return False
