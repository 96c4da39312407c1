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
import sys
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
from .metrics import reference_mean, score
from .spaces import METRIC, SearchSpace, split_params
from .train import TrainingDiverged, train

SUMMARY = "summary.json"
TRIALS_LOG = "trials.jsonl"
RUN_INFO = "run.json"
STUDY = "study.db"
# A Unix socket path may hold at most 107 bytes; Ray's session folder adds about 70.
MAX_RAY_TMP_CHARS = 36
TOKEN_SOURCES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
AUTO_GPUS_PER_TRIAL = 0.25  # measured: see Resources in spaces.py
DEFAULT_TOKEN_FILE = Path.home() / ".ray" / "auth_token"


@dataclass
class SearchOptions:
    """Command-line overrides and where the run lives."""

    data: str | None = None
    k: int | None = None
    min_context: int | None = None
    extra_train: tuple[str, ...] = ()
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

    node = ray.get_runtime_context().get_node_id()[:12]  # node_ip is the same for nodes on one host

    def report(epoch, metrics, save):
        metrics = {**metrics, "node_id": node}
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
    """Run the search, or resume it: trials already in the run's trial log are not run again."""
    name = opts.name or Path(space.source).stem
    storage = Path(opts.storage).expanduser().resolve()
    run_dir = storage / name
    data = load_data(
        opts.data,
        k=space.data.k if opts.k is None else opts.k,
        min_context=space.data.min_context if opts.min_context is None else opts.min_context,
        extra_train=opts.extra_train,
    )

    with _run_lock(storage, name):
        _prepare_run_dir(run_dir, space, data, opts.fresh)
        done = read_trial_log(run_dir)
        t0 = time.time()
        if len(done) < space.samples:
            if done:
                print(f"resuming {run_dir}: {len(done)} of {space.samples} trials already done", file=sys.stderr)
            _fit(space, opts, data, run_dir, trial_records(done, space, run_dir))
        previous = json.loads((run_dir / SUMMARY).read_text())["wall_s"] if (run_dir / SUMMARY).exists() else 0.0
        summary = _summarise(read_trial_log(run_dir), space, data, run_dir, name, previous + time.time() - t0)
        _write_json(run_dir / SUMMARY, summary)
        export_study(summary, space, run_dir / STUDY)
    return summary


def _fit(space: SearchSpace, opts: SearchOptions, data: LVMData, run_dir: Path, done: list[dict]) -> None:
    # Each start is a fresh Tune experiment in its own folder, warm-started with the trials of
    # earlier starts. Tuner.restore would unpickle the folder's state (unsafe for a shared folder)
    # and, when interrupted at the wrong moment, restores a searcher that lags its trials.
    attempt = 1 + max((int(p.name.split("-")[1]) for p in run_dir.glob("attempt-*")), default=0)
    with _ray_cluster(run_dir, opts.address):
        space = _resolve_gpus(space)
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
        run_config = tune.RunConfig(
            name=f"attempt-{attempt}",
            storage_path=str(run_dir),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=METRIC, checkpoint_score_order="max"
            ),
            failure_config=tune.FailureConfig(max_failures=1),
            callbacks=[TrialLog(run_dir / TRIALS_LOG, attempt)],
            verbose=opts.verbose,
        )
        tune.Tuner(trainable, tune_config=_tune_config(space, done), run_config=run_config).fit()


class TrialLog(tune.Callback):
    """Appends one JSON line per finished trial. Resumes and summaries trust this log alone."""

    def __init__(self, path: Path, attempt: int):
        self.path, self.attempt = path, attempt

    def on_trial_complete(self, iteration, trials, trial, **info):
        diverged = (trial.last_result or {}).get("diverged") == 1
        self._append(trial, "diverged" if diverged else "ok")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._append(trial, "error")

    def _append(self, trial, status: str) -> None:
        record = {
            "attempt": self.attempt,
            "tag": proposal_number(trial),
            "trial_id": trial.trial_id,
            "dir": os.path.relpath(trial.path, self.path.parent),
            "status": status,
            "config": trial.config,
            "failures": trial.num_failures,
            "error": (trial.last_result or {}).get("error") or _first_line(trial.error_file),
        }
        with open(self.path, "a") as f:  # one short line per append: a kill can only cut the last
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _first_line(path) -> str | None:
    try:
        return Path(path).read_text().strip().splitlines()[-1][:300] if path else None
    except (OSError, IndexError):
        return None


def read_trial_log(run_dir: Path) -> list[dict]:
    records, path = {}, run_dir / TRIALS_LOG
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill; that trial runs again
            records[record["trial_id"]] = record
    return sorted(records.values(), key=lambda r: (r["attempt"], r["tag"]))


def _tune_config(space: SearchSpace, done: list[dict]) -> tune.TuneConfig:
    reference = space.reference_point()
    # A resumed start must not replay the first start's proposals.
    sampler = space.make_sampler(seed=space.seed + len(done))
    searcher = OptunaSearch(
        space=space.distributions(),
        metric=METRIC,
        mode="max",
        points_to_evaluate=[] if any(t["config"] == reference for t in done) else [reference],
        sampler=sampler,
    )
    for trial in done:  # what earlier starts learned
        searcher.add_evaluated_point(trial["config"], trial["val_cosine"] or 0.0, error=trial["status"] == "error")
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
        num_samples=space.samples - len(done),
        reuse_actors=True,
        trial_dirname_creator=trial_dirname,
    )


def proposal_number(trial) -> int:
    """1, 2, ...: the order in which this start's searcher proposed the trial (Tune's experiment tag)."""
    return int(trial.experiment_tag.split("_")[0])


def trial_dirname(trial) -> str:
    return f"trial_{proposal_number(trial):03d}_{trial.trial_id}"


def _prepare_run_dir(run_dir: Path, space: SearchSpace, data: LVMData, fresh: bool) -> None:
    """Create the run folder, or check that a resumed run uses the same space and data."""
    # Through JSON, so that it compares equal to what an earlier start wrote (tuples become lists).
    info = json.loads(json.dumps({"space": dataclasses.asdict(space), "data": data.summary()}))
    info_path = run_dir / RUN_INFO
    if fresh and run_dir.exists():
        # Keep the old run rather than delete a user's results.
        aside = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(run_dir, aside)
        print(f"--fresh: moved the previous run to {aside}", file=sys.stderr)
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
    # Ray refuses a temp dir inside the virtualenv's root, and Unix socket paths are short.
    if len(str(ray_tmp)) > MAX_RAY_TMP_CHARS or ray_tmp.is_relative_to(sys.prefix):
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


def _resolve_gpus(space: SearchSpace) -> SearchSpace:
    if space.resources.gpus_per_trial != "auto":
        return space
    gpus = AUTO_GPUS_PER_TRIAL if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    return dataclasses.replace(space, resources=dataclasses.replace(space.resources, gpus_per_trial=gpus))


def _check_resources(space: SearchSpace) -> None:
    total = ray.cluster_resources()
    for key, need in (("CPU", space.resources.cpus_per_trial), ("GPU", space.resources.gpus_per_trial)):
        if need > total.get(key, 0):
            raise UserError(
                f"{space.source}: a trial asks for {need:g} {key}(s) but the cluster has {total.get(key, 0):g}"
            )


# --- results ------------------------------------------------------------------------------------


def _history(record: dict, run_dir: Path) -> list[dict]:
    """Per-epoch results of a logged trial, read from Tune's result.json in its folder."""
    path = run_dir / record["dir"] / "result.json"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return [r for r in rows if r.get("diverged") != 1 and METRIC in r]


def _summarise(records: list[dict], space: SearchSpace, data: LVMData, run_dir: Path, name: str, wall_s: float) -> dict:
    baseline = score(reference_mean(data, "val"), data, "val")
    trials = trial_records(records, space, run_dir)
    finished = [t for t in trials if t["status"] == "ok"]
    best = max(finished, key=lambda t: t["val_cosine"], default=None)
    summary = {
        "name": name,
        "arch": space.arch,
        "space_file": space.source,
        "complete": len(trials) >= space.samples,
        "data": data.summary(),
        "splits": data.split_sizes(),
        "baseline_val": {"mean": baseline},
        "counts": {
            "samples": space.samples,
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


def trial_records(records: list[dict], space: SearchSpace, run_dir: Path) -> list[dict]:
    """The logged trials with their histories, numbered in the order they were proposed."""
    return [_trial_record(number, r, space, run_dir) for number, r in enumerate(records)]


def _trial_record(number: int, record: dict, space: SearchSpace, run_dir: Path) -> dict:
    rows = _history(record, run_dir)
    history = [{"epoch": int(r["training_iteration"]), METRIC: float(r[METRIC])} for r in rows]
    last = rows[-1] if rows else {}
    status = record["status"] if history or record["status"] != "ok" else "error"
    checkpoints = sorted((run_dir / record["dir"]).glob("checkpoint_*"))
    planned = record["config"].get("epochs", space.max_epochs)
    return {
        "number": number,
        "trial_id": record["trial_id"],
        "attempt": record["attempt"],
        "config": record["config"],
        "status": status,
        "val_cosine": max((h[METRIC] for h in history), default=None),
        "epochs_run": len(history),
        "stopped_early": status == "ok" and len(history) < planned,
        "time_total_s": last.get("time_total_s"),
        "finished_at": last.get("timestamp"),
        "node_ip": last.get("node_ip"),
        "node_id": last.get("node_id"),
        "checkpoint": os.path.relpath(checkpoints[-1], run_dir) if checkpoints and status == "ok" else None,
        "history": history,
        "failures": record.get("failures", 0),
        "error": record.get("error"),
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
