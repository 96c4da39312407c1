"""Train one configuration on one device: per-epoch metrics and the best checkpoint. No Ray here.

Read it top to bottom: config, device, data, model, optimizer and schedule, the loop, evaluation.
The search wraps ``train`` in a Tune trainable; the CLI's ``train`` command and the benchmarks call
it directly. ``train`` may run hundreds of times in one process (Ray reuses actors), so it leaves
torch's process-wide settings (threads, TF32, the random generators) as it found them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
from torch.nn import functional as F

from .data.windows import LVMData
from .devices import computes_bf16, resolve_device
from .errors import TrainingDiverged, UserError, shown
from .limits import (
    MAX_BATCH_BYTES,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_PARAMS,
    MAX_SEED,
    MAX_THREADS,
    gib,
)
from .models import build_model, config_fields
from .models.checkpoint import save_checkpoint
from .scoring.metrics import cosines, predict
from .store import provenance, records
from .teacher import Teacher
from .warm_start import WarmStart

SCHEDULES = ("cosine", "plateau", "constant")
DATA_DTYPES = ("auto", "float32", "float16")

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    # model
    arch: str = "lstm"
    model: dict = field(default_factory=dict)  # overrides of the architecture's config dataclass
    # optimizer and schedule
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    schedule: str = "cosine"  # cosine (after linear warm-up), plateau (ReduceLROnPlateau), constant
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0
    # regularisation and loss (quality levers that did not win on linux-docs: off by default)
    context_dropout: float = 0.0  # probability of zeroing a whole context position in training
    input_noise: float = 0.0  # std of Gaussian noise added to context vectors (then re-normalised)
    infonce_weight: float = 0.0  # share of in-batch InfoNCE in the loss, mixed with the MSE
    infonce_temperature: float = 0.05
    # every winning trial used 0.99 or more
    ema: float = 0.99  # decay of an exponential moving average of the weights (0 = off)
    # With a teacher (an ensemble, lvm_search/ensemble/distill.py) the training target is
    # (1 - distill) * target + distill * the teacher's prediction; 0.5-1 scored alike on linux-docs val.
    distill: float = 0.8
    # system
    seed: int = 0
    device: str = "auto"  # auto picks cuda, then mps, then cpu
    # bf16 autocast on CUDA and CPU; auto: where the device computes in bf16 (devices.computes_bf16)
    bf16: bool | Literal["auto"] = False
    compile: bool = False  # torch.compile the model
    data_dtype: str = "auto"  # storage of the vectors on the device: auto = float16 on CUDA, else float32
    threads: int | None = None  # torch intra-op threads on CPU, for this call only

    def validate(self) -> "TrainConfig":
        config_fields(self.arch)  # raises on an unknown architecture
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name))
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {shown(self.epochs)}"),
            (self.epochs <= MAX_EPOCHS, f"epochs must be at most {MAX_EPOCHS:,}, got {shown(self.epochs)}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {shown(self.batch_size)}"),
            (
                self.batch_size <= MAX_BATCH_SIZE,
                f"batch_size must be at most {MAX_BATCH_SIZE:,}, got {shown(self.batch_size)}",
            ),
            (self.lr > 0, f"lr must be > 0, got {shown(self.lr)}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {shown(self.weight_decay)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {shown(self.schedule)}"),
            (
                0 <= self.warmup_epochs <= MAX_EPOCHS,
                f"warmup_epochs must be from 0 to {MAX_EPOCHS:,}, got {shown(self.warmup_epochs)}",
            ),
            (self.grad_clip >= 0, f"grad_clip must be >= 0 (0 = off), got {shown(self.grad_clip)}"),
            (
                0 <= self.context_dropout < 1,
                f"context_dropout must be in [0, 1), got {shown(self.context_dropout)}",
            ),
            (self.input_noise >= 0, f"input_noise must be >= 0, got {shown(self.input_noise)}"),
            (
                0 <= self.infonce_weight <= 1,
                f"infonce_weight must be in [0, 1], got {shown(self.infonce_weight)}",
            ),
            (
                self.infonce_temperature > 0,
                f"infonce_temperature must be > 0, got {shown(self.infonce_temperature)}",
            ),
            (0 <= self.ema < 1, f"ema must be in [0, 1) (0 = off), got {shown(self.ema)}"),
            (0 <= self.distill <= 1, f"distill must be in [0, 1], got {shown(self.distill)}"),
            (
                self.data_dtype in DATA_DTYPES,
                f"data_dtype must be one of {DATA_DTYPES}, got {shown(self.data_dtype)}",
            ),
            (
                self.threads is None or 1 <= self.threads <= MAX_THREADS,
                f"threads must be from 1 to {MAX_THREADS:,}, got {shown(self.threads)}",
            ),
            (0 <= self.seed <= MAX_SEED, f"seed must be from 0 to {MAX_SEED:,}, got {shown(self.seed)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        return self


def _check_type(name: str, value) -> None:
    """Settings arrive from YAML and --set: 2.5 is no batch size, "yes" is no flag. The field's
    annotation says, as ``records.parse`` reads it; the message is in the trainer's words."""
    try:
        records.parse_field(TrainConfig, name, value, name)
    except records.Mismatch as e:
        raise UserError(f"{name} expects {e.expected}, got {shown(value)}") from None


TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"arch", "model"}


def check_fits(cfg: TrainConfig, k: int, dim: int, where: str) -> None:
    """Refuse, before anything starts, a configuration whose batches or model are beyond the bounds
    (limits.py) on data of dimension ``dim`` read at context length ``k``. The model is built on
    torch's meta device: its parameters are counted, nothing is allocated."""
    batch_bytes = cfg.batch_size * k * dim * 4
    if batch_bytes > MAX_BATCH_BYTES:
        raise UserError(
            f"{where}: batch_size {cfg.batch_size:,} x k {k:,} x D {dim:,} is {gib(batch_bytes)} of float32 "
            f"contexts per batch, above the {gib(MAX_BATCH_BYTES)} lvm-search allows; lower batch_size or k"
        )
    with torch.device("meta"):
        model = build_model(cfg.arch, dim, k, **cfg.model)
    params = sum(p.numel() for p in model.parameters())
    if params > MAX_PARAMS:
        sizes = ", ".join(f"{key}={value}" for key, value in dataclasses.asdict(model.cfg).items())
        raise UserError(
            f"{where}: {cfg.arch} with {sizes} has {params:,} parameters at D={dim}, above the "
            f"{MAX_PARAMS:,} lvm-search allows; lower its sizes"
        )


@dataclass
class TrainResult:
    model: torch.nn.Module  # holding the best epoch's weights
    best: dict  # metrics of the best epoch (by val cosine)
    history: list[dict]
    meta: dict  # what a checkpoint's config.json records


# report(epoch, metrics, save) is called after every epoch; save(path) writes the current model as
# a checkpoint and is given only when val cosine improved, so callers keep the best one for free.
ReportFn = Callable[[int, dict, Callable[[str], None] | None], None]


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@contextlib.contextmanager
def torch_settings(device: torch.device, threads: int | None):
    """Threads and TF32 for one training run, restored afterwards (they are process-wide)."""
    saved = (torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if threads:
            torch.set_num_threads(threads)
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = (
                True  # TF32 matmuls: ~2x on Ampere+, cosine unaffected at 1e-3
            )
            torch.backends.cudnn.allow_tf32 = True
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1:]


@contextlib.contextmanager
def seeded(device: torch.device, seed: int):
    """torch's generators seeded for one training run (weight init, noise, dropout), then put back as
    they were: a caller's own random stream is not this run's business."""
    if device.type == "cuda":
        forked = [device.index if device.index is not None else torch.cuda.current_device()]
    else:
        forked = ["mps"] if device.type == "mps" else []
    with torch.random.fork_rng(forked, device_type=device.type if forked else None):
        torch.manual_seed(seed)
        yield


_device_copy: dict = {}  # one copy of the data per process and device, kept across trials


def on_device(data: LVMData, device: torch.device, dtype: torch.dtype) -> LVMData:
    key = (data.fingerprint, str(device), dtype)
    if key not in _device_copy:
        _device_copy.clear()
        _device_copy[key] = data.to(device, dtype)
    return _device_copy[key]


def train(
    cfg: TrainConfig,
    data: LVMData,
    report: ReportFn | None = None,
    command: str | None = None,
    teacher: Teacher | None = None,
    init: WarmStart | None = None,
) -> TrainResult:
    """``command``: the command line recorded in checkpoints (default: this process's).
    ``teacher``: the predictions ``cfg.distill`` mixes into the training targets.
    ``init``: the weights training starts from (``warm_start.settings_from_init`` gives its shapes)."""
    cfg.validate()
    device = resolve_device(cfg.device)
    with torch_settings(device, cfg.threads), seeded(device, cfg.seed):
        return _train(cfg, data, report, device, command, teacher, init)


def _train(
    cfg: TrainConfig,
    data: LVMData,
    report: ReportFn | None,
    device: torch.device,
    command,
    teacher: Teacher | None,
    init: WarmStart | None,
) -> TrainResult:
    # system (seeded by the caller: ``seeded``)
    bf16 = _bf16(cfg, device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    half = cfg.data_dtype == "float16" or (cfg.data_dtype == "auto" and device.type == "cuda")
    data = on_device(data, device, torch.float16 if half else torch.float32)
    soft = teacher.targets.to(device, data.vectors.dtype) if teacher else None
    n_train = len(data.splits["train"])
    if n_train == 0:
        raise UserError(f"{data.source}: the train split has no windows")

    # model
    model, meta = _model_and_meta(cfg, data, device, command, teacher, init)
    meta["bf16_autocast"] = bf16  # what bf16: auto (or true on MPS) came to on this device
    forward = torch.compile(model) if cfg.compile else model

    # optimizer and schedule
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    optimizer, step_schedule, plateau, ema = _optimizer_and_schedule(cfg, model, device, steps_per_epoch)
    # The order of the training windows comes from a CPU generator on every device: the same seed
    # gives the same batches on CPU, CUDA and MPS.
    generator = torch.Generator().manual_seed(cfg.seed)
    # With EMA the averaged copy is what gets evaluated, kept and saved; the raw weights only train.
    eval_model = ema.module if ema else model

    # the loop
    history, best, best_state = [], None, None
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(n_train, generator=generator).to(device)
        train_loss = _train_epoch(
            cfg, data, soft, order, model, forward, optimizer, step_schedule, ema, autocast, device
        )
        train_s = time.perf_counter() - t0
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch} (lr={cfg.lr})")

        # evaluation
        with autocast():
            val_pred = predict(eval_model, data, "val")
        val_target = data.targets("val")
        val_cosine = cosines(val_pred, val_target).mean().item()
        if plateau:
            plateau.step(val_cosine)
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": F.mse_loss(val_pred, val_target).item(),
            "val_cosine": val_cosine,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_s": time.perf_counter() - t0,
            "train_samples_per_s": n_train / train_s,
        }
        history.append(metrics)
        improved = best is None or val_cosine > best["val_cosine"]
        if improved:
            best = metrics
            best_state = {name: t.detach().clone() for name, t in eval_model.state_dict().items()}
        if report:
            save = None
            if improved:

                def save(path, epoch=epoch, metrics=metrics):
                    save_checkpoint(path, eval_model, {**meta, "epoch": epoch, "metrics": metrics})

            report(epoch, metrics, save)

    eval_model.load_state_dict(best_state)
    eval_model.eval()
    return TrainResult(eval_model, best, history, {**meta, "epoch": best["epoch"], "metrics": best})


def _bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether this run autocasts to bf16: auto where the device has bf16 units; true on CUDA and the
    CPU (MPS trains in float32)."""
    if cfg.bf16 == "auto":
        return computes_bf16(device) is True  # where torch cannot tell: float32, which works anywhere
    if not cfg.bf16 or device.type not in ("cuda", "cpu"):
        return False
    if device.type == "cpu" and computes_bf16(device) is False:
        # Measured on an AVX2 CPU (python-docs, one thread): 5x (GRU) to 8x (AMN) slower than float32,
        # and oneDNN has no bf16 LSTM there ("could not create a primitive descriptor").
        if cfg.arch == "lstm":
            raise UserError(
                "bf16: true: this CPU has no bf16 units (AVX-512 BF16 or AMX), and PyTorch's LSTM has no "
                "bf16 kernel for it; use bf16: auto or false"
            )
        logger.warning("bf16: true on a CPU without bf16 units: emulated, several times slower than float32")
    return True


def _model_and_meta(
    cfg: TrainConfig,
    data: LVMData,
    device: torch.device,
    command,
    teacher: Teacher | None,
    init: WarmStart | None,
) -> tuple[torch.nn.Module, dict]:
    """The model on ``device``, from ``init``'s weights if given, and what its checkpoints record."""
    model = build_model(cfg.arch, data.dim, data.k, **cfg.model).to(device)
    if init:
        try:
            model.load_state_dict(init.state)
        except RuntimeError as e:  # the callers fix the shapes first; this names what still differs
            first = str(e).strip().splitlines()[-1].strip()
            raise UserError(f"{init.source}: --init does not fit this {cfg.arch}: {first}") from None
    model_config = dataclasses.asdict(model.cfg)
    meta = {
        "arch": cfg.arch,
        "model_config": model_config,
        "train_config": {**dataclasses.asdict(cfg), "model": model_config},
        "dim": data.dim,
        "k": data.k,
        "fingerprint": data.fingerprint,
        "data": data.summary(),
        "params": sum(p.numel() for p in model.parameters()),
        "provenance": dataclasses.asdict(provenance.collect(device, command)),
        "teacher": teacher.describe() if teacher else None,
        "init": init.describe() if init else None,
    }
    return model, meta


def _optimizer_and_schedule(
    cfg: TrainConfig, model: torch.nn.Module, device: torch.device, steps_per_epoch: int
):
    """AdamW; the learning-rate schedule, stepped after every batch (cosine) or after every epoch
    (plateau); and the exponential moving average of the weights (None when ``cfg.ema`` is 0)."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda"
    )
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    step_schedule = plateau = None
    if cfg.schedule == "cosine":
        step_schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, warmup_steps, total_steps)
        )
    elif cfg.schedule == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=2)
    ema = None
    if cfg.ema:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True
        )
    return optimizer, step_schedule, plateau, ema


def _train_epoch(
    cfg: TrainConfig,
    data: LVMData,
    soft: torch.Tensor | None,
    order: torch.Tensor,
    model: torch.nn.Module,
    forward: Callable,
    optimizer: torch.optim.Optimizer,
    step_schedule,
    ema,
    autocast,
    device: torch.device,
) -> float:
    """One pass over the training windows in ``order``: the mean of its batch losses."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    batches = range(0, len(order), cfg.batch_size)
    for lo in batches:
        idx = order[lo : lo + cfg.batch_size]
        x, y = data.batch("train", idx)
        if soft is not None:
            y = torch.lerp(y, soft[idx].float(), cfg.distill)
        if cfg.input_noise:
            x = F.normalize(x + cfg.input_noise * torch.randn_like(x), dim=-1)
        if cfg.context_dropout:
            x = x * (torch.rand(x.shape[0], x.shape[1], 1, device=device) >= cfg.context_dropout)
        with autocast():
            pred = forward(x)
        loss = F.mse_loss(pred.float(), y)
        if cfg.infonce_weight:
            # In-batch negatives; divided by D to sit on the per-element MSE's scale.
            logits = pred.float() @ y.T / cfg.infonce_temperature
            nce = F.cross_entropy(logits, torch.arange(len(y), device=device))
            loss = (1 - cfg.infonce_weight) * loss + cfg.infonce_weight * nce / data.dim
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if ema:
            ema.update_parameters(model)
        if step_schedule:
            step_schedule.step()
        loss_sum += loss.detach()
    return loss_sum.item() / len(batches)  # one sync per epoch, not per batch
