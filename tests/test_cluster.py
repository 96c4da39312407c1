"""A real two-node Ray cluster on this machine: `ray start --head` plus a second `ray start` node.

Slow (about a minute): run with `python -m pytest -m slow tests/test_cluster.py`. Token
authentication is on, set up as the README says (`ray get-auth-token --generate`,
RAY_AUTH_MODE=token, then `ray start`):
the nodes and the driver share a HOME whose ~/.ray/auth_token they read, as on a real cluster
where the token file is copied to every machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SPACE = """
arch: amn
samples: 4
max_concurrent: 2
resources: {cpus_per_trial: 1}
fixed: {epochs: 3}
space:
  width: {type: choice, values: [32, 64, 512]}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """Ray nodes started with `ray start`, all of whose processes are found by their temp dir."""

    def __init__(self, root: Path):
        self.tmp = Path(tempfile.mkdtemp(prefix="lvm-rc-"))  # short: Unix socket paths
        self.tmp2 = Path(tempfile.mkdtemp(prefix="lvm-rc2-"))
        self.env = {**os.environ, "HOME": str(root / "home"), "RAY_TMPDIR": str(self.tmp)}
        self.env.pop("RAY_AUTH_TOKEN", None)
        self.env["RAY_AUTH_MODE"] = "token"  # worker nodes and drivers given an address need it said
        (root / "home").mkdir(exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"

    def ray_start(self, *args: str) -> None:
        if not any(a.startswith("--temp-dir") for a in args):
            args = (f"--temp-dir={self.tmp}", *args)
        cmd = ["ray", "start", "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]

    def stop_second_node(self) -> None:
        """Kill every process of the second node, as a machine that drops off the network."""
        for pid in self.pids(str(self.tmp2)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def start(self) -> "LocalCluster":
        # As the README's recipe: a token first, so that `ray start` turns token auth on.
        subprocess.run(
            ["ray", "get-auth-token", "--generate"], env=self.env, capture_output=True, check=True, timeout=60
        )
        self.ray_start(
            "--head", f"--port={self.port}", "--num-cpus=1", "--num-gpus=0", "--include-dashboard=false"
        )
        # The second node keeps its own temp dir, so that its processes can be told apart.
        self.ray_start(f"--address={self.address}", "--num-cpus=1", "--num-gpus=0", f"--temp-dir={self.tmp2}")
        return self

    def pids(self, marker: str | None = None) -> list[int]:
        marker = marker or str(self.tmp)
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if marker in cmdline and int(proc.name) != os.getpid():
                    found.append(int(proc.name))
        return found

    def stop(self) -> None:
        # Not `ray stop`: it would end every Ray process of this user on the machine.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids() + self.pids(str(self.tmp2)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(1)


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(tmp_path)
    try:
        yield c.start()
    finally:
        c.stop()
        shutil.rmtree(c.tmp, ignore_errors=True)
        shutil.rmtree(c.tmp2, ignore_errors=True)


def run_cli(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lvm_search.cli", "run", *args, "--address", cluster.address, "--json"]
    return subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=300)


def test_a_search_on_a_two_node_cluster_uses_both_nodes(cluster, tmp_path):
    assert (tmp_path / "home" / ".ray" / "auth_token").exists(), "ray start did not set up token auth"
    space = tmp_path / "two_nodes.yaml"
    space.write_text(SPACE)
    done = run_cli(cluster, str(space), "--storage", str(tmp_path / "shared"))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["counts"]["trials"] == 4 and summary["counts"]["ok"] == 4
    assert len({t["node_id"] for t in summary["trials"]}) == 2


def test_a_driver_without_the_token_gets_a_clear_error(cluster, tmp_path):
    space = tmp_path / "two_nodes.yaml"
    space.write_text(SPACE)
    cluster.env["HOME"] = str(tmp_path / "elsewhere")  # no ~/.ray/auth_token there
    done = run_cli(cluster, str(space), "--storage", str(tmp_path / "shared"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--address" in done.stderr, done.stderr[-2000:]
