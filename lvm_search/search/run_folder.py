"""A search's run folder as a start finds and leaves it: created with its ``run.json``, or checked to
mean the same trials when resumed; locked against a second search; and, when a new start fails
before any trial was logged, put back as it was (``--fresh``'s previous run included).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..data.windows import LVMData
from ..errors import UserError
from ..store import provenance
from ..store.runs import (
    ATTEMPT,
    RESOURCES,
    RUN_INFO,
    STAGING,
    STUDY,
    DataInfo,
    RunInfo,
    check_run_files,
    is_run_dir,
    read_run_info,
    write_json,
)
from ..teacher import Teacher, same_teacher
from ..warm_start import WarmStart, same_init
from .spaces import SearchSpace

logger = logging.getLogger(__name__)


@dataclass
class Start:
    """What ``_prepare_run_dir`` did: the run folder, whether this start began the run (wrote its
    run.json), whether the folder was there before, and where --fresh moved a previous run."""

    folder: Path
    new: bool = False
    folder_existed: bool = True
    aside: Path | None = None


def prepare_run_dir(
    folder: Path,
    space: SearchSpace,
    data: LVMData,
    teacher: Teacher | None,
    init: WarmStart | None,
    fresh: bool,
    command: str,
) -> Start:
    """Create the run folder, or check that a resumed run means the same trials."""
    start = Start(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a run folder; choose another --name or --storage")
    if fresh and is_run_dir(folder):
        # Keep the old run rather than delete a user's results; only a folder we created is moved.
        start.aside = folder.with_name(f"{folder.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(folder, start.aside)
        logger.info(f"--fresh: moved the previous run to {start.aside}")
    if folder.is_dir():
        check_run_files(folder)
    if folder.exists() and not is_run_dir(folder) and any(folder.iterdir()):
        raise UserError(f"{folder}: exists and is not a run folder; choose another --name or --storage")
    if is_run_dir(folder):
        previous = read_run_info(folder)
        if previous.data.fingerprint != data.fingerprint:
            raise UserError(
                f"{folder}: this run was started on data with fingerprint {previous.data.fingerprint}, "
                f"not {data.fingerprint}; use --fresh or another --name"
            )
        # the teacher first: it is also part of the data section, and the more telling difference
        if not same_teacher(previous.teacher, teacher):
            raise UserError(
                f"{folder}: this run was started with another teacher (or its ensemble was rebuilt since: "
                f"{previous.teacher}); its trials would mean something else. Use --fresh or another --name"
            )
        if not same_init(previous.init, init):
            raise UserError(
                f"{folder}: this run was started from other initial weights (--init: "
                f"{previous.init['source'] if previous.init else 'none'}, or its files changed since); its "
                "trials would mean something else. Use --fresh or another --name"
            )
        changed = sorted(key for key, value in space.identity().items() if previous.space.get(key) != value)
        if changed:
            raise UserError(
                f"{folder}: this run was started with another {', '.join(changed)} section "
                f"(or --max-epochs cap); its trials would mean something else. "
                "Use --fresh or another --name"
            )
        return start
    start.new, start.folder_existed = True, folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(
            folder / RUN_INFO,
            RunInfo(
                space.identity(),
                DataInfo(**data.summary()),
                provenance.collect(command=command),
                teacher.describe() if teacher else None,
                init.describe() if init else None,
            ),
        )
    except OSError as e:
        raise UserError(f"{folder}: cannot write the run folder ({e.strerror})") from None
    return start


def undo_start(start: Start) -> None:
    """Remove what a new run's start wrote (only the names a start writes), and put back a previous run
    that --fresh moved aside: the folder is as it was before the command."""
    folder = start.folder
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        ours = path.name in (RUN_INFO, STUDY, f".{STUDY}.tmp", RESOURCES, STAGING) or ATTEMPT.fullmatch(
            path.name
        )
        if ours:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if not start.folder_existed and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    if start.aside is not None and not folder.exists():
        os.replace(start.aside, folder)
        logger.info(f"the start failed: the previous run is back in {folder}")


class _Lock:
    remove = False  # set when the start left nothing behind: a lock file it made goes too


@contextmanager
def run_lock(storage: Path, name: str):
    """Refuse a second search on the same run folder while one is running."""
    made_storage = not storage.exists()
    path = storage / f".{name}.lock"
    made_lock = not path.exists()
    try:
        storage.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{storage}: cannot write to the storage folder ({e.strerror})") from None
    while True:
        try:
            lock = open(path, "w")
        except OSError as e:
            raise UserError(f"{storage}: cannot write to the storage folder ({e.strerror})") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise UserError(
                f"{storage / name}: another search is running in this folder; "
                "wait for it or use another --name"
            ) from None
        # A start that removed its lock file as it ended may have left us holding a file no longer
        # there: lock the one that is.
        if path.exists() and os.path.samestat(os.fstat(lock.fileno()), os.stat(path)):
            break
        lock.close()
    state = _Lock()
    with lock:
        try:
            yield state
        finally:
            if state.remove and made_lock:
                path.unlink(missing_ok=True)  # still held: no other start can have it
                if made_storage:
                    try:
                        storage.rmdir()
                    except OSError:  # not empty: something else is there now
                        pass
