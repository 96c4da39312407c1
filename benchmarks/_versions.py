"""Running an earlier version of the package beside this checkout, for before/after in one run.

``checkout("after", scratch)`` is this checkout; any other name is a git ref, checked out into a
worktree under ``scratch`` (once) and run from there with PYTHONPATH, so both versions run on the
same machine, one after another, with the same Python and torch.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def checkout(version: str, scratch: Path) -> Path:
    if version == "after":
        return REPO
    tree = scratch / f"tree-{version}"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), version],
            check=True,
            capture_output=True,
        )
    return tree


# Commands of a version must also run with that version's checkout as their working folder: Python
# puts the working folder first on sys.path, and Ray adds the driver's working folder to its
# workers' sys.path ahead of PYTHONPATH, so a command started in another checkout would import that one.


def environment(version: str, scratch: Path, **extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(checkout(version, scratch)), **extra}


def remove_checkouts(scratch: Path) -> None:
    for tree in scratch.glob("tree-*"):
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True
        )
