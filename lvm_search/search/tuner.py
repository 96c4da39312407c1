"""The search: Ray Tune runs an Optuna sampler with ASHA early stopping over a space file.

The only module that builds Ray Tune objects. It prepares the run folder, rebuilds the Optuna study
from the trial log, runs the Tuner, and writes what later commands read (through ``runs``).

Each start is a fresh Tune experiment (``attempt-N/``) whose Optuna study already holds every trial
of earlier starts: the trial log is the source of truth, and ``study.db`` is rebuilt from it before
Tune starts, then written live, trial by trial, epoch by epoch. ``Tuner.restore`` is not used: it
unpickles the experiment folder (unsafe for a shared folder) and, interrupted at the wrong moment,
restored a searcher that lagged its trials.

Trials that ASHA stops reach Optuna as PRUNED with their per-epoch values (TPE ranks them below
finished trials, as Optuna's own pruners do); finished trials as COMPLETE with their best epoch's
val cosine, the one their checkpoint holds.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import threading
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter

from ..data.windows import LVMData, load_data
from ..devices import gpu_for_trial, gpus_here, local_gpu, mps_environment, parse_device
from ..ensemble.distill import check_outside_teacher, load_teacher
from ..errors import TrainingDiverged, UserError, reason
from ..logs import quieted
from ..scoring.metrics import cosines, reference_mean
from ..store import provenance
from ..store.runs import (
    RESOURCES,
    STAGING,
    STUDY,
    SUMMARY,
    TRIALS_LOG,
    BestTrial,
    Counts,
    DataInfo,
    EpochResult,
    RunSummary,
    SplitSize,
    Trial,
    TrialLogEntry,
    append_line,
    attempt_name,
    next_attempt,
    read_optional,
    read_trial_log,
    run_dir,
    write_json,
)
from ..teacher import Teacher
from ..train import train
from ..warm_start import WarmStart, load_init, settings_from_init
from .cluster import environment, join_cluster, private_cluster
from .internals import TruthfulOptunaSearch, cpus_ray_counts, tune_output_env
from .progress import Progress, error_summary, proposal_number
from .run_folder import Start, prepare_run_dir, run_lock, undo_start
from .spaces import METRIC, SearchSpace, check_against_data, check_every_trial, trial_settings
from .trackers import callbacks, check_installed

AUTO_GPUS_PER_TRIAL = 0.25  # measured: see Resources in spaces.py

logger = logging.getLogger(__name__)


@dataclass
class SearchOptions:
    """Command-line overrides and where the run lives."""

    data: str | None = None
    extra_train: tuple[str, ...] = ()
    split_seed: int = 0
    storage: str = "runs"
    name: str | None = None
    address: str | None = None
    fresh: bool = False
    init: str | None = None  # --init: a checkpoint or run folder every trial's weights start from
    verbose: int = 0  # 0: our progress lines; 1 and 2: Ray Tune's tables as well
    command: str | None = None  # recorded in provenance (default: this process's command line)


# --- the trainable (runs in Ray workers) ---------------------------------------------------------


def run_trial(
    config: dict,
    data: tuple[ray.ObjectRef],
    arch: str,
    fixed: dict,
    seed: int,
    threads: int,
    device: str,
    gpus: float,
    staging: str,
    command: str,
    teacher: Teacher | None,
    init: WarmStart | None,
) -> None:
    """One trial: the core trainer, reporting every epoch and checkpointing when val improves."""
    cfg, k = trial_settings(arch, fixed, config)
    if device != "cpu":
        # A CPU-only node of a mixed cluster gives no GPU; else the GPU this node has (CUDA, or Apple's)
        device = "cpu" if gpus and not ray.get_gpu_ids() else gpu_for_trial(device)
    cfg = dataclasses.replace(cfg, device=device, threads=threads if device == "cpu" else None, seed=seed)
    data = ray.get(data[0])
    data = data.with_k(k) if k else data
    node = ray.get_runtime_context().get_node_id()[:12]  # node_ip is the same for nodes on one host
    trial_id = tune.get_context().get_trial_id()

    def report(epoch, metrics, save):
        metrics = {**metrics, "node_id": node, "reported_at": time.time()}
        if save is None:
            tune.report(metrics)
            return
        folder = Path(staging) / f"{trial_id}-{epoch}"
        try:
            save(folder)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    try:
        train(cfg, data, report, command=command, teacher=teacher, init=init)
    except TrainingDiverged as e:
        # A diverged trial is a result, not a crash: the sampler learns to avoid the region, and
        # retrying the same seed would diverge again.
        tune.report({METRIC: -1.0, "diverged": 1, "error": str(e)})


# --- the driver ---------------------------------------------------------------------------------


@dataclass
class _Search:
    """One space's search in this start: what is fixed before Ray starts, and what the start did."""

    space: SearchSpace
    name: str
    folder: Path
    data: LVMData
    teacher: Teacher | None
    init: WarmStart | None
    start: Start | None = None
    done: list[TrialLogEntry] = dataclasses.field(default_factory=list)
    # this start's wall time: the whole start for one space; with several, the time its experiment
    # ran, beside the others (Ray's start is paid once for all)
    wall_s: float = 0.0
    thread: threading.Thread | None = None  # where its experiment runs, with several spaces


def run_search(space: SearchSpace, opts: SearchOptions) -> RunSummary:
    """Run the search, or resume it: trials already in the run's trial log are not run again."""
    return run_searches([space], opts)[0]


def run_searches(spaces: list[SearchSpace], opts: SearchOptions) -> list[RunSummary]:
    """Search several spaces in one Ray session: Ray starts once, each distinct view of the data is
    loaded and placed in Ray's object store once, and the trials of every space share the machine,
    so no slot idles while any search has trials left. Each space keeps its own run folder, trial
    log, study, summary and resume, exactly as when searched alone."""
    storage = Path(opts.storage).expanduser().resolve()
    if opts.name is not None and len(spaces) > 1:
        raise UserError("--name names one run; with several spaces each run is named after its space file")
    names = [opts.name if opts.name is not None else Path(space.source).stem for space in spaces]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise UserError(f"two space files would both write the run {storage / twice}; rename one")
    command = opts.command or provenance.collect().command
    loaded: dict[tuple, LVMData] = {}
    searches = [_search(space, name, storage, opts, loaded) for space, name in zip(spaces, names)]
    if len({parse_device(s.space.resources.device)[1] for s in searches}) > 1:
        raise UserError("the spaces name different GPUs (resources.device cuda:N); search them one at a time")

    # Optuna's and MLflow's INFO lines (a study created or loaded, each trial told) repeat the progress lines.
    with ExitStack() as stack:
        stack.enter_context(quieted("optuna", "mlflow"))
        locks, previous_s = [], {}
        try:
            for s in searches:
                locks.append(stack.enter_context(run_lock(storage, s.name)))
                s.start = prepare_run_dir(s.folder, s.space, s.data, s.teacher, s.init, opts.fresh, command)
                s.done = read_trial_log(s.folder)
                previous = read_optional(RunSummary, s.folder / SUMMARY, None, "summary")
                previous_s[s.name] = previous.wall_s if previous else 0.0
            left = [s for s in searches if _has_work(s)]
            for s in (s for s in left if s.done):
                logger.info(f"resuming {s.folder}: {len(s.done)} of {s.space.samples} trials already done")
            t0 = time.time()
            if left:
                _fit(left, opts, command)
            if len(left) == 1:
                left[0].wall_s = time.time() - t0
        except BaseException:
            # A new run that failed before any trial was logged (another space's run folder refused, no
            # cluster at --address, Ray would not start, Ctrl-C): what this start wrote would refuse
            # the corrected command. Not while its experiment may still write (a second Ctrl-C).
            for s, lock in zip(searches, locks):
                if s.thread is not None and s.thread.is_alive():
                    continue
                if s.start is None or (s.start.new and not (s.folder / TRIALS_LOG).exists()):
                    if s.start is not None:
                        undo_start(s.start)
                    lock.remove = True
            raise
        return [_finish(s, previous_s[s.name] + s.wall_s, command) for s in searches]


def _search(
    space: SearchSpace, name: str, storage: Path, opts: SearchOptions, loaded: dict[tuple, LVMData]
) -> _Search:
    """Everything one space's search checks and loads before Ray starts. ``loaded`` holds the data
    already loaded for another space, by the settings that window it."""
    _check_sampler_installed(space)
    check_installed(space.loggers)
    if space.data.teacher:
        check_outside_teacher(storage, space.data.teacher, "the storage")
    if not opts.address:  # the private cluster has this machine's CPUs and GPUs: checked before Ray
        _check_this_machine(space)
    elif parse_device(space.resources.device)[1] is not None:
        raise UserError(
            f"resources.device {space.resources.device}: names a GPU of this machine, but on a cluster "
            "(--address) Ray chooses each trial's GPU; use cuda"
        )
    view = (space.load_k, space.data.min_context, space.data.horizon or 1)
    if view not in loaded:
        loaded[view] = load_data(
            opts.data,
            k=view[0],
            min_context=view[1],
            horizon=view[2],
            extra_train=opts.extra_train,
            seed=opts.split_seed,
        )
    data = loaded[view]
    folder = run_dir(storage, name)
    init = load_init(opts.init, space.arch) if opts.init else None
    if init:
        if folder == Path(init.source) or folder in Path(init.checkpoint).parents:
            raise UserError(
                f"{init.source}: --init is in the run folder this search writes; use another --name"
            )
        space, data = _fit_to_init(space, data, init)
    check_against_data(space, data)
    teacher = load_teacher(space.data.teacher, data) if space.data.teacher else None
    return _Search(space, name, folder, data, teacher, init)


def _has_work(s: _Search) -> bool:
    spent = sum(len(e.history) for e in s.done)
    return len(s.done) < s.space.samples and (s.space.budget_epochs is None or spent < s.space.budget_epochs)


def _finish(s: _Search, wall_s: float, command: str) -> RunSummary:
    summary = summarise(read_trial_log(s.folder), s.space, s.data, s.name, wall_s, command)
    summary.teacher = s.teacher.describe() if s.teacher else None
    summary.init = s.init.describe() if s.init else None
    summary.resources = read_optional(dict, s.folder / RESOURCES, {}, "resources record")
    write_json(s.folder / SUMMARY, summary)
    return summary


def _fit(searches: list[_Search], opts: SearchOptions, command: str) -> None:
    """Start Ray (or join --address) once, and run one Tune experiment per space in it."""
    index = parse_device(searches[0].space.resources.device)[1]
    cluster = (
        join_cluster(opts.address) if opts.address else private_cluster(env=mps_environment(), gpu=index)
    )
    interrupted = threading.Event()
    with cluster:
        placed: dict[int, ray.ObjectRef] = {}  # one copy of each data view in the object store
        for s in searches:
            if id(s.data) not in placed:
                placed[id(s.data)] = ray.put(s.data)
        tuners = [
            _tuner(s, opts, placed[id(s.data)], command, interrupted, label=len(searches) > 1)
            for s in searches
        ]
        # Without -v, Tune's own log lines (a trial's whole traceback, "Trials did not complete") stay
        # out of the terminal: the progress lines say what happened and the trial log keeps the error.
        tune_logs = quieted("ray.tune", level=logging.CRITICAL) if not opts.verbose else nullcontext()
        with environment(tune_output_env(opts.verbose)), tune_logs:
            if len(tuners) == 1:
                tuners[0].fit()
            else:
                _fit_together(tuners, searches, interrupted)
    for s in searches:
        shutil.rmtree(s.folder / STAGING, ignore_errors=True)


def _fit_together(tuners: list[tune.Tuner], searches: list[_Search], interrupted: threading.Event) -> None:
    """Each experiment in a thread of its own (Tune runs in a worker thread, and then leaves Ctrl-C to
    the main thread): Ray's scheduler hands each freed slot to whichever search has a trial waiting.
    Ctrl-C ends every experiment as Tune ends one (the trials cut short run again on resume), and so
    does an experiment that fails (its error is raised once all have ended); a second Ctrl-C quits
    at once."""
    errors: list[BaseException] = []

    def fit(tuner: tune.Tuner, s: _Search) -> None:
        t0 = time.time()
        try:
            tuner.fit()
        except BaseException as e:  # raised in the main thread below
            logger.warning(f"{s.name}: the search failed ({reason(e)}); stopping the others")
            errors.append(e)
            interrupted.set()
        finally:
            s.wall_s = time.time() - t0

    for tuner, s in zip(tuners, searches):
        s.thread = threading.Thread(target=fit, args=(tuner, s), name=f"search-{s.name}", daemon=True)
    while any(s.thread.is_alive() or not s.thread.ident for s in searches):
        try:
            for s in searches:
                if not s.thread.ident:
                    s.thread.start()
            for s in searches:
                s.thread.join(0.2)
        except KeyboardInterrupt:
            if interrupted.is_set():
                raise
            logger.warning("stopping every search (Ctrl-C again to quit at once)")
            interrupted.set()
    if errors:
        raise errors[0]


def _tuner(
    s: _Search,
    opts: SearchOptions,
    data_ref: ray.ObjectRef,
    command: str,
    interrupted: threading.Event,
    label: bool,
) -> tune.Tuner:
    """One space's Tune experiment (``attempt-N/`` of its run folder), its searcher holding the study."""
    space, folder, done = s.space, s.folder, s.done
    attempt = next_attempt(folder)
    staging = folder / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # checkpoints of a start that was killed mid-hand-over
    staging.mkdir()
    study = rebuild_study(folder, space, done)
    kind, index = parse_device(space.resources.device)
    device, gpus = resolve_device(
        kind if index is not None else space.resources.device,  # the cluster has that GPU alone
        space.resources.gpus_per_trial,
        ray.cluster_resources().get("GPU", 0),
        local_gpu(),
    )
    concurrency = resolve_concurrency(space, gpus, ray.cluster_resources(), len(done))
    _check_resources(space, gpus)
    trainable = _trainable(space, data_ref, s.teacher, s.init, device, gpus, staging, command)
    left = space.samples - len(done)
    logger.info(
        f"{folder.name}: {left} trial{'s' * (left != 1)} of {space.arch}, {concurrency} at a time on "
        f"{device} ({space.resolved_sampler()} sampler, {space.scheduler.type} scheduler); "
        f"live study: optuna-dashboard sqlite:///{folder / STUDY}",
    )
    resources = {
        "device": device,
        "gpus_per_trial": gpus,
        "cpus_per_trial": space.resources.cpus_per_trial,
        "concurrency": concurrency,
        "cluster_cpus": ray.cluster_resources().get("CPU", 0),
        "cluster_gpus": ray.cluster_resources().get("GPU", 0),
    }
    write_json(folder / RESOURCES, resources)
    earlier = [  # (best val cosine, number) of the trials of earlier starts: the best so far
        (max(h.val_cosine for h in e.history), str(n))
        for n, e in enumerate(done)
        if e.status == "ok" and e.history
    ]
    progress = Progress(
        space,
        done=len(done),
        concurrency=concurrency,
        best=max(earlier, default=None),
        label=folder.name if label else "",
    )
    budget = EpochBudget(space.budget_epochs, sum(len(e.history) for e in done), interrupted)
    run_config = tune.RunConfig(
        # Written to <run>/attempt-N as ever; named with the run's name because Tune stages each
        # experiment's files in <Ray session>/artifacts/<start second>/<name>, and two searches of one
        # session started in the same second would share that folder.
        name=f"{folder.name}/{attempt_name(attempt)}",
        storage_path=str(folder.parent),
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute=METRIC, checkpoint_score_order="max"
        ),
        failure_config=tune.FailureConfig(max_failures=1),
        # result.json per trial, for Tune's own ResultGrid and for users, and the trackers asked for
        callbacks=[
            TrialLog(folder, attempt),
            progress,
            JsonLoggerCallback(),
            *callbacks(space.loggers, folder),
        ],
        stop=budget,
        verbose=opts.verbose,
    )
    tune_config = _tune_config(space, study, folder.name, done, concurrency, budget)
    # Registered here, in the main thread, under the run's name: Tune's registry is not safe for
    # experiments that register their trainables from several threads at once.
    registered = f"lvm-search-{folder.name}"
    tune.register_trainable(registered, trainable)
    return tune.Tuner(registered, tune_config=tune_config, run_config=run_config)


def _trainable(
    space: SearchSpace,
    data_ref: ray.ObjectRef,
    teacher: Teacher | None,
    init: WarmStart | None,
    device: str,
    gpus: float,
    staging: Path,
    command: str,
):
    """``run_trial`` with everything but a trial's config bound, and the CPUs and GPU share it asks of Ray."""
    return tune.with_resources(
        tune.with_parameters(
            run_trial,
            data=(data_ref,),  # a reference inside a tuple: Ray passes it on instead of copying the data
            arch=space.arch,
            fixed=space.fixed,
            seed=space.seed,
            threads=max(1, int(space.resources.cpus_per_trial)),
            device=device,
            gpus=gpus,
            staging=str(staging),
            command=command,
            teacher=teacher,
            init=init,
        ),
        {"cpu": space.resources.cpus_per_trial, "gpu": gpus},
    )


# --- resources ----------------------------------------------------------------------------------


def _check_sampler_installed(space: SearchSpace) -> None:
    # Optuna's GPSampler imports scipy at its first fit, trials into the search, without declaring
    # it; an environment without it (the offline bundle leaves it out unless --with-gp) fails here.
    if space.resolved_sampler() != "gp":
        return
    try:
        import scipy  # noqa: F401
    except ImportError:
        why = "" if space.sampler == "gp" else " (picked for a numeric space without early stopping)"
        raise UserError(
            f"{space.source}: sampler {space.sampler}{why} is Optuna's GPSampler, which needs scipy, and "
            "scipy is not installed: pip install scipy, or set sampler: tpe"
        ) from None


def resolve_device(
    requested: str, gpus_per_trial, cluster_gpus: float, local_gpu: str | None
) -> tuple[str, float]:
    """The device trials train on and the GPUs each asks Ray for.

    auto: a GPU where the cluster counts some (or gpus_per_trial asks for some), else the CPU. The
    GPU is CUDA, or Apple's on a Mac: the private cluster counts it as one GPU where it works, as Ray
    2.60 does on a Mac node, so MPS trials are scheduled like CUDA trials (``gpus_per_trial: auto``,
    a quarter of a GPU each: four share it). ``local_gpu``: this machine's kind (devices.local_gpu).
    cuda:N: GPU N of this machine (as torch numbers them); the private cluster is given that GPU alone
    (``private_cluster(gpu=N)``), and every trial sees it as cuda, Ray's GPU of the trial.
    """
    kind, index = parse_device(requested, "resources.device")
    asks_for_gpus = gpus_per_trial != "auto" and gpus_per_trial > 0
    if kind == "auto":
        kind = (local_gpu or "cuda") if cluster_gpus > 0 or asks_for_gpus else "cpu"
    if kind == "cpu":
        if asks_for_gpus:
            raise UserError(f"resources: device cpu takes no GPUs, but gpus_per_trial is {gpus_per_trial}")
        return "cpu", 0.0
    if kind == "mps" and local_gpu != "mps":
        raise UserError("resources.device: mps was asked for, but this machine has no working Apple GPU")
    if cluster_gpus <= 0:
        asked = kind if requested == "auto" else requested  # auto with gpus_per_trial > 0 means a GPU
        raise UserError(f"resources.device: {asked} was asked for, but the Ray cluster has no GPU")
    if index is not None and index >= cluster_gpus:
        raise UserError(
            f"resources.device: {requested} was asked for, but this machine has {cluster_gpus:g} GPU(s)"
        )
    return kind, AUTO_GPUS_PER_TRIAL if gpus_per_trial == "auto" else float(gpus_per_trial)


def _check_this_machine(space: SearchSpace) -> None:
    """The private cluster is this machine: a device it lacks, or a trial asking for more CPUs or
    GPUs than it has, fails before Ray starts (on a cluster, _check_resources says so once joined)."""
    gpus = gpus_here()
    resolve_device(space.resources.device, space.resources.gpus_per_trial, gpus, local_gpu())
    if parse_device(space.resources.device)[1] is not None:
        gpus = 1  # the private cluster is given that one GPU
    cpus = cpus_ray_counts()
    for key, need, have in (
        ("CPU", space.resources.cpus_per_trial, cpus),
        ("GPU", space.resources.gpus_per_trial, gpus),
    ):
        if need != "auto" and need > have:
            raise UserError(
                f"{space.source}: resources: a trial asks for {need:g} {key}(s), "
                f"but this machine has {have:g}"
            )


def resolve_concurrency(space: SearchSpace, gpus_per_trial: float, cluster: dict, done: int) -> int:
    """``max_concurrent``: a number, or ``auto``: as many trials as the cluster's CPUs (and GPUs,
    where trials take some) hold at once, never more than the trials left to run."""
    left = max(1, space.samples - done)
    if space.max_concurrent != "auto":
        return min(space.max_concurrent, left)
    fits = math.floor(cluster.get("CPU", 1) / space.resources.cpus_per_trial + 1e-9)
    if gpus_per_trial > 0:
        fits = min(fits, math.floor(cluster.get("GPU", 0) / gpus_per_trial + 1e-9))
    return max(1, min(fits, left))


def _check_resources(space: SearchSpace, gpus: float) -> None:
    total = ray.cluster_resources()
    for key, need in (("CPU", space.resources.cpus_per_trial), ("GPU", gpus)):
        if need > total.get(key, 0):
            raise UserError(
                f"{space.source}: a trial asks for {need:g} {key}(s) "
                f"but the cluster has {total.get(key, 0):g}"
            )


class EpochBudget(tune.Stopper):
    """Ends the search once its trials have trained ``budget`` epochs in all (earlier starts
    included): searches compared at equal compute, and a user's budget kept. Once it is spent, the
    searcher proposes no more trials and each running trial stops at its next epoch, so it ends
    like any stopped trial (logged, and told to Optuna). ``interrupted``, once set, ends the whole
    experiment, as Ctrl-C ends one that runs alone."""

    def __init__(self, budget: int | None, spent: int, interrupted: threading.Event | None = None):
        self.budget, self.before = budget, spent
        self.interrupted = interrupted
        self.epochs: set[tuple[str, int]] = set()  # Tune may hand a trial's last result over twice

    def spent(self) -> bool:
        return self.budget is not None and self.before + len(self.epochs) >= self.budget

    def __call__(self, trial_id: str, result: dict) -> bool:
        self.epochs.add((trial_id, result.get("training_iteration")))
        return self.spent()

    def stop_all(self) -> bool:
        return self.interrupted is not None and self.interrupted.is_set()

    def __getstate__(self) -> dict:
        # Tune pickles the stopper into its experiment state; an Event cannot be, and a copy read back
        # from that state has no searches to stop.
        return {**self.__dict__, "interrupted": None}


# --- the searcher -------------------------------------------------------------------------------


def rebuild_study(folder: Path, space: SearchSpace, done: list[TrialLogEntry]) -> optuna.storages.BaseStorage:
    """``study.db`` rebuilt from the trial log (the source of truth): every logged trial with its
    per-epoch values and state; Tune then adds the new trials to it live."""
    path = folder / STUDY
    tmp = folder / f".{STUDY}.tmp"
    tmp.unlink(missing_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}")
    study = optuna.create_study(storage=storage, study_name=folder.name, direction="maximize")
    distributions = space.distributions()
    for entry in done:
        params = {k: v for k, v in entry.config.items() if k in distributions}
        if set(params) != set(distributions) or not all(
            space.space[k].contains(v) for k, v in params.items()
        ):
            continue
        trial = trial_from_log(entry, space)
        values = {h.epoch: h.val_cosine for h in trial.history}
        state = {
            "ok": optuna.trial.TrialState.PRUNED if trial.stopped_early else optuna.trial.TrialState.COMPLETE,
            "diverged": optuna.trial.TrialState.COMPLETE,
            "error": optuna.trial.TrialState.FAIL,
        }[trial.status]
        value = (
            -1.0
            if trial.status == "diverged"
            else (values[max(values)] if trial.stopped_early and values else trial.val_cosine)
        )
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                state=state,
                value=value if state != optuna.trial.TrialState.FAIL else None,
                intermediate_values=values,
                user_attrs={"trial_id": trial.trial_id, "number": trial.number},
            )
        )
    storage.remove_session()
    storage.engine.dispose()
    os.replace(tmp, path)
    return optuna.storages.RDBStorage(f"sqlite:///{path}")


def _tune_config(
    space: SearchSpace,
    storage,
    study_name: str,
    done: list[TrialLogEntry],
    concurrency: int,
    budget: EpochBudget,
) -> tune.TuneConfig:
    reference = space.reference_point()
    searcher = TruthfulOptunaSearch(
        space=space.distributions(),
        metric=METRIC,
        mode="max",
        points_to_evaluate=[] if any(t.config == reference for t in done) else [reference],
        # A resumed start must not replay the first start's proposals.
        sampler=space.make_sampler(seed=space.seed + len(done)),
        storage=storage,
        study_name=study_name,
        planned_epochs=space.planned_epochs,
        finished=budget.spent,
    )
    if space.scheduler.type == "asha":
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=space.max_epochs,
            grace_period=min(space.scheduler.grace_period, space.max_epochs),
            reduction_factor=space.scheduler.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    return tune.TuneConfig(
        search_alg=ConcurrencyLimiter(searcher, max_concurrent=concurrency),
        scheduler=scheduler,
        metric=METRIC,
        mode="max",
        num_samples=space.samples - len(done),
        reuse_actors=True,
        trial_dirname_creator=trial_dirname,
    )


def trial_dirname(trial) -> str:
    return f"trial_{proposal_number(trial):03d}_{trial.trial_id}"


# --- the trial log ------------------------------------------------------------------------------


class TrialLog(tune.Callback):
    """Appends one line per finished trial, with its per-epoch results. Resumes and summaries
    trust this log alone."""

    def __init__(self, folder: Path, attempt: int):
        self.folder, self.attempt = folder, attempt
        self.results: dict[str, list[dict]] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("diverged") != 1:
            self.results.setdefault(trial.trial_id, []).append(
                {
                    key: result.get(key)
                    for key in (
                        "training_iteration",
                        METRIC,
                        "time_total_s",
                        "reported_at",
                        "node_ip",
                        "node_id",
                    )
                }
            )

    def on_trial_complete(self, iteration, trials, trial, **info):
        diverged = (trial.last_result or {}).get("diverged") == 1
        self._append(trial, "diverged" if diverged else "ok")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._append(trial, "error")

    def _append(self, trial, status: str) -> None:
        rows = self.results.pop(trial.trial_id, [])
        checkpoint = trial.checkpoint.path if trial.checkpoint and status == "ok" else None
        entry = TrialLogEntry(
            attempt=self.attempt,
            tag=proposal_number(trial),
            trial_id=trial.trial_id,
            dir=os.path.relpath(trial.path, self.folder),
            status=status,
            config=trial.config,
            failures=trial.num_failures,
            error=(trial.last_result or {}).get("error") or error_summary(trial.error_file),
            history=[
                EpochResult(int(r["training_iteration"]), float(r[METRIC]), r["reported_at"]) for r in rows
            ],
            checkpoint=os.path.relpath(checkpoint, self.folder) if checkpoint else None,
            time_total_s=rows[-1]["time_total_s"] if rows else None,
            finished_at=rows[-1]["reported_at"] if rows else None,
            node_ip=rows[-1]["node_ip"] if rows else None,
            node_id=rows[-1]["node_id"] if rows else None,
        )
        append_line(self.folder / TRIALS_LOG, entry)


# --- warm starts --------------------------------------------------------------------------------


def _fit_to_init(space: SearchSpace, data: LVMData, init: WarmStart) -> tuple[SearchSpace, LVMData]:
    """The space with the settings that size the weights or change what they compute fixed at the
    init's, every trial checked on them, and the data at the context length a pinned k needs."""
    given = {**space.fixed, **({"k": space.data.k} if space.data.k is not None else {})}
    searched = {name: list(dim.corners()) for name, dim in space.space.items()}
    pinned = settings_from_init(init, space.arch, data.dim, given, searched, space.source)
    if pinned and set(space.space) <= set(pinned):
        raise UserError(
            f"{space.source}: with --init {init.source} nothing is left to search "
            f"({', '.join(space.space)}: the init's values); search the recipe "
            "too, or use lvm-search train --init"
        )
    space = space.pinned(pinned)
    check_every_trial(space)  # on the init's settings: load_space left it for now (check_trials)
    return space, (data.with_k(pinned["k"]) if pinned.get("k", 0) > data.k else data)


# --- results ------------------------------------------------------------------------------------


def trial_from_log(entry: TrialLogEntry, space: SearchSpace, number: int = 0) -> Trial:
    status = entry.status if entry.history or entry.status != "ok" else "error"
    return Trial(
        number=number,
        trial_id=entry.trial_id,
        attempt=entry.attempt,
        config=entry.config,
        status=status,
        val_cosine=max((h.val_cosine for h in entry.history), default=None),
        epochs_run=len(entry.history),
        stopped_early=status == "ok" and len(entry.history) < space.planned_epochs(entry.config),
        history=entry.history,
        checkpoint=entry.checkpoint if status == "ok" else None,
        time_total_s=entry.time_total_s,
        finished_at=entry.finished_at,
        node_ip=entry.node_ip,
        node_id=entry.node_id,
        failures=entry.failures,
        error=entry.error,
    )


def summarise(
    entries: list[TrialLogEntry], space: SearchSpace, data: LVMData, name: str, wall_s: float, command: str
) -> RunSummary:
    # The cosine alone: the retrieval metrics would rank every val window among 4096 passages
    # (6 s at a million passages) and nothing reads them here.
    baseline = {"cosine": cosines(reference_mean(data, "val"), data.targets("val")).mean().item()}
    trials = [trial_from_log(e, space, number) for number, e in enumerate(entries)]
    finished = [t for t in trials if t.status == "ok" and t.checkpoint]
    best = max(finished, key=lambda t: t.val_cosine, default=None)
    return RunSummary(
        name=name,
        arch=space.arch,
        space_file=space.source,
        complete=len(trials) >= space.samples
        or (space.budget_epochs is not None and sum(t.epochs_run for t in trials) >= space.budget_epochs),
        data=DataInfo(**data.summary()),
        splits={split: SplitSize(**size) for split, size in data.split_sizes().items()},
        baseline_val={"mean": baseline},
        counts=Counts(
            samples=space.samples,
            trials=len(trials),
            ok=sum(t.status == "ok" for t in trials),
            stopped_early=sum(t.stopped_early for t in trials),
            diverged=sum(t.status == "diverged" for t in trials),
            errored=sum(t.status == "error" for t in trials),
        ),
        wall_s=wall_s,
        trials=trials,
        best=None
        if best is None
        else BestTrial(
            trial_id=best.trial_id,
            config=best.config,
            val_cosine=best.val_cosine,
            gain_over_mean_pct=100 * (best.val_cosine / baseline["cosine"] - 1),
            checkpoint=best.checkpoint,
            history=best.history,
        ),
        provenance=provenance.collect(command=command),
    )
