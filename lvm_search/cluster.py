"""The Ray cluster a search runs on: a private local one, or an existing one joined by address.

The private cluster: no dashboard, every server bound to 127.0.0.1 (``loopback_only``), token
authentication on with a token that lives only in this process's environment (nothing is written
to ``~/.ray``), and a temporary folder of its own under ``RAY_TMPDIR`` (else the system's temp
folder), removed at the end, also when the driver is killed (``reaper``).

An existing cluster (``--address``): its auth token is found as Ray finds it (``~/.ray/auth_token``,
``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``); an address where nothing answers is a one-line error
after ``CONNECT_TIMEOUT_S``, not a hang.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import ray
import torch

from . import reaper
from .errors import UserError, reason

logger = logging.getLogger(__name__)

TOKEN_SOURCES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
DEFAULT_TOKEN_FILE = Path.home() / ".ray" / "auth_token"
CONNECT_TIMEOUT_S = 10.0
GCS_PROBE_TIMEOUT_S = 30.0
MAX_RAY_TMP_CHARS = 36  # a Unix socket path holds at most 107 bytes; Ray's session folder adds ~70
QUIET = {
    # Keeping only the best checkpoint forces a small state snapshot per improvement; Tune warns
    # about it on every fast trial, but on our runs it costs milliseconds.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Tune's automatic CSV and TensorBoard loggers (the search adds the JSON one itself): TensorBoard
    # files would land in a temporary folder that is deleted at the end.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}


@contextmanager
def environment(values: dict[str, str], keep: tuple[str, ...] = ()):
    """Set environment variables for the duration, then restore the environment as it was (Ray
    sets some of its own, e.g. RAY_AUTH_MODE and PYTHONBREAKPOINT), except the variables in ``keep``."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        kept = {key: os.environ[key] for key in keep if key in os.environ}
        os.environ.clear()
        os.environ.update({**saved, **kept})


@contextmanager
def loopback_only():
    """Make ``ray.init(_node_ip_address="127.0.0.1")`` really use 127.0.0.1 (Ray 2.60).

    ray.init passes the address through ``services.resolve_ip_for_localhost()``, which on Linux
    replaces a loopback address by the machine's network address unless Ray's single-machine mode
    is on (``ray_constants.ENABLE_RAY_CLUSTER``, env ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``; see
    ray-project/ray#26293, #30770). Every Ray server takes its bind address from the node address,
    so this one switch moves all of them to loopback. The variable reaches Ray's child processes;
    the constant is patched too because this process read it when Ray was imported.
    """
    import ray._private.ray_constants as ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        with environment({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}):
            yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def gpu_settings(gpu: int | None, visible: str | None, device_count: int) -> tuple[dict[str, str], int]:
    """The environment and GPU count of a private cluster given GPU ``gpu`` of this machine alone
    (``--device cuda:N``, N as torch numbers the GPUs it sees), or all of them (None). Ray then sets
    each trial's CUDA_VISIBLE_DEVICES to that GPU, which the trial calls cuda."""
    if gpu is None:
        return {}, device_count
    entries = [e.strip() for e in visible.split(",") if e.strip()] if visible is not None else None
    if entries is not None and gpu >= len(entries):
        raise UserError(f"--device cuda:{gpu}: CUDA_VISIBLE_DEVICES={visible} shows {len(entries)} GPU(s)")
    return {"CUDA_VISIBLE_DEVICES": entries[gpu] if entries is not None else str(gpu)}, 1


@contextmanager
def private_cluster(gpu: int | None = None):
    """``gpu``: GPU N of this machine alone (``cuda:N``), else every GPU it has."""
    only_gpu, num_gpus = gpu_settings(gpu, os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count())
    if ray.is_initialized():
        ray.shutdown()
    parent = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()  # a user's RAY_TMPDIR is honoured
    stale = reaper.sweep_stale(parent)
    if stale:
        logger.info("removed %d Ray session folder(s) left by killed searches", len(stale))
    # Unix socket paths hold at most 107 bytes and Ray's session folder adds about 70: a short
    # folder of our own under the temp dir, not one inside a deep run folder.
    try:
        ray_tmp = tempfile.mkdtemp(prefix=reaper.TMP_PREFIX, dir=parent)
    except OSError as e:
        raise UserError(f"RAY_TMPDIR={parent}: cannot make Ray's folder there ({e.strerror})") from None
    if len(ray_tmp) > MAX_RAY_TMP_CHARS:
        shutil.rmtree(ray_tmp)
        raise UserError(
            f"RAY_TMPDIR={parent}: too long a path for Ray's sockets; use a shorter one, e.g. /tmp"
        )
    reaper.write_owner(ray_tmp)
    watcher = subprocess.Popen(
        [sys.executable, "-S", reaper.__file__, ray_tmp, str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
        close_fds=True,
    )
    settings = {**QUIET, "RAY_TMPDIR": ray_tmp, **only_gpu}
    if not any(os.environ.get(v) for v in TOKEN_SOURCES) and not DEFAULT_TOKEN_FILE.exists():
        # Ray turns token auth on for a new local cluster and would write a lasting token to
        # ~/.ray; we keep auth on with a token that lives in this process's environment only.
        # One token per process: Ray's token loader caches the first one it reads.
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
    try:
        with environment(settings, keep=("RAY_AUTH_TOKEN",)), loopback_only():
            ray.init(
                num_gpus=num_gpus,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                _temp_dir=ray_tmp,
                log_to_driver=False,
                configure_logging=False,
            )
            check_loopback()
            with sigterm_as_interrupt():
                yield
    finally:
        ray.shutdown()
        reaper.kill_and_remove(ray_tmp)  # Ray's session folder (sockets, logs) is of no use afterwards
        watcher.kill()
        watcher.wait()


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM (what kill, timeout and batch schedulers send) stops a search as Ctrl-C does: the
    trials stop, Ray shuts down, the run resumes later. Without this, the failure handler ray.init
    installs prints a C++ stack dump and the driver dies without cleaning up."""

    def interrupt(signum, frame):
        handler = signal.getsignal(signal.SIGINT)  # Tune's, while it runs; else Python's
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_loopback() -> None:
    """Refuse to run if a future Ray ignores ``loopback_only``."""
    from ray._common.network_utils import is_localhost

    address = ray._private.worker.global_worker.node.node_ip_address
    if not is_localhost(address):
        raise RuntimeError(f"Ray's private cluster came up on {address}, not on loopback; refusing to run")


@contextmanager
def join_cluster(address: str):
    if ray.is_initialized():
        ray.shutdown()
    if address == "auto":
        address = started_cluster_address()
    check_reachable(address)
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
        with environment(QUIET):
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except ray.exceptions.AuthenticationError as e:
        raise UserError(
            f"--address {address}: the cluster refused this driver's auth token; copy the head node's "
            f"~/.ray/auth_token here or set RAY_AUTH_TOKEN_PATH ({reason(e)})"
        ) from None
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"--address {address}: cannot connect to a Ray cluster ({reason(e)})") from None
    try:
        with environment(QUIET), sigterm_as_interrupt():
            yield
    finally:
        ray.shutdown()


def started_cluster_address() -> str:
    """What ``--address auto`` means: RAY_ADDRESS, else the cluster ``ray start`` recorded on this
    machine. Never ray.init's fallback to any Ray process running here: that may be another user's
    private search, whose token this driver lacks (the join would hang)."""
    from ray._private.utils import read_ray_address

    address = os.environ.get("RAY_ADDRESS") or read_ray_address()
    if not address:
        raise UserError(
            "--address auto: RAY_ADDRESS is unset and `ray start` recorded no cluster on this machine; "
            "start one with `ray start --head` or give HOST:PORT"
        )
    return address


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """An address where nothing listens, or where something other than a Ray head listens, fails
    here in seconds; ``ray.init`` would retry for minutes."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--address {address}: expected auto or HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        reason = "no answer" if isinstance(e, socket.timeout) else (e.strerror or type(e).__name__)
        raise UserError(
            f"--address {address}: cannot reach a Ray head there within {timeout_s:g} s ({reason}); "
            "is `ray start --head` running?"
        ) from None
    # Something listens; ask it for its cluster id the way Ray does, in a process we can time out
    # (Ray's client retries without end and writes its warnings straight to stderr).
    probe = f"from ray._raylet import GcsClient; GcsClient(address={address!r}).cluster_id"
    try:
        subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=GCS_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UserError(
            f"--address {address}: something listens there, but no Ray head answered within "
            f"{GCS_PROBE_TIMEOUT_S:g} s"
        ) from None
