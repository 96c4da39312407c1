"""Where a number came from: package versions, the git commit, the device and the command line.

Recorded in ``run.json``, ``summary.json``, every checkpoint's ``config.json``, ``ensemble.json``
and the report's header, so a leaderboard can be audited and re-run. Ray and Optuna versions are
read from the installed package metadata, so recording them never imports Ray.
"""

from __future__ import annotations

import functools
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch

from .. import __version__
from ..devices import local_gpu

GIT_TIMEOUT_S = 5


@dataclass
class Provenance:
    lvm_search: str
    git_commit: str | None  # with "+dirty" when the checkout had uncommitted changes
    python: str
    torch: str
    ray: str | None
    optuna: str | None
    device: str  # GPU name, or CPU model and usable core count
    command: str
    created: str  # UTC, ISO 8601
    extra: dict = field(default_factory=dict)

    def one_line(self) -> str:
        commit = f" @ {self.git_commit}" if self.git_commit else ""
        return (
            f"lvm-search {self.lvm_search}{commit}, Python {self.python}, torch {self.torch}, "
            f"Ray {self.ray or '-'}, Optuna {self.optuna or '-'}, on {self.device}"
        )


def collect(device: str | torch.device | None = None, command: str | None = None) -> Provenance:
    """The provenance of work done now in this process, on ``device`` (default: the best available)."""
    return Provenance(
        lvm_search=__version__,
        git_commit=git_commit(),
        python=platform.python_version(),
        torch=torch.__version__,
        ray=_installed("ray"),
        optuna=_installed("optuna"),
        device=describe_device(device),
        command=command if command is not None else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout this package runs from, or None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def describe_device(device: str | torch.device | None = None) -> str:
    kind = torch.device(device).type if device is not None else (local_gpu() or "cpu")
    if kind == "cuda":
        index = torch.device(device).index if device is not None else None
        return torch.cuda.get_device_name(index or 0)
    if kind == "mps":
        return f"Apple MPS ({platform.machine()})"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_model()} ({cpus} CPUs)"


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's name: from /proc/cpuinfo on Linux, sysctl on macOS ("Apple M2 Pro"), else what
    Python's platform module knows."""
    if sys.platform.startswith("linux"):
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
    elif sys.platform == "darwin":
        try:
            done = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            )
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"
