"""The texts and titles behind a data set's rows, read from its native files on demand.

A native file may carry its passages' texts (``text_bytes`` uint8 [T] with ``text_offsets`` [N+1]:
passage i is ``text_bytes[text_offsets[i]:text_offsets[i+1]]``, UTF-8) and its documents' titles
(``doc_titles_bytes`` with ``doc_title_offsets`` [documents+1], the documents in file order); see
``shared/data/README.md``. Many files carry neither: then every text is ``None`` and ``note`` says so
in one plain sentence.

Only what is asked for is read: the offsets and titles when the file is opened (8 bytes a passage),
and of ``text_bytes`` only the byte ranges of the rows asked for, by seeking in the archive member.
A file's arrays are checked before use; arrays that do not fit the file (wrong shape, offsets out
of order or past the end) are treated as absent, with the reason in ``note``.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .windows import LVMData

TEXT_ARRAYS = ("text_bytes", "text_offsets")
TITLE_ARRAYS = ("doc_titles_bytes", "doc_title_offsets")

logger = logging.getLogger(__name__)


@dataclass
class _File:
    """One native file whose rows sit at ``first_row`` onward in ``LVMData.vectors``."""

    path: Path
    first_row: int
    rows: int
    doc_starts: np.ndarray  # file-local first row of each document, in file order
    doc_ids: np.ndarray  # the file's id of each document
    offsets: np.ndarray | None  # text_offsets, where usable
    titles: list[str] | None
    problem: str | None  # why the texts are not usable, where they are not


class PassageTexts:
    """Texts, documents and positions of rows of ``data.vectors`` (the main file, then any extra
    training files), read from the files the data was loaded from."""

    def __init__(self, data: LVMData):
        self.format = data.format
        self.k = data.k
        self.files: list[_File] = []
        if data.format != "native":
            self.note = "The data file is in windows format: it has no passage texts or document titles."
            return
        first = 0
        for number, path in enumerate((data.source, *data.extra_train)):
            file = _open(Path(path), first)
            self.files.append(file)
            first += file.rows
            if number == 0 and data.pad_row == first:  # the zero pad row follows the main file's rows
                first += 1
        self.note = self._note()

    def _note(self) -> str:
        main = self.files[0]
        if main.problem:
            return (
                f"`{main.path.name}` {main.problem}, so the passages are shown by document and position only."
            )
        others = [f"`{f.path.name}` {f.problem}" for f in self.files[1:] if f.problem]
        return "; ".join(others) + (
            ": its passages are shown by document and position only." if others else ""
        )

    @property
    def has_texts(self) -> bool:
        return bool(self.files) and self.files[0].offsets is not None

    def _file(self, row: int) -> _File | None:
        for file in self.files:
            if file.first_row <= row < file.first_row + file.rows:
                return file
        return None

    def locate(self, row: int) -> tuple[str, int]:
        """The document of a row (its title, else the file's document id) and the row's position in it."""
        file = self._file(row)
        if file is None:  # windows format: a row is a position in its window
            return f"window {row // (self.k + 1)}", row % (self.k + 1)
        local = row - file.first_row
        doc = int(np.searchsorted(file.doc_starts, local, side="right")) - 1
        name = file.titles[doc] if file.titles else f"document {int(file.doc_ids[doc])}"
        if file is not self.files[0]:
            name = f"{name} (in {file.path.name})"
        return name, local - int(file.doc_starts[doc])

    def texts(self, rows) -> dict[int, str | None]:
        """The text of each row (``None`` where its file has none), reading only those rows' bytes."""
        out: dict[int, str | None] = {}
        wanted: dict[int, list[tuple[int, int]]] = {}
        for row in {int(r) for r in rows}:
            file = self._file(row)
            if file is None or file.offsets is None:
                out[row] = None
            else:
                wanted.setdefault(self.files.index(file), []).append((row, row - file.first_row))
        for index, pairs in wanted.items():
            file = self.files[index]
            ranges = [(int(file.offsets[local]), int(file.offsets[local + 1])) for _, local in pairs]
            for (row, _), raw in zip(pairs, _read_ranges(file.path, "text_bytes", ranges)):
                out[row] = raw.decode("utf-8", errors="replace")
        return out


def _open(path: Path, first_row: int) -> _File:
    with np.load(path, allow_pickle=False) as z:
        doc_ids = z["doc_ids"]
        starts = np.flatnonzero(np.r_[True, doc_ids[1:] != doc_ids[:-1]])
        file = _File(path, first_row, len(doc_ids), starts, doc_ids[starts], None, None, None)
        names = set(z.files)
        if not set(TEXT_ARRAYS) <= names:
            file.problem = "has no passage texts (`text_bytes`, `text_offsets`)"
        else:
            file.offsets, file.problem = _checked_offsets(
                z["text_offsets"], len(doc_ids), _member_length(path, "text_bytes"), "text_offsets"
            )
        if set(TITLE_ARRAYS) <= names:
            file.titles = _titles(z, len(starts), path)
    if file.problem:
        logger.info(f"texts: {path}: {file.problem}")
    return file


def _checked_offsets(offsets: np.ndarray, items: int, length: int | None, name: str):
    """(offsets, None) where they index ``items`` pieces of a blob of ``length`` bytes, else (None, why)."""
    if offsets.shape != (items + 1,) or offsets.dtype.kind not in "iu":
        return None, f"has `{name}` of shape {offsets.shape}, not the ({items + 1},) integers its rows need"
    if length is None:
        return None, f"has a `{name[:-8]}bytes` array that is not 1-D bytes"
    if len(offsets) and (offsets[0] < 0 or offsets[-1] > length or (np.diff(offsets) < 0).any()):
        return None, f"has `{name}` out of order or past the end of its bytes"
    return offsets.astype(np.int64), None


def _titles(z, documents: int, path: Path) -> list[str] | None:
    blob = z["doc_titles_bytes"]
    offsets, problem = _checked_offsets(
        z["doc_title_offsets"],
        documents,
        len(blob) if blob.ndim == 1 and blob.dtype == np.uint8 else None,
        "doc_title_offsets",
    )
    if problem:
        logger.info(f"texts: {path}: titles left out: {problem}")
        return None
    raw = blob.tobytes()
    return [raw[lo:hi].decode("utf-8", errors="replace") for lo, hi in zip(offsets[:-1], offsets[1:])]


def _member_length(path: Path, name: str) -> int | None:
    """The length of a 1-D uint8 array in an .npz, from its header alone (None for anything else)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as f:
            shape, _, dtype = _header(f)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return None
    return shape[0] if len(shape) == 1 and dtype == np.uint8 else None


def _header(f):
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f)


def _read_ranges(path: Path, name: str, ranges: list[tuple[int, int]]) -> list[bytes]:
    """Byte ranges of a 1-D uint8 array in an .npz, read by seeking (in ascending order: one pass
    through a compressed member)."""
    out: dict[int, bytes] = {}
    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as f:
        _header(f)
        start = f.tell()
        for i in sorted(range(len(ranges)), key=lambda i: ranges[i]):
            lo, hi = ranges[i]
            f.seek(start + lo)
            out[i] = f.read(hi - lo)
    return [out[i] for i in range(len(ranges))]
