#!/usr/bin/env python
"""Attack the real ``lvm-search`` command line as a careless or malicious user would; record every outcome.

Every case runs the product itself in a subprocess (``python -m lvm_search.cli ...``), in a fresh
temporary folder that is its working directory, after a sha256 snapshot of every file, folder and
link the user gave or that sits in that folder. Then it checks:

* the exit code: 2 for a user's mistake, 0 where the input is legitimately fine (130 for Ctrl-C);
* no ``Traceback`` on stderr; an error is exactly one line starting with ``lvm-search: error:``, the
  last on stderr (progress lines such as ``ensemble: ...`` may come before it), naming the offending
  file or flag;
* nothing that existed before was changed, deleted or moved (the two snapshots compared);
* nothing left behind: the private Ray folder (``lvm-ray-*``, told apart from other searches on the
  machine by its ``lvm-owner`` file) is gone within 20 s and no process uses it, no process is left
  in the command's session, no ``.NAME.tmp`` / ``.NAME.old-PID`` entries appeared;
* the wall time, where the class bounds it.

The eight classes are the rows of issue 16. Inputs are fixed lists plus seeded mutations
(``random.Random(SEED)``), so the JSON is reproducible up to timings, ports and temporary names
(which are replaced by ``$WORK``, ``$FIXTURE``, ``$PORT``, ...). About 300 commands and a dozen real
searches take 20 minutes on 2 quiet cores, up to an hour on 2 shared ones.

    python benchmarks/hostile_cli.py                     # every class: the JSON, then reports/reliability.md
    python benchmarks/hostile_cli.py --classes 5,8       # a subset, merged into the existing JSON
    python benchmarks/hostile_cli.py --markdown-only     # the report again from the JSON

Standard library, psutil, numpy, safetensors and torch; from the package only the helpers a user
cannot reach (``reaper._pids_using`` to find a Ray folder's processes, ``provenance`` for the
machine, ``data.load_data`` to know which passages are held out).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import psutil
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lvm_search import provenance  # noqa: E402
from lvm_search.data import load_data  # noqa: E402
from lvm_search.reaper import _pids_using  # noqa: E402

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "cpu" / "hostile_cli.json"
DEFAULT_MD = ROOT / "reports" / "reliability.md"
SEED = 16
TMP = Path(tempfile.gettempdir())
RAY_PREFIX = "lvm-ray-"
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
CLEANUP_S = 20.0  # a killed driver's Ray folder and processes must be gone within this
ERROR = "lvm-search: error: "
PROGRESS = re.compile(
    r"^(ensemble: |report: |eval: |predict: |trial \d+ |resuming |removed \d+ Ray session|--fresh: "
    r"|[\w.-]+: \d+ trials of |Token authentication is enabled|embedding: |lvm-search: warning: )"
)
CRASH_DUMP = re.compile(r"\*\*\* SIG\w+ received at time")  # Ray's C++ failure signal handler
STRAY = re.compile(r"^\..+\.(tmp|old-\d+)$")  # what runs.write_file / write_folder leave if they fail

CLASSES = {
    1: "data loss: paths a user gives are confined",
    2: "leakage: --extra-train never brings in held-out passages",
    3: "not on loopback: every socket of the private Ray",
    4: "degenerate predictions and data",
    5: "late validation: bad space files and flags fail before Ray starts",
    6: "resume trusts too much",
    7: "corrupt state files",
    8: "hangs and leftovers",
}
COVERAGE = {
    1: [
        "test_reliability.py::test_a_run_name_that_is_not_one_plain_folder_name_is_refused",
        "test_reliability.py::test_fresh_moves_the_previous_run_aside_and_never_deletes_it",
        "test_reliability.py::test_a_folder_that_is_not_a_run_is_never_taken_over",
        "test_reliability.py::test_a_storage_folder_that_cannot_be_written_is_one_line_and_exit_2",
        "test_checkpoint.py::test_saving_over_anything_but_a_checkpoint_is_refused_and_it_stays",
        "test_checkpoint.py::test_saving_over_an_existing_checkpoint_replaces_it",
        "test_checkpoint.py::test_a_save_that_fails_midway_keeps_the_previous_checkpoint",
        "test_report.py::test_an_existing_file_that_is_not_a_report_is_never_overwritten",
        "test_embed.py::test_an_existing_file_that_embed_did_not_write_is_never_replaced",
        "test_embed.py::test_failed_run_keeps_the_old_output",
        "test_embed.py::test_unwritable_out",
        "test_checkpoint.py::test_saving_over_a_link_to_a_checkpoint_is_refused_and_both_stay",
        "test_reliability.py::test_a_run_name_that_is_a_users_file_is_refused_and_the_file_stays",
        "test_reliability.py::test_an_empty_path_is_one_line_naming_the_flag",
    ],
    2: [
        "test_data.py::test_extra_train_that_is_the_data_file_itself_is_refused",
        "test_data.py::test_extra_train_sharing_a_held_out_passage_is_refused",
        "test_data.py::test_extra_train_adds_every_window_of_the_other_file_to_train_only",
        "test_train_cli.py::test_extra_train_flag_grows_train_only_and_a_missing_file_is_one_error_line",
    ],
    3: ["test_reliability.py::test_every_socket_of_the_private_ray_listens_on_loopback_only"],
    4: [
        "test_metrics.py::test_a_prediction_that_is_not_a_finite_nonzero_vector_scores_the_worst",
        "test_data.py::test_all_zero_vectors_are_refused",
        "test_train_cli.py::test_bad_data_file_is_one_error_line_naming_it",
        "test_data.py::test_a_huge_but_finite_row_keeps_its_direction",
        "test_ensemble.py::test_a_member_with_nan_weights_is_left_out_and_all_broken_is_one_error",
    ],
    5: [
        "test_search.py::test_a_bad_space_file_is_one_line_and_exit_2_before_ray_starts",
        "test_search.py::test_a_missing_space_file_is_one_line_and_exit_2",
        "test_reliability.py::test_garbage_in_a_space_never_raises_anything_but_a_user_error",
        "test_reliability.py::test_random_text_as_a_space_file_is_one_line_and_exit_2_or_a_valid_space",
        "test_state_files.py::test_set_values_are_a_user_error_or_a_valid_configuration",
        "test_reliability.py::test_argparse_mistakes_are_one_error_line_naming_the_flag",
    ],
    6: [
        "test_state_files.py::test_a_changed_fixed_section_or_epoch_cap_refuses_to_resume",
        "test_search.py::test_an_interrupted_search_resumes_to_exactly_samples_trials",
    ],
    7: [
        "test_state_files.py::test_garbage_in_a_state_file_is_a_user_error_naming_it_or_a_valid_record",
        "test_state_files.py::test_a_real_state_file_cut_short_is_a_user_error",
        "test_state_files.py::test_a_truncated_summary_is_one_line_for_ensemble_and_report",
        "test_state_files.py::test_a_trial_log_line_that_is_not_a_trial_is_one_line_for_run",
        "test_state_files.py::test_an_ensemble_without_members_is_one_line_for_eval_and_report",
        "test_state_files.py::test_a_checkpoint_path_that_leaves_the_run_folder_is_one_line",
        "test_state_files.py::test_an_ensemble_weight_that_is_not_a_finite_number_is_one_line",
        "test_state_files.py::test_a_study_file_that_is_not_a_database_leaves_the_importances_out",
        "test_state_files.py::test_a_trial_log_cut_by_a_kill_is_whole_again_after_the_next_append",
        "test_checkpoint.py::test_broken_config_is_refused",
        "test_checkpoint.py::test_truncated_safetensors_is_refused",
        "test_checkpoint.py::test_config_with_a_wrongly_typed_setting_is_refused",
    ],
    8: [
        "test_reliability.py::test_an_address_where_nothing_listens_is_one_line_in_seconds",
        "test_reliability.py::test_address_auto_without_a_cluster_ray_start_recorded_is_one_line",
        "test_reliability.py::test_an_address_where_something_else_listens_is_one_line_within_a_minute",
        "test_reliability.py::test_a_driver_killed_with_sigkill_leaves_no_process_and_no_folder",
        "test_reliability.py::test_a_driver_killed_with_sigkill_resumes_keeping_every_finished_trial",
        "test_reliability.py::test_a_user_ray_tmpdir_is_used_and_left_as_it_was",
        "test_reliability.py::test_a_ray_tmpdir_that_is_not_a_folder_is_one_line",
        "test_search.py::test_an_interrupted_search_resumes_to_exactly_samples_trials",
        "test_search.py::test_ray_leaves_no_files_and_no_settings_behind",
    ],
}

TINY_SPACE = """\
arch: amn
samples: {samples}
max_concurrent: {concurrent}
fixed: {{epochs: {epochs}}}
space:
  width: {{type: choice, values: [16, 512]}}
"""


def tiny_space(samples=2, concurrent=2, epochs=3) -> str:
    return TINY_SPACE.format(samples=samples, concurrent=concurrent, epochs=epochs)


class SetupError(RuntimeError):
    """A case could not be prepared (a fixture command failed): the case fails, naming why."""


# --- inputs: data files ---------------------------------------------------------------------------


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def corpus(docs=40, length=12, dim=16, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Documents as random walks on the sphere, so the next passage is predictable from the last."""
    rng = np.random.default_rng(seed)
    rows, ids = [], []
    for d in range(docs):
        v = unit(rng.standard_normal(dim))
        for _ in range(length):
            v = unit(v + 0.5 * rng.standard_normal(dim) / np.sqrt(dim))
            rows.append(v)
            ids.append(d)
    return np.asarray(rows, np.float32), np.asarray(ids, np.int32)


def save_npz(path: Path, vectors: np.ndarray, doc_ids: np.ndarray) -> Path:
    np.savez(path, vectors=vectors, doc_ids=doc_ids)
    return path


def write_corpus(path: Path, seed=0, **kw) -> Path:
    return save_npz(path, *corpus(seed=seed, **kw))


def with_row(path: Path, out: Path, row: int, value) -> Path:
    """A copy of a data file with one row replaced by ``value`` (a number or a vector)."""
    with np.load(path) as z:
        v, ids = z["vectors"].copy(), z["doc_ids"]
    v[row] = value
    return save_npz(out, v, ids)


def held_out(path: Path, k=5) -> dict[str, list[int]]:
    """Rows of the data file that the split holds out (val/test targets, context-only passages)
    and rows only train uses: what a leak must and a legitimate extra file may share."""
    data = load_data(path, k=k)
    out = {}
    for split in ("val", "test"):
        targets = set(data.splits[split].targets.tolist())
        out[f"{split} target"] = sorted(targets)
        out[f"{split} context"] = sorted(set(data.contexts(split).flatten().tolist()) - targets)
    out["train"] = sorted(set(data.splits["train"].targets.tolist()))
    return out


def other_plus(other: Path, data: Path, rows: list[int], out: Path, rng: random.Random) -> Path:
    """The other corpus with the given rows of ``data`` put inside its documents."""
    with np.load(other) as z:
        v, ids = z["vectors"], z["doc_ids"]
    with np.load(data) as z:
        extra = z["vectors"][rows]
    for row in extra:
        at = rng.randrange(1, len(v))
        v = np.insert(v, at, row, axis=0)
        ids = np.insert(ids, at, ids[at - 1])
    return save_npz(out, v.astype(np.float32), ids.astype(np.int32))


def prose_docs(folder: Path, docs=4, seed=SEED) -> Path:
    rng = random.Random(seed)
    words = (
        "river stone bread lamp harbour engine garden letter window winter morning signal valley story "
        "the a of quietly slowly market bridge"
    ).split()
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(docs):
        paragraphs = []
        for _ in range(8):
            sentences = [
                " ".join(rng.choice(words) for _ in range(rng.randint(8, 14))).capitalize() + "."
                for _ in range(4)
            ]
            paragraphs.append(" ".join(sentences))
        (folder / f"doc{d}.txt").write_text("\n\n".join(paragraphs) + "\n")
    return folder


# --- inputs: checkpoints and state files ----------------------------------------------------------


def replace_bytes(path: Path, content: bytes) -> None:
    """Write a file anew (never in place: a hard link elsewhere keeps the old content)."""
    path.unlink(missing_ok=True)
    path.write_bytes(content)


def fill_weights(folder: Path, value: float) -> None:
    weights = folder / "model.safetensors"
    state = {
        k: torch.full_like(v, value) if v.is_floating_point() else v for k, v in load_file(weights).items()
    }
    weights.unlink()
    save_file(state, weights)


def edit_json(path: Path, change) -> None:
    """Change the parsed JSON in place (``change``'s return value is ignored), then write it anew."""
    raw = json.loads(path.read_text())
    change(raw)
    replace_bytes(path, json.dumps(raw).encode())


def edit_lines(path: Path, change) -> None:
    lines = path.read_text().splitlines()
    replace_bytes(path, ("\n".join(change(lines)) + "\n").encode())


def truncate(path: Path, fraction=0.5) -> None:
    raw = path.read_bytes()
    replace_bytes(path, raw[: int(len(raw) * fraction)])


# --- the harness ----------------------------------------------------------------------------------


@dataclass
class Spec:
    cls: int
    input: str  # one short line: what the careless or malicious user does
    argv: list
    expect: tuple | None = (2,)  # allowed exit codes; None: any
    names: tuple = ()  # the error line must contain one of these
    cwd: str = "."
    env: dict = field(default_factory=dict)
    timeout: float = 240.0
    max_wall: float | None = None
    may_change: tuple = ()  # patterns ($WORK/...) of pre-existing paths the command may legitimately rewrite
    nothing_new: bool = False  # nothing at all may be written in the working folder
    forbid: tuple = ()  # text that must not appear on stderr
    watch: tuple = ()  # more folders to snapshot
    subs: dict = field(default_factory=dict)  # text -> placeholder in the JSON


@dataclass
class Result:
    pid: int
    rc: int | None
    out: str
    err: str
    wall: float
    hung: bool
    ray: set
    state: dict
    notes: list


class Live:
    """What a ``during`` hook sees while the command runs."""

    def __init__(self, proc, work: Path, parents: list[Path]):
        self.proc, self.work, self.parents = proc, work, parents
        self.t0 = time.time()
        self.ray: set[Path] = set()
        self.state: dict = {}
        self.notes: list[str] = []

    @property
    def elapsed(self) -> float:
        return time.time() - self.t0

    def signal(self, sig: signal.Signals) -> None:
        try:
            os.kill(self.proc.pid, sig)
            self.notes.append(f"sent {sig.name} to the driver at {self.elapsed:.1f} s")
        except ProcessLookupError:
            self.notes.append(f"{sig.name}: the driver had already exited")


def describe(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    if path.is_dir():
        return "dir"
    if path.is_file():
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return "file:" + h.hexdigest()
    return "other"


def snapshot(roots: list[Path]) -> dict[str, str]:
    """Every path under the roots (links not followed) with its kind and content hash."""
    entries = {}
    for root in roots:
        if not os.path.lexists(root):
            continue
        entries[str(root)] = describe(root)
        if root.is_dir() and not root.is_symlink():
            for folder, dirs, files in os.walk(root):
                for name in dirs + files:
                    path = Path(folder, name)
                    try:
                        entries[str(path)] = describe(path)
                    except OSError:
                        entries[str(path)] = "unreadable"
    return entries


def owned_ray_folders(parents: list[Path], pid: int) -> set[Path]:
    """The lvm-ray-* folders whose owner file names this driver (other searches may run on the machine)."""
    found = set()
    for parent in parents:
        try:
            candidates = list(parent.glob(RAY_PREFIX + "*"))
        except OSError:
            continue
        for folder in candidates:
            try:
                if (folder / "lvm-owner").read_text().split()[0] == str(pid):
                    found.add(folder)
            except (OSError, IndexError):
                continue
    return found


def session_processes(sid: int) -> list[str]:
    alive = []
    for p in psutil.process_iter(["name", "status"]):
        try:
            if os.getsid(p.pid) == sid and p.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.info['name']}({p.pid})")
        except (OSError, psutil.Error):
            continue
    return alive


def kill_session(proc: subprocess.Popen, ray: set[Path]) -> None:
    """End what a hung command started: its process group and whatever still uses its Ray folder."""
    pids = {proc.pid, *(pid for folder in ray for pid in _pids_using(str(folder)))}
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def cli_env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR")}
    env.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def run_cli(spec: Spec, work: Path, during=None) -> Result:
    """Run the product in ``work`` (``$WORK`` in the argv and env stands for it), calling ``during``
    every 0.1 s while it runs; a command past its timeout is killed and recorded as a hang."""
    env = cli_env({k: v.replace("$WORK", str(work)) for k, v in spec.env.items()})
    argv = [str(a).replace("$WORK", str(work)) for a in spec.argv]
    parents = [TMP] + ([Path(env["RAY_TMPDIR"])] if env.get("RAY_TMPDIR") else [])
    cpu0 = _children_cpu()
    ray_before = {p for parent in parents for p in parent.glob(RAY_PREFIX + "*")}
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lvm_search.cli", *argv],
            cwd=work / spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out_f,
            stderr=err_f,
            start_new_session=True,
        )
        live = Live(proc, work, parents)
        hung = False
        try:
            while proc.poll() is None:
                live.ray |= owned_ray_folders(parents, proc.pid)
                if during is not None:
                    during(live)
                if live.elapsed > spec.timeout:
                    hung = True
                    kill_session(proc, live.ray)
                    break
                time.sleep(0.1)
        finally:
            if proc.poll() is None and not hung:  # the harness itself is being stopped
                kill_session(proc, live.ray)
        proc.wait()
        wall = live.elapsed
        live.state["cpu_s"] = _children_cpu() - cpu0
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read().decode(errors="replace"), err_f.read().decode(errors="replace")
    live.ray |= owned_ray_folders(parents, proc.pid)
    live.state["unowned"] = {
        p
        for parent in parents
        for p in parent.glob(RAY_PREFIX + "*")
        if p not in ray_before and not (p / "lvm-owner").exists()
    }
    return Result(proc.pid, proc.returncode, out, err, wall, hung, live.ray, live.state, live.notes)


def _children_cpu() -> float:
    """CPU seconds of this process's finished children: with the wall time, it tells a slow command
    from a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_clean(res: Result, limit: float = CLEANUP_S) -> tuple[list[str], float]:
    """Wait up to ``limit`` seconds for the command's Ray folders and processes to go; what is left."""
    t0 = time.time()
    while True:
        left = [f"Ray folder {f}" for f in res.ray if os.path.lexists(f)]
        left += [
            f"Ray folder {f} without an owner"
            for f in res.state.get("unowned", ())
            if os.path.lexists(f) and not (f / "lvm-owner").exists()
        ]
        left += [f"process {pid} using {f}" for f in res.ray for pid in _pids_using(str(f))]
        left += [f"process {p} in the command's session" for p in session_processes(res.pid)]
        if not left or time.time() - t0 > limit:
            return sorted(set(left)), time.time() - t0
        time.sleep(0.2)


def error_shape(err: str) -> tuple[bool, str | None]:
    """Whether stderr ends with exactly one error line, preceded by progress lines only."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(ERROR)]
    if len(errors) != 1 or lines[-1] != errors[0]:
        return False, errors[-1] if errors else (lines[-1] if lines else None)
    return all(PROGRESS.match(line) for line in lines[:-1]), errors[0]


class Harness:
    def __init__(self, keep: bool = False):
        self.keep = keep
        self.records: list[dict] = []
        self.counter: dict[int, int] = {}
        self.fixture: Fixture | None = None

    def next_id(self, cls: int) -> str:
        self.counter[cls] = self.counter.get(cls, 0) + 1
        return f"{cls}.{self.counter[cls]:03d}"

    def norm(self, text, subs: dict) -> str:
        text = str(text)
        for key in sorted(subs, key=len, reverse=True):
            if key:
                text = text.replace(key, subs[key])
        text = text.replace(sys.executable, "python")
        text = re.sub(r"lvm-ray-\w{8}", "lvm-ray-XXXXXXXX", text)
        text = re.sub(r"\.old-\d+", ".old-PID", text)
        return re.sub(r"/tmp/hostile-\w+", "$TMP", text)

    def case(
        self, spec: Spec, setup=None, during=None, post=None, work: Path | None = None, keep: bool = False
    ) -> Path:
        """Run one case and record it; returns its working folder (removed unless ``keep``).

        A case whose only failure is its time bound runs once more in a fresh folder (the machine is
        shared): both wall times are kept, and the second decides."""
        record = {
            "id": self.next_id(spec.cls),
            "class": spec.cls,
            "input": spec.input,
            "expect": list(spec.expect) if spec.expect else "any",
        }
        for attempt in (1, 2):
            fresh = work is None
            folder = work or Path(tempfile.mkdtemp(prefix="hostile-"))
            self.attempt(
                record, spec, folder, setup, during, post, cleanup=fresh and not keep and not self.keep
            )
            timing = [name for name in record["failed"] if name.startswith("within_")]
            if attempt == 2 or not fresh or not timing or timing != record["failed"]:
                break
            record["notes"].append(
                f"over its time bound in {record['wall_s']} s at load {record['load']}; ran again"
            )
            record["first_wall_s"] = record["wall_s"]
        self.records.append(record)
        mark = "pass" if record["passed"] else "FAIL " + ",".join(record["failed"])
        print(
            f"  {record['id']} {mark:10s} exit {record.get('exit')} {record.get('wall_s')} s  {spec.input}",
            file=sys.stderr,
            flush=True,
        )
        return folder

    def attempt(self, record: dict, spec: Spec, work: Path, setup, during, post, cleanup: bool) -> None:
        subs = {str(work): "$WORK", **spec.subs}
        if self.fixture is not None:
            subs[str(self.fixture.root)] = "$FIXTURE"
        notes = record.get("notes", [])
        record.pop("stderr_tail", None)
        try:
            if setup is not None:
                setup(work)
            record["command"] = self.norm("lvm-search " + shlex.join(map(str, spec.argv)), subs)
            if spec.env:
                record["env"] = {k: self.norm(v, subs) for k, v in spec.env.items()}
            roots = [work, *map(Path, spec.watch)] + ([self.fixture.root] if self.fixture else [])
            before = snapshot(roots)
            res = run_cli(spec, work, during)
            leftovers, cleanup_s = wait_clean(res)
            after = snapshot(roots)
            record.update(self.judge(spec, res, work, before, after, leftovers, subs))
            record["cleanup_s"] = round(cleanup_s, 1)
            record["ray_folders"] = len(res.ray)
            if post is not None:
                try:
                    record["checks"].update(post(work, res) or {})
                except Exception as e:  # noqa: BLE001 - an output the check did not expect fails the case
                    record["checks"]["post_check"] = False
                    notes.append(f"post check raised {type(e).__name__}: {e}")
            notes += res.notes
        except SetupError as e:
            record.update(checks={"setup": False}, exit=None, wall_s=None)
            notes.append(str(e))
        finally:
            if cleanup:
                shutil.rmtree(work, ignore_errors=True)
        record["notes"] = [self.norm(n, subs) for n in notes]
        record["failed"] = sorted(name for name, ok in record["checks"].items() if not ok)
        record["passed"] = not record["failed"]

    def judge(
        self, spec: Spec, res: Result, work: Path, before: dict, after: dict, leftovers: list, subs: dict
    ) -> dict:
        checks = {
            "exit": spec.expect is None or res.rc in spec.expect,
            "no_traceback": "Traceback" not in res.err,
            "no_crash_dump": not CRASH_DUMP.search(res.err),
            "no_hang": not res.hung,
        }
        shape_ok, line = error_shape(res.err)
        if res.rc == 2:
            checks["one_line_error"] = shape_ok
            if spec.names:
                checks["names_offender"] = bool(line) and any(name in line for name in spec.names)
        elif res.rc == 0:
            checks["no_error_line"] = ERROR not in res.err
        lost = []
        for path, what in before.items():
            now = after.get(path)
            shown = self.norm(path, subs)
            if now != what and not any(fnmatch(shown, p) for p in spec.may_change):
                lost.append(f"{'removed' if now is None else 'changed'}: {shown}")
        new = [p for p in after if p not in before]
        stray = [f"stray {self.norm(p, subs)}" for p in new if STRAY.match(Path(p).name)]
        checks["nothing_lost_or_changed"] = not lost
        checks["no_leftovers"] = not (leftovers or stray)
        if spec.nothing_new:
            checks["nothing_written"] = not [p for p in new if p.startswith(str(work) + "/")]
        if spec.max_wall is not None:
            checks[f"within_{spec.max_wall:g}s"] = res.wall <= spec.max_wall
        for text in spec.forbid:
            checks[f"no_{text.split()[0].lower()}_line"] = text not in res.err
        record = {
            "exit": res.rc,
            "wall_s": round(res.wall, 1),
            "cpu_s": round(res.state.get("cpu_s", 0.0), 1),
            "load": round(os.getloadavg()[0], 1),
            "checks": checks,
            "error": self.norm(line, subs) if line and line.startswith(ERROR) else None,
            "lost_or_changed": lost,
            "leftovers": [self.norm(x, subs) for x in leftovers + stray],
        }
        if not all(checks.values()) or res.rc not in (0, 2):
            tail = [self.norm(x, subs)[:300] for x in res.err.strip().splitlines()[-4:]]
            record["stderr_tail"] = tail
        return record

    def derived(self, cls: int, label: str, passed: bool, **details) -> None:
        """A record that is not a command of its own (a socket seen during a search)."""
        record = {
            "id": self.next_id(cls),
            "class": cls,
            "input": label,
            "checks": {"on_loopback": passed},
            "failed": [] if passed else ["on_loopback"],
            "passed": passed,
            "lost_or_changed": [],
            "leftovers": [],
            **details,
        }
        self.records.append(record)
        print(f"  {record['id']} {'pass' if passed else 'FAIL':10s} {label}", file=sys.stderr, flush=True)


# --- the fixture: one real search, its ensemble, report, predictions and an embed output ----------


class Fixture:
    """Built once per invocation, lazily: what several classes copy into their working folders."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="hostile-fixture-"))
        self.data = write_corpus(self.root / "data.npz", seed=0)
        self.other = write_corpus(self.root / "other.npz", seed=1)
        self.space = self.root / "space.yaml"
        self.space.write_text(tiny_space())
        self.storage = self.root / "runs"
        self.built: set[str] = set()
        self.best_rel = ""

    def cli(self, *argv, timeout=400) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "lvm_search.cli", *map(str, argv)],
            cwd=self.root,
            env=cli_env({}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise SetupError(
                f"fixture: lvm-search {' '.join(map(str, argv[:2]))} exited {proc.returncode}: {last}"
            )

    def need(self, what: str) -> None:
        """Build ``run`` (a search and its ensemble), ``report``, ``predictions`` or ``embed``."""
        if what in self.built:
            return
        if what != "run":
            self.need("run")
        print(f"  (fixture: {what})", file=sys.stderr, flush=True)
        if what == "run":
            self.cli("run", self.space, "--data", self.data, "--storage", self.storage)
            self.cli("ensemble", "--storage", self.storage)
            best = json.loads((self.storage / "space" / "summary.json").read_text())["best"]["checkpoint"]
            self.best_rel = f"runs/space/{best}"
        elif what == "report":
            self.cli("report", "--storage", self.storage, "--out", self.root / "rep" / "leaderboard.md")
        elif what == "predictions":
            self.cli("predict", self.storage / "space", "--data", self.data, "--out", self.root / "preds.npz")
        elif what == "embed":
            prose_docs(self.root / "docs")
            self.cli("embed", self.root / "docs", "--out", self.root / "emb.npz")
        self.built.add(what)

    def copy_run(self, work: Path) -> None:
        """The search (and its ensemble) as a user's ``runs/``, with its data and space file beside it."""
        self.need("run")
        shutil.copytree(self.storage, work / "runs", symlinks=True)
        shutil.copy(self.data, work / "data.npz")
        shutil.copy(self.space, work / "space.yaml")

    def copy_checkpoint(self, work: Path, name="ck") -> Path:
        self.need("run")
        shutil.copytree(self.root / self.best_rel, work / name)
        return work / name


def user_files(work: Path) -> None:
    """What a user keeps in their working folder: every one of these must survive every command."""
    (work / "notes.txt").write_text("my notes\n")
    (work / "README.md").write_text("# my project\n")
    (work / "mydocs").mkdir()
    (work / "mydocs" / "thesis.tex").write_text("\\section{mine}\n")
    (work / "mydocs" / "data.csv").write_text("a,b\n1,2\n")
    (work / "x").mkdir()
    (work / "x" / "keep.txt").write_text("keep\n")
    (work / "empty").mkdir()
    (work / "proj").mkdir()
    (work / "linkdir").symlink_to("mydocs")
    (work / "filelink").symlink_to("notes.txt")


# --- class 1: data loss ---------------------------------------------------------------------------


def class_1_data_loss(h: Harness, fx: Fixture) -> None:
    train = ["train", "--arch", "amn", "--epochs", "1", "--set", "width=16", "--data", "data.npz", "--out"]

    def base(work: Path) -> None:
        user_files(work)
        fx.copy_run(work)
        (work / "runs" / "mine").mkdir()
        (work / "runs" / "mine" / "results.txt").write_text("mine\n")
        (work / "runs" / "notes.txt").write_text("mine\n")
        (work / "runs" / "x").mkdir()
        (work / "runs" / "x" / "keep.txt").write_text("keep\n")
        fx.copy_checkpoint(work, "ck")
        shutil.copytree(work / "ck", work / "ckplus")
        (work / "ckplus" / "notes.txt").write_text("mine\n")
        (work / "cklink").symlink_to("ck")

    for out, label, expect in [
        ("mydocs", "a user's folder", (2,)),
        (".", "the working folder itself", (2,)),
        ("notes.txt", "a user's file", (2,)),
        ("data.npz", "the data file it trains on", (2,)),
        ("runs/space", "a run's results folder", (2,)),
        ("runs", "the storage folder", (2,)),
        ("runs/ensembles/default", "an ensemble folder", (2,)),
        ("ckplus", "a checkpoint holding a user's file too", (2,)),
        ("linkdir", "a symlink to a user's folder", (2,)),
        ("notes.txt/ck", "a path under a file", (2,)),
        ("empty", "an empty folder", (0, 2)),
        ("cklink", "a symlink to a checkpoint", (0, 2)),
        ("ck", "an existing checkpoint (legitimate: replaced)", (0,)),
    ]:
        h.case(
            Spec(
                1,
                f"train --out {out}: {label}",
                train + [out],
                expect,
                names=(f"{out}: ",),
                may_change=("$WORK/ck", "$WORK/ck/*") if out == "ck" else (),
            ),
            setup=base,
        )
    h.case(
        Spec(
            1,
            "train --out ..: the folder above the working folder",
            train[:-2] + ["../data.npz", "--out", ".."],
            names=("..: ",),
            cwd="proj",
        ),
        setup=base,
    )

    run = ["run", "space.yaml", "--data", "data.npz", "--storage", "runs", "--samples", "1"]
    names = [".", "..", "../x", "a/b", "ensembles", ".x", "", "x/..", "-x", "a\nb", "n" * 101, "ñame"]
    for name in names:
        for fresh in ([], ["--fresh"]):
            if fresh and name not in (".", "..", "../x", "a/b", "ensembles", ".x", ""):
                continue
            shown = repr(name) if len(name) < 20 else f"'{name[:3]}...' ({len(name)} characters)"
            h.case(
                Spec(
                    1,
                    f"run --name {shown}{' --fresh' if fresh else ''}",
                    run + [f"--name={name}", *fresh],
                    names=("--name",),
                ),
                setup=base,
            )
    h.case(
        Spec(
            1,
            "run --name <absolute path of a user folder> --fresh",
            run + ["--name", "$WORK/x", "--fresh"],
            names=("--name",),
        ),
        setup=base,
    )
    for fresh in ([], ["--fresh"]):
        h.case(
            Spec(
                1,
                f"run --name mine{' --fresh' if fresh else ''}: a user's folder in the storage",
                run + ["--name", "mine", *fresh],
                names=("runs/mine",),
            ),
            setup=base,
        )
        h.case(
            Spec(
                1,
                f"run --name notes.txt{' --fresh' if fresh else ''}: a user's file in the storage",
                run + ["--name", "notes.txt", *fresh],
                names=("notes.txt",),
            ),
            setup=base,
        )
    for storage, label, named in [
        ("notes.txt", "a file", "notes.txt"),
        ("notes.txt/runs", "a path under a file", "notes.txt"),
        ("data.npz", "the data file", "data.npz"),
        ("filelink", "a symlink to a file", "filelink|notes.txt"),
    ]:
        h.case(
            Spec(
                1,
                f"run --storage {storage}: {label}",
                run[:-4] + ["--storage", storage, "--samples", "1"],
                names=tuple(named.split("|")),
            ),
            setup=base,
        )

    recipes = [
        ("name: ../x", "r.yaml"),
        ("name: ..", "r.yaml"),
        ("name: .", "r.yaml"),
        ("name: a/b", "r.yaml"),
        ("name: /tmp/evil", "r.yaml"),
        ("name: ''", "r.yaml"),
        ("name: .hidden", "r.yaml"),
        ("name: ensembles", "r.yaml"),
        ("name: 123", "r.yaml"),
        ("name: [a]", "r.yaml"),
        ("name: x/../../y", "r.yaml"),
        ("runs: ['../x']", "r.yaml"),
        ("runs: ['.']", "r.yaml"),
        ("runs: ['']", "r.yaml"),
        ("top_k: 1", ".yaml"),
    ]
    for text, file in recipes:
        label = (
            f"recipe {text}"
            if file == "r.yaml"
            else "a recipe file named '.yaml' (its name would be '.yaml')"
        )
        h.case(
            Spec(1, label, ["ensemble", file, "--storage", "runs"], names=(file,)),
            setup=lambda w, text=text, file=file: (base(w), (w / file).write_text(text + "\n")),
        )

    def report_setup(work: Path) -> None:
        base(work)
        (work / "mydir.md").mkdir()
        (work / "r_plots").mkdir()
        (work / "r_plots" / "holiday.png").write_bytes(b"\x89PNG mine")
        (work / "s_plots").write_text("a file where the plots go\n")
        (work / "link.md").symlink_to("README.md")
        fx.need("report")
        shutil.copytree(fx.root / "rep", work / "rep")

    for out, label, expect, named in [
        ("README.md", "a user's markdown file", (2,), "README.md"),
        ("notes.txt", "a .txt file", (2,), "notes.txt"),
        ("mydocs", "a user's folder", (2,), "mydocs"),
        ("mydir.md", "a folder named .md", (2,), "mydir.md"),
        ("r.md", "its _plots folder holds a user's file", (2,), "r_plots"),
        ("s.md", "its _plots path is a user's file", (2,), "s_plots"),
        ("link.md", "a symlink to a user's markdown file", (2,), "link.md"),
        ("notes.txt/r.md", "a path under a file", (2,), "notes.txt"),
        ("", "an empty path", (2,), "--out"),
        ("rep/leaderboard.md", "an existing report (legitimate: replaced)", (0,), ""),
    ]:
        h.case(
            Spec(
                1,
                f"report --out {out!r}: {label}",
                ["report", "--storage", "runs", "--out", out],
                expect,
                names=(named,),
                may_change=("$WORK/rep/*",) if out.startswith("rep/") else (),
            ),
            setup=report_setup,
        )

    def predict_setup(work: Path) -> None:
        base(work)
        (work / "x.npz").mkdir()
        (work / "link.npz").symlink_to("data.npz")
        fx.need("predictions")
        fx.need("embed")
        shutil.copy(fx.root / "preds.npz", work / "preds.npz")
        shutil.copy(fx.root / "emb.npz", work / "emb.npz")

    for out, label, expect in [
        ("data.npz", "the data file", (2,)),
        ("notes.txt", "a .txt file", (2,)),
        ("mydocs", "a user's folder", (2,)),
        ("x.npz", "a folder named .npz", (2,)),
        ("emb.npz", "an embed output, not predictions", (2,)),
        ("link.npz", "a symlink to the data file", (2,)),
        ("notes.txt/p.npz", "a path under a file", (2,)),
        ("preds.npz", "an existing predictions file (legitimate: replaced)", (0,)),
    ]:
        h.case(
            Spec(
                1,
                f"predict --out {out}: {label}",
                ["predict", "ck", "--data", "data.npz", "--out", out],
                expect,
                names=(out,),
                may_change=("$WORK/preds.npz",) if out == "preds.npz" else (),
            ),
            setup=predict_setup,
        )

    def embed_setup(work: Path) -> None:
        predict_setup(work)
        prose_docs(work / "docs")

    for out, label, expect in [
        ("data.npz", "a data file embed did not write", (2,)),
        ("notes.txt", "a .txt file", (2,)),
        ("mydocs", "a user's folder", (2,)),
        ("preds.npz", "a predictions file", (2,)),
        ("docs", "the source folder itself", (2,)),
        ("docs/doc0.txt", "one of the source documents", (2,)),
        ("link.npz", "a symlink to a data file", (2,)),
        ("notes.txt/e.npz", "a path under a file", (2,)),
        ("emb.npz", "an existing embed output (legitimate: replaced, runs the model)", (0,)),
    ]:
        h.case(
            Spec(
                1,
                f"embed docs --out {out}: {label}",
                ["embed", "docs", "--out", out],
                expect,
                names=(out,),
                may_change=("$WORK/emb.npz",) if out == "emb.npz" else (),
            ),
            setup=embed_setup,
        )


# --- class 2: leakage -----------------------------------------------------------------------------


def class_2_leakage(h: Harness, fx: Fixture) -> None:
    rng = random.Random(SEED * 2)
    rows = held_out(fx.data)
    leaks = [
        (f"one {kind} passage (row {rows[kind][0]})", [rows[kind][0]])
        for kind in ("val target", "test target", "val context", "test context")
    ]
    for _ in range(6):
        kind = rng.choice(["val target", "test target", "val context", "test context"])
        row = rng.choice(rows[kind])
        leaks.append((f"one {kind} passage (row {row}, seeded)", [row]))
    base_cmd = ["baselines", "--data", "data.npz", "--extra-train"]

    def prepare(work: Path) -> None:
        shutil.copy(fx.data, work / "data.npz")
        shutil.copy(fx.other, work / "other.npz")
        (work / "sub").mkdir()

    def the_same(kind: str):
        def setup(work: Path) -> None:
            prepare(work)
            if kind == "link":
                (work / "link.npz").symlink_to("data.npz")
            elif kind == "hard":
                os.link(work / "data.npz", work / "hard.npz")
            elif kind == "copy":
                shutil.copy(work / "data.npz", work / "copy.npz")
            elif kind == "half":
                with np.load(work / "data.npz") as z:
                    save_npz(work / "half.npz", z["vectors"].astype(np.float16), z["doc_ids"])
            elif kind == "shuffled":
                with np.load(work / "data.npz") as z:
                    v, ids = z["vectors"], z["doc_ids"]
                order = np.concatenate([np.flatnonzero(ids == d) for d in np.unique(ids)[::-1]])
                save_npz(
                    work / "shuffled.npz",
                    v[order],
                    np.repeat(np.arange(len(np.unique(ids))), np.bincount(ids)[np.unique(ids)[::-1]]),
                )

        return setup

    for extra, kind, label in [
        ("data.npz", None, "the --data file itself, same path"),
        ("$WORK/data.npz", None, "the --data file, absolute path"),
        ("./sub/../data.npz", None, "the --data file through sub/.."),
        ("link.npz", "link", "a symlink to the --data file"),
        ("hard.npz", "hard", "a hard link to the --data file"),
        ("copy.npz", "copy", "a byte copy of the --data file"),
        ("half.npz", "half", "the --data file saved again as float16"),
        ("shuffled.npz", "shuffled", "the --data file with its documents in reverse order"),
    ]:
        h.case(
            Spec(2, f"--extra-train {label}", base_cmd + [extra], names=(Path(extra).name,)),
            setup=the_same(kind),
        )
    for label, leak_rows in leaks:
        h.case(
            Spec(
                2,
                f"--extra-train another corpus sharing {label}",
                base_cmd + ["leak.npz"],
                names=("leak.npz",),
            ),
            setup=lambda w, r=leak_rows: (
                prepare(w),
                other_plus(w / "other.npz", w / "data.npz", r, w / "leak.npz", random.Random(SEED + r[0])),
            ),
        )
    h.case(
        Spec(
            2,
            "train --extra-train the --data file itself",
            ["train", "--arch", "amn", "--epochs", "1", "--data", "data.npz", "--extra-train", "data.npz"],
            names=("data.npz",),
        ),
        setup=prepare,
    )
    h.case(
        Spec(
            2,
            "run --extra-train a symlink to the --data file (before Ray)",
            ["run", "space.yaml", "--data", "data.npz", "--extra-train", "link.npz", "--storage", "runs"],
            names=("link.npz",),
            nothing_new=True,
            forbid=("Token authentication",),
        ),
        setup=lambda w: (the_same("link")(w), (w / "space.yaml").write_text(tiny_space())),
    )
    h.case(
        Spec(
            2,
            "--extra-train twice: another corpus, then a copy of --data",
            base_cmd + ["other.npz", "--extra-train", "copy.npz"],
            names=("copy.npz",),
        ),
        setup=the_same("copy"),
    )
    h.case(
        Spec(2, "--extra-train another corpus (legitimate)", base_cmd + ["other.npz"], (0,)), setup=prepare
    )
    for n in (1, 3):
        picked = random.Random(SEED + n).sample(rows["train"], n)
        h.case(
            Spec(
                2,
                f"--extra-train another corpus sharing {n} train-only passage(s) (legitimate)",
                base_cmd + ["shared.npz"],
                (0,),
            ),
            setup=lambda w, r=picked: (
                prepare(w),
                other_plus(w / "other.npz", w / "data.npz", r, w / "shared.npz", random.Random(SEED)),
            ),
        )
    h.case(
        Spec(
            2,
            "train --extra-train another corpus (legitimate)",
            [
                "train",
                "--arch",
                "amn",
                "--epochs",
                "1",
                "--set",
                "width=16",
                "--data",
                "data.npz",
                "--extra-train",
                "other.npz",
            ],
            (0,),
        ),
        setup=prepare,
    )


# --- class 3: not on loopback ---------------------------------------------------------------------


def class_3_loopback(h: Harness, fx: Fixture) -> None:
    def scan(live: Live) -> None:
        if time.time() - live.state.get("last_scan", 0) < 0.3:
            return
        live.state["last_scan"] = time.time()
        pids = {live.proc.pid, *(pid for folder in live.ray for pid in _pids_using(str(folder)))}
        sockets = live.state.setdefault("sockets", {})
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                name = proc.name()
                for conn in proc.net_connections(kind="inet"):
                    udp = conn.type == socket.SOCK_DGRAM
                    if (conn.status == psutil.CONN_LISTEN or (udp and conn.laddr)) and conn.laddr:
                        key = (pid, "udp" if udp else "tcp", conn.laddr.ip, conn.laddr.port)
                        sockets.setdefault(key, role(name, pid == live.proc.pid))
            except (psutil.Error, OSError):
                continue

    def role(name: str, driver: bool) -> str:
        if driver:
            return "the driver"
        if name.startswith("ray::") and not name.endswith("Agent"):
            return "a Ray worker"  # ray::IDLE, ray::ImplicitFunc.train, ...: one process under several names
        return name

    def setup(work: Path) -> None:
        shutil.copy(fx.data, work / "data.npz")
        (work / "space.yaml").write_text(tiny_space(samples=2, concurrent=2, epochs=3))

    seen: dict = {}

    def keep(work: Path, res: Result) -> dict:
        seen.update(res.state.get("sockets", {}))
        names = set(seen.values())
        return {"saw_gcs_server_and_raylet": {"gcs_server", "raylet"} <= names}

    h.case(
        Spec(
            3,
            "a real search (amn, 2 samples, 3 epochs) on its private Ray; its sockets listed with psutil",
            ["run", "space.yaml", "--data", "data.npz", "--storage", "runs"],
            (0,),
        ),
        setup=setup,
        during=scan,
        post=keep,
    )
    counts: dict = {}
    for key in sorted(seen, key=lambda k: (seen[k], k[1], k[0], k[3])):  # a socket: (pid, proto, ip, port)
        _, proto, ip, _ = key
        name = seen[key]
        counts[(name, proto)] = counts.get((name, proto), 0) + 1
        h.derived(
            3,
            f"{name} socket #{counts[(name, proto)]} ({proto}) listens on {ip}",
            ip in LOOPBACK,
            socket={"process": name, "proto": proto, "ip": ip},
        )


# --- class 4: degenerate predictions --------------------------------------------------------------


def class_4_degenerate(h: Harness, fx: Fixture) -> None:
    def scores_of(res: Result) -> dict | None:
        try:
            return json.loads(res.out)["scores"]
        except (ValueError, KeyError, TypeError):
            return None

    def worst(work: Path, res: Result) -> dict:
        s = scores_of(res)
        if s is None:
            return {"scores_reported": False}
        model = s["model"]
        others = [v["cosine"] for k, v in s.items() if k != "model"]
        return {
            "cosine_is_-1": model["cosine"] == -1.0,
            "hit1_is_0": model["hit1"] == 0.0,
            "ranked_below_every_baseline": model["cosine"] < min(others),
        }

    def never_first(work: Path, res: Result) -> dict:
        s = scores_of(res)
        if s is None:
            return {"scores_reported": False}
        others = [v["cosine"] for k, v in s.items() if k != "model"]
        return {
            "finite": bool(np.isfinite(s["model"]["cosine"])),
            "not_above_the_best_baseline": s["model"]["cosine"] <= max(others) + 1e-6,
        }

    def checkpoint(value: float):
        def setup(work: Path) -> None:
            shutil.copy(fx.data, work / "data.npz")
            fill_weights(fx.copy_checkpoint(work, "ck"), value)

        return setup

    for value, label, post in [
        (float("nan"), "NaN", worst),
        (float("inf"), "+Inf", worst),
        (0.0, "all-zero", never_first),
    ]:
        for split in ("test", "all"):
            h.case(
                Spec(
                    4,
                    f"eval a checkpoint whose weights are all {label} (--split {split})",
                    ["eval", "ck", "--data", "data.npz", "--split", split, "--json"],
                    (0,),
                ),
                setup=checkpoint(value),
                post=post,
            )

    def run_filled(value: float):
        def setup(work: Path) -> None:
            fx.copy_run(work)
            for folder in (work / "runs" / "space").glob("attempt-*/trial_*/checkpoint_*"):
                fill_weights(folder, value)

        return setup

    def report_row(work: Path, res: Result, nan: bool) -> dict:
        """The leaderboard's rows (its first table: rank, model, test cos, val cos, gain, Hit@1, ...)."""
        text = (work / "report.md").read_text() if (work / "report.md").exists() else ""
        table = text[text.find("| rank |") :].split("\n\n")[0].splitlines()[2:] if "| rank |" in text else []
        rows = [line.split("|")[1:-1] for line in table]
        amn = next((r for r in rows if r[1].strip().startswith("amn")), None)
        if amn is None:
            return {"model_row_present": False}
        checks = {"not_ranked_first": amn[0].strip() != "1"}
        if nan:
            checks.update(
                {
                    "test_cos_is_-1": amn[2].strip().startswith("-1.0000"),
                    "hit1_is_0": amn[5].strip() == "0.000",
                    "ranked_last": amn[0].strip() == str(len(rows)),
                }
            )
        return checks

    h.case(
        Spec(
            4,
            "report over a run whose checkpoints hold NaN weights",
            ["report", "--storage", "runs", "--out", "report.md"],
            (0,),
        ),
        setup=run_filled(float("nan")),
        post=lambda w, r: report_row(w, r, True),
    )
    h.case(
        Spec(
            4,
            "report over a run whose checkpoints hold all-zero weights",
            ["report", "--storage", "runs", "--out", "report.md"],
            (0,),
        ),
        setup=run_filled(0.0),
        post=lambda w, r: report_row(w, r, False),
    )
    h.case(
        Spec(
            4,
            "eval a run folder whose best checkpoint holds NaN weights",
            ["eval", "runs/space", "--data", "data.npz", "--json"],
            (0,),
        ),
        setup=run_filled(float("nan")),
        post=worst,
    )

    def ensemble_ok(work: Path, res: Result) -> dict:
        if res.rc != 0:
            return {}
        record = json.loads((work / "runs" / "ensembles" / "default" / "ensemble.json").read_text())
        return {
            "ensemble_scores_finite": bool(np.isfinite(record["metrics"]["test"]["cosine"]))
            and record["metrics"]["test"]["cosine"] > -1
        }

    for recipe, label in [
        (None, "the default recipe"),
        ("top_k: all\nbaselines: true\n", "top_k all, with baselines"),
    ]:

        def setup(work: Path, recipe=recipe) -> None:
            run_filled(float("nan"))(work)
            if recipe:
                (work / "default.yaml").write_text(recipe)

        h.case(
            Spec(
                4,
                f"ensemble over a run whose checkpoints hold NaN weights ({label})",
                ["ensemble", *(["default.yaml"] if recipe else []), "--storage", "runs"],
                (0, 2),
                names=("runs",),
                may_change=("$WORK/runs/ensembles/default", "$WORK/runs/ensembles/default/*"),
            ),
            setup=setup,
            post=ensemble_ok,
        )

    def zeros(work: Path) -> None:
        save_npz(
            work / "zeros.npz", np.zeros((480, 16), np.float32), np.repeat(np.arange(40), 12).astype(np.int32)
        )
        fx.copy_checkpoint(work, "ck")
        (work / "space.yaml").write_text(tiny_space())

    for argv, label in [
        (["baselines", "--data", "zeros.npz"], "baselines"),
        (["train", "--arch", "amn", "--epochs", "1", "--data", "zeros.npz"], "train"),
        (["run", "space.yaml", "--data", "zeros.npz", "--storage", "runs"], "run"),
        (["eval", "ck", "--data", "zeros.npz"], "eval"),
        (["predict", "ck", "--data", "zeros.npz", "--out", "p.npz"], "predict"),
    ]:
        h.case(
            Spec(
                4, f"{label} on an all-zero data file", argv, names=("zeros.npz",), nothing_new=label != "run"
            ),
            setup=zeros,
        )

    rng = random.Random(SEED * 4)
    n = 480
    bad_rows = [
        (0, 0.0, "a zero first row"),
        (n - 1, 0.0, "a zero last row"),
        (rng.randrange(n), 0.0, "a zero row"),
        (rng.randrange(n), float("nan"), "a NaN row"),
        (rng.randrange(n), float("inf"), "an +Inf row"),
        (rng.randrange(n), -float("inf"), "a -Inf row"),
    ]
    for row, value, label in bad_rows:
        h.case(
            Spec(
                4,
                f"baselines on data with {label} (row {row})",
                ["baselines", "--data", "bad.npz"],
                names=(f"row {row}",),
            ),
            setup=lambda w, row=row, value=value: with_row(fx.data, w / "bad.npz", row, value),
        )
    row = rng.randrange(n)
    h.case(
        Spec(
            4,
            f"train on float16 data with a zero row (row {row})",
            ["train", "--arch", "amn", "--epochs", "1", "--data", "bad.npz"],
            names=(f"row {row}",),
        ),
        setup=lambda w: _f16_zero(fx.data, w / "bad.npz", row),
    )
    h.case(
        Spec(
            4,
            "baselines with an --extra-train file holding a zero row",
            ["baselines", "--data", "data.npz", "--extra-train", "bad.npz"],
            names=("bad.npz",),
        ),
        setup=lambda w: (shutil.copy(fx.data, w / "data.npz"), with_row(fx.other, w / "bad.npz", 5, 0.0)),
    )
    row = rng.randrange(n)

    def accurate(work: Path, res: Result) -> dict:
        return {"message_does_not_call_it_all_zero": res.rc == 0 or "all-zero" not in res.err}

    h.case(
        Spec(
            4,
            f"baselines on data with a huge but finite row (row {row} scaled by 1e20)",
            ["baselines", "--data", "big.npz"],
            (0, 2),
            names=(f"row {row}",),
        ),
        setup=lambda w: _scaled_row(fx.data, w / "big.npz", row, 1e20),
        post=accurate,
    )


def _f16_zero(source: Path, out: Path, row: int) -> None:
    with np.load(source) as z:
        v, ids = z["vectors"].astype(np.float16), z["doc_ids"]
    v[row] = 0
    save_npz(out, v, ids)


def _scaled_row(source: Path, out: Path, row: int, scale: float) -> None:
    with np.load(source) as z:
        v, ids = z["vectors"].copy(), z["doc_ids"]
    v[row] *= scale
    save_npz(out, v, ids)


# --- class 5: late validation ---------------------------------------------------------------------

# Each of these makes a space invalid on its own, so any combination is invalid too: a mutated space
# can never start a search.
INVALID = [
    ("samples", 0),
    ("samples", -3),
    ("samples", 2.5),
    ("samples", "two"),
    ("samples", True),
    ("seed", -1),
    ("seed", "x"),
    ("max_concurrent", 0),
    ("max_concurrent", "many"),
    ("scheduler", {"type": "hyperband"}),
    ("scheduler", {"grace_period": 0}),
    ("scheduler", {"reduction_factor": 1}),
    ("scheduler", "asha"),
    ("sampler", "cmaes"),
    ("resources", {"cpus_per_trial": 0}),
    ("resources", {"gpus_per_trial": -1}),
    ("resources", {"gpus_per_trial": 1.5}),
    ("resources", {"device": "tpu"}),
    ("fixed.epochs", 0),
    ("fixed.epochs", 1.5),
    ("fixed.epochs", "3"),
    ("fixed.lr", -0.001),
    ("fixed.lr", "fast"),
    ("fixed.dropout", 1.5),
    ("fixed.ema", 1.0),
    ("fixed.batch_size", 2.5),
    ("fixed.batch_size", 0),
    ("fixed.width", 0),
    ("fixed.width", True),
    ("fixed.residual", "maybe"),
    ("fixed.schedule", "zigzag"),
    ("fixed.device", "cpu"),
    ("fixed.k", 0),
    ("space.width", {"type": "choice", "values": [0, 512]}),
    ("space.width", {"type": "int", "low": 600, "high": 100}),
    ("space.width", {"type": "choice", "values": []}),
    ("space.width", {"type": "choice", "values": [512, 512]}),
    ("space.lr", {"type": "float", "low": -0.01, "high": 0.01}),
    ("space.lr", {"type": "float", "low": -0.01, "high": 0.01, "log": True}),
    ("space.lr", {"type": "float", "low": 1e-4, "high": "inf"}),
    ("space.batch_size", {"type": "float", "low": 100.5, "high": 1024}),
    ("space.dropout", {"type": "float", "low": 0, "high": 1.5}),
    ("space.depth", {"type": "int", "low": 1.5, "high": 3}),
    ("space.bogus", {"type": "int", "low": 1, "high": 2}),
    ("data", {"k": 3, "min_context": 5}),
    ("data", {"k": 0}),
    ("arch", "resnet"),
    ("arch", 5),
    ("extra_key", 1),
]


def mutated_space(mutations) -> str:
    raw = {
        "arch": "amn",
        "samples": 2,
        "max_concurrent": 2,
        "fixed": {"epochs": 3},
        "space": {"width": {"type": "choice", "values": [16, 512]}},
    }
    for key, value in mutations:
        section, _, name = key.partition(".")
        if name:
            raw.setdefault(section, {})[name] = value
        else:
            raw[section] = value
    return json.dumps(raw)  # JSON is YAML


def class_5_late_validation(h: Harness, fx: Fixture) -> None:
    def space_case(label: str, content, flags=(), names=("space.yaml",), file="space.yaml") -> None:
        def setup(work: Path) -> None:
            shutil.copy(fx.data, work / "data.npz")
            if callable(content):
                content(work / file)
            elif isinstance(content, bytes):
                (work / file).write_bytes(content)
            elif content is not None:
                (work / file).write_text(content)

        h.case(
            Spec(
                5,
                label,
                ["run", file, "--data", "data.npz", "--storage", "runs", *flags],
                names=names,
                max_wall=10,
                nothing_new=True,
                forbid=("Token authentication",),
            ),
            setup=setup,
        )

    amn = "arch: amn\nsamples: 2\n"
    transformer = "arch: transformer\nsamples: 2\nfixed: {epochs: 1}\n"
    space_case("only a fixed: section", amn + "fixed: {epochs: 1}\n")
    space_case("an empty space: section", amn + "fixed: {epochs: 1}\nspace: {}\n")
    space_case(
        "fixed width: 0", amn + "fixed: {width: 0}\nspace: {dropout: {type: float, low: 0, high: 0.1}}\n"
    )
    space_case(
        "transformer: fixed width 100 with 3 heads",
        transformer.replace("epochs: 1", "epochs: 1, width: 100, heads: 3")
        + "space: {dropout: {type: float, low: 0, high: 0.2}}\n",
    )
    space_case(
        "transformer: heads searched among 7 and 8 at width 512",
        transformer + "space: {heads: {type: choice, values: [7, 8]}}\n",
    )
    space_case(
        "fractional batch_size in fixed",
        amn + "fixed: {batch_size: 2.5}\nspace: {dropout: {type: float, low: 0, high: 0.1}}\n",
    )
    space_case("negative lr bounds", amn + "space: {lr: {type: float, low: -0.01, high: 0.01}}\n")
    space_case(
        "bool where an int goes (width: true)",
        amn + "fixed: {width: true}\nspace: {dropout: {type: float, low: 0, high: 0.1}}\n",
    )
    space_case(
        "str where a float goes (lr: fast)",
        amn + "fixed: {lr: fast}\nspace: {dropout: {type: float, low: 0, high: 0.1}}\n",
    )
    space_case(
        "data k below min_context",
        amn + "data: {k: 3, min_context: 5}\nspace: {dropout: {type: float, low: 0, high: 0.1}}\n",
    )
    space_case(
        "k searched below min_context",
        amn + "data: {min_context: 5}\nspace: {k: {type: choice, values: [3, 8]}}\n",
    )
    valid = tiny_space()
    for flags, label, name in [
        (("--k", "3", "--min-context", "5"), "--k 3 --min-context 5", "min"),
        (("--min-context", "0"), "--min-context 0", "min"),
        (("--k", "0"), "--k 0", "k"),
        (("--samples", "0"), "--samples 0", "--samples"),
        (("--max-epochs", "0"), "--max-epochs 0", "--max-epochs"),
        (("--max-concurrent", "0"), "--max-concurrent 0", "--max-concurrent"),
        (("--cpus-per-trial", "0"), "--cpus-per-trial 0", "cpus_per_trial"),
        (("--cpus-per-trial", "nan"), "--cpus-per-trial nan", "cpus_per_trial"),
        (("--gpus-per-trial", "-1"), "--gpus-per-trial -1", "gpus_per_trial"),
        (("--device", "tpu"), "--device tpu", "device"),
        (("--seed", "-1"), "--seed -1", "--seed"),
        (("--samples", "abc"), "--samples abc (not a number)", "--samples"),
        (("--max-concurrent", "lots"), "--max-concurrent lots (not a number)", "--max-concurrent"),
    ]:
        space_case(f"flag {label} on a valid space", valid, flags, names=(name,))

    laughs = "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9) if p else ', '.join(['lol'] * 9)}]\n"
        for p, c in zip([""] + list("abcdefgh"), "abcdefghi")
    )
    space_case("YAML billion laughs (9 levels of 9 aliases)", laughs)
    space_case(
        "YAML merge-key bomb",
        "a: &a {x1: 1, x2: 2, x3: 3}\n"
        + "".join(
            f"{n}: &{n} {{<<: *{p}, {n}1: [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]}}\n"
            for p, n in zip("abcdefgh", "bcdefghi")
        ),
    )
    space_case("20,000 nested lists", "[" * 20000 + "]" * 20000 + "\n")
    space_case("a 2 MB space file (comments)", valid + ("# padding " * 100 + "\n") * 2100)
    space_case("a 1.1 MB value on one line", amn + "fixed: {schedule: " + "x" * 1_150_000 + "}\n")
    space_case(
        "a python object tag (would run code if unpickled)",
        "!!python/object/apply:os.system ['touch pwned']\n",
    )
    space_case("not UTF-8", b"arch: amn\xff\xfe\nsamples: 2\n")
    space_case("an empty file", "")
    space_case("two YAML documents", valid + "---\n" + valid)
    space_case("a tab-indented mapping", "arch: amn\nspace:\n\twidth: 1\n")
    space_case("a folder as the space file", lambda p: p.mkdir())
    space_case("a missing space file", None)
    space_case(
        "a 20,000-value choice whose last value is invalid",
        lambda p: p.write_text(
            amn
            + "space: {lr: {type: choice, values: ["
            + ", ".join(f"{0.002 + i * 1e-8:.8f}" for i in range(19_999))
            + ", -1.0]}}\n"
        ),
    )
    rng = random.Random(SEED * 5)
    for i in range(20):
        mutations = rng.sample(INVALID, rng.randint(1, 3))
        shown = "; ".join(f"{k}={json.dumps(v)}" for k, v in mutations)
        space_case(f"seeded mutation {i + 1}: {shown}", mutated_space(mutations))


# --- class 6: resume trusts too much --------------------------------------------------------------


def class_6_resume(h: Harness, fx: Fixture) -> None:
    run = ["run", "space.yaml", "--data", "data.npz", "--storage", "runs"]
    summary_only = ("$WORK/runs/space/summary.json",)

    def with_space(text: str | None = None, extra=None):
        def setup(work: Path) -> None:
            fx.copy_run(work)
            shutil.copy(fx.other, work / "other.npz")
            if text is not None:
                (work / "space.yaml").write_text(text)
            if extra:
                extra(work)

        return setup

    tiny = tiny_space()
    refused = [
        (
            "a changed fixed: section (dropout added)",
            tiny.replace("epochs: 3", "epochs: 3, dropout: 0.2"),
            (),
        ),
        ("a changed --max-epochs cap", None, ("--max-epochs", "2")),
        ("a changed scheduler (none)", tiny + "scheduler: {type: none}\n", ()),
        ("a changed space (other width choices)", tiny.replace("[16, 512]", "[64, 512]"), ()),
        (
            "another architecture under the same name",
            "arch: gru\nsamples: 2\nfixed: {epochs: 3}\n"
            "space: {dropout: {type: float, low: 0.0, high: 0.2}}\n",
            (),
        ),
        ("a changed --k", None, ("--k", "6")),
        ("a changed --min-context", None, ("--min-context", "4")),
        ("a changed data.k in the space file", tiny + "data: {k: 7, min_context: 5}\n", ()),
        ("another --split-seed", None, ("--split-seed", "1")),
        ("an added --extra-train", None, ("--extra-train", "other.npz")),
    ]
    for label, text, flags in refused:
        h.case(
            Spec(6, f"resume with {label}", run + list(flags), names=("runs/space",)), setup=with_space(text)
        )
    for label, change in [
        ("another data file", lambda w: shutil.copy(w / "other.npz", w / "data.npz")),
        (
            "the data file with one vector changed",
            lambda w: with_row(
                w / "data.npz", w / "data.npz", 100, unit(np.arange(16, dtype=np.float32) + 1)
            ),
        ),
        ("the data file saved again as float16", lambda w: _f16_copy(w / "data.npz")),
    ]:
        h.case(Spec(6, f"resume with {label}", run, names=("runs/space",)), setup=with_space(extra=change))
    elsewhere = ["run", "space.yaml", "--data", "elsewhere.npz", "--storage", "runs"]
    for label, argv, extra in [
        ("the same command (legitimate: nothing to run)", run, None),
        ("another --seed (legitimate)", run + ["--seed", "7"], None),
        ("--samples 1, fewer than done (legitimate)", run + ["--samples", "1"], None),
        ("--max-concurrent 1 (legitimate)", run + ["--max-concurrent", "1"], None),
        (
            "the same data at another path (legitimate)",
            elsewhere,
            lambda w: shutil.copy(w / "data.npz", w / "elsewhere.npz"),
        ),
    ]:
        h.case(
            Spec(6, f"resume with {label}", argv, (0,), may_change=summary_only),
            setup=with_space(extra=extra),
        )


def _f16_copy(path: Path) -> None:
    with np.load(path) as z:
        v, ids = z["vectors"].astype(np.float16), z["doc_ids"]
    path.unlink()
    save_npz(path, v, ids)


# --- class 7: corrupt state files -----------------------------------------------------------------


def class_7_corrupt_state(h: Harness, fx: Fixture) -> None:
    fx.need("run")
    S, E, CK = "runs/space", "runs/ensembles/default", fx.best_rel
    commands = {
        "run": ["run", "space.yaml", "--data", "data.npz", "--storage", "runs"],
        "ensemble": ["ensemble", "--storage", "runs"],
        "report": ["report", "--storage", "runs", "--out", "report.md"],
        "eval run": ["eval", S, "--data", "data.npz"],
        "eval ensemble": ["eval", E, "--data", "data.npz"],
        "eval checkpoint": ["eval", CK, "--data", "data.npz"],
    }
    first_trial = lambda lines, **kw: [json.dumps({**json.loads(lines[0]), **kw}), *lines[1:]]  # noqa: E731
    member = lambda **kw: lambda r: r["members"][0].update(kw)  # noqa: E731
    garbage = bytes(random.Random(SEED * 7).randrange(256) for _ in range(300))
    cases = [
        # summary.json
        (f"{S}/summary.json", "cut in half", truncate, ["run", "ensemble", "report", "eval run"], ()),
        (f"{S}/summary.json", "a JSON list", lambda p: replace_bytes(p, b"[]"), ["ensemble", "eval run"], ()),
        (
            f"{S}/summary.json",
            "valid JSON, not a summary",
            lambda p: replace_bytes(p, b'{"hello": "world"}'),
            ["run", "report"],
            (),
        ),
        (
            f"{S}/summary.json",
            "counts.trials as text",
            lambda p: edit_json(p, lambda r: r["counts"].update(trials="2")),
            ["ensemble", "report"],
            (),
        ),
        (
            f"{S}/summary.json",
            "best.checkpoint a number",
            lambda p: edit_json(p, lambda r: r["best"].update(checkpoint=5)),
            ["eval run"],
            (),
        ),
        (
            f"{S}/summary.json",
            "a trial's history as text",
            lambda p: edit_json(p, lambda r: r["trials"][0].update(history="x")),
            ["report"],
            (),
        ),
        (f"{S}/summary.json", "binary garbage", lambda p: replace_bytes(p, garbage), ["eval run"], ()),
        (f"{S}/summary.json", "empty", lambda p: replace_bytes(p, b""), ["ensemble"], ()),
        (
            f"{S}/summary.json",
            "best.checkpoint ../../outside (missing)",
            lambda p: edit_json(p, lambda r: r["best"].update(checkpoint="../../outside")),
            ["eval run"],
            ("runs/space",),
        ),
        (
            f"{S}/summary.json",
            "best.checkpoint ../../outside (a real checkpoint outside the run)",
            lambda p: (
                edit_json(p, lambda r: r["best"].update(checkpoint="../../outside")),
                shutil.copytree(p.parent.parent.parent / CK, p.parent.parent.parent / "outside"),
            ),
            ["eval run"],
            ("runs/space",),
        ),
        # run.json
        (f"{S}/run.json", "cut in half", truncate, ["run"], ()),
        (f"{S}/run.json", "an empty object", lambda p: replace_bytes(p, b"{}"), ["run"], ()),
        (
            f"{S}/run.json",
            "data.k as text",
            lambda p: edit_json(p, lambda r: r["data"].update(k="5")),
            ["run"],
            (),
        ),
        (
            f"{S}/run.json",
            "space as a list",
            lambda p: edit_json(p, lambda r: r.update(space=[])),
            ["run"],
            (),
        ),
        (f"{S}/run.json", "deleted", lambda p: p.unlink(), ["run"], ("runs/space",)),
        (f"{S}/run.json", "binary garbage", lambda p: replace_bytes(p, garbage), ["run"], ()),
        # trials.jsonl
        (
            f"{S}/trials.jsonl",
            "its first line cut short (the second intact)",
            lambda p: edit_lines(p, lambda ls: [ls[0][: len(ls[0]) // 2], *ls[1:]]),
            ["run"],
            (),
        ),
        (
            f"{S}/trials.jsonl",
            "a valid-JSON line that is not a trial",
            lambda p: edit_lines(p, lambda ls: ['{"hello": "world"}', *ls]),
            ["run"],
            (),
        ),
        (f"{S}/trials.jsonl", "a line [ ]", lambda p: edit_lines(p, lambda ls: ["[]", *ls]), ["run"], ()),
        (f"{S}/trials.jsonl", "a line 42", lambda p: edit_lines(p, lambda ls: ["42", *ls]), ["run"], ()),
        (f"{S}/trials.jsonl", "a line null", lambda p: edit_lines(p, lambda ls: ["null", *ls]), ["run"], ()),
        (
            f"{S}/trials.jsonl",
            "attempt as text",
            lambda p: edit_lines(p, lambda ls: first_trial(ls, attempt="1")),
            ["run"],
            (),
        ),
        (
            f"{S}/trials.jsonl",
            "status 'weird'",
            lambda p: edit_lines(p, lambda ls: first_trial(ls, status="weird")),
            ["run"],
            (),
        ),
        (
            f"{S}/trials.jsonl",
            "dir ../../x",
            lambda p: edit_lines(p, lambda ls: first_trial(ls, dir="../../x")),
            ["run"],
            (),
        ),
        (
            f"{S}/trials.jsonl",
            "dir /etc",
            lambda p: edit_lines(p, lambda ls: first_trial(ls, dir="/etc")),
            ["run"],
            (),
        ),
        (
            f"{S}/trials.jsonl",
            "history as text",
            lambda p: edit_lines(p, lambda ls: first_trial(ls, history="x")),
            ["run"],
            (),
        ),
        (
            f"{S}/trials.jsonl",
            "an epoch's val_cosine as text",
            lambda p: edit_lines(p, lambda ls: first_trial(ls, history=[{"epoch": 1, "val_cosine": "high"}])),
            ["run"],
            (),
        ),
        (
            f"{S}/trials.jsonl",
            "checkpoint ../../x (outside the run)",
            lambda p: edit_lines(p, lambda ls: first_trial(ls, checkpoint="../../x")),
            ["run"],
            (),
        ),
        (
            f"{S}/trials.jsonl",
            "checkpoint /etc (absolute)",
            lambda p: edit_lines(p, lambda ls: first_trial(ls, checkpoint="/etc")),
            ["run"],
            (),
        ),
        (
            f"{S}/trials.jsonl",
            "a binary garbage line first",
            lambda p: replace_bytes(p, garbage.replace(b"\n", b" ") + b"\n" + p.read_bytes()),
            ["run"],
            (),
        ),
        # ensemble.json
        (
            f"{E}/ensemble.json",
            "no members",
            lambda p: edit_json(p, lambda r: r.update(members=[])),
            ["eval ensemble", "report"],
            (),
        ),
        (
            f"{E}/ensemble.json",
            "weights summing to 0.5",
            lambda p: edit_json(p, member(weight=0.5)),
            ["eval ensemble", "report"],
            (),
        ),
        (
            f"{E}/ensemble.json",
            "a negative weight",
            lambda p: edit_json(p, member(weight=-1.0)),
            ["eval ensemble"],
            (),
        ),
        (
            f"{E}/ensemble.json",
            "a NaN weight",
            lambda p: replace_bytes(p, p.read_bytes().replace(b'"weight": 1.0', b'"weight": NaN')),
            ["eval ensemble", "report"],
            (),
        ),
        (
            f"{E}/ensemble.json",
            "member checkpoint ../../x",
            lambda p: edit_json(p, member(checkpoint="../../x")),
            ["eval ensemble", "report"],
            (),
        ),
        (
            f"{E}/ensemble.json",
            "member checkpoint absolute (/tmp)",
            lambda p: edit_json(p, member(checkpoint="/tmp")),
            ["eval ensemble"],
            (),
        ),
        (
            f"{E}/ensemble.json",
            "member checkpoint empty",
            lambda p: edit_json(p, member(checkpoint="")),
            ["eval ensemble"],
            (),
        ),
        (
            f"{E}/ensemble.json",
            "member checkpoint a missing folder",
            lambda p: edit_json(p, member(checkpoint="members/99")),
            ["eval ensemble"],
            (E,),
        ),
        (
            f"{E}/ensemble.json",
            "member fingerprint changed",
            lambda p: edit_json(p, member(fingerprint="0" * 16)),
            ["eval ensemble"],
            (E,),
        ),
        (
            f"{E}/ensemble.json",
            "member k as text",
            lambda p: edit_json(p, member(k="5")),
            ["eval ensemble"],
            (),
        ),
        (
            f"{E}/ensemble.json",
            "member an unknown baseline",
            lambda p: edit_json(p, member(baseline={"name": "evil"})),
            ["eval ensemble"],
            (),
        ),
        (f"{E}/ensemble.json", "cut in half", truncate, ["eval ensemble", "report"], ()),
        (f"{E}/ensemble.json", "a JSON list", lambda p: replace_bytes(p, b"[]"), ["report"], ()),
        # a checkpoint's config.json
        (
            f"{CK}/config.json",
            "cut in half",
            truncate,
            ["eval checkpoint", "eval run", "ensemble", "report"],
            (),
        ),
        (f"{CK}/config.json", "a JSON list", lambda p: replace_bytes(p, b"[]"), ["eval checkpoint"], ()),
        (
            f"{CK}/config.json",
            "no arch",
            lambda p: edit_json(p, lambda r: r.pop("arch")),
            ["eval checkpoint"],
            (),
        ),
        (
            f"{CK}/config.json",
            "arch 'nope'",
            lambda p: edit_json(p, lambda r: r.update(arch="nope")),
            ["eval checkpoint", "report"],
            (),
        ),
        (
            f"{CK}/config.json",
            "dim as text",
            lambda p: edit_json(p, lambda r: r.update(dim="16")),
            ["eval checkpoint"],
            (),
        ),
        (
            f"{CK}/config.json",
            "dim 0",
            lambda p: edit_json(p, lambda r: r.update(dim=0)),
            ["eval checkpoint"],
            (),
        ),
        (
            f"{CK}/config.json",
            "dim 17 (weights do not fit)",
            lambda p: edit_json(p, lambda r: r.update(dim=17)),
            ["eval checkpoint"],
            (),
        ),
        (
            f"{CK}/config.json",
            "k -1",
            lambda p: edit_json(p, lambda r: r.update(k=-1)),
            ["eval checkpoint"],
            (),
        ),
        (
            f"{CK}/config.json",
            "model_config with an unknown setting",
            lambda p: edit_json(p, lambda r: r["model_config"].update(bogus=1)),
            ["eval checkpoint", "ensemble"],
            (),
        ),
        (
            f"{CK}/config.json",
            "model_config width -5",
            lambda p: edit_json(p, lambda r: r["model_config"].update(width=-5)),
            ["eval checkpoint"],
            (),
        ),
        (
            f"{CK}/config.json",
            "model_config as text",
            lambda p: edit_json(p, lambda r: r.update(model_config="x")),
            ["eval checkpoint"],
            (),
        ),
        (
            f"{CK}/config.json",
            "fingerprint a number",
            lambda p: edit_json(p, lambda r: r.update(fingerprint=123)),
            ["eval checkpoint"],
            (),
        ),
        # the weights, resources.json, study.db
        (f"{CK}/model.safetensors", "cut in half", truncate, ["eval checkpoint"], ()),
        (f"{CK}/model.safetensors", "binary garbage", lambda p: replace_bytes(p, garbage), ["report"], ()),
        (f"{CK}/model.safetensors", "empty", lambda p: replace_bytes(p, b""), ["eval run"], ()),
        (f"{S}/resources.json", "cut in half", truncate, ["run"], ()),
        (f"{S}/resources.json", "a JSON list", lambda p: replace_bytes(p, b"[]"), ["run"], ()),
        (f"{S}/resources.json", "binary garbage", lambda p: replace_bytes(p, garbage), ["run"], ()),
    ]
    for file, label, corrupt, cmds, names in cases:
        # A checkpoint's error may name either of its files; a resume that goes through rewrites summary.json.
        names = names or ((CK,) if file.startswith(CK) else (file,))
        for cmd in cmds:
            h.case(
                Spec(
                    7,
                    f"{Path(file).name} {label}; `{cmd}`",
                    commands[cmd],
                    names=names,
                    may_change=(f"$WORK/{S}/summary.json",) if cmd == "run" else (),
                ),
                setup=lambda w, file=file, corrupt=corrupt: (fx.copy_run(w), corrupt(w / file)),
            )
    h.case(
        Spec(
            7,
            "study.db replaced by garbage; `report` (importances are optional)",
            commands["report"],
            (0, 2),
            names=("study.db",),
        ),
        setup=lambda w: (fx.copy_run(w), replace_bytes(w / S / "study.db", garbage * 20)),
    )
    h.case(
        Spec(
            7,
            "trials.jsonl with a line duplicated; `run` (legitimate: the same trial once)",
            commands["run"],
            (0,),
            may_change=(f"$WORK/{S}/summary.json",),
        ),
        setup=lambda w: (fx.copy_run(w), edit_lines(w / S / "trials.jsonl", lambda ls: [*ls, ls[0]])),
    )

    def intact_prefix(work: Path, res: Result) -> dict:
        lines = (work / S / "trials.jsonl").read_text().splitlines()
        return {
            "first_trial_kept": bool(lines) and json.loads(lines[0])["trial_id"] == memo.get("first_id"),
            "two_trials_in_the_end": len([ln for ln in lines if ln.startswith("{") and ln.endswith("}")])
            >= 2,
        }

    memo: dict = {}

    def cut_last(work: Path) -> None:
        fx.copy_run(work)
        log = work / S / "trials.jsonl"
        lines = log.read_text().splitlines()
        memo["first_id"] = json.loads(lines[0])["trial_id"]
        replace_bytes(log, (lines[0] + "\n" + lines[1][: len(lines[1]) // 2]).encode())

    work = h.case(
        Spec(
            7,
            "trials.jsonl with its last line cut short (a kill); `run` (legitimate: that trial runs again)",
            commands["run"],
            (0,),
            may_change=(f"$WORK/{S}/*",),
        ),
        setup=cut_last,
        post=intact_prefix,
        keep=True,
    )
    try:
        h.case(
            Spec(
                7,
                "the same `run` once more on that run folder (legitimate: nothing left to run)",
                commands["run"],
                (0,),
                may_change=(f"$WORK/{S}/*",),
            ),
            work=work,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- class 8: hangs and leftovers -----------------------------------------------------------------


class Listener:
    """A plain TCP server on loopback that is not Ray: silent, or accepting and closing, or answering HTTP."""

    def __init__(self, mode: str):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.mode, self.stop = mode, False
        if mode != "silent":
            self.sock.settimeout(0.2)
            threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            if self.mode == "http":
                try:
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                except OSError:
                    pass
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.sock.close()


@contextmanager
def another_search(fx: Fixture):
    """Another user's search running on this machine while the body runs: a private Ray of its own."""
    work = Path(tempfile.mkdtemp(prefix="hostile-other-"))
    shutil.copy(fx.data, work / "data.npz")
    (work / "space.yaml").write_text(tiny_space(samples=1, concurrent=1, epochs=5000))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lvm_search.cli",
            "run",
            "space.yaml",
            "--data",
            "data.npz",
            "--storage",
            "runs",
        ],
        cwd=work,
        env=cli_env({}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while (
            proc.poll() is None
            and time.time() < deadline
            and not (work / "runs" / "space" / "attempt-1").exists()
        ):
            time.sleep(0.2)
        time.sleep(2)  # its trial is running: Ray is up
        yield
    finally:
        ray = owned_ray_folders([TMP], proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill_session(proc, ray)
                proc.wait()
        wait_clean(Result(proc.pid, proc.returncode, "", "", 0.0, False, ray, {}, []))
        shutil.rmtree(work, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def class_8_hangs(h: Harness, fx: Fixture) -> None:
    run = ["run", "space.yaml", "--data", "data.npz", "--storage", "runs"]

    def tiny(work: Path, samples=1, concurrent=1, epochs=1) -> None:
        shutil.copy(fx.data, work / "data.npz")
        (work / "space.yaml").write_text(tiny_space(samples, concurrent, epochs))

    port = free_port()
    h.case(
        Spec(
            8,
            "--address 127.0.0.1:<a free port>",
            run + ["--address", f"127.0.0.1:{port}"],
            names=("--address",),
            max_wall=15,
            subs={str(port): "$PORT"},
        ),
        setup=tiny,
    )
    for mode, label in [
        ("silent", "a plain TCP listener that never answers"),
        ("close", "a TCP listener that accepts and closes at once"),
    ]:
        listener = Listener(mode)
        try:
            h.case(
                Spec(
                    8,
                    f"--address where {label} listens",
                    run + ["--address", f"127.0.0.1:{listener.port}"],
                    names=("--address",),
                    max_wall=45,
                    timeout=150,
                    subs={str(listener.port): "$PORT"},
                ),
                setup=tiny,
            )
        finally:
            listener.close()
    for address in [
        "nonsense",
        "host:",
        ":6379",
        "127.0.0.1:0",
        "127.0.0.1:99999",
        "127.0.0.1:abc",
        "no-such-host.invalid:6379",
        "ray://127.0.0.1:10001",
        "[::1]:1",
    ]:
        h.case(
            Spec(8, f"--address {address}", run + ["--address", address], names=("--address",), max_wall=15),
            setup=tiny,
        )
    with another_search(fx):
        h.case(
            Spec(
                8,
                "--address auto while another user's search (its private loopback-only Ray) runs here",
                run + ["--address", "auto"],
                names=("--address",),
                max_wall=45,
                timeout=120,
            ),
            setup=tiny,
        )

    def logged(work: Path) -> int:
        log = work / "runs" / "space" / "trials.jsonl"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def kill_when(condition, sig, twice=False):
        def during(live: Live) -> None:
            if "sent" not in live.state and condition(live):
                live.signal(sig)
                live.state["sent"] = time.time()
            elif (
                twice
                and "sent" in live.state
                and "again" not in live.state
                and time.time() - live.state["sent"] > 1
            ):
                live.signal(sig)
                live.state["again"] = True

        return during

    after_a_trial = lambda live: logged(live.work) >= 1  # noqa: E731
    ray_starting = lambda live: any(  # noqa: E731
        any(p.name.startswith("session_") for p in f.iterdir()) for f in live.ray if f.exists()
    )  # noqa: E731
    signalled = lambda work, res: {"signal_was_sent": "sent" in res.state}  # noqa: E731
    kills = [
        ("SIGINT after the first finished trial", signal.SIGINT, after_a_trial, (130,), False, True),
        ("SIGINT twice, 1 s apart (an impatient user)", signal.SIGINT, after_a_trial, None, True, False),
        (
            "SIGKILL of the driver alone after the first finished trial",
            signal.SIGKILL,
            after_a_trial,
            None,
            False,
            True,
        ),
        ("SIGKILL of the driver alone while its Ray starts", signal.SIGKILL, ray_starting, None, False, True),
        (
            "SIGTERM of the driver after the first finished trial (what kill, timeout and schedulers send)",
            signal.SIGTERM,
            after_a_trial,
            (130, 143, -15),
            False,
            True,
        ),
    ]
    for label, sig, condition, expect, twice, resume in kills:
        state: dict = {}

        def remember(work: Path, res: Result, state=state) -> dict:
            log = work / "runs" / "space" / "trials.jsonl"
            state["ids"] = (
                [json.loads(x)["trial_id"] for x in log.read_text().splitlines() if x.endswith("}")]
                if log.exists()
                else []
            )
            return signalled(work, res)

        work = h.case(
            Spec(
                8, f"{label}: Ray folder and processes gone within {CLEANUP_S:g} s", run, expect, timeout=300
            ),
            setup=lambda w: tiny(w, samples=4, concurrent=1, epochs=6),
            during=kill_when(condition, sig, twice),
            post=remember,
            keep=resume,
        )
        if not resume:
            continue

        def completes(work: Path, res: Result, state=state) -> dict:
            try:
                summary = json.loads((work / "runs" / "space" / "summary.json").read_text())
            except (OSError, ValueError):
                return {"summary_written": False}
            ids = {t["trial_id"] for t in summary["trials"]}
            return {
                "complete_with_4_trials": summary["complete"] and summary["counts"]["trials"] == 4,
                "earlier_trials_kept": set(state.get("ids", [])) <= ids,
            }

        try:
            h.case(
                Spec(
                    8,
                    f"the same command after the {sig.name}: the search completes",
                    run,
                    (0,),
                    timeout=300,
                    may_change=("$WORK/runs/space/*", "$WORK/runs/space"),
                ),
                post=completes,
                work=work,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)

    own = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    try:
        (own / "mine.txt").write_text("keep\n")
        (own / (RAY_PREFIX + "mine")).mkdir()
        (own / (RAY_PREFIX + "mine") / "notes.txt").write_text("a user's folder that only looks like Ray's\n")
        stale = own / (RAY_PREFIX + "stale")
        stale.mkdir()
        (stale / "lvm-owner").write_text("999999999 1\n")  # a driver that is long gone

        def only_the_users(work: Path, res: Result) -> dict:
            return {
                "stale_folder_of_a_dead_driver_swept": not stale.exists(),
                "only_the_users_entries_left": sorted(p.name for p in own.iterdir())
                == ["lvm-ray-mine", "mine.txt"],
            }

        h.case(
            Spec(
                8,
                "RAY_TMPDIR set to a short folder holding a user's file, a user's lvm-ray-* folder and a "
                "dead driver's one",
                run,
                (0,),
                env={"RAY_TMPDIR": str(own)},
                watch=(str(own),),
                subs={str(own): "$RAYTMPDIR"},
                may_change=("$RAYTMPDIR/lvm-ray-stale*",),
            ),
            setup=tiny,
            post=only_the_users,
        )
    finally:
        shutil.rmtree(own, ignore_errors=True)
    long_name = "a-rather-long-folder-name-for-the-ray-sockets"
    for value, label in [
        (long_name, "a folder too long for Ray's socket paths (holding a user's file)"),
        ("nope", "a folder that does not exist"),
        ("notes.txt", "a file"),
    ]:

        def setup(work: Path, value=value) -> None:
            tiny(work)
            (work / long_name).mkdir()
            (work / long_name / "mine.txt").write_text("keep\n")
            (work / "notes.txt").write_text("mine\n")

        h.case(
            Spec(
                8,
                f"RAY_TMPDIR set to {label}",
                run,
                names=("RAY_TMPDIR",),
                env={"RAY_TMPDIR": f"$WORK/{value}"},
            ),
            setup=setup,
        )


# --- the report -----------------------------------------------------------------------------------


def test_names() -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        found[path.name] = set(re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.M))
    return found


def coverage() -> dict:
    names = test_names()
    out = {}
    for cls, tests in COVERAGE.items():
        exists = [t for t in tests if t.split("::")[1] in names.get(t.split("::")[0], set())]
        out[str(cls)] = {"tests": exists, "missing": [t for t in tests if t not in exists]}
    return out


def summarise(records: list[dict]) -> dict:
    out = {}
    for cls in CLASSES:
        rows = [r for r in records if r["class"] == cls]
        if not rows:
            continue
        out[str(cls)] = {
            "inputs": len(rows),
            "passed": sum(r["passed"] for r in rows),
            "failed": sum(not r["passed"] for r in rows),
            "lost_or_changed": sum(len(r["lost_or_changed"]) for r in rows),
        }
    return out


def outcome(r: dict) -> str:
    """One short line: the exit code and time, what failed, the signal sent."""
    if "socket" in r:
        return f"{r['socket']['process']} on {r['socket']['ip']}"
    text = f"exit {r.get('exit')}, {r.get('wall_s')} s"
    if r.get("first_wall_s"):
        text += f" (first try {r['first_wall_s']} s)"
    if r["failed"]:
        text += "; failed: " + ", ".join(r["failed"])
    return text


def what_happened(r: dict) -> str:
    bits = []
    if r.get("stderr_tail") and not r.get("error"):
        bits.append("stderr ends `" + r["stderr_tail"][-1].replace("`", "'")[:160] + "`")
    elif r.get("error"):
        bits.append("`" + r["error"].replace("`", "'")[:200] + "`")
    bits += [f"{x}" for x in (r.get("lost_or_changed") or []) + (r.get("leftovers") or [])]
    return "; ".join(bits)


def markdown(results: dict) -> str:
    """reports/reliability.md from the JSON: every number here is computed from it."""
    records, summary, cover = results["cases"], results["summary"], results["coverage"]
    total = sum(s["inputs"] for s in summary.values())
    failed = [r for r in records if not r["passed"]]
    runs = results["classes"].values()
    by_machine: dict[str, list[str]] = {}
    for cls, c in results["classes"].items():
        by_machine.setdefault(c["machine"], []).append(cls)
    machines = [
        line if len(by_machine) == 1 else f"classes {', '.join(classes)}: {line}"
        for line, classes in by_machine.items()
    ]
    loads = [x for c in runs for x in c.get("load", [])]
    lines = [
        "# Reliability: the command line under attack",
        "",
        f"`benchmarks/hostile_cli.py` attacked the real command line as a careless or malicious user would: "
        f"{total} inputs in {len(summary)} classes (the rows of issue 16), each run as a subprocess "
        "(`python -m lvm_search.cli ...`) in a fresh temporary folder that was its working directory. Before "
        "each command every file, folder and link the user gave or that sat in the working folder was hashed "
        "(sha256); afterwards the script checked the exit code (2 for a user's mistake, 0 where the input is "
        "legitimately fine), that stderr held no traceback or crash dump and ended with exactly one "
        "`lvm-search: error:` line naming the offending file or flag (progress lines may precede it), that "
        "nothing that existed was changed, deleted or moved, that the command's private Ray folder "
        f"(`lvm-ray-*`) and every process using it or left in its session were gone within {CLEANUP_S:g} s, "
        "and "
        "the wall time where the class bounds it (a case over its bound ran once more; both times are in the "
        f"JSON). Inputs are fixed lists and seeded mutations (seed {SEED}); the real searches are tiny (AMN "
        "on a 480-passage random-walk corpus, D=16).",
        "",
        f"Machine and checkout: {'; '.join(machines)}. The machine was shared with other work (1-minute "
        f"load average {min(loads, default=0):g} to {max(loads, default=0):g} on its 2 CPUs). The cases took "
        f"{sum(c['wall_s'] for c in runs) / 60:.0f} min in all.",
        "",
        "| class | inputs tried | passed | failed | files lost or changed | covering tests |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for cls, s in summary.items():
        tests = ", ".join(f"`{t}`" for t in cover[cls]["tests"]) or "none"
        if cover[cls]["missing"]:
            tests += "; **not found:** " + ", ".join(f"`{t}`" for t in cover[cls]["missing"])
        lines.append(
            f"| {cls}. {CLASSES[int(cls)]} | {s['inputs']} | {s['passed']} | {s['failed']} "
            f"| {s['lost_or_changed']} | {tests} |"
        )
    lines.append(
        f"| all | {total} | {sum(s['passed'] for s in summary.values())} | "
        f"{sum(s['failed'] for s in summary.values())} | "
        f"{sum(s['lost_or_changed'] for s in summary.values())} | |"
    )
    lines += ["", "## Failures", ""]
    if not failed:
        lines.append("None.")
    for r in failed:
        expect = "any exit code" if r["expect"] == "any" else "exit " + " or ".join(map(str, r["expect"]))
        env = " with " + " ".join(f"{k}={v}" for k, v in r["env"].items()) if r.get("env") else ""
        lines.append(
            f"- **{r['id']}** {r['input']}: `{r.get('command', '')}`{env} gave exit {r.get('exit')} in "
            f"{r.get('wall_s')} s (expected {expect}); failed: {', '.join(r['failed'])}. {what_happened(r)}"
        )
    lines += ["", "## Every input", ""]
    for cls in summary:
        lines += [f"### {cls}. {CLASSES[int(cls)]}", ""]
        for r in (r for r in records if str(r["class"]) == cls):
            lines.append(f"- {'pass' if r['passed'] else '**FAIL**'} {r['id']} {r['input']}: {outcome(r)}")
        lines.append("")
    lines += [
        "## Regenerate",
        "",
        "```bash",
        "python benchmarks/hostile_cli.py                   # every class",
        "python benchmarks/hostile_cli.py --classes 1,3      # a subset, merged into the JSON",
        "python benchmarks/hostile_cli.py --markdown-only    # this page again from the JSON",
        "```",
        "",
        f"Results: `{DEFAULT_JSON.relative_to(ROOT)}`; this page is generated from it.",
        "",
    ]
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------

RUNNERS = {
    1: class_1_data_loss,
    2: class_2_leakage,
    3: class_3_loopback,
    4: class_4_degenerate,
    5: class_5_late_validation,
    6: class_6_resume,
    7: class_7_corrupt_state,
    8: class_8_hangs,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--out-md", type=Path, default=DEFAULT_MD)
    parser.add_argument("--classes", default=",".join(map(str, CLASSES)), help="e.g. 1,3 (default: all)")
    parser.add_argument("--markdown-only", action="store_true", help="regenerate the report from the JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (debugging)")
    args = parser.parse_args(argv)
    try:
        selected = sorted({int(c) for c in args.classes.split(",") if c.strip()})
    except ValueError:
        parser.error("--classes: a comma-separated list of class numbers, e.g. 1,3")
    if not selected or not set(selected) <= set(CLASSES):
        parser.error(f"--classes: choose among {sorted(CLASSES)}")
    previous = json.loads(args.out_json.read_text()) if args.out_json.exists() else None
    if args.markdown_only:
        if previous is None:
            parser.error(f"{args.out_json}: no results to render")
        previous["coverage"] = coverage()  # the tests may have moved on: name only those that exist now
        args.out_json.write_text(json.dumps(previous, indent=1, sort_keys=True) + "\n")
        args.out_md.write_text(markdown(previous))
        return 0
    if set(selected) == set(CLASSES):
        previous = None  # a full run replaces everything

    # Stopped with SIGTERM, the harness still ends the command it runs and removes its temporary folders.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    h = Harness(keep=args.keep)
    fx = h.fixture = Fixture()
    classes: dict = {}
    try:
        for cls in selected:
            print(f"class {cls}: {CLASSES[cls]}", file=sys.stderr, flush=True)
            machine = machine_line()  # per class: the checkout may move while a long run goes on
            t0, load0 = time.time(), os.getloadavg()[0]
            try:
                RUNNERS[cls](h, fx)
            except SetupError as e:
                h.records.append(
                    {
                        "id": h.next_id(cls),
                        "class": cls,
                        "input": "setup",
                        "checks": {"setup": False},
                        "failed": ["setup"],
                        "passed": False,
                        "lost_or_changed": [],
                        "leftovers": [],
                        "notes": [h.norm(e, {str(fx.root): "$FIXTURE"})],
                    }
                )
            classes[str(cls)] = {
                "machine": machine,
                "wall_s": round(time.time() - t0, 1),
                "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            save(args, previous, selected, h.records, classes)  # after every class: a crash keeps what ran
    finally:
        if not args.keep:
            shutil.rmtree(fx.root, ignore_errors=True)
    return 0


def machine_line() -> str:
    """The package version, its git commit now, the libraries and the device, in one line."""
    getattr(provenance.git_commit, "cache_clear", lambda: None)()
    return provenance.collect().one_line()


def save(args, previous: dict | None, selected: list[int], records: list[dict], classes: dict) -> None:
    """Write the JSON (merged into the earlier results when only some classes ran) and the markdown."""
    records, classes = list(records), dict(classes)
    if previous is not None:
        ran = {int(c) for c in classes}
        records = [r for r in previous["cases"] if r["class"] not in ran] + records
        classes = {**{k: v for k, v in previous["classes"].items() if int(k) not in ran}, **classes}
    records.sort(key=lambda r: (r["class"], int(r["id"].split(".")[1])))
    results = {
        "generated_by": "python benchmarks/hostile_cli.py",
        "seed": SEED,
        "classes": dict(sorted(classes.items(), key=lambda kv: int(kv[0]))),
        "class_names": {str(k): v for k, v in CLASSES.items()},
        "coverage": coverage(),
        "summary": summarise(records),
        "cases": records,
    }
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    args.out_md.parent.mkdir(parents=True, exist_ok=True)
    args.out_md.write_text(markdown(results))
    for cls, s in results["summary"].items():
        print(
            f"class {cls}: {s['inputs']} inputs, {s['passed']} passed, {s['failed']} failed, "
            f"{s['lost_or_changed']} lost or changed",
            file=sys.stderr,
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
