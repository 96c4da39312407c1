"""Logging: library code logs to the ``lvm_search`` loggers; the command line shows them.

Library code never prints. Progress and warnings go to ``logging.getLogger(__name__)`` in each
module; the package's root logger has a ``NullHandler`` (set in ``__init__``), so a Python caller
sees nothing unless they configure logging, as with Optuna. The CLI installs ``console``: INFO
lines as they are, warnings as ``lvm-search: warning: ...``, all on stderr (results stay on stdout).
Another library's log level is changed only for the duration of a call (``quieted``), then restored.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

PACKAGE = "lvm_search"


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return f"lvm-search: warning: {message}" if record.levelno >= logging.WARNING else message


@contextmanager
def console(quiet: bool = False):
    """The package's messages on stderr for the duration (``quiet``: warnings only)."""
    logger = logging.getLogger(PACKAGE)
    handler = logging.StreamHandler(sys.stderr)  # the stderr of now: tests capture it
    handler.setFormatter(_ConsoleFormatter())
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False  # a root handler a caller set up would print every line twice
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


@contextmanager
def quieted(*names: str, level: int = logging.WARNING):
    """Raise the level of other libraries' loggers (``"optuna"``, ``"ray.tune"``) to ``level`` for
    the duration, then restore them: their INFO lines repeat what our progress lines say."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < level:
            logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in zip(loggers, saved):
            logger.setLevel(old)
