"""Where the private Ray cluster's temporary folder goes: short enough for Ray's socket paths.

Ray puts Unix sockets under ``<temp folder>/session_<date>_<pid>/sockets/``, and a socket path
holds at most 107 bytes on Linux and 103 on macOS (``sun_path`` minus its NUL; Ray checks the same
in ``validate_socket_filepath``). The search makes a folder of its own (``lvm-ray-XXXXXXXX``) under
a base and hands it to Ray, so the base may be at most about 28 bytes long.

The base: ``RAY_TMPDIR`` where the user set it; else, as Ray does, ``/tmp`` on macOS (whose
``TMPDIR``, ``/var/folders/.../T``, is far too long: ray-project/ray#17161) and the system's temp
folder elsewhere (``TMPDIR``, else ``/tmp``). A base that is too long falls back to the first short
one that is writable (``/tmp``, ``/var/tmp``), with one warning naming both; if none is, the error
names where the long path came from and the real limit. Standard library only.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import dataclass

from ..errors import UserError
from .reaper import TMP_PREFIX

logger = logging.getLogger(__name__)

FALLBACKS = ("/tmp", "/var/tmp")
# Ray's longest socket path below its temp folder, with the date of its session folder's name
# (datetime "%Y-%m-%d_%H-%M-%S_%f") and the driver's pid filled in.
SESSION_DATE = "2026-12-05_09-00-42_111854"
LONGEST_SOCKET = "plasma_store"


def socket_path_limit(platform: str = sys.platform) -> int | None:
    """Bytes a Unix socket path may hold here (None: Ray uses TCP, e.g. on Windows)."""
    if platform == "win32":
        return None
    return 107 if platform.startswith("linux") else 103  # macOS and the BSDs: sun_path[104]


def socket_path_bytes(base: str, pid: int) -> int:
    """The length of Ray's longest socket path when our folder is made under ``base``."""
    ours = os.path.join(base, TMP_PREFIX + "x" * 8)  # mkdtemp's names are 8 characters after the prefix
    path = os.path.join(ours, f"session_{SESSION_DATE}_{pid}", "sockets", LONGEST_SOCKET)
    return len(os.fsencode(path))


@dataclass(frozen=True)
class Base:
    path: str
    origin: str  # where it came from, for messages: RAY_TMPDIR, TMPDIR or the default


def default_base(env=None, platform: str = sys.platform) -> Base:
    env = os.environ if env is None else env
    if env.get("RAY_TMPDIR"):
        return Base(env["RAY_TMPDIR"], "RAY_TMPDIR")
    if platform == "darwin":
        return Base("/tmp", "the default (/tmp on macOS, as Ray uses)")
    if platform == "win32":
        return Base(tempfile.gettempdir(), "the default")
    if env.get("TMPDIR"):
        return Base(env["TMPDIR"], "TMPDIR")
    return Base("/tmp", "the default")


def bases_to_sweep(env=None, platform: str = sys.platform) -> list[str]:
    """Every base a search may have used: where folders of killed searches may lie."""
    return list(dict.fromkeys([default_base(env, platform).path, *FALLBACKS]))


def make_ray_folder(env=None, platform: str = sys.platform, pid: int | None = None) -> str:
    """Make the private Ray's temporary folder (mode 0700) under a base short enough for Ray."""
    base = default_base(env, platform)
    base = Base(os.path.abspath(base.path), base.origin)  # Ray takes absolute paths only
    pid = os.getpid() if pid is None else pid
    limit = socket_path_limit(platform)
    fits = lambda path: limit is None or socket_path_bytes(path, pid) <= limit  # noqa: E731
    if fits(base.path):
        try:
            return tempfile.mkdtemp(prefix=TMP_PREFIX, dir=base.path)
        except OSError as e:
            if base.origin == "RAY_TMPDIR":  # asked for by name: not silently elsewhere
                where = f"{base.origin}={base.path}"
                raise UserError(f"{where}: cannot make Ray's folder there ({e.strerror})") from None
            why = f"cannot make Ray's folder there ({e.strerror})"  # as Python's tempfile, try others
    else:
        needed = socket_path_bytes(base.path, pid)
        why = f"too long for Ray's socket paths ({needed} bytes, at most {limit} here)"
    for fallback in FALLBACKS:
        if not fits(fallback):
            continue
        try:
            folder = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=fallback)
        except OSError:
            continue
        logger.warning(f"{base.origin}={base.path}: {why}; Ray's folder goes under {fallback} instead")
        return folder
    raise UserError(
        f"{base.origin}={base.path}: {why}, and no other folder ({', '.join(FALLBACKS)}) is writable; "
        "set RAY_TMPDIR to a short writable one"
    )
