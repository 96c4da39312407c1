"""The shipped space files and ensemble recipes, as package data: they work from an installed wheel.

``lvm-search run lstm`` (a name, not a file) uses the packaged ``lstm`` space, and so does
``lvm-search run spaces/lstm.yaml`` where no such file exists (the README's command, typed outside a
checkout); a file that exists is always the user's own. In a checkout, ``spaces/`` and
``ensembles/`` at the top are links to these folders. ``lvm-search presets --copy DIR`` copies them
out for editing.
"""

from __future__ import annotations

import logging
import shutil
from importlib import resources
from pathlib import Path

from ..errors import UserError

logger = logging.getLogger(__name__)

KINDS = {"space": "spaces", "recipe": "ensembles"}  # kind -> its folder, here and in a checkout


def folder(kind: str) -> Path:
    return Path(str(resources.files(__name__) / KINDS[kind]))


def names(kind: str) -> list[str]:
    return sorted(p.stem for p in folder(kind).glob("*.yaml"))


def packaged(kind: str, name: str) -> Path | None:
    path = folder(kind) / f"{name}.yaml"
    return path if name in names(kind) else None


def resolve(kind: str, given: str) -> Path:
    """The file a user means: ``given`` where it exists; else the packaged file of that name, for a
    bare name (``lstm``) or the checkout's spelling of it (``spaces/lstm.yaml``)."""
    path = Path(given)
    if path.exists():
        return path
    parent, stem = path.parent.as_posix(), path.name.removesuffix(".yaml")
    if parent in (".", KINDS[kind]) and (shipped := packaged(kind, stem)) is not None:
        logger.info(f"{given}: no such file here; using the packaged {kind} '{stem}' ({shipped})")
        return shipped
    raise UserError(
        f"{given}: no such {kind} file (packaged {KINDS[kind]}: {', '.join(names(kind))}; "
        "`lvm-search presets` lists them)"
    )


def resolve_all(kind: str, given: list[str]) -> list[Path]:
    """The files a user means by several arguments, each a file, a packaged name, or a folder of
    ``.yaml`` files (``spaces/`` where no such folder exists: the packaged ones), in order."""
    paths: list[Path] = []
    for item in given:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.yaml"))
            if not found:
                raise UserError(f"{item}: a folder without {kind} files (*.yaml)")
            paths += found
        elif names_folder(kind, item):
            logger.info(f"{item}: no such folder here; using the packaged {KINDS[kind]} ({folder(kind)})")
            paths += [folder(kind) / f"{name}.yaml" for name in names(kind)]
        else:
            paths.append(resolve(kind, item))
    unique: dict[Path, Path] = {}  # spaces/lstm.yaml spaces/: lstm once, where first named
    for path in paths:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def names_folder(kind: str, given: str) -> bool:
    """Whether ``given`` means a folder of files: one that exists, or the checkout's ``spaces/``
    (``./spaces``, ...) where none does, which means the packaged ones."""
    path = Path(given)
    return path.is_dir() or (not path.exists() and path.as_posix() == KINDS[kind])


def copy_to(target: str | Path) -> list[Path]:
    """Copy every packaged file to ``target``/spaces and ``target``/ensembles. An existing file is
    never replaced: all are checked before the first is copied, and a copy that fails half-way
    removes the files it wrote."""
    target = Path(target)
    plan = [
        (folder(kind) / f"{name}.yaml", target / KINDS[kind] / f"{name}.yaml")
        for kind in KINDS
        for name in names(kind)
    ]
    for _, dest in plan:
        if dest.exists() or dest.is_symlink():
            raise UserError(f"{dest}: already exists; lvm-search presets --copy never replaces a file")
        blocking = next((p for p in dest.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise UserError(f"{blocking}: is a file where presets --copy needs a folder")
    written: list[Path] = []
    try:
        for source, dest in plan:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
            written.append(dest)
    except OSError as e:
        for path in written:
            path.unlink(missing_ok=True)
        raise UserError(f"{e.filename or target}: cannot copy the presets there ({e.strerror})") from None
    return written
