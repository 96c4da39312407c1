"""The Ray cluster a search runs on: a private local one, or an existing one joined by address.

The private cluster: no dashboard, every server bound to 127.0.0.1 (``loopback_only``), token
authentication on with a token that lives only in this process's environment (nothing is written
to ``~/.ray``), and a temporary folder of its own under ``RAY_TMPDIR`` (else the system's temp
folder: ``ray_folder``), this user's only, removed at the end, also when the driver is killed
(``reaper``).

An existing cluster (``--address``): its auth token is found as Ray finds it (``~/.ray/auth_token``,
``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``); an address where nothing answers is a one-line error
after ``CONNECT_TIMEOUT_S``, not a hang.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import ray

from ..devices import gpus_here
from ..errors import UserError, reason
from ..logs import quieted
from . import reaper
from .internals import (
    SINGLE_MACHINE_ENV,
    TOKEN_AUTH_LOGGER,
    TUNE_QUIET,
    enable_token_auth_if_token_available,
    gcs_probe,
    recorded_cluster_address,
    single_machine_mode,
)
from .ray_folder import bases_to_sweep, make_ray_folder

logger = logging.getLogger(__name__)

TOKEN_SOURCES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
DEFAULT_TOKEN_FILE = Path.home() / ".ray" / "auth_token"
CONNECT_TIMEOUT_S = 10.0
GCS_PROBE_TIMEOUT_S = 30.0
QUIET = TUNE_QUIET


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
    """Every server of the private cluster on 127.0.0.1 (see ``internals.single_machine_mode``)."""
    with environment(SINGLE_MACHINE_ENV), single_machine_mode():
        yield


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
def private_cluster(env: dict[str, str] | None = None, gpu: int | None = None):
    """A private Ray on this machine. ``env``: variables its workers get (unless the user set them);
    ``gpu``: GPU N of this machine alone (``cuda:N``), else every GPU it has."""
    only_gpu, num_gpus = gpu_settings(gpu, os.environ.get("CUDA_VISIBLE_DEVICES"), gpus_here())
    if ray.is_initialized():
        ray.shutdown()
    ray_dir = os.path.dirname(ray.__file__)
    stale = reaper.sweep_stale(bases_to_sweep(), ray_dir)
    if stale:
        logger.info("removed %d Ray session folder(s) left by killed searches", len(stale))
    ray_tmp = make_ray_folder()
    reaper.write_owner(ray_tmp)
    watcher = subprocess.Popen(
        [sys.executable, reaper.__file__, ray_tmp, str(os.getpid()), ray_dir],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
        close_fds=True,
    )
    unset = {key: value for key, value in (env or {}).items() if key not in os.environ}
    settings = {**unset, **QUIET, "RAY_TMPDIR": ray_tmp, **only_gpu}
    if not any(os.environ.get(v) for v in TOKEN_SOURCES) and not DEFAULT_TOKEN_FILE.exists():
        # Ray turns token auth on for a new local cluster and would write a lasting token to
        # ~/.ray; we keep auth on with a token that lives in this process's environment only.
        # One token per process: Ray's token loader caches the first one it reads.
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
    try:
        # Ray says on stderr that it turned token auth on; we turned it on ourselves (the README says so)
        with (
            environment(settings, keep=("RAY_AUTH_TOKEN",)),
            loopback_only(),
            quieted(*TOKEN_AUTH_LOGGER, level=logging.ERROR),
        ):
            ray.init(
                num_gpus=num_gpus,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                _temp_dir=ray_tmp,
                log_to_driver=False,
                configure_logging=False,
            )
            check_loopback()
            private_to_this_user(ray_tmp)
            with sigterm_as_interrupt():
                yield
    finally:
        ray.shutdown()
        # Ray's session folder (sockets, logs) is of no use afterwards
        reaper.kill_and_remove(ray_tmp, ray_dir)
        watcher.kill()
        watcher.wait()


def private_to_this_user(ray_tmp: str) -> None:
    """Ray makes its temp and session folders world-writable (0777, for shared machines); ours are
    this user's alone. The session folder (``session_latest`` points at it, as Ray documents) is
    reached only through ours, closed first."""
    os.chmod(ray_tmp, 0o700)
    os.chmod(os.path.realpath(os.path.join(ray_tmp, "session_latest")), 0o700)


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
    addresses = [node["NodeManagerAddress"] for node in ray.nodes()]
    if not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise RuntimeError(f"Ray's private cluster came up on {addresses}, not on loopback; refusing to run")


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
        enable_token_auth_if_token_available()
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
    address = os.environ.get("RAY_ADDRESS") or recorded_cluster_address()
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
    try:
        subprocess.run(
            [sys.executable, "-c", gcs_probe(address)], capture_output=True, timeout=GCS_PROBE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"--address {address}: something listens there, but no Ray head answered within "
            f"{GCS_PROBE_TIMEOUT_S:g} s"
        ) from None
