"""Cleaning up after a private Ray cluster, even when its driver was killed with SIGKILL.

Ray's servers die with the driver that started them (PR_SET_PDEATHSIG), but the two agents the
raylet starts (dashboard and runtime-env agent) wait 60 s on the dead GCS first, and nothing in Ray
removes the session folder. So the search starts this file as a watcher process beside it
(``python -S reaper.py FOLDER DRIVER_PID``): it waits for the driver to exit, however it exits,
then ends every process still using the folder and removes it. A search also sweeps, at its start,
folders whose owning driver is gone (in case the watcher was killed too).

Standard library only, so the watcher starts without importing Ray, torch or the package.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import sys
import time
from pathlib import Path

OWNER_FILE = "lvm-owner"  # "<pid> <start time>" of the driver that owns a Ray temp folder
TMP_PREFIX = "lvm-ray-"


def _starttime(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _pids_using(folder: str) -> list[int]:
    """Processes of this user whose command line, cwd or any open file refers to `folder`.

    The agents that raylet starts rewrite their argv/environ (setproctitle: "ray::DashboardAgent")
    but keep their log files in <folder>/session_*/logs open, so the fd scan finds them.
    """
    folder = folder.rstrip("/")
    me, found = os.getpid(), []
    prefix = folder + "/"
    in_cmdline = re.compile(r"(^|[\0\s=])" + re.escape(folder) + r"($|[\0\s/])")
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        base = f"/proc/{name}"
        try:
            if in_cmdline.search(Path(f"{base}/cmdline").read_bytes().decode(errors="replace")):
                found.append(int(name))
                continue
            links = [os.readlink(f"{base}/cwd")]
            links += [os.readlink(f"{base}/fd/{fd}") for fd in os.listdir(f"{base}/fd")]
        except OSError:  # gone, or not ours
            continue
        if any(link == folder or link.startswith(prefix) for link in links):
            found.append(int(name))
    return found


def kill_and_remove(folder: str) -> list[int]:
    """SIGKILL every process still using `folder`, then delete it. Returns the pids killed."""
    killed: list[int] = []
    for _ in range(5):  # a raylet that is dying may still have been starting a worker
        pids = _pids_using(folder)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        killed += pids
        time.sleep(0.3)
    shutil.rmtree(folder, ignore_errors=True)
    return killed


def write_owner(folder: str) -> None:
    Path(folder, OWNER_FILE).write_text(f"{os.getpid()} {_starttime(os.getpid())}\n")


def owner_alive(folder: str) -> bool:
    try:
        pid, start = Path(folder, OWNER_FILE).read_text().split()
    except (OSError, ValueError):
        return True  # not ours or unreadable: leave it alone
    return _starttime(int(pid)) == start


def sweep_stale(parent: str, prefix: str = TMP_PREFIX) -> list[str]:
    """Remove lvm-ray-* folders under `parent` whose owning driver is dead (killing leftovers)."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            if (
                entry.name.startswith(prefix)
                and entry.is_dir(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_uid == os.getuid()
                and not owner_alive(entry.path)
            ):
                kill_and_remove(entry.path)
                removed.append(entry.path)
    return removed


def _wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)  # Linux >= 5.3: readable once the process has exited
    except (AttributeError, OSError):  # no pidfd, or already gone: poll our parent instead
        while os.getppid() == pid:
            time.sleep(0.5)
        return
    select.select([fd], [], [])


if __name__ == "__main__":
    # Watcher mode: wait until the driver exits (SIGKILL included), then clean up after it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _wait_for_exit(int(sys.argv[2]))
    kill_and_remove(sys.argv[1])
