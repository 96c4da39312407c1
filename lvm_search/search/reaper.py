"""Cleaning up after a private Ray cluster, even when its driver was killed with SIGKILL.

Ray's servers die with the driver that started them (PR_SET_PDEATHSIG on Linux), but the two agents
the raylet starts (dashboard and runtime-env agent) wait 60 s on the dead GCS first, macOS has no
parent-death signal at all, and nothing in Ray removes the session folder. So the search starts
this file as a watcher process beside it (``python reaper.py FOLDER DRIVER_PID RAY_DIR``): it waits
for the driver to exit, however it exits, then ends Ray's processes of that folder and removes what
Ray and the search put there. A search also sweeps, at its start, folders whose driver is gone (in
case the watcher was killed too).

Only Ray's own processes are ended: a process of this user whose title is Ray's (``ray::...``) or
whose program lives in Ray's installation (``RAY_DIR``), and that uses the folder (its command line,
working folder or an open file). A user's shell or ``tail -f`` of a log inside it is left alone, and
so is anything the user put in the folder. Process queries go through psutil (a dependency of Ray),
so this works wherever Ray does, without ``/proc``. Imports neither Ray nor torch, so it starts fast.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import psutil

OWNER_FILE = "lvm-owner"  # "v2 <pid> <create time>" of the driver that owns a Ray temp folder
OWNER_FORMAT = "v2"
TMP_PREFIX = "lvm-ray-"  # the folders a search makes for Ray, swept when their driver is gone
RAY_ENTRIES = re.compile(r"session_.+")  # Ray's in its temp folder: session_<date>_<pid>, session_latest
SAME_START_S = 0.01  # psutil's create times of one process agree to far better than this


def _uses(proc: psutil.Process, folder: str) -> bool:
    """Whether ``proc`` refers to ``folder`` by its command line, its working folder or an open file.

    Ray's agents rewrite their titles ("ray::DashboardAgent") but keep their log files in
    <folder>/session_*/logs open, so the open files find them."""
    inside = lambda path: path == folder or path.startswith(folder + os.sep)  # noqa: E731
    try:
        if any(folder in arg for arg in proc.cmdline()):
            return True
        if inside(proc.cwd()):
            return True
        return any(inside(f.path) for f in proc.open_files())
    except (psutil.Error, OSError):  # gone, or not ours to look at
        return False


def _is_ray(proc: psutil.Process, ray_dir: str) -> bool:
    try:
        args = proc.cmdline()
    except (psutil.Error, OSError):
        return False
    if args and args[0].startswith("ray::"):
        return True
    return bool(ray_dir) and any(arg.startswith(ray_dir.rstrip(os.sep) + os.sep) for arg in args)


def ray_pids(folder: str, ray_dir: str) -> list[int]:
    """Ray's processes of this user that use ``folder`` (see the module's docstring)."""
    folder = os.path.abspath(folder).rstrip(os.sep)
    me, uid, found = os.getpid(), os.getuid(), []
    for proc in psutil.process_iter():
        try:
            if proc.pid == me or proc.uids().real != uid:
                continue
        except (psutil.Error, OSError):
            continue
        if _is_ray(proc, ray_dir) and _uses(proc, folder):
            found.append(proc.pid)
    return found


def kill_and_remove(folder: str, ray_dir: str) -> list[int]:
    """SIGKILL Ray's processes of ``folder``, then remove what Ray and the search made in it (the
    folder itself only if nothing else is left). Returns the pids killed."""
    killed: list[int] = []
    for _ in range(5):  # a raylet that is dying may still have been starting a worker
        pids = ray_pids(folder, ray_dir)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        killed += pids
        time.sleep(0.3)
    remove_ray_entries(folder)
    return killed


def remove_ray_entries(folder: str) -> None:
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name in (OWNER_FILE, "session_latest") and not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            elif RAY_ENTRIES.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
        os.rmdir(folder)  # only when empty: a user's file in it keeps the folder


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def write_owner(folder: str) -> None:
    pid = os.getpid()
    Path(folder, OWNER_FILE).write_text(f"{OWNER_FORMAT} {pid} {_create_time(pid)!r}\n")


def owner_alive(folder: str) -> bool:
    """Whether the driver that made ``folder`` still runs (the same pid and the same start time, so a
    reused pid is not mistaken for it). Unreadable or not ours: alive, i.e. leave it alone."""
    try:
        fields = Path(folder, OWNER_FILE).read_text().split()
    except OSError:
        return True
    if len(fields) != 3 or fields[0] != OWNER_FORMAT:
        # An older lvm-search's record: its start time is not comparable, so only the pid is.
        return len(fields) != 2 or not fields[0].isdigit() or psutil.pid_exists(int(fields[0]))
    try:
        pid, start = int(fields[1]), float(fields[2])
    except ValueError:
        return True
    now = _create_time(pid)
    return now is not None and abs(now - start) < SAME_START_S


def sweep_stale(parents: list[str], ray_dir: str, prefix: str = TMP_PREFIX) -> list[str]:
    """Clean up lvm-ray-* folders of this user under ``parents`` whose owning driver is dead."""
    removed = []
    for parent in parents:
        with contextlib.suppress(OSError):
            for entry in os.scandir(parent):
                if (
                    entry.name.startswith(prefix)
                    and entry.is_dir(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_uid == os.getuid()
                    and not owner_alive(entry.path)
                ):
                    kill_and_remove(entry.path, ray_dir)
                    removed.append(entry.path)
    return removed


def wait_for_parent_exit(parent: int, poll_s: float = 0.2) -> None:
    """Return once ``parent``, the driver that started this watcher, has exited, whatever ended it:
    then the watcher is re-parented (POSIX), even while the driver is an unreaped zombie."""
    while os.getppid() == parent:
        time.sleep(poll_s)


if __name__ == "__main__":
    # Watcher mode: wait until the driver exits (SIGKILL included), then clean up after it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    folder, driver, ray_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    wait_for_parent_exit(driver)
    kill_and_remove(folder, ray_dir)
