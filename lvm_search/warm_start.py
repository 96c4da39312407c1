"""Warm starts (``--init``): a trained model's weights as the starting point of training.

The init is a checkpoint folder, a run folder (its best trial's checkpoint), or a folder holding one
of those per architecture, named after it (``lstm/``, ``gru/``...), for a run of several spaces.
Training starts from what the init computes: the model settings that size its weights (width,
depth, ...: found by building the model on PyTorch's meta device) or change what they compute (heads,
residual, base_decay: found by running the init's weights on a fixed input), none listed by hand,
take the init's values where the user left them at their default or searched them. A setting the
user fixed otherwise is refused in one line if it sizes the weights, and kept, with a warning, if it
only changes what they compute. Everything else (the recipe: lr, epochs, weight decay, dropout,
batch size, and the context length k) is trained or searched as usual. Checkpoints and runs record
the init with a digest of its weights and config.json, so a resume with other weights is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import UserError, shown
from .models import build_model, config_fields
from .models.checkpoint import CONFIG, WEIGHTS, load_model
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
    try:
        return _load_init(Path(path).expanduser(), arch)
    except (OSError, RuntimeError) as e:  # unreadable, or a symbolic link loop
        raise UserError(f"{path}: --init: cannot read it ({getattr(e, 'strerror', None) or e})") from None


def _load_init(path: Path, arch: str) -> WarmStart:
    source = path.resolve()
    if source.is_file() and source.name in (WEIGHTS, CONFIG):  # a file of a checkpoint: its folder
        source = source.parent
    if not source.exists():
        raise UserError(f"{path}: --init: no such file or folder")
    if not (source / SUMMARY).is_file() and not (source / CONFIG).is_file():
        by_arch = source / arch
        if (by_arch / SUMMARY).is_file() or (by_arch / CONFIG).is_file():
            source = by_arch.resolve()  # a link to a run folder counts as that folder
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
        digest=files_digest(checkpoint, (WEIGHTS, CONFIG)),  # not a .DS_Store a file browser added
        arch=meta["arch"],
        dim=meta["dim"],
        k=meta["k"],
        model_config=dict(meta["model_config"]),
        state={name: t.detach().cpu() for name, t in model.state_dict().items()},
    )


def same_init(recorded: dict | None, init: WarmStart | None) -> bool:
    """Whether a run recorded these weights: by their digest, so a project moved or mounted elsewhere
    still resumes."""
    if recorded is None or init is None:
        return recorded is None and init is None
    return recorded["digest"] == init.digest


def _shapes(arch: str, dim: int, k: int, model: dict) -> dict[str, tuple]:
    with torch.device("meta"):  # shapes only: no memory, no time
        return {name: tuple(t.shape) for name, t in build_model(arch, dim, k, **model).state_dict().items()}


def settings_from_init(
    init: WarmStart, arch: str, dim: int, given: dict, searched: dict[str, list], where: str
) -> dict:
    """The settings to fix so that training starts from what the init computes: each model setting
    (and ``k``) that sizes the weights, and each model setting that changes what they compute, at the
    init's value. ``given``: the settings the user fixed (refused if one sizes the weights otherwise;
    kept, with a warning, if it only changes what they compute); ``searched``: the candidate values
    of each searched setting."""
    if arch != init.arch:
        raise UserError(f"{init.source}: --init is a checkpoint of arch {init.arch}, not {arch} ({where})")
    if dim != init.dim:
        raise UserError(f"{init.source}: --init reads D={init.dim} vectors; the data has D={dim}")
    values = {**init.model_config, "k": init.k}
    reference = _shapes(arch, dim, init.k, init.model_config)
    predictions = _predictions(init, init.model_config)
    defaults = config_fields(arch)
    fixed = {}
    for name in (*defaults, "k"):
        candidates = searched.get(name) or [given.get(name, defaults.get(name, init.k))]
        user_fixed = name in given and name not in searched
        theirs = shown(values[name])
        if not all(_sizes_alike(arch, dim, values, name, c, reference) for c in candidates):
            if user_fixed:
                _check_builds(arch, dim, values, name, given[name], f"{where}: --init {init.source}")
                raise UserError(
                    f"{where}: {name}={shown(given[name])} sizes the weights otherwise than --init "
                    f"{init.source} ({name}={theirs}); leave it out or set it to {theirs}"
                )
            fixed[name] = values[name]
        elif name != "k" and not all(_computes_alike(init, name, c, predictions) for c in candidates):
            if user_fixed:
                logger.warning(
                    f"{where}: {name}={shown(given[name])} changes what --init {init.source} computes "
                    f"({name}={theirs}); training starts from its weights with it as set"
                )
            else:
                fixed[name] = values[name]
    if fixed:
        logger.info(
            f"--init {init.source}: "
            + ", ".join(f"{name}={shown(value)}" for name, value in fixed.items())
            + " (the init's: training starts from what it computes)"
        )
    return fixed


def _predictions(init: WarmStart, model: dict) -> torch.Tensor:
    """The init's weights, built with ``model``, on a fixed input (in eval mode: so dropout changes
    nothing, the number of heads or the base does)."""
    probe = torch.nn.functional.normalize(
        torch.randn(4, init.k, init.dim, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    net = build_model(init.arch, init.dim, init.k, **model)
    net.load_state_dict(init.state)
    with torch.no_grad():
        return net.eval()(probe)


def _computes_alike(init: WarmStart, name: str, candidate, predictions: torch.Tensor) -> bool:
    """Whether the init's weights, built with ``name=candidate`` (the init's shapes: checked before),
    give the init's ``predictions``."""
    return torch.allclose(_predictions(init, {**init.model_config, name: candidate}), predictions, atol=1e-6)


def _shapes_with(arch: str, dim: int, values: dict, name: str, value) -> dict[str, tuple]:
    """The weights' shapes with the init's settings (``values``, k among them) but ``name=value``."""
    settings = {**values, name: value}
    k = settings.pop("k")
    return _shapes(arch, dim, k, settings)


UNBUILDABLE = (UserError, ValueError, TypeError, RuntimeError)  # a value this model cannot be built with


def _check_builds(arch: str, dim: int, values: dict, name: str, value, where: str) -> None:
    """Refuse ``name=value`` in the model's own words where the init's other settings cannot take it
    (heads that do not divide the init's width): rather than say it sizes the weights otherwise."""
    try:
        _shapes_with(arch, dim, values, name, value)
    except UNBUILDABLE as e:
        raise UserError(f"{where}: {name}={shown(value)} with the init's other settings: {e}") from None


def _sizes_alike(arch: str, dim: int, values: dict, name: str, candidate, reference: dict) -> bool:
    try:
        return _shapes_with(arch, dim, values, name, candidate) == reference
    except UNBUILDABLE:
        return False
