"""Reliability: bad space files, bad storage, concurrent runs, failing trials, killed drivers,
lost nodes, and a 200-trial load. Tests marked slow run with `python -m pytest -m slow`."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import yaml
from conftest import (
    CONFINED,
    FALSE_REFUSALS,
    HANGS,
    LATE,
    NOT_LOOPBACK,
    copy_of,
    one_error,
    one_trial_space,
    tiny_space,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvm_search.errors import UserError
from lvm_search.models.checkpoint import load_model
from lvm_search.search import reaper
from lvm_search.search.spaces import parse_space
from lvm_search.search.tuner import SearchOptions, run_search

# --- garbage in space files -------------------------------------------------------------------

KEYS = [
    "arch",
    "samples",
    "seed",
    "max_concurrent",
    "scheduler",
    "resources",
    "fixed",
    "space",
    "type",
    "low",
    "high",
    "log",
    "step",
    "values",
    "lr",
    "epochs",
    "width",
    "depth",
    "dropout",
    "residual",
    "grace_period",
    "reduction_factor",
    "cpus_per_trial",
    "gpus_per_trial",
    "batch_size",
    "x",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["lstm", "gru", "amn", "transformer", "int", "float", "choice", "asha", "none", "1e-3"]),
)
garbage = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=25,
)


@pytest.mark.hostile(LATE)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=garbage)
def test_garbage_in_a_space_never_raises_anything_but_a_user_error(raw):
    try:
        parse_space(raw, "garbage.yaml")
    except UserError as e:
        assert str(e).startswith("garbage.yaml") and "\n" not in str(e)


@pytest.mark.hostile(LATE)
@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_random_text_as_a_space_file_is_one_line_and_exit_2_or_a_valid_space(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("g") / "space.yaml"
    path.write_text(text)
    from lvm_search.cli import main

    # Only files that fail validation get here in practice; a valid one would start a search.
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raw = None
    if isinstance(raw, dict) and raw.get("arch") in ("lstm", "gru", "amn", "transformer"):
        return
    assert main(["run", str(path), "--storage", str(path.parent / "runs")]) == 2
    assert not (path.parent / "runs").exists()


# --- storage and concurrency ---------------------------------------------------------------------

TINY = """
arch: amn
samples: {samples}
max_concurrent: 2
fixed: {fixed}
space:
  width: {{type: choice, values: [16, 512]}}
"""


def space_file(tmp_path: Path, samples=2, fixed="{epochs: 1}", arch="amn") -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(TINY.format(samples=samples, fixed=fixed).replace("arch: amn", f"arch: {arch}"))
    return path


@pytest.mark.hostile(CONFINED)
@pytest.mark.parametrize("storage", ["a-file/runs", "a-file", "a-link-to-a-file"])
def test_a_storage_folder_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, cli, storage):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    (tmp_path / "a-link-to-a-file").symlink_to("a-file")
    code, _, err = cli("run", space_file(tmp_path), "--storage", tmp_path / storage)
    assert code == 2 and "cannot write to the storage folder" in one_error(err)
    assert blocker.read_text() == "not a folder" and (tmp_path / "a-link-to-a-file").is_symlink()


def test_a_second_search_on_the_same_run_is_refused(tmp_path, cli):
    storage = tmp_path / "runs"
    storage.mkdir()
    with open(storage / ".space.lock", "w") as held:  # what a running search holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = cli("run", space_file(tmp_path), "--storage", storage)
    assert code == 2 and "another search is running" in one_error(err)
    assert not (storage / "space").exists()


# --- failing trials --------------------------------------------------------------------------------


def test_a_diverging_trial_is_recorded_and_the_search_goes_on(tmp_path):
    space = parse_space(
        yaml.safe_load(TINY.format(samples=2, fixed="{epochs: 2, lr: 1.0e+30}")), "diverge.yaml"
    )
    summary = run_search(space, SearchOptions(storage=str(tmp_path / "runs"), name="diverge"))
    assert summary.counts.trials == 2 and summary.counts.diverged == 2
    assert all("training loss became nan" in t.error for t in summary.trials)
    assert summary.best is None and summary.complete


@pytest.mark.slow
def test_a_trial_that_raises_is_retried_once_then_recorded(tmp_path, monkeypatch):
    # torch.compile needs a C++ compiler; without one every try of the trial raises inside Ray
    # (which also shows that `compile: true` is not ignored).
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    raw = {
        "arch": "amn",
        "samples": 1,
        "fixed": {"compile": True, "epochs": 1, "width": 32, "key_dim": 16},
        "space": {"dropout": {"type": "float", "low": 0.0, "high": 0.2}},
    }
    summary = run_search(
        parse_space(raw, "raise.yaml"), SearchOptions(storage=str(tmp_path / "runs"), name="raise")
    )
    (trial,) = summary.trials
    assert trial.status == "error" and trial.failures == 2  # the first try and one retry
    assert "InvalidCxxCompiler" in trial.error or "C++ compiler" in trial.error
    assert summary.counts.errored == 1


# --- killed drivers, lost nodes, load (slow) --------------------------------------------------------


def _logged(run_dir: Path) -> int:
    log = run_dir / "trials.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.hostile(HANGS)
@pytest.mark.slow
def test_a_driver_killed_with_sigkill_resumes_keeping_every_finished_trial(tmp_path):
    space = space_file(tmp_path, samples=6, fixed="{epochs: 3}")
    cmd = [
        sys.executable,
        "-m",
        "lvm_search.cli",
        "run",
        str(space),
        "--storage",
        str(tmp_path / "runs"),
        "--json",
    ]
    run_dir = tmp_path / "runs" / "space"
    driver = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 180
    while _logged(run_dir) < 2 and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the private Ray it started
    driver.wait()
    before = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]
    assert 2 <= len(before) < 6

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)
    assert summary["counts"]["trials"] == 6 and summary["counts"]["ok"] == 6
    kept = {t["trial_id"]: t for t in summary["trials"]}
    for record in before:  # finished before the kill: kept, and its checkpoint intact
        trial = kept[record["trial_id"]]
        load_model(run_dir / trial["checkpoint"])


@pytest.mark.slow
def test_a_lost_worker_node_does_not_lose_the_search(tmp_path):
    from test_cluster import LocalCluster

    cluster = LocalCluster(tmp_path)
    try:
        cluster.start()
        space = space_file(tmp_path, samples=6, fixed="{epochs: 8}")
        space.write_text(
            space.read_text().replace(
                "max_concurrent: 2", "max_concurrent: 2\nresources: {cpus_per_trial: 1}"
            )
        )
        cmd = [
            sys.executable,
            "-m",
            "lvm_search.cli",
            "run",
            str(space),
            "--storage",
            str(tmp_path / "shared"),
            "--address",
            cluster.address,
            "--json",
        ]
        driver = subprocess.Popen(
            cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(1)
        deadline = time.time() + 120
        while time.time() < deadline and not list(
            (tmp_path / "shared").glob("space/attempt-1/trial_*/result.json")
        ):
            time.sleep(0.2)
        cluster.stop_second_node()
        out, err = driver.communicate(timeout=400)
        assert driver.returncode == 0, err[-3000:]
        summary = json.loads(out)
        assert summary["counts"]["trials"] == 6 and summary["counts"]["ok"] == 6
        assert summary["complete"]
    finally:
        cluster.stop()


@pytest.mark.slow
def test_two_hundred_tiny_trials_are_all_recorded_with_bounded_driver_memory(tmp_path):
    raw = {
        "arch": "amn",
        "samples": 200,
        "max_concurrent": 2,
        "scheduler": {"type": "none"},
        "fixed": {"epochs": 1, "width": 8, "key_dim": 8, "depth": 1},
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
    }
    raw["fixed"].pop("width")  # the reference width (512) must stay inside the space
    raw["space"]["width"] = {"type": "choice", "values": [8, 512]}
    t0 = time.time()
    summary = run_search(
        parse_space(raw, "load.yaml"), SearchOptions(storage=str(tmp_path / "runs"), name="load")
    )
    wall_s = time.time() - t0
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log = (tmp_path / "runs" / "load" / "trials.jsonl").read_text().splitlines()
    print(f"200 trials in {wall_s:.0f} s; driver peak RSS {peak_rss_mb:.0f} MB")
    (tmp_path.parent / "load_figures.json").write_text(
        json.dumps({"wall_s": wall_s, "peak_rss_mb": peak_rss_mb})
    )
    assert summary.counts.trials == 200 and len(log) == 200 and summary.counts.ok == 200
    assert peak_rss_mb < 2048


# --- nothing listening, nothing left behind ------------------------------------------------------------

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _start_search(tmp_path: Path, samples=2, epochs=4) -> tuple[subprocess.Popen, set]:
    import tempfile

    before = set(Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()).glob("lvm-ray-*"))
    cmd = [
        sys.executable,
        "-m",
        "lvm_search.cli",
        "run",
        str(space_file(tmp_path, samples=samples, fixed=f"{{epochs: {epochs}}}")),
        "--storage",
        str(tmp_path / "runs"),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), before


def ray_pids(folder: Path) -> list[int]:
    return reaper.ray_pids(str(folder), os.path.dirname(ray.__file__))


def _session_folder(before: set, timeout_s=60) -> Path:
    import tempfile

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        new = set(Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()).glob("lvm-ray-*")) - before
        if new:
            return new.pop()
        time.sleep(0.1)
    raise AssertionError("the search started no private Ray")


@pytest.mark.hostile(NOT_LOOPBACK)
def test_every_socket_of_the_private_ray_listens_on_loopback_only(tmp_path):
    # README "Safety": every listening socket of a search's private Ray cluster is on 127.0.0.1.
    psutil = pytest.importorskip("psutil")
    driver, before = _start_search(tmp_path, samples=3, epochs=4)
    try:
        folder = _session_folder(before)
        seen = {}
        deadline = time.time() + 120
        while driver.poll() is None and time.time() < deadline and folder.exists():
            for pid in {driver.pid, *ray_pids(folder)}:
                try:
                    proc = psutil.Process(pid)
                    for conn in proc.net_connections(kind="inet"):
                        if conn.status == psutil.CONN_LISTEN:
                            seen[(proc.name(), conn.laddr.ip, conn.laddr.port)] = True
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            time.sleep(0.5)
        assert driver.wait(timeout=120) == 0, driver.stderr.read()[-2000:]
    finally:
        driver.kill()
    names = {name for name, _, _ in seen}
    assert {"gcs_server", "raylet"} <= names, seen  # the servers were seen, so the test can fail
    outside = sorted(key for key in seen if key[1] not in LOOPBACK)
    assert not outside, f"listening beyond loopback: {outside}"


def _wait_until_gone(folder, seconds: float = 20) -> None:
    """Give a search's Ray folder and processes ``seconds`` to go after its driver ended."""
    deadline = time.time() + seconds
    while (folder.exists() or ray_pids(folder)) and time.time() < deadline:
        time.sleep(0.2)


@pytest.mark.hostile(HANGS)
def test_a_driver_killed_with_sigkill_leaves_no_process_and_no_folder(tmp_path):
    driver, before = _start_search(tmp_path, samples=4, epochs=6)
    folder = _session_folder(before)
    deadline = time.time() + 120
    while _logged(tmp_path / "runs" / "space") < 1 and time.time() < deadline:
        time.sleep(0.2)
    assert ray_pids(folder), "Ray was not running"
    os.kill(driver.pid, signal.SIGKILL)  # the driver alone: its Ray and its watcher must clean up
    driver.wait()
    _wait_until_gone(folder)
    assert not folder.exists() and not ray_pids(folder)


@pytest.mark.hostile(HANGS)
@pytest.mark.slow
@pytest.mark.parametrize("presses", [1, 2], ids=["once", "twice, a second apart"])
def test_ctrl_c_leaves_no_process_no_folder_and_no_traceback(tmp_path, presses):
    driver, before = _start_search(tmp_path, samples=4, epochs=6)
    folder = _session_folder(before)
    deadline = time.time() + 120
    while _logged(tmp_path / "runs" / "space") < 1 and time.time() < deadline:
        time.sleep(0.2)
    assert ray_pids(folder), "Ray was not running"
    for _ in range(presses):  # an impatient user presses again while the search shuts down
        driver.send_signal(signal.SIGINT)
        time.sleep(1)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130 and "Traceback" not in err and "received at time" not in err, err[-2000:]
    _wait_until_gone(folder)
    assert not folder.exists() and not ray_pids(folder)


@pytest.mark.hostile(HANGS)
@pytest.mark.slow
def test_a_driver_killed_while_its_ray_starts_leaves_no_process_and_no_folder(tmp_path):
    driver, before = _start_search(tmp_path, samples=1, epochs=1)
    folder = _session_folder(before)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith("session_") for p in folder.glob("*")):
        time.sleep(0.05)
    assert driver.poll() is None and any(folder.glob("session_*")), "Ray did not start"
    os.kill(driver.pid, signal.SIGKILL)  # the driver alone, while Ray's processes come up
    driver.wait()
    _wait_until_gone(folder)
    assert not folder.exists() and not ray_pids(folder)


@pytest.mark.hostile(HANGS)
def test_an_address_where_nothing_listens_is_one_line_in_seconds(tmp_path, cli):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nothing listens on it
    t0 = time.time()
    code, _, err = cli(
        "run", space_file(tmp_path), "--address", f"127.0.0.1:{port}", "--storage", tmp_path / "runs"
    )
    assert code == 2 and "cannot reach a Ray head" in one_error(err) and time.time() - t0 < 15


@pytest.mark.hostile(HANGS)
@pytest.mark.parametrize(
    "address", ["nonsense", "host:", ":6379", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:abc"]
)
def test_an_address_that_is_not_host_and_port_is_one_line(tmp_path, cli, address):
    code, _, err = cli("run", space_file(tmp_path), "--address", address, "--storage", tmp_path / "runs")
    assert code == 2 and f"--address {address}: expected auto or HOST:PORT" in one_error(err)
    assert not (tmp_path / "runs").exists()


@pytest.mark.hostile(HANGS)
def test_address_auto_without_a_cluster_ray_start_recorded_is_one_line(tmp_path, cli, monkeypatch):
    # Never Ray's fallback to any Ray process running here: it could be another user's private search.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # where `ray start` would record its cluster
    code, _, err = cli("run", space_file(tmp_path), "--address", "auto", "--storage", tmp_path / "runs")
    assert code == 2 and "`ray start` recorded no cluster" in one_error(err)


@pytest.mark.hostile(HANGS)
@pytest.mark.slow
@pytest.mark.parametrize("listener", ["silent", "closes every connection at once"])
def test_an_address_where_something_else_listens_is_one_line_within_a_minute(tmp_path, cli, listener):
    import socket
    import threading

    def close_every_connection(server: socket.socket) -> None:
        while True:
            try:
                server.accept()[0].close()
            except OSError:  # the listener was closed: the test is over
                return

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        if listener != "silent":
            threading.Thread(target=close_every_connection, args=(s,), daemon=True).start()
        t0 = time.time()
        code, _, err = cli(
            "run",
            space_file(tmp_path),
            "--address",
            f"127.0.0.1:{s.getsockname()[1]}",
            "--storage",
            tmp_path / "runs",
        )
    assert code == 2 and "no Ray head answered" in one_error(err) and time.time() - t0 < 60


@pytest.mark.hostile(HANGS)
def test_a_user_ray_tmpdir_is_used_and_left_as_it_was(tmp_path, monkeypatch):
    import shutil
    import tempfile

    own = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    try:
        (own / "mine.txt").write_text("keep")
        monkeypatch.setenv("RAY_TMPDIR", str(own))
        raw = yaml.safe_load(TINY.format(samples=1, fixed="{epochs: 1}"))
        run_search(parse_space(raw, "tmp.yaml"), SearchOptions(storage=str(tmp_path / "runs")))
        assert os.environ["RAY_TMPDIR"] == str(own)
        assert sorted(p.name for p in own.iterdir()) == ["mine.txt"]  # its session folder came and went
    finally:
        shutil.rmtree(own)


# --- paths a user gives -------------------------------------------------------------------------------


@pytest.mark.hostile(CONFINED)
@pytest.mark.parametrize(
    "name",
    [".", "..", "../elsewhere", "a/b", "", "ensembles", ".hidden", "x/..", "-x", "a\nb", "ñame", "/tmp/x"]
    + [pytest.param("n" * 101, id="101 characters")],
)
def test_a_run_name_that_is_not_one_plain_folder_name_is_refused(tmp_path, cli, name):
    storage = tmp_path / "runs"
    (storage / "lstm").mkdir(parents=True)
    (storage / "lstm" / "summary.json").write_text("{}")
    code, _, err = cli("run", space_file(tmp_path), "--storage", storage, f"--name={name}", "--fresh")
    assert code == 2 and "is not a usable name" in one_error(err)
    assert sorted(p.name for p in storage.iterdir()) == ["lstm"]  # nothing moved, nothing added


# What a recipe may say, and how the error quotes it: YAML reads 123 as a number and [a] as a list.
RECIPE_NAMES = {
    "../x": "'../x'",
    "..": "'..'",
    ".": "'.'",
    "a/b": "'a/b'",
    "/tmp/evil": "'/tmp/evil'",
    "x/../../y": "'x/../../y'",
    "''": "''",
    ".hidden": "'.hidden'",
    "ensembles": "'ensembles'",
    "123": "123",
    "[a]": "['a']",
}


@pytest.mark.hostile(CONFINED)
@pytest.mark.parametrize(
    "file, text, message",
    [
        ("r.yaml", f"name: {said}", f"name: {quoted} is not a usable name")
        for said, quoted in RECIPE_NAMES.items()
    ]
    + [
        ("r.yaml", f"runs: [{said}]", f"runs: {RECIPE_NAMES[said]} is not a usable name")
        for said in ("../x", ".")
    ]
    + [("r.yaml", "runs: ['']", "runs: expected a list of run names")]
    + [(".yaml", "top_k: 1", "name: '.yaml' is not a usable name")],  # the name of a recipe is its file's
    ids=[
        *(f"name: {said}" for said in RECIPE_NAMES),
        "runs: [../x]",
        "runs: [.]",
        "runs: ['']",
        "file .yaml",
    ],
)
def test_an_ensemble_or_run_name_in_a_recipe_that_is_not_one_plain_folder_name_is_refused(
    tmp_path, cli, file, text, message
):
    recipe = tmp_path / file
    recipe.write_text(text + "\n")
    code, _, err = cli("ensemble", recipe, "--storage", tmp_path / "runs")
    assert code == 2 and f"{recipe}: {message}" in one_error(err)
    assert not (tmp_path / "runs").exists()


@pytest.mark.hostile(CONFINED)
def test_fresh_moves_the_previous_run_aside_and_never_deletes_it(tmp_path):
    raw = yaml.safe_load(TINY.format(samples=1, fixed="{epochs: 1}"))
    space = parse_space(raw, "fresh.yaml")
    first = run_search(space, SearchOptions(storage=str(tmp_path / "runs")))
    second = run_search(space, SearchOptions(storage=str(tmp_path / "runs"), fresh=True))
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert folders[0] == "fresh" and folders[1].startswith("fresh.old-") and len(folders) == 2
    old = tmp_path / "runs" / folders[1]
    assert json.loads((old / "summary.json").read_text())["trials"][0]["trial_id"] == first.trials[0].trial_id
    assert second.trials[0].trial_id != first.trials[0].trial_id and second.counts.trials == 1


@pytest.mark.hostile(CONFINED)
def test_a_folder_that_is_not_a_run_is_never_taken_over(tmp_path, cli):
    storage = tmp_path / "runs"
    (storage / "space").mkdir(parents=True)
    (storage / "space" / "thesis.tex").write_text("mine")
    for extra in ([], ["--fresh"]):
        code, _, err = cli("run", space_file(tmp_path), "--storage", storage, *extra)
        assert code == 2 and "exists and is not a run folder" in one_error(err)
    assert [p.name for p in (storage / "space").iterdir()] == ["thesis.tex"]


@pytest.mark.hostile(CONFINED)
def test_a_run_name_that_is_a_users_file_is_refused_and_the_file_stays(tmp_path, cli):
    storage = tmp_path / "runs"
    storage.mkdir()
    (storage / "notes.txt").write_text("mine")
    for extra in ([], ["--fresh"]):
        code, _, err = cli("run", space_file(tmp_path), "--storage", storage, "--name", "notes.txt", *extra)
        assert code == 2 and "exists and is not a run folder" in one_error(err)
    assert (storage / "notes.txt").read_text() == "mine"


@pytest.mark.hostile(CONFINED)
@pytest.mark.parametrize("command", [["report", "--out", ""], ["eval", "x", "--data", ""], ["run", ""]])
def test_an_empty_path_is_one_line_naming_the_flag(command):
    done = subprocess.run([sys.executable, "-m", "lvm_search.cli", *command], capture_output=True, text=True)
    flag = command[-2] if command[-2].startswith("-") else "space"
    assert done.returncode == 2 and f"argument {flag}: an empty path" in one_error(done.stderr)


@pytest.mark.hostile(LATE)
@pytest.mark.parametrize(
    "argv",
    [
        ["run", "x.yaml", "--samples", "abc"],
        ["run", "x.yaml", "--max-concurrent", "lots"],
        ["train", "--arch"],
    ],
)
def test_argparse_mistakes_are_one_error_line_naming_the_flag(argv):
    done = subprocess.run([sys.executable, "-m", "lvm_search.cli", *argv], capture_output=True, text=True)
    assert done.returncode == 2 and argv[-1 if argv[-1].startswith("-") else -2] in one_error(done.stderr)


@pytest.mark.hostile(HANGS)
@pytest.mark.parametrize("what", ["missing", "a file"])
def test_a_ray_tmpdir_that_is_not_a_folder_is_one_line(tmp_path, cli, monkeypatch, what):
    import tempfile

    short = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))  # short enough for Ray: not the length's fault
    target = short / "nope"
    try:
        if what == "a file":
            target.write_text("mine")
        monkeypatch.setenv("RAY_TMPDIR", str(target))
        code, _, err = cli("run", space_file(tmp_path), "--storage", tmp_path / "runs")
        assert code == 2 and f"RAY_TMPDIR={target}: cannot make Ray's folder there" in one_error(err)
        assert what == "missing" or target.read_text() == "mine"
    finally:
        shutil.rmtree(short)


# --- a start that fails leaves nothing that refuses the corrected command -------------------------------


def _free_address() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # free, and nothing listens on it


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.hostile(FALSE_REFUSALS)
def test_a_new_run_whose_start_fails_leaves_nothing_and_the_corrected_command_runs(
    tmp_path, cli, write_native
):
    """run.json and study.db of a start that never reached a trial refused the next command's other data."""
    space = tmp_path / "space.yaml"
    space.write_text(json.dumps(one_trial_space()))
    storage = tmp_path / "runs"
    code, _, err = cli("run", space, "--storage", storage, "--address", _free_address())
    assert code == 2 and "cannot reach a Ray head" in one_error(err)
    assert not storage.exists()  # this start made it, and left nothing in it
    other = write_native(lengths=(12,) * 10, dim=8)
    code, out, err = cli("run", space, "--storage", storage, "--data", other, "--json")
    assert code == 0, err[-2000:]
    assert json.loads(out)["data"]["source"] == str(other) and json.loads(out)["counts"]["ok"] == 1


@pytest.mark.hostile(FALSE_REFUSALS)
@pytest.mark.parametrize("fresh", [False, True], ids=["resume", "fresh"])
def test_a_start_that_fails_never_removes_what_an_earlier_start_wrote(tiny_storage, tmp_path, cli, fresh):
    storage = copy_of(tiny_storage, tmp_path)
    space = tiny_space(tmp_path, samples=3)
    run = storage / "amn"
    before = _tree(run)
    code, _, err = cli("run", space, "--storage", storage, "--address", _free_address(), *["--fresh"] * fresh)
    assert code == 2 and "cannot reach a Ray head" in one_error(err)
    after = _tree(run)  # study.db is rebuilt from the trial log by a resume; everything else is as it was
    assert {k: v for k, v in after.items() if k.name != "study.db"} == {
        k: v for k, v in before.items() if k.name != "study.db"
    }
    assert set(after) == set(before)
    assert sorted(p.name for p in storage.iterdir()) == sorted(p.name for p in tiny_storage.iterdir())
