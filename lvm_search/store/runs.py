"""The on-disk run format: file names, typed records, finding runs, reading and writing them.

Nothing else in the package knows these names or layouts (in the spirit of Optuna's storages)::

    <storage>/
      <run>/                      one search (`lvm-search run`)
        run.json                  RunInfo: the space, the data and the provenance of its first start
        trials.jsonl              one TrialLogEntry per finished trial, appended; resumes trust it alone
        attempt-N/trial_XXX_<id>/ Tune's trial folders: result.json and the trial's best checkpoint_*/
        summary.json              RunSummary: every trial, the best one, the baseline on the same windows
        study.db                  the Optuna study (SQLite), live while the search runs
        resources.json            the last start's device, trials at once and the cluster's CPUs/GPUs
        mlflow.db                 with --log mlflow: the MLflow store (TensorBoard's files: in trial folders)
        .staging/                 checkpoints being handed to Tune; emptied at every start
      ensembles/<name>/           an ensemble (`lvm-search ensemble`)
        ensemble.json             EnsembleRecord
        members/NN/               copies of its members' checkpoints: the folder is self-contained

Every record is validated as it is read, against its annotations (``records.parse``): a missing
field, a field of the wrong type or a file cut short is a ``UserError`` naming the file, never a
traceback. Every write goes through ``write_file`` or ``write_folder``, which replace their target
atomically and never delete or move anything the package did not create.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError, reason
from .provenance import Provenance
from .records import Inside, Weight, parse

logger = logging.getLogger(__name__)

RUN_INFO = "run.json"
TRIALS_LOG = "trials.jsonl"
SUMMARY = "summary.json"
STUDY = "study.db"
RESOURCES = "resources.json"
STAGING = ".staging"
ENSEMBLES = "ensembles"
ENSEMBLE_RECORD = "ensemble.json"
ENSEMBLE_MEMBERS = "members"
RIDGE_WEIGHTS = "ridge.safetensors"  # a ridge baseline member's fitted numbers, in its member folder
TRIAL_STATUSES = ("ok", "diverged", "error")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RESERVED_NAMES = {ENSEMBLES}
MAX_STATE_FILE_BYTES = 256 * 2**20  # a summary of 10,000 trials is a few MB


# --- records -----------------------------------------------------------------------------------


@dataclass
class DataInfo:
    """What a run was trained on: ``LVMData.summary()``."""

    source: str
    format: str
    fingerprint: str
    D: int
    k: int
    min_context: int
    passages: int
    extra_train: list[str] = field(default_factory=list)
    split_seed: int = 0
    content_digest: str = ""  # of the file's vectors and document ids, whatever k and split
    horizon: int = 1  # the target is the passage this many steps after the context (1: the next)


@dataclass
class SplitSize:
    docs: int
    windows: int


@dataclass
class RunInfo:
    """``run.json``: what a run was started with; a resume must match it."""

    space: dict  # the SearchSpace as JSON (spaces.space_to_json)
    data: DataInfo
    provenance: Provenance | None = None
    teacher: dict | None = None  # distill.Teacher.describe(): the ensemble every trial learns from
    init: dict | None = None  # warm_start.WarmStart.describe(): the weights every trial starts from


@dataclass
class EpochResult:
    epoch: int
    val_cosine: float
    at: float | None = None  # when it was reported (seconds since the epoch), for anytime curves


@dataclass
class TrialLogEntry:
    """One line of ``trials.jsonl``, appended by the driver when a trial ends."""

    attempt: int
    tag: int  # the order in which its start's searcher proposed it
    trial_id: str
    dir: Inside  # the trial's Tune folder, relative to the run folder
    status: str  # ok, diverged or error
    config: dict
    failures: int = 0
    error: str | None = None
    history: list[EpochResult] = field(default_factory=list)
    checkpoint: Inside | None = None  # the trial's best checkpoint, relative to the run folder
    time_total_s: float | None = None
    finished_at: float | None = None
    node_ip: str | None = None
    node_id: str | None = None


@dataclass
class Trial:
    number: int  # 0, 1, ... in the order the trials were proposed (0 is the reference configuration)
    trial_id: str
    attempt: int
    config: dict
    status: str
    val_cosine: float | None  # the best epoch's
    epochs_run: int
    stopped_early: bool
    history: list[EpochResult]
    checkpoint: Inside | None = None  # relative to the run folder
    time_total_s: float | None = None
    finished_at: float | None = None
    node_ip: str | None = None
    node_id: str | None = None
    failures: int = 0
    error: str | None = None


@dataclass
class Counts:
    samples: int
    trials: int
    ok: int
    stopped_early: int
    diverged: int
    errored: int


@dataclass
class BestTrial:
    trial_id: str
    config: dict
    val_cosine: float
    gain_over_mean_pct: float
    checkpoint: Inside
    history: list[EpochResult]


@dataclass
class RunSummary:
    """``summary.json``: every trial of a run, its best, and the baseline on the same val windows."""

    name: str
    arch: str
    space_file: str
    complete: bool
    data: DataInfo
    splits: dict[str, SplitSize]
    baseline_val: dict[str, dict[str, float]]  # {"mean": {"cosine": val cosine}}
    counts: Counts
    wall_s: float
    trials: list[Trial]
    best: BestTrial | None = None
    provenance: Provenance | None = None
    resources: dict = field(
        default_factory=dict
    )  # of the last start: device, concurrency, the cluster's CPUs/GPUs
    teacher: dict | None = None  # as in run.json: the ensemble every trial learned from
    init: dict | None = None  # as in run.json: the weights every trial started from

    def trial(self, trial_id: str) -> Trial:
        return next(t for t in self.trials if t.trial_id == trial_id)

    def trial_k(self, trial: Trial) -> int:
        """The context length a trial read: its own where the search chose k, else the run's."""
        return int(trial.config.get("k", self.data.k))


@dataclass
class MemberRecord:
    name: str  # "<run>/<trial_id>", or a baseline's name
    arch: str
    k: int
    weight: Weight
    checkpoint: Inside | None  # inside the ensemble folder; None for a classical baseline
    fingerprint: str
    metrics: dict[str, dict[str, float]]  # {"val": scores, "test": scores}
    baseline: dict | None = None  # a classical baseline member: {"name": ..., fitted parameters}
    digest: str | None = (
        None  # of its files (files_digest) when the ensemble was built; None in older ensembles
    )


@dataclass
class EnsembleRecord:
    """``ensemble.json``."""

    name: str
    recipe: str
    method: str
    fingerprint: str
    data: DataInfo
    splits: dict[str, SplitSize]
    members: list[MemberRecord]
    candidates: list[dict]
    metrics: dict[str, dict[str, float]]
    baseline: dict[str, dict[str, dict[str, float]]]
    best_single: dict
    gain_pct: dict[str, dict[str, float]]
    intervals: dict = field(default_factory=dict)
    provenance: Provenance | None = None
    val_crossfit: dict[str, float] = field(
        default_factory=dict
    )  # each method's val cosine, fitted on other docs
    # of the record itself (record_digest), which holds each member's digest: an ensemble.json edited
    # since it was written, or a member file changed, is found where the ensemble is loaded
    digest: str | None = None


# --- names and places --------------------------------------------------------------------------


def check_name(name: str, what: str) -> str:
    """A run or ensemble name is one plain folder name: it can never point outside its parent."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name in RESERVED_NAMES:
        raise UserError(
            f"{what}: {name!r} is not a usable name (letters, digits, '.', '_' and '-', starting with a "
            f"letter or digit; not {', '.join(sorted(RESERVED_NAMES))})"
        )
    return name


def run_dir(storage: Path, name: str) -> Path:
    return Path(storage) / check_name(name, "--name")


def ensemble_dir(storage: Path, name: str) -> Path:
    return Path(storage) / ENSEMBLES / check_name(name, "ensemble name")


def is_run_dir(path: Path) -> bool:
    return (path / RUN_INFO).is_file()


# --- reading -----------------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if size > MAX_STATE_FILE_BYTES:
        raise UserError(f"{path}: {size:,} bytes is larger than any file lvm-search writes")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON, the file may be cut short ({reason(e)})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None


def from_json(cls, raw, where: str):
    """Build dataclass ``cls`` from parsed JSON, checking every field against its annotation
    (``records.parse``). Keys it does not know are left out: a later version may add fields."""
    return parse(cls, raw, where, unknown="ignore", finite=False, sep=": ")


def read_record(cls, path: Path):
    return from_json(cls, read_json(path), str(path))


def read_run_info(run: Path) -> RunInfo:
    return read_record(RunInfo, run / RUN_INFO)


def read_summary(run: Path) -> RunSummary:
    return read_record(RunSummary, run / SUMMARY)


def read_ensemble(folder: Path) -> EnsembleRecord:
    path = folder / ENSEMBLE_RECORD
    if not path.is_file():
        raise UserError(f"{folder}: not an ensemble folder (no {ENSEMBLE_RECORD})")
    raw = read_json(path)
    record = from_json(EnsembleRecord, raw, str(path))
    if not record.members:
        raise UserError(f"{path}: members: an ensemble needs at least one member")
    if abs(sum(m.weight for m in record.members) - 1) > 1e-4:
        raise UserError(f"{path}: members: weights must sum to 1")
    if record.digest is not None and record_digest(raw) != record.digest:
        raise UserError(
            f"{path}: edited since lvm-search wrote it (its digest no longer matches what it says); "
            "rebuild the ensemble with `lvm-search ensemble`"
        )
    return record


def record_digest(raw: dict) -> str:
    """Of a record as JSON, its own ``digest`` field left out: key order and spacing do not count."""
    content = {key: value for key, value in raw.items() if key != "digest"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[
        :16
    ]


def files_digest(root: Path, names: tuple[str, ...] | None = None) -> str:
    """Of every file under ``root`` (or under ``names`` in it): their paths and bytes, in a fixed order.
    A member's weights replaced, or its config.json edited, give another digest."""
    roots = [root / name for name in names] if names else [root]
    files = sorted(p for top in roots for p in ([top] if top.is_file() else top.rglob("*")) if p.is_file())
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
    return h.hexdigest()[:16]


# What each state file of a run folder holds, for messages.
RUN_FILES = {
    RUN_INFO: "run record",
    TRIALS_LOG: "trial log",
    SUMMARY: "summary",
    STUDY: "Optuna study",
    RESOURCES: "resources record",
}
ATTEMPT = re.compile(r"attempt-(\d{1,9})")


def check_run_files(run: Path) -> None:
    """Each state file of a run folder is a file where it exists, and ``.staging`` a folder: anything
    else in their place (a folder, a socket) is one line before any work, never a traceback after."""
    for name, what in RUN_FILES.items():
        path = run / name
        if (path.exists() or path.is_symlink()) and not path.is_file():
            raise UserError(
                f"{path}: lvm-search keeps the run's {what} here, but this is not a file; "
                "move it out of the run folder, or use another --name"
            )
    staging = run / STAGING
    if (staging.exists() or staging.is_symlink()) and (staging.is_symlink() or not staging.is_dir()):
        raise UserError(f"{staging}: lvm-search stages checkpoints in a folder here, but this is not one")


def next_attempt(run: Path) -> int:
    """The number of the next start of a run (its Tune experiment is ``attempt-N``)."""
    numbers = [int(m[1]) for p in run.iterdir() if (m := ATTEMPT.fullmatch(p.name))]
    return 1 + max(numbers, default=0)


def attempt_name(number: int) -> str:
    return f"attempt-{number}"


def read_optional(cls, path: Path, default, what: str):
    """A derived record that the run rebuilds (the summary, the resources): unreadable, it is
    replaced, with one warning, instead of stopping a search whose trials are all in the log."""
    if not path.exists():
        return default
    try:
        return read_record(cls, path)
    except UserError as e:
        logger.warning("%s; the %s is written again from the trial log", e, what)
        return default


def read_trial_log(run: Path) -> list[TrialLogEntry]:
    """The logged trials, in proposal order. A last line without its newline counts when it is whole
    and is skipped when it was cut short by a kill (that trial runs again), as ``append_line`` treats
    it; any other line that is not a trial record is an error naming it. A trial logged twice counts
    once (its last record)."""
    path = run / TRIALS_LOG
    if not path.exists():
        return []
    content = path.read_text(errors="replace")
    lines = content.split("\n")
    entries: dict[str, TrialLogEntry] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if number == len(lines) and not is_whole_line(line):  # unterminated and cut short
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path}: line {number} is not valid JSON") from None
        entry = from_json(TrialLogEntry, raw, f"{path}: line {number}")
        if entry.status not in TRIAL_STATUSES:
            raise UserError(
                f"{path}: line {number}: status must be one of {TRIAL_STATUSES}, got {entry.status!r}"
            )
        entries[entry.trial_id] = entry
    return sorted(entries.values(), key=lambda e: (e.attempt, e.tag))


def find_runs(storage: Path, names: tuple[str, ...] = (), where: str = "") -> list[tuple[Path, RunSummary]]:
    """The named runs, or else the latest finished run of each architecture, with their folders."""
    storage = Path(storage)
    if names:
        found = []
        for name in names:
            folder = run_dir(storage, name)
            if not (folder / SUMMARY).is_file():
                raise UserError(f"{where}: runs: no finished run '{name}' under {storage} (no {SUMMARY})")
            found.append((folder, read_summary(folder)))
        return found
    latest: dict[str, tuple[float, Path, RunSummary]] = {}
    for path in sorted(storage.glob(f"*/{SUMMARY}")):
        summary = read_summary(path.parent)
        mtime = path.stat().st_mtime
        if summary.arch not in latest or mtime > latest[summary.arch][0]:
            latest[summary.arch] = (mtime, path.parent, summary)
    if not latest:
        raise UserError(f"{storage}: no finished search (no */{SUMMARY}); run `lvm-search run` first")
    return [latest[arch][1:] for arch in sorted(latest)]


def all_runs(storage: Path) -> list[tuple[Path, RunSummary]]:
    """Every finished run under ``storage`` (each folder with a summary), oldest summary first: the
    report gives each its row, so a second search of an architecture never hides the first."""
    storage = Path(storage)
    found = sorted(
        (path.stat().st_mtime, path.parent.name, path.parent) for path in storage.glob(f"*/{SUMMARY}")
    )
    if not found:
        raise UserError(f"{storage}: no finished search (no */{SUMMARY}); run `lvm-search run` first")
    return [(folder, read_summary(folder)) for _, _, folder in found]


def find_ensembles(storage: Path) -> list[tuple[Path, EnsembleRecord]]:
    return [
        (p.parent, read_ensemble(p.parent))
        for p in sorted((Path(storage) / ENSEMBLES).glob(f"*/{ENSEMBLE_RECORD}"))
    ]


# --- writing -----------------------------------------------------------------------------------


def to_json(record) -> Any:
    return json.loads(
        json.dumps(dataclasses.asdict(record) if dataclasses.is_dataclass(record) else record, default=str)
    )


def write_file(path: Path, content: str | bytes) -> None:
    """Replace ``path`` atomically: a reader sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's files are private; a result file is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output_file(path: Path, suffix: str, ours: Callable[[Path], bool], what: str) -> None:
    """An output file a user names (``--out``): it must end in ``suffix``, and an existing file is
    replaced only when ``ours(path)`` says lvm-search wrote it (``what`` names such a file). Its folder
    must be writable; all checked before any slow work."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a {suffix} file path")
    if path.suffix != suffix:
        raise UserError(f"{path}: --out must name a {suffix} file")
    if path.exists() and not ours(path):
        raise UserError(f"{path}: already exists and is not {what}; choose another --out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as e:
        raise UserError(f"{path}: cannot write here ({e.strerror})") from None


def npz_meta(path: Path) -> dict:
    """The ``meta_json`` of an .npz this package wrote ({} for anything else, readable or not)."""
    try:
        import numpy as np

        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta_json"])) if "meta_json" in z.files else {}
        return meta if isinstance(meta, dict) else {}
    except Exception:  # anything unreadable is not ours
        return {}


def write_json(path: Path, record) -> None:
    write_file(path, json.dumps(to_json(record), indent=2) + "\n")


def check_replaceable(path: Path, ours: Callable[[Path], bool], what: str) -> None:
    """What ``write_folder`` refuses, for a caller to refuse it before a long computation."""
    if path.is_symlink():
        # Replacing a link would swap the link itself for a folder, leaving its target behind.
        raise UserError(f"{path}: is a symbolic link; give the folder it points to instead")
    if path.exists() and not (path.is_dir() and ours(path)):
        raise UserError(
            f"{path}: already exists and is not {what} that lvm-search wrote; choose another path"
        )


def write_folder(path: Path, fill: Callable[[Path], None], ours: Callable[[Path], bool], what: str) -> Path:
    """Write a folder by ``fill(tmp)`` beside ``path``, then swap it in.

    An existing ``path`` is replaced only when ``ours(path)`` says the package wrote it (a checkpoint,
    an ensemble); anything else is refused, so a user's folder is never deleted. The old folder is
    renamed aside before the new one takes its place and removed only after, so at every moment
    one complete version exists.
    """
    path = Path(path)
    check_replaceable(path, ours, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise UserError(f"{path}: cannot write here ({e.strerror})") from None
    aside = None
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        if path.exists():
            aside = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, aside)
        os.replace(tmp, path)
    except BaseException:
        if aside is not None and not path.exists():
            os.replace(aside, path)  # put the old version back
            aside = None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    return path


def append_line(path: Path, record) -> None:
    """Append one JSON line. A last line without its newline is finished first when it is a whole
    JSON value (written, then killed before the newline, or saved by an editor): ``read_trial_log``
    counts it, so it must stay. Only a line cut short is dropped: its record was never whole (that
    trial runs again)."""
    line = json.dumps(to_json(record)) + "\n"
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # only after a kill or an edit: look at the unterminated line
                f.seek(0)
                content = f.read()
                start = content.rfind(b"\n") + 1
                if is_whole_line(content[start:]):
                    f.write(b"\n")
                else:
                    f.truncate(start)
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())


def is_whole_line(raw: bytes | str) -> bool:
    """Whether a line of a JSON-lines file is one whole JSON value (a line cut short never is: every
    record is an object, and no prefix of an object is valid JSON)."""
    try:
        json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True
