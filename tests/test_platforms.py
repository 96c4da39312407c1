"""What is specific to an OS or a device, exercised on this Linux machine with the platform patched:
Ray's temporary folder (socket path limits of Linux and macOS), the reaper's process queries,
the CPU's name, and Apple's GPU (MPS) when it is reported available but does not work."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray
import torch
from conftest import CONFINED, FALSE_REFUSALS, one_trial_space

from lvm_search import devices
from lvm_search.errors import UserError
from lvm_search.search import reaper
from lvm_search.search.ray_folder import make_ray_folder, socket_path_bytes, socket_path_limit
from lvm_search.store import provenance

MAC_TMPDIR = "/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T"  # 49 characters, as on every Mac
RAY_DIR = os.path.dirname(ray.__file__)


@pytest.fixture
def short_dir():
    """A folder under /tmp whose name is padded to ``length`` characters: ``short_dir(40)``."""
    made = []

    def make(length: int) -> str:
        base = tempfile.mkdtemp(prefix="p", dir="/tmp")
        path = base + "/" + "d" * (length - len(base) - 1)
        os.mkdir(path)
        made.append(base)
        assert len(path) == length
        return path

    yield make
    for base in made:
        shutil.rmtree(base, ignore_errors=True)


def _made(folder: str):
    """The folder make_ray_folder made: its parent, and removed afterwards."""
    try:
        assert Path(folder).name.startswith("lvm-ray-") and os.stat(folder).st_mode & 0o077 == 0
        return str(Path(folder).parent)
    finally:
        os.rmdir(folder)


# --- Ray's temporary folder -----------------------------------------------------------------------


def test_the_socket_path_limit_is_the_os_one():
    assert socket_path_limit("linux") == 107 and socket_path_limit("darwin") == 103
    assert socket_path_limit("win32") is None  # Ray uses TCP there


@pytest.mark.hostile(FALSE_REFUSALS)
def test_on_a_mac_the_default_temp_folder_is_not_used_and_nothing_is_refused(caplog):
    env = {"TMPDIR": MAC_TMPDIR}  # RAY_TMPDIR unset, as for a new user
    with caplog.at_level(logging.WARNING, logger="lvm_search"):
        assert _made(make_ray_folder(env, platform="darwin")) == "/tmp"  # as Ray does on macOS
    assert not caplog.records


@pytest.mark.hostile(FALSE_REFUSALS)
def test_a_long_tmpdir_on_linux_falls_back_to_tmp_with_one_warning_naming_both(short_dir, caplog):
    long = short_dir(len(MAC_TMPDIR))
    with caplog.at_level(logging.WARNING, logger="lvm_search"):
        assert _made(make_ray_folder({"TMPDIR": long}, platform="linux")) == "/tmp"
    [record] = caplog.records
    assert record.getMessage().startswith(f"TMPDIR={long}: too long for Ray's socket paths (")
    assert "at most 107 here); Ray's folder goes under /tmp instead" in record.getMessage()


@pytest.mark.hostile(FALSE_REFUSALS)
@pytest.mark.parametrize("length", [19, 28])
def test_a_short_ray_tmpdir_is_used_as_it_is(short_dir, caplog, length):
    """The old rule refused anything over 36 characters for our folder, a 19-character RAY_TMPDIR
    included; the real limit leaves room for 28 with a 5-digit pid."""
    base = short_dir(length)
    with caplog.at_level(logging.WARNING, logger="lvm_search"):
        assert _made(make_ray_folder({"RAY_TMPDIR": base}, platform="linux", pid=12345)) == base
    assert not caplog.records


def test_the_same_ray_tmpdir_may_fit_linux_and_not_macos(short_dir):
    base = short_dir(26)
    assert _made(make_ray_folder({"RAY_TMPDIR": base}, platform="linux", pid=12345)) == base
    assert _made(make_ray_folder({"RAY_TMPDIR": base}, platform="darwin", pid=12345)) == "/tmp"


@pytest.mark.hostile(FALSE_REFUSALS)
def test_a_40_character_ray_tmpdir_falls_back_with_a_warning(short_dir, caplog):
    base = short_dir(40)
    with caplog.at_level(logging.WARNING, logger="lvm_search"):
        assert _made(make_ray_folder({"RAY_TMPDIR": base}, platform="linux")) == "/tmp"
    assert caplog.records[0].getMessage().startswith(f"RAY_TMPDIR={base}: too long")


@pytest.mark.hostile(FALSE_REFUSALS)
@pytest.mark.hostile(FALSE_REFUSALS)
def test_a_relative_ray_tmpdir_is_made_absolute_for_ray(tmp_path, monkeypatch, caplog):
    """Ray refuses a relative temp folder with a traceback after it has started."""
    monkeypatch.chdir("/tmp")
    rel = Path(tempfile.mkdtemp(prefix="r", dir="/tmp")).name
    try:
        folder = make_ray_folder({"RAY_TMPDIR": rel}, platform="linux")
        assert os.path.isabs(folder) and _made(folder) == f"/tmp/{rel}"
    finally:
        os.rmdir(f"/tmp/{rel}")


@pytest.mark.hostile(FALSE_REFUSALS)
def test_a_tmpdir_that_does_not_exist_falls_back_as_pythons_tempfile_does(caplog):
    with caplog.at_level(logging.WARNING, logger="lvm_search"):
        assert _made(make_ray_folder({"TMPDIR": "/tmp/no/such/folder"}, platform="linux")) == "/tmp"
    assert "TMPDIR=/tmp/no/such/folder: cannot make Ray's folder there (No such file" in caplog.text


def test_a_120_character_ray_tmpdir_with_no_short_folder_writable_is_one_line(monkeypatch):
    monkeypatch.setattr("lvm_search.search.ray_folder.FALLBACKS", ("/proc/nowhere", "/nonexistent"))
    base = "/tmp/" + "x" * 115
    with pytest.raises(UserError) as e:
        make_ray_folder({"RAY_TMPDIR": base}, platform="linux")
    message = str(e.value)
    assert message.startswith(f"RAY_TMPDIR={base}: too long for Ray's socket paths (")
    assert "at most 107 here" in message and "no other folder (/proc/nowhere, /nonexistent)" in message
    assert "\n" not in message


@pytest.mark.hostile(FALSE_REFUSALS)
def test_the_longest_ray_tmpdir_the_rule_allows_really_works_for_ray(short_dir, cli, tmp_path):
    """The rule is Ray's own: a RAY_TMPDIR exactly as long as it allows starts a real search (Ray
    checks every socket path it makes), one byte more falls back."""
    limit = socket_path_limit()
    longest = limit - socket_path_bytes("/", os.getpid())  # this process is the search's driver
    base = short_dir(longest)
    assert socket_path_bytes(base, os.getpid()) == limit
    space = tmp_path / "s.yaml"
    space.write_text(json.dumps(one_trial_space()))
    os.environ["RAY_TMPDIR"] = base
    try:
        code, _, err = cli("run", space, "--storage", tmp_path / "runs")
    finally:
        del os.environ["RAY_TMPDIR"]
    assert code == 0 and "too long" not in err, err[-2000:]
    assert os.listdir(base) == []  # its folder came and went
    longer = short_dir(longest + 1)
    assert _made(make_ray_folder({"RAY_TMPDIR": longer})) == "/tmp"


# --- the reaper: only Ray's processes, only what Ray made -----------------------------------------


def _stale_folder(tmp_root: str) -> str:
    """A Ray folder as a killed search leaves it: an owner that is gone, Ray's session folder."""
    folder = tempfile.mkdtemp(prefix=reaper.TMP_PREFIX, dir=tmp_root)
    session = Path(folder, "session_2026-01-01_00-00-00_000000_1")
    (session / "logs").mkdir(parents=True)
    (session / "logs" / "raylet.out").write_text("log")
    os.symlink(session, Path(folder, "session_latest"))
    os.symlink("/tmp", Path(folder, "users_link"))  # not Ray's: stays
    me = os.getpid()
    Path(folder, reaper.OWNER_FILE).write_text(f"v2 {me} {reaper._create_time(me) - 100!r}\n")  # not me
    return folder


def _sleeper(cwd: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args], cwd=cwd)


@pytest.mark.hostile(CONFINED)
def test_the_sweep_ends_rays_processes_and_leaves_a_users_and_their_files(tmp_path):
    root = tempfile.mkdtemp(prefix="sw", dir="/tmp")
    folder = _stale_folder(root)
    session = Path(folder, "session_2026-01-01_00-00-00_000000_1")
    Path(folder, "notes.txt").write_text("the user's")
    shell = _sleeper(folder)  # a user's shell whose working folder is inside
    reader = _sleeper("/", str(session / "logs" / "raylet.out"))  # a user's `tail -f` of a Ray log
    ray_worker = _sleeper(str(session), os.path.join(RAY_DIR, "_private", "workers", "default_worker.py"))
    try:
        time.sleep(0.5)
        assert set(reaper.ray_pids(folder, RAY_DIR)) == {ray_worker.pid}
        assert reaper.sweep_stale([root], RAY_DIR) == [folder]
        assert ray_worker.wait(timeout=10) == -9
        assert shell.poll() is None and reader.poll() is None
        # Ray's session, its link and our owner file went; the user's file and link stay
        assert sorted(os.listdir(folder)) == ["notes.txt", "users_link"]
    finally:
        for proc in (shell, reader, ray_worker):
            proc.kill()
        shutil.rmtree(root)


@pytest.mark.hostile(CONFINED)
def test_a_folder_whose_owner_runs_or_that_is_not_ours_is_left_alone(tmp_path):
    root = tempfile.mkdtemp(prefix="sw", dir="/tmp")
    try:
        alive = tempfile.mkdtemp(prefix=reaper.TMP_PREFIX, dir=root)
        reaper.write_owner(alive)  # this very process
        older = tempfile.mkdtemp(prefix=reaper.TMP_PREFIX, dir=root)
        Path(older, reaper.OWNER_FILE).write_text(f"{os.getpid()} 123456\n")  # an older lvm-search's record
        foreign = tempfile.mkdtemp(prefix=reaper.TMP_PREFIX, dir=root)  # no owner file: not ours
        assert reaper.sweep_stale([root], RAY_DIR) == []
        assert all(os.path.isdir(f) for f in (alive, older, foreign))
    finally:
        shutil.rmtree(root)


def test_the_watcher_waits_for_its_parent_whatever_ends_it():
    """The watcher's wait is POSIX alone (re-parenting), not Linux's pidfd: run it as a real child
    of a process that is then killed."""
    script = (
        "import subprocess, sys, time;"
        "p = subprocess.Popen([sys.executable, '-c', "
        "'import os, sys, time; from lvm_search.search.reaper import wait_for_parent_exit;"
        ' parent = os.getppid(); wait_for_parent_exit(parent, 0.05); print("done", flush=True)\'],'
        " stdout=sys.stdout); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    proc.kill()
    proc.wait()
    assert proc.stdout.readline().strip() == "done"  # the grandchild saw its parent go


@pytest.mark.hostile(CONFINED)
def test_a_private_cluster_is_this_users_alone_and_passes_its_variables_to_workers(monkeypatch):
    from lvm_search.search.cluster import private_cluster

    monkeypatch.setenv("LVM_TEST_SET_BY_USER", "mine")

    @ray.remote
    def seen():
        return os.environ.get("LVM_TEST_ADDED"), os.environ.get("LVM_TEST_SET_BY_USER")

    with private_cluster(env={"LVM_TEST_ADDED": "1", "LVM_TEST_SET_BY_USER": "ours"}):
        node = ray._private.worker.global_worker.node
        folders = [node.get_temp_dir_path(), node.get_session_dir_path()]
        modes = [os.stat(f).st_mode & 0o777 for f in folders]
        values = ray.get(seen.remote())
    assert modes == [0o700, 0o700]  # Ray made them 0777
    assert values == ("1", "mine")
    assert not any(os.path.exists(f) for f in folders)


# --- the CPU's name -------------------------------------------------------------------------------


def test_the_cpu_model_on_macos_comes_from_sysctl(monkeypatch):
    calls = []

    def sysctl(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout="Apple M2 Pro\n", stderr="")

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(subprocess, "run", sysctl)
    provenance.cpu_model.cache_clear()
    try:
        assert provenance.cpu_model() == "Apple M2 Pro"
        assert calls == [["sysctl", "-n", "machdep.cpu.brand_string"]]
    finally:
        provenance.cpu_model.cache_clear()


def test_the_cpu_model_elsewhere_and_the_cpu_count_without_affinity(monkeypatch):
    monkeypatch.setattr(sys, "platform", "freebsd14")
    monkeypatch.setattr("platform.processor", lambda: "amd64")
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    provenance.cpu_model.cache_clear()
    try:
        assert provenance.describe_device("cpu") == f"amd64 ({os.cpu_count()} CPUs)"
    finally:
        provenance.cpu_model.cache_clear()


# --- Apple's GPU ----------------------------------------------------------------------------------


@pytest.fixture
def broken_mps(monkeypatch):
    """MPS reported available, as on a hosted macOS runner, where every allocation then fails (here:
    there is no MPS at all, so the real probe fails the same way)."""
    if torch.backends.mps.is_available():
        pytest.skip("this machine has a working Apple GPU")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    devices.mps_usable.cache_clear()
    yield
    devices.mps_usable.cache_clear()


def test_auto_checks_that_apples_gpu_works_and_falls_back_to_the_cpu_once(broken_mps, caplog):
    with caplog.at_level(logging.WARNING, logger="lvm_search"):
        assert devices.resolve_device("auto") == torch.device("cpu")
        assert devices.resolve_device("auto") == torch.device("cpu")
        assert devices.gpus_here() == 0
    [record] = caplog.records  # checked once per process
    assert record.getMessage().startswith("Apple's GPU (MPS) is reported available but does not work (")
    with pytest.raises(UserError, match="device: 'mps' was asked for but is not available"):
        devices.resolve_device("mps")


@pytest.mark.hostile(FALSE_REFUSALS)
def test_a_search_on_a_mac_whose_gpu_fails_trains_on_the_cpu_with_one_warning(broken_mps, cli, tmp_path):
    """The README's first command on a hosted macOS runner."""
    space = tmp_path / "s.yaml"
    space.write_text(json.dumps(one_trial_space()))
    code, _, err = cli("run", space, "--storage", tmp_path / "runs")
    assert code == 0, err[-2000:]
    assert err.count("Apple's GPU (MPS) is reported available but does not work") == 1
    assert "lvm-search: warning: Apple's GPU (MPS)" in err
    assert json.loads((tmp_path / "runs" / "s" / "resources.json").read_text())["device"] == "cpu"


def test_a_trial_given_a_gpu_on_a_node_without_one_trains_on_the_cpu(broken_mps, caplog):
    with caplog.at_level(logging.WARNING, logger="lvm_search"):
        assert devices.gpu_for_trial("cuda") == "cpu"
    assert "a trial was given a GPU (cuda) on a node where none works" in caplog.text


def test_the_cli_sets_the_mps_fallback_on_a_mac_unless_the_user_did(monkeypatch, cli, tmp_path):
    from lvm_search.cli import MPS_FALLBACK

    assert (
        devices.mps_environment("darwin") == dict([MPS_FALLBACK]) and devices.mps_environment("linux") == {}
    )
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK", raising=False)
    cli("baselines", "--data", tmp_path / "none.npz")
    assert "PYTORCH_ENABLE_MPS_FALLBACK" not in os.environ  # Linux: nothing to set
    monkeypatch.setattr(sys, "platform", "darwin")
    cli("baselines", "--data", tmp_path / "none.npz")
    assert os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] == "1"
    monkeypatch.setenv("PYTORCH_ENABLE_MPS_FALLBACK", "0")
    cli("baselines", "--data", tmp_path / "none.npz")
    assert os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] == "0"
