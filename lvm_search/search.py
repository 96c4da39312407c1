"""The search: Ray Tune runs Optuna's TPE with ASHA early stopping over a space file.

The only module that imports Ray. It builds the Tuner, runs or resumes it, and writes what later
commands read: ``<storage>/<name>/summary.json`` (every trial, the best one, the baseline on the
same windows) and ``study.db`` (an Optuna SQLite study for optuna-dashboard and importances).

Ray's cluster: by default a private local one (no dashboard, bound to 127.0.0.1, an ephemeral
auth token kept in this process's environment, temp files inside the run folder); with
``address`` an existing cluster, whose auth token Ray finds as usual (~/.ray/auth_token,
RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from .data import LVMData, load_data
from .errors import UserError
from .metrics import context_mean_baseline, score
from .spaces import METRIC, SearchSpace, split_params
from .train import TrainingDiverged, train

SUMMARY = "summary.json"
RUN_INFO = "run.json"
STUDY = "study.db"
# A Unix socket path may hold at most 107 bytes; Ray's session folder adds about 70.
MAX_RAY_TMP_CHARS = 36
TOKEN_SOURCES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
DEFAULT_TOKEN_FILE = Path.home() / ".ray" / "auth_token"


@dataclass
class SearchOptions:
    """Command-line overrides and where the run lives."""

    data: str | None = None
    k: int | None = None
    storage: str = "runs"
    name: str | None = None
    address: str | None = None
    fresh: bool = False
    verbose: int = 1


# --- the trainable (runs in Ray workers) ---------------------------------------------------------


def trial_device() -> str:
    if ray.get_gpu_ids() and torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def run_trial(config: dict, data: LVMData, arch: str, fixed: dict, seed: int, threads: int) -> None:
    """One trial: the core trainer, reporting every epoch and checkpointing when val improves."""
    cfg = split_params(arch, {**fixed, **config}, where="trial")
    cfg = dataclasses.replace(cfg, device=trial_device(), threads=threads, seed=seed)

    def report(epoch, metrics, save):
        if save is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            save(Path(tmp) / "model")
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(Path(tmp) / "model"))

    try:
        train(cfg, data, report)
    except TrainingDiverged as e:
        # A diverged trial is a result, not a crash: TPE learns to avoid the region, and retrying
        # the same seed would diverge again.
        tune.report({METRIC: -1.0, "diverged": 1, "error": str(e)})


# --- the driver ---------------------------------------------------------------------------------


def run_search(space: SearchSpace, opts: SearchOptions) -> dict:
    name = opts.name or Path(space.source).stem
    storage = Path(opts.storage).expanduser().resolve()
    run_dir = storage / name
    data = load_data(opts.data, k=opts.k)

    with _run_lock(storage, name):
        _prepare_run_dir(run_dir, space, data, opts.fresh)
        results, wall_s = _fit(space, opts, data, storage, name, run_dir)

    summary = _summarise(results, space, data, run_dir, name, wall_s)
    _write_json(run_dir / SUMMARY, summary)
    export_study(summary, space, run_dir / STUDY)
    return summary


def _fit(space: SearchSpace, opts: SearchOptions, data: LVMData, storage: Path, name: str, run_dir: Path):
    with _ray_cluster(run_dir, opts.address):
        _check_resources(space)
        trainable = tune.with_resources(
            tune.with_parameters(
                run_trial,
                data=data,
                arch=space.arch,
                fixed=space.fixed,
                seed=space.seed,
                threads=max(1, int(space.resources.cpus_per_trial)),
            ),
            {"cpu": space.resources.cpus_per_trial, "gpu": space.resources.gpus_per_trial},
        )
        t0 = time.time()
        if tune.Tuner.can_restore(run_dir):
            print(f"resuming the search in {run_dir}", flush=True)
            # Our checkpoints hold the best weights, not the optimizer state, so an interrupted
            # trial restarts from its first epoch with the same configuration.
            tuner = tune.Tuner.restore(
                str(run_dir),
                trainable,
                _resume_config=tune.ResumeConfig(unfinished=tune.ResumeConfig.ResumeType.RESTART),
            )
        else:
            tuner = tune.Tuner(trainable, tune_config=_tune_config(space), run_config=_run_config(space, storage, name, opts))
        results = tuner.fit()
        return results, time.time() - t0


def _tune_config(space: SearchSpace) -> tune.TuneConfig:
    searcher = OptunaSearch(
        space=space.distributions(),
        metric=METRIC,
        mode="max",
        points_to_evaluate=[space.reference_point()],
        seed=space.seed,
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
        search_alg=ConcurrencyLimiter(searcher, max_concurrent=space.max_concurrent),
        scheduler=scheduler,
        metric=METRIC,
        mode="max",
        num_samples=space.samples,
        reuse_actors=True,
        trial_dirname_creator=trial_dirname,
    )


def trial_dirname(trial) -> str:
    """``trial_000_<id>``: the number is the order in which the searcher proposed the trial."""
    number = int(trial.experiment_tag.split("_")[0]) - 1
    return f"trial_{number:03d}_{trial.trial_id}"


def _run_config(space: SearchSpace, storage: Path, name: str, opts: SearchOptions) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=str(storage),
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute=METRIC, checkpoint_score_order="max"
        ),
        failure_config=tune.FailureConfig(max_failures=1),
        verbose=opts.verbose,
    )


def _prepare_run_dir(run_dir: Path, space: SearchSpace, data: LVMData, fresh: bool) -> None:
    """Create the run folder, or check that a resumed run uses the same space and data."""
    info = {"space": dataclasses.asdict(space), "data": data.summary()}
    info_path = run_dir / RUN_INFO
    if fresh and run_dir.exists():
        # Keep the old run rather than delete a user's results.
        aside = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(run_dir, aside)
        print(f"--fresh: moved the previous run to {aside}", flush=True)
    if info_path.exists():
        previous = json.loads(info_path.read_text())
        if previous["data"]["fingerprint"] != data.fingerprint:
            raise UserError(
                f"{run_dir}: this run was started on data with fingerprint {previous['data']['fingerprint']}, "
                f"not {data.fingerprint}; use --fresh or another --name"
            )
        if previous["space"]["space"] != info["space"]["space"] or previous["space"]["arch"] != space.arch:
            raise UserError(f"{run_dir}: this run was started with another search space; use --fresh or another --name")
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(info_path, info)
    except OSError as e:
        raise UserError(f"{run_dir}: cannot write the run folder ({e.strerror})") from None


@contextlib.contextmanager
def _run_lock(storage: Path, name: str):
    """Refuse a second search on the same run folder while one is running."""
    try:
        storage.mkdir(parents=True, exist_ok=True)
        lock = open(storage / f".{name}.lock", "w")
    except OSError as e:
        raise UserError(f"{storage}: cannot write to the storage folder ({e.strerror})") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{storage / name}: another search is running in this folder; wait for it or use another --name") from None
        yield


@contextlib.contextmanager
def _ray_cluster(run_dir: Path, address: str | None):
    if ray.is_initialized():
        ray.shutdown()
    if address:
        _connect(address)
        try:
            yield
        finally:
            ray.shutdown()
        return

    ray_tmp = run_dir / "ray"
    if len(str(ray_tmp)) > MAX_RAY_TMP_CHARS:
        ray_tmp = Path(tempfile.mkdtemp(prefix="lvm-ray-"))
    os.environ["RAY_TMPDIR"] = str(ray_tmp)
    # Keeping only the best checkpoint forces a small state snapshot per improvement; Tune warns
    # about it on every fast trial, but on our runs it costs milliseconds.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not any(os.environ.get(v) for v in TOKEN_SOURCES) and not DEFAULT_TOKEN_FILE.exists():
        # Ray turns token auth on for a new local cluster and would write a lasting token to
        # ~/.ray; we keep auth on with a token that lives in this process's environment only.
        # One token per process: Ray's token loader caches the first one it reads.
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
    try:
        ray.init(
            num_gpus=torch.cuda.device_count(),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(ray_tmp),
            log_to_driver=False,
            configure_logging=False,
        )
        yield
    finally:
        ray.shutdown()
        # Ray's session folder (sockets, logs) can grow to hundreds of MB and is of no use afterwards.
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _connect(address: str) -> None:
    """Join an existing cluster, using its auth token where one can be found."""
    if "RAY_AUTH_MODE" not in os.environ and (
        any(os.environ.get(v) for v in TOKEN_SOURCES) or DEFAULT_TOKEN_FILE.exists()
    ):
        # Ray enables token auth by itself only for address="auto"; `ray start` clusters use it
        # by default, so an explicit HOST:PORT needs the same treatment.
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except ray.exceptions.AuthenticationError as e:
        raise UserError(
            f"--address {address}: the cluster refused this driver's auth token; copy the head node's "
            f"~/.ray/auth_token here or set RAY_AUTH_TOKEN_PATH ({str(e).splitlines()[0][:120]})"
        ) from None
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"--address {address}: cannot connect to a Ray cluster ({str(e).splitlines()[0][:160]})") from None


def _check_resources(space: SearchSpace) -> None:
    total = ray.cluster_resources()
    for key, need in (("CPU", space.resources.cpus_per_trial), ("GPU", space.resources.gpus_per_trial)):
        if need > total.get(key, 0):
            raise UserError(
                f"{space.source}: a trial asks for {need:g} {key}(s) but the cluster has {total.get(key, 0):g}"
            )


# --- results ------------------------------------------------------------------------------------


def _summarise(results, space: SearchSpace, data: LVMData, run_dir: Path, name: str, wall_s: float) -> dict:
    x, _ = data.batch("val", slice(None))
    baseline = score(context_mean_baseline(x), data, "val")
    trials = sorted((_trial_record(r, run_dir) for r in results), key=lambda t: t["number"])
    finished = [t for t in trials if t["status"] == "ok"]
    best = max(finished, key=lambda t: t["val_cosine"], default=None)
    summary = {
        "name": name,
        "arch": space.arch,
        "space_file": space.source,
        "data": data.summary(),
        "splits": data.split_sizes(),
        "baseline_val": {"mean": baseline},
        "counts": {
            "trials": len(trials),
            "ok": len(finished),
            "stopped_early": sum(t["stopped_early"] for t in trials),
            "diverged": sum(t["status"] == "diverged" for t in trials),
            "errored": sum(t["status"] == "error" for t in trials),
        },
        "wall_s": wall_s,
        "best": None,
        "trials": trials,
    }
    if best:
        summary["best"] = {
            "trial_id": best["trial_id"],
            "config": best["config"],
            "val_cosine": best["val_cosine"],
            "gain_over_mean_pct": 100 * (best["val_cosine"] / baseline["cosine"] - 1),
            "checkpoint": best["checkpoint"],
            "history": best["history"],
        }
    return summary


def _trial_record(result, run_dir: Path) -> dict:
    config = dict(result.config or {})
    frame = result.metrics_dataframe
    history = []
    if frame is not None and METRIC in frame:
        history = [
            {"epoch": int(row["training_iteration"]), METRIC: float(row[METRIC])}
            for _, row in frame.iterrows()
            if row.get("diverged") != 1 and row[METRIC] == row[METRIC]
        ]
    metrics = result.metrics or {}
    if result.error is not None:
        status = "error"
    elif metrics.get("diverged") == 1:
        status = "diverged"
    else:
        status = "ok" if history else "error"
    epochs_run = len(history)
    checkpoint = result.best_checkpoints[0][0].path if result.best_checkpoints else None
    planned = config.get("epochs")
    _, number, trial_id = Path(result.path).name.split("_")
    return {
        "number": int(number),
        "trial_id": trial_id,
        "config": config,
        "status": status,
        "val_cosine": max((h[METRIC] for h in history), default=None),
        "epochs_run": epochs_run,
        "stopped_early": status == "ok" and planned is not None and epochs_run < planned,
        "time_total_s": metrics.get("time_total_s"),
        "finished_at": metrics.get("timestamp"),
        "node_ip": metrics.get("node_ip"),
        "checkpoint": os.path.relpath(checkpoint, run_dir) if checkpoint else None,
        "history": history,
        "error": str(result.error).splitlines()[0] if result.error is not None else metrics.get("error"),
    }


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def export_study(summary: dict, space: SearchSpace, path: Path) -> None:
    """Write the trials as an Optuna study (SQLite) for optuna-dashboard and parameter importances."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{tmp}", study_name=summary["name"], direction="maximize")
    distributions = space.distributions()
    for trial in summary["trials"]:
        params = {k: v for k, v in trial["config"].items() if k in distributions}
        if set(params) != set(distributions):
            continue
        finished = trial["status"] == "ok"
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=trial["val_cosine"] if finished else None,
                state=optuna.trial.TrialState.COMPLETE if finished else optuna.trial.TrialState.FAIL,
                user_attrs={"trial_id": trial["trial_id"], "epochs_run": trial["epochs_run"]},
            )
        )
    os.replace(tmp, path)
