"""Search-space files: YAML -> a validated ``SearchSpace`` -> Optuna distributions.

A space file (see ``spaces/*.yaml``)::

    arch: lstm                 # a registered architecture
    samples: 12                # trials in the search
    budget_epochs: 300         # optional: stop once the trials have trained this many epochs in all
    seed: 0                    # the sampler's seed
    max_concurrent: auto       # trials at once: auto fills the machine (GPUs / gpus_per_trial, else
                               # CPUs / cpus_per_trial), never more than samples
    scheduler: {type: asha, grace_period: 3, reduction_factor: 3}   # or {type: none}
    sampler: auto              # auto, tpe, gp or random
    loggers: [tensorboard]     # optional: Ray Tune's trackers (tensorboard, mlflow, wandb), as --log
    resources: {cpus_per_trial: 1, gpus_per_trial: auto, device: auto}
    data: {k: 12, min_context: 5}   # context length (trial 0's where k is searched: the data is
                               # then loaded at the longest k); targets need min_context earlier passages;
                               # horizon: h predicts the passage h steps after the context (default 1);
                               # teacher: ENSEMBLE_FOLDER distils that ensemble (distill: 0.8 default)
    fixed: {schedule: cosine}  # settings held constant
    reference: {width: 256}    # trial 0's searched settings, where not the architecture's defaults
    space:                     # searched settings, each one of:
      depth: {type: int, low: 1, high: 3}
      lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
      batch_size: {type: choice, values: [128, 256, 512]}
      k: {type: choice, values: [5, 8, 12, 16]}   # the context length itself, per trial

Keys of ``fixed`` and ``space`` are fields of the architecture's config dataclass (depth, width,
dropout, residual, ...), of ``TrainConfig`` (epochs, lr, batch_size, ...), or ``k``. The reference
configuration (the architecture's defaults with the trainer's defaults, at ``data.k``, with the
space's ``reference`` settings on top) must lie inside the space: it is always trial 0, so a search
can only match or beat it.

Everything is checked before Ray starts: each value's type and range by ``store.records``, from the
annotations of the dataclasses below; here, what no type can say, down to every value any trial
could be given (each choice and both ends of each range, in combination), which must make a valid
configuration. Every mistake raises ``UserError`` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import optuna

from ..data.windows import DEFAULT_K, check_context_length
from ..devices import parse_device
from ..errors import UserError, shown
from ..limits import MAX_BUDGET_EPOCHS, MAX_EPOCHS, MAX_K, MAX_RESOURCE, MAX_SAMPLES, MAX_SEED, MIN_RESOURCE
from ..models import config_fields, make_config
from ..store import records
from ..store.yaml_files import read_yaml
from ..train import TRAIN_FIELDS, TrainConfig, check_fits

METRIC = "val_cosine"  # maximised
NOT_SEARCHABLE = {"device", "threads"}  # set per trial by the search from its resources
DATA_SETTINGS = {"k"}  # searched like the others, but they choose a view of the data
MAX_COMBINATIONS_CHECKED = 4096
LOGGERS = ("tensorboard", "mlflow", "wandb")


@dataclass(frozen=True)
class Dimension:
    type: Literal["int", "float", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    values: tuple = ()

    def contains(self, value) -> bool:
        if self.type == "choice":
            return value in self.values
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not self.low <= value <= self.high:
            return False
        return (
            self.step is None
            or abs((value - self.low) / self.step - round((value - self.low) / self.step)) < 1e-9
        )

    def clamp(self, value):
        if self.type == "choice":
            return value
        return type(value)(min(max(value, self.low), self.high))

    def corners(self) -> tuple:
        """The values that bound what a trial can be given: each choice, or both ends of a range."""
        return self.values if self.type == "choice" else tuple(dict.fromkeys((self.low, self.high)))

    def largest(self):
        return max(self.values) if self.type == "choice" else self.high

    def to_optuna(self) -> optuna.distributions.BaseDistribution:
        if self.type == "choice":
            return optuna.distributions.CategoricalDistribution(list(self.values))
        if self.type == "int":
            return optuna.distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class Scheduler:
    type: Literal["asha", "none"] = "asha"
    grace_period: int = field(default=3, metadata={"range": (1, None)})
    reduction_factor: float = 3.0  # > 1


@dataclass(frozen=True)
class Resources:
    cpus_per_trial: float = 1.0
    # "auto": a quarter of a GPU per trial where the cluster has GPUs (four trials sharing an H200
    # gave 3.0x (Transformer) to 4.0x (LSTM) the throughput of one, see reports/benchmarks.md), else none.
    # Apple's GPU counts as one GPU (Ray 2.60 does so on a Mac), so four MPS trials share it too.
    gpus_per_trial: float | Literal["auto"] = "auto"
    # auto: a GPU where the cluster counts one (CUDA, or Apple's GPU where MPS really works), else CPU.
    device: str = "auto"


@dataclass(frozen=True)
class DataSpec:
    """How the data is windowed, and the ensemble every trial learns from (if any); ``--k``,
    ``--min-context``, ``--horizon`` and ``--teacher`` override it. None: load_data's default, no teacher."""

    k: int | None = field(default=None, metadata={"range": (1, MAX_K)})
    min_context: int | None = field(default=None, metadata={"range": (1, MAX_K)})  # <= k
    # predict the passage this many steps after the context (None: 1)
    horizon: int | None = field(default=None, metadata={"range": (1, MAX_K)})
    # an ensemble folder built on this data's split (lvm_search/ensemble/distill.py), from the current folder
    teacher: str | None = None


@dataclass(frozen=True)
class SearchSpace:
    arch: str
    samples: int = field(default=12, metadata={"range": (1, MAX_SAMPLES)})
    seed: int = field(default=0, metadata={"range": (0, MAX_SEED)})
    max_concurrent: int | Literal["auto"] = field(default="auto", metadata={"range": (1, None)})
    scheduler: Scheduler = field(default_factory=Scheduler)
    resources: Resources = field(default_factory=Resources)
    fixed: dict = field(default_factory=dict)
    space: dict[str, Dimension] = field(default_factory=dict)
    sampler: Literal["auto", "tpe", "gp", "random"] = "auto"
    data: DataSpec = field(default_factory=DataSpec)
    # compute budget: epochs trained by all trials together
    budget_epochs: int | None = field(default=None, metadata={"range": (1, MAX_BUDGET_EPOCHS)})
    reference: dict = field(default_factory=dict)  # trial 0's searched settings, where not the defaults
    source: str = field(default="", metadata=records.NOT_READ)  # the file
    loggers: tuple[str, ...] = ()  # Ray Tune's trackers besides the JSON logger: tensorboard, mlflow, wandb

    @property
    def max_epochs(self) -> int:
        dim = self.space.get("epochs")
        if dim is None:
            return int(self.fixed.get("epochs", TrainConfig.epochs))
        return int(dim.largest())

    def planned_epochs(self, config: dict) -> int:
        return int(config.get("epochs", self.fixed.get("epochs", TrainConfig.epochs)))

    @property
    def reference_k(self) -> int:
        return int(self.fixed.get("k", self.data.k or DEFAULT_K))

    @property
    def load_k(self) -> int:
        """The context length the data is loaded at: the longest any trial reads."""
        return int(self.space["k"].largest()) if "k" in self.space else self.reference_k

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {name: dim.to_optuna() for name, dim in self.space.items()}

    def resolved_sampler(self) -> str:
        """``auto``: a Gaussian process where every searched setting is numeric and every trial runs
        to the end, else multivariate TPE. GPSampler models categorical settings poorly, and it learns
        only from finished trials: under ASHA, which stops most of them, it stays in its random
        start-up (reports/benchmarks.md: GP + ASHA found what random + ASHA found), while TPE also
        learns from the stopped ones."""
        if self.sampler != "auto":
            return self.sampler
        numeric = all(d.type != "choice" for d in self.space.values())
        return "gp" if numeric and self.scheduler.type == "none" else "tpe"

    def expected_trials(self) -> int:
        """Trials the search will run: ``samples``, or about as many as an epoch budget holds
        (trials the scheduler stops early are counted at their first rung)."""
        if self.budget_epochs is None:
            return self.samples
        shortest = self.scheduler.grace_period if self.scheduler.type == "asha" else self.max_epochs
        return min(self.samples, max(1, self.budget_epochs // max(1, min(shortest, self.max_epochs))))

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        # A quarter of the trials at random first, at most 10: Optuna's default of 10 would make a
        # 12-trial search random search.
        startup = max(2, min(10, self.expected_trials() // 4))
        kind = self.resolved_sampler()
        if kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if kind == "gp":
            return optuna.samplers.GPSampler(
                seed=seed, n_startup_trials=startup, warn_independent_sampling=False
            )
        return optuna.samplers.TPESampler(
            n_startup_trials=startup, multivariate=True, constant_liar=True, seed=seed
        )

    def reference_point(self) -> dict:
        """The reference configuration's value of every searched setting (trial 0).

        A loaded space always contains it; only an epoch cap (``with_overrides``) can clip it.
        """
        defaults = {**reference_defaults(self.arch), "k": self.reference_k, **self.fixed, **self.reference}
        return {name: dim.clamp(defaults[name]) for name, dim in self.space.items()}

    def identity(self) -> dict:
        """What a trial's meaning depends on: a resume must find the same (samples, seed, resources
        and concurrency may change between starts)."""
        return to_json(
            {
                "arch": self.arch,
                "fixed": self.fixed,
                "space": self.space,
                "scheduler": self.scheduler,
                # horizon 1 (the default, however given) is left out as runs recorded it before
                # horizons existed, so those runs still resume with or without --horizon 1
                "data": {
                    key: value
                    for key, value in dataclasses.asdict(self.data).items()
                    if key != "horizon" or value not in (None, 1)
                },
            }
        )

    def pinned(self, values: dict) -> "SearchSpace":
        """The space with ``values`` fixed: searched no more (a warm start's weight shapes)."""
        return dataclasses.replace(
            self,
            fixed={**self.fixed, **values},
            space={name: dim for name, dim in self.space.items() if name not in values},
            reference={name: value for name, value in self.reference.items() if name not in values},
        )

    def with_overrides(
        self,
        samples=None,
        budget_epochs=None,
        seed=None,
        max_concurrent=None,
        cpus_per_trial=None,
        gpus_per_trial=None,
        max_epochs=None,
        k=None,
        min_context=None,
        horizon=None,
        device=None,
        teacher=None,
        loggers=(),
    ) -> "SearchSpace":
        """The space with command-line overrides applied, validated like the file's own values."""
        where = "command line"
        space, fixed = dict(self.space), dict(self.fixed)
        if max_epochs is not None:
            cap = records.parse(int, max_epochs, where, "--max-epochs", bounds=(1, MAX_EPOCHS))
            if "epochs" in space:
                dim = space["epochs"]
                space["epochs"] = dataclasses.replace(dim, low=min(dim.low, cap), high=min(dim.high, cap))
            else:
                fixed["epochs"] = min(fixed.get("epochs", TrainConfig.epochs), cap)
        resources = dataclasses.asdict(self.resources)
        if cpus_per_trial is not None:
            resources["cpus_per_trial"] = cpus_per_trial
        if gpus_per_trial is not None:
            resources["gpus_per_trial"] = gpus_per_trial
        if device is not None:
            resources["device"] = device
        data = dataclasses.asdict(self.data)
        if k is not None:
            if "k" in space:
                raise UserError(f"{where}: --k: {self.source} searches k; remove it from the space to fix it")
            data["k"] = k
        if min_context is not None:
            data["min_context"] = min_context
        if horizon is not None:
            data["horizon"] = horizon
        if teacher is not None:
            data["teacher"] = teacher
        flags = {
            "samples": samples,
            "budget_epochs": budget_epochs,
            "seed": seed,
            "max_concurrent": max_concurrent,
        }
        result = dataclasses.replace(
            self,
            **{
                name: _field(name, value, where, "--" + name.replace("_", "-"))
                for name, value in flags.items()
                if value is not None
            },
            resources=_check_resources(
                _parse(Resources, resources, where, "resources"), f"{where}: resources"
            ),
            data=_check_data(_parse(DataSpec, data, where, "data"), f"{where}: data"),
            space=space,
            fixed=fixed,
            loggers=_check_loggers(
                _field("loggers", [*self.loggers, *loggers], where, "--log"), f"{where}: --log"
            ),
        )
        overridden = (k, min_context, horizon, teacher) != (None, None, None, None)
        _check_data_against_space(
            result, f"{self.source} with the command line" if overridden else self.source
        )
        return result


def reference_defaults(arch: str) -> dict:
    train_defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in TRAIN_FIELDS}
    return {**train_defaults, **config_fields(arch)}


def split_params(arch: str, params: dict, where: str = "settings") -> TrainConfig:
    """Route flat settings to the model config or the training config, and validate both; unknown
    keys are errors. ``k`` (a data setting) is not part of either and must be taken out first."""
    model_keys = set(config_fields(arch))
    unknown = set(params) - model_keys - TRAIN_FIELDS
    if unknown:
        known = sorted(model_keys | TRAIN_FIELDS)
        raise UserError(
            f"{where}: unknown setting(s) {sorted(unknown)} for {arch} (known: {', '.join(known)})"
        )
    model = {k: v for k, v in params.items() if k in model_keys}
    train = {k: v for k, v in params.items() if k not in model_keys}
    try:
        make_config(arch, **model)
        return TrainConfig(arch=arch, model=model, **train).validate()
    except (UserError, TypeError) as e:
        raise UserError(f"{where}: {e}") from None


def trial_settings(
    arch: str, fixed: dict, config: dict, where: str = "trial"
) -> tuple[TrainConfig, int | None]:
    """A trial's training config and its context length (None: the data's own)."""
    params = {**fixed, **config}
    k = params.pop("k", None)
    return split_params(arch, params, where), k


def to_json(value):
    """Spaces as plain JSON (tuples as lists), as run.json stores them."""
    if dataclasses.is_dataclass(value):
        return to_json(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


# --- loading ------------------------------------------------------------------------------------


def load_space(path: str | Path, check_data: bool = True, check_trials: bool = True) -> SearchSpace:
    """``check_data=False`` when the command line may still complete the data section (with_overrides
    checks it then); ``check_trials=False`` when a warm start may still fix settings the trials'
    validity rests on (heads that divide the init's width, not the default one: checked then)."""
    return parse_space(read_yaml(Path(path), "space file"), str(path), check_data, check_trials)


# Keys a file may leave empty (`fixed:` and nothing after it) to mean none of them.
EMPTY_MEANS_NONE = ("fixed", "space", "reference", "loggers")


def parse_space(raw, source: str, check_data: bool = True, check_trials: bool = True) -> SearchSpace:
    """Each value's type and range, as the dataclasses above declare them, by ``records.parse``;
    then here what no type can say, section by section, and every trial the space can give."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping at the top level")
    given = {key: value for key, value in raw.items() if not (value is None and key in EMPTY_MEANS_NONE)}
    parsed = _parse(SearchSpace, given, source)
    try:
        settings = set(config_fields(parsed.arch)) | TRAIN_FIELDS | DATA_SETTINGS
    except UserError as e:
        raise UserError(f"{source}: arch: {e}") from None
    result = dataclasses.replace(
        parsed,
        scheduler=_check_scheduler(parsed.scheduler, f"{source}: scheduler"),
        resources=_check_resources(parsed.resources, f"{source}: resources"),
        space=_check_searched(parsed, given.get("space", {}), source, settings),
        data=_check_data(parsed.data, f"{source}: data"),
        loggers=_check_loggers(parsed.loggers, f"{source}: loggers"),
        source=source,
    )
    _check_reference(result)
    if check_data:
        _check_data_against_space(result, source)
    if check_trials:
        check_every_trial(result)
    return result


def _check_searched(space: SearchSpace, raw_space: dict, source: str, settings: set) -> dict[str, Dimension]:
    """The searched ``space``, its keys and those of ``fixed`` each one of ``settings`` (the
    architecture's, the trainer's and the data's) and in one section only."""
    if not space.space:
        raise UserError(
            f"{source}: space: a search needs at least one searched setting "
            "(to train one configuration, use `lvm-search train`)"
        )
    for section, keys in (("fixed", space.fixed), ("space", space.space)):
        for key in keys:
            if key not in settings or key in NOT_SEARCHABLE:
                known = ", ".join(sorted(map(str, settings - NOT_SEARCHABLE)))
                raise UserError(
                    f"{source}: {section}.{key}: unknown setting for {space.arch} (known: {known})"
                )
    both = set(space.fixed) & set(space.space)
    if both:
        raise UserError(f"{source}: {sorted(both)[0]}: appears in both fixed and space")
    return {
        name: _check_dimension(dim, set(raw_space[name]), f"{source}: space.{name}")
        for name, dim in space.space.items()
    }


def _check_reference(space: SearchSpace) -> None:
    """Trial 0's settings (the defaults, ``fixed`` and ``reference`` on top) lie inside the space."""
    for key in space.reference:
        if key not in space.space:
            raise UserError(f"{space.source}: reference.{key}: only searched settings can be set for trial 0")
    start = {**reference_defaults(space.arch), "k": space.reference_k, **space.fixed, **space.reference}
    for name, dim in space.space.items():
        if not dim.contains(start[name]):
            where = "reference" if name in space.reference else "the reference default"
            raise UserError(
                f"{space.source}: space.{name}: {where} {start[name]!r} must lie inside the space "
                "(it is always trial 0)"
            )


def check_every_trial(space: SearchSpace) -> None:
    """Every configuration a trial can be given is valid: all combinations of the dimensions'
    corners when there are few, else each corner with the rest at the reference."""
    reference = space.reference_point()
    names = list(space.space)
    corners = [space.space[name].corners() for name in names]
    if math.prod(len(c) for c in corners) <= MAX_COMBINATIONS_CHECKED:
        combinations = (dict(zip(names, values)) for values in itertools.product(*corners))
    else:
        combinations = (
            {**reference, name: value} for name, values in zip(names, corners) for value in values
        )
    for combo in combinations:
        point = {**reference, **combo}
        settings = ", ".join(f"{k}={shown(v)}" for k, v in combo.items() if k in space.space)
        trial_settings(space.arch, space.fixed, point, where=f"{space.source}: a trial with {settings}")


SIZE_SETTINGS = ("batch_size", "width", "depth", "ff", "key_dim")  # more of each: more memory


def check_against_data(space: SearchSpace, data) -> None:
    """What only the data can judge, checked once it is loaded and before Ray starts or the run folder
    is written: the longest k any trial reads has targets that far back, and the largest trial (each
    size setting at its largest) fits the bounds of batch and model memory (limits.py)."""
    check_context_length(
        data, space.load_k, f"{space.source}: {'space.k' if 'k' in space.space else 'data.k'}"
    )
    largest = {
        **space.reference_point(),
        **{name: dim.largest() for name, dim in space.space.items() if name in SIZE_SETTINGS},
    }
    shown_sizes = ", ".join(f"{name}={shown(largest[name])}" for name in SIZE_SETTINGS if name in space.space)
    try:
        cfg, _ = trial_settings(space.arch, space.fixed, largest)
    except UserError:  # not a trial the space can give (check_every_trial checked those it can)
        return
    check_fits(
        cfg, space.load_k, data.dim, f"{space.source}: the largest trial ({shown_sizes or 'fixed sizes'})"
    )


def _check_data_against_space(space: SearchSpace, where: str) -> None:
    min_context = space.data.min_context
    ks = space.space["k"].corners() if "k" in space.space else (space.reference_k,)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise UserError(
                f"{where}: k: context lengths must be integers from 1 to {MAX_K:,}, got {shown(k)}"
            )
        if min_context is not None and k < min_context:
            raise UserError(f"{where}: k={k} is shorter than data.min_context={min_context}")
    if "k" in space.space and min_context is None and len(set(space.space["k"].values or ks)) > 1:
        raise UserError(
            f"{where}: space.k: searching the context length needs data.min_context (<= the smallest k), "
            "so every k scores the same windows"
        )
    if space.data.teacher is None and ("distill" in space.space or "distill" in space.fixed):
        raise UserError(f"{where}: distill: weighs a teacher's predictions, but data.teacher is not set")


def _parse(tp, raw, where: str, at: str = ""):
    # YAML 1.1 reads 1e-4 (no dot) as text: space files have always taken it as the number meant.
    return records.parse(tp, raw, where, at, float_text=True)


def _field(name: str, value, where: str, at: str):
    """A command-line flag overriding one of the file's top-level values, checked as the file's is."""
    return records.parse_field(SearchSpace, name, value, where, at, float_text=True)


# --- what a type cannot say -----------------------------------------------------------------------


def _check_loggers(loggers: tuple[str, ...], where: str) -> tuple[str, ...]:
    unknown = [name for name in loggers if name not in LOGGERS]
    if unknown:
        raise UserError(f"{where}: unknown tracker {unknown[0]!r} (known: {', '.join(LOGGERS)})")
    return tuple(dict.fromkeys(loggers))


def _check_scheduler(scheduler: Scheduler, where: str) -> Scheduler:
    if scheduler.reduction_factor <= 1:
        raise UserError(f"{where}.reduction_factor: must be > 1, got {shown(scheduler.reduction_factor)}")
    return scheduler


def _check_resources(resources: Resources, where: str) -> Resources:
    """Shares Ray takes (at least its smallest, at most MAX_RESOURCE; whole GPUs above one), and a
    device that exists by name and agrees with the GPUs asked for."""
    cpus, gpus = resources.cpus_per_trial, resources.gpus_per_trial
    if gpus != "auto":
        if gpus < 0 or 0 < gpus < MIN_RESOURCE or gpus > MAX_RESOURCE:
            raise UserError(
                f"{where}.gpus_per_trial: must be 0, from {MIN_RESOURCE} (Ray's smallest share) to "
                f"{MAX_RESOURCE:,}, or auto, got {shown(gpus)}"
            )
        if gpus > 1 and not gpus.is_integer():
            raise UserError(
                f"{where}.gpus_per_trial: above 1 it must be a whole number of GPUs, got {shown(gpus)}"
            )
    if not MIN_RESOURCE <= cpus <= MAX_RESOURCE:
        raise UserError(
            f"{where}.cpus_per_trial: must be from {MIN_RESOURCE} (Ray's smallest share) to "
            f"{MAX_RESOURCE:,}, got {shown(cpus)}"
        )
    kind, _ = parse_device(resources.device, f"{where}.device")  # cuda:N: GPU N of this machine
    if kind == "cpu" and gpus not in ("auto", 0.0):
        raise UserError(f"{where}: device cpu takes no GPUs, but gpus_per_trial is {gpus:g}")
    return resources


def _check_data(data: DataSpec, where: str) -> DataSpec:
    if data.k is not None and data.min_context is not None and data.min_context > data.k:
        raise UserError(f"{where}.min_context: must be <= k ({data.k}), got {shown(data.min_context)}")
    if data.teacher is None:
        return data
    if not data.teacher.strip():
        raise UserError(
            f"{where}.teacher: expected the path of an ensemble folder, got {shown(data.teacher)}"
        )
    # one spelling per folder, for resumes
    return dataclasses.replace(data, teacher=str(Path(data.teacher).expanduser().resolve()))


def _check_dimension(dim: Dimension, given: set, where: str) -> Dimension:
    """``given``: the keys the file gave, as a choice takes only ``values``."""
    if dim.type == "choice":
        values = dim.values
        if not values:
            raise UserError(f"{where}.values: expected a non-empty list")
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
            raise UserError(f"{where}.values: choices must be plain scalars")
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise UserError(f"{where}.values: choices must be finite")
        if len(set(map(repr, values))) != len(values):
            raise UserError(f"{where}.values: has duplicates")
        if given - {"type", "values"}:
            raise UserError(f"{where}: a choice takes only 'values'")
        return dim
    low, high, step = dim.low, dim.high, dim.step
    if low is None or high is None:
        raise UserError(f"{where}: needs low and high")
    if step is not None:
        if step <= 0:
            raise UserError(f"{where}.step: must be > 0, got {shown(step)}")
        if dim.log:
            raise UserError(f"{where}: step and log cannot be combined")
    if dim.type == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise UserError(f"{where}: an int dimension needs integer low, high and step")
    if low > high:
        raise UserError(f"{where}: low ({low}) > high ({high})")
    if dim.log and low <= 0:
        raise UserError(f"{where}: a log dimension needs low > 0, got {shown(low)}")
    if dim.type == "int":
        return Dimension("int", int(low), int(high), dim.log, int(step) if step else None)
    return dim
