"""Embedding data sets: loading, windows inside documents, the document split, the fingerprint.

Two input formats are accepted:

* native (see ``shared/data/README.md``): ``vectors`` [N, D] and ``doc_ids`` [N], the passages of a
  document contiguous and in reading order. Windows of ``k`` context rows never cross a document
  border, and train/val/test are split by whole documents.
* windows (the reference work's): ``context_sequences`` [M, k, D] and ``target_vectors`` [M, D].
  There are no document ids, so the windows are cut into three contiguous blocks with a gap of
  ``k`` windows between blocks; leakage across documents cannot be ruled out and we say so once.

Everything ends up as one float32 ``vectors`` table (float16 on a GPU) plus, per split, the row of
each window's target and the first row of its document. A window's context is the ``k`` rows
before its target, so memory grows with the data, not with windows x k, and a batch is gathered
from index slices of tensors already on the device.

Longer contexts without losing windows: with ``min_context < k`` a target needs only ``min_context``
earlier passages of its document, and the missing older positions point at an all-zero pad row.
Zero rows are invisible to a normalised (weighted) mean (``models.context_mean``), so baselines and
residual models mean the same thing at any k; ``k=12, min_context=5`` scores exactly the windows
(targets) of ``k=5``. A real passage is never all zeros: such rows are refused when loading.

Further ahead: with ``horizon=h`` the target is the passage ``h`` steps after the context's last
one (1: the next passage), inside the same document. The document split is the one of ``h=1``
(documents with more than ``min_context`` passages), so every horizon splits the same documents;
a target needs ``min_context + h - 1`` earlier passages, and a document too short for that has no
windows at ``h``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError, reason, shown
from ..limits import MAX_K, MAX_SEED, SCORING_CHUNK_BYTES

SPLITS = ("train", "val", "test")
DEFAULT_K = 5
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SAMPLE_NAME = "python-docs-sample.npz"
NORMALISE_CHUNK_ROWS = 65_536  # float32 working memory of a chunk: 100 MB at D=384
MIN_NORM = 1e-6

logger = logging.getLogger(__name__)


def sample_path() -> Path:
    """The small real data set shipped inside the package (the default wherever --data is absent)."""
    return Path(str(resources.files("lvm_search") / "samples" / SAMPLE_NAME))


@dataclass
class Split:
    """The windows of one split: target rows and the first row each target's context may use."""

    targets: torch.Tensor  # [M] int64 rows of ``LVMData.vectors``
    starts: torch.Tensor  # [M] int64: the first row of the target's document (window, for that format)
    docs: int  # documents in this split (windows-format data: contiguous blocks, counted as 1)

    def __len__(self) -> int:
        return len(self.targets)

    def to(self, device) -> "Split":
        return Split(self.targets.to(device), self.starts.to(device), self.docs)

    def groups(self) -> np.ndarray:
        """[M] the document of each window (0, 1, ... in split order): what moves together when
        test documents are resampled. Windows of one document share their start row."""
        return np.unique(self.starts.cpu().numpy(), return_inverse=True)[1]


@dataclass
class LVMData:
    vectors: torch.Tensor  # [N, D] unit rows (float32; float16 on CUDA), then the zero pad row if any
    splits: dict[str, Split]
    k: int
    fingerprint: str  # hash of the vectors, the document ids, k, min_context and the split assignment
    source: str
    format: str  # "native" or "windows"
    min_context: int | None = None  # earlier passages a target needs (= k unless padded)
    extra_train: tuple[str, ...] = ()  # other files whose every window was added to train
    pad_row: int | None = None  # the all-zero row that context positions before a document point at
    split_seed: int = 0
    digests: tuple[str, ...] = ()  # of the main file's content, then of each extra training file
    main_train_windows: int | None = None  # train windows of the main file (before extra ones)
    horizon: int = 1  # the target is the passage this many steps after the context's last one

    def __post_init__(self):
        if self.min_context is None:
            self.min_context = self.k
        self._offsets = torch.arange(-self.k, 0, device=self.vectors.device) - (self.horizon - 1)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def device(self) -> torch.device:
        return self.vectors.device

    @property
    def padded(self) -> bool:
        """Whether ``vectors`` ends with the zero pad row (it does whenever min_context < k)."""
        return self.pad_row is not None

    def contexts(self, split: str, idx: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """Context rows [B, k] of windows ``idx`` of ``split``, oldest first, pad row before a document:
        the ``k`` rows that end ``horizon`` rows before each target."""
        s = self.splits[split]
        targets, starts = s.targets[idx], s.starts[idx]
        rows = targets[:, None] + self._offsets
        if self.min_context < self.k:
            rows = torch.where(rows < starts[:, None], self.pad_row, rows)
        return rows

    def batch(self, split: str, idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Contexts [B, k, D] and targets [B, D] (float32) of the windows ``idx`` of ``split``."""
        targets = self.splits[split].targets[idx]
        return self.vectors[self.contexts(split, idx)].float(), self.vectors[targets].float()

    def chunk_size(self, size: int = 4096) -> int:
        """``size`` windows, or fewer where their float32 contexts would pass SCORING_CHUNK_BYTES."""
        return max(1, min(size, SCORING_CHUNK_BYTES // (4 * self.k * self.dim)))

    def chunks(self, split: str, size: int = 4096):
        """(contexts, targets) of ``split`` in order, ``chunk_size(size)`` windows at a time: never the
        whole split gathered at once, and never more than SCORING_CHUNK_BYTES of contexts."""
        size = self.chunk_size(size)
        for lo in range(0, len(self.splits[split]), size):
            yield self.batch(split, slice(lo, lo + size))

    def longest_context(self) -> int:
        """The most earlier passages any target has in its document (windows format: the file's k):
        a context longer than that reads padding only, at every window."""
        if self.format != "native":
            return self.k
        ahead = self.horizon - 1
        return max(
            (int((s.targets - s.starts).max()) - ahead for s in self.splits.values() if len(s)), default=0
        )

    def targets(self, split: str) -> torch.Tensor:
        return self.vectors[self.splits[split].targets].float()

    def held_out_rows(self) -> np.ndarray:
        """Sorted rows of ``vectors`` that a validation or test window reads (its target or a context
        position), the pad row left out: the passages nothing trained on may contain."""
        read = [
            np.r_[self.splits[name].targets.cpu().numpy(), self.contexts(name).cpu().numpy().ravel()]
            for name in ("val", "test")
        ]
        rows = np.unique(np.concatenate(read))
        return rows if self.pad_row is None else rows[rows != self.pad_row]

    def to(self, device, dtype: torch.dtype | None = None) -> "LVMData":
        device = torch.device(device)
        dtype = dtype or self.vectors.dtype
        if device == self.device and dtype == self.vectors.dtype:
            return self
        return dataclasses.replace(
            self,
            vectors=self.vectors.to(device, dtype),
            splits={name: s.to(device) for name, s in self.splits.items()},
        )

    def with_k(self, k: int) -> "LVMData":
        """The same windows read with the last ``k`` context positions (``k >= min_context``): what
        ``load_data`` gives at that k, without loading again. A search over context lengths loads the
        data once at its longest k; a teacher may read further back than its student."""
        if k == self.k:
            return self
        if self.format != "native":
            raise UserError(f"{self.source}: a windows-format file has fixed windows of k={self.k}, not {k}")
        if k < self.min_context:
            raise UserError(f"{self.source}: context length k={k} is below min_context={self.min_context}")
        if k > MAX_K:
            raise UserError(
                f"{self.source}: context length k={k} is above {MAX_K:,}, the most lvm-search reads"
            )
        view = dataclasses.replace(self, k=k)
        if k > self.k and not self.padded:  # positions before a document's start read a zero row
            padded = torch.cat([self.vectors, self.vectors.new_zeros(1, self.dim)])
            view = dataclasses.replace(view, vectors=padded, pad_row=len(self.vectors))
        view.fingerprint = view.compute_fingerprint()
        return view

    def fingerprint_at(self, k: int) -> str:
        """The fingerprint ``with_k(k)`` would have, without building that view."""
        return self.fingerprint if k == self.k else dataclasses.replace(self, k=k).compute_fingerprint()

    def compute_fingerprint(self) -> str:
        """A hash of the file contents (vectors, document ids), k, min_context, the split assignment
        (the target rows of each split) and any extra training files: what a checkpoint must match."""
        if self.format != "native":
            return self.fingerprint
        spec = {"k": self.k} if self.min_context == self.k else {"k": self.k, "min_context": self.min_context}
        if self.horizon != 1:  # horizon 1 hashes as before horizons existed: old checkpoints still match
            spec["horizon"] = self.horizon
        main = [
            s.targets[: self.main_train_windows] if name == "train" else s.targets
            for name, s in self.splits.items()
        ]
        return _fingerprint(
            list(self.digests[:1]), spec, *(t.cpu().numpy() for t in main), list(self.digests[1:])
        )

    def summary(self) -> dict:
        return {
            "source": self.source,
            "format": self.format,
            "fingerprint": self.fingerprint,
            "D": self.dim,
            "k": self.k,
            "min_context": self.min_context,
            "horizon": self.horizon,
            "extra_train": list(self.extra_train),
            "passages": int(self.vectors.shape[0]) - int(self.padded),
            "split_seed": self.split_seed,
            "content_digest": self.digests[0][:16] if self.digests else "",
        }

    def split_sizes(self) -> dict:
        return {name: {"docs": s.docs, "windows": len(s)} for name, s in self.splits.items()}

    def __reduce__(self):
        # Ray hands the data to every trial by pickling it once into the node's shared object store.
        # As numpy arrays it is read back without a copy, so all trials on a node share one table.
        arrays = {"vectors": self.vectors.cpu().numpy()}
        for name, s in self.splits.items():
            arrays[f"{name}_targets"], arrays[f"{name}_starts"] = (
                s.targets.cpu().numpy(),
                s.starts.cpu().numpy(),
            )
        fields = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("vectors", "splits")
        }
        return _rebuild, (arrays, {name: s.docs for name, s in self.splits.items()}, fields)


def _rebuild(arrays: dict, docs: dict, fields: dict) -> LVMData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only shared memory; we never write to it
        tensor = {name: torch.from_numpy(a) for name, a in arrays.items()}
    splits = {name: Split(tensor[f"{name}_targets"], tensor[f"{name}_starts"], docs[name]) for name in docs}
    return LVMData(vectors=tensor["vectors"], splits=splits, **fields)


def load_data(
    path: str | Path | None = None,
    k: int | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    min_context: int | None = None,
    extra_train: tuple[str | Path, ...] = (),
    split: bool = True,
    horizon: int | None = 1,
) -> LVMData:
    """Load an .npz in either format and split it; ``path=None`` loads the packaged sample.

    ``min_context`` (native format only, default k): earlier passages a target needs; older context
    positions are zero-padded. The document split depends on ``min_context``, not on ``k``.
    ``extra_train``: native files whose every window joins the train split (more training data from
    other corpora); val and test stay the main file's, and a file sharing passages with them is refused.
    ``split=False``: no train/val/test split, one split ``all`` of every window in file order (for
    scoring or predicting with a trained model).
    ``horizon`` (native format only, default 1): predict the passage this many steps after the
    context (None: 1); the same documents and split as at 1.
    """
    path = Path(path) if path is not None else sample_path()
    horizon = 1 if horizon is None else horizon
    _check_fractions(fractions)
    for name, value in (("k", k), ("min_context", min_context), ("horizon", horizon)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value > MAX_K):
            raise UserError(f"{name} must be an integer from 1 to {MAX_K:,}, got {shown(value)}")
    if horizon < 1:
        raise UserError(f"horizon must be an integer from 1 to {MAX_K:,}, got {shown(horizon)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(
            f"the split seed (--split-seed) must be an integer from 0 to {MAX_SEED:,}, got {shown(seed)}"
        )
    extra_train = tuple(extra_train)
    for i, extra in enumerate(extra_train):
        if any(Path(extra).resolve() == Path(other).resolve() for other in extra_train[:i]):
            raise UserError(f"{extra}: given twice as extra training data; give it once")
    arrays = _read_npz(path)
    if "context_sequences" in arrays or "target_vectors" in arrays:
        if min_context is not None:
            raise UserError(
                f"{path}: min_context needs document ids; windows-format files have fixed windows"
            )
        if extra_train:
            raise UserError(f"{extra_train[0]}: extra training data needs a native-format main file")
        if horizon != 1:
            raise UserError(
                f"{path}: horizon {horizon} needs documents; a windows-format file has fixed windows "
                "whose target is the next passage"
            )
        data = _from_windows(path, arrays, k, fractions, split)
    else:
        k = DEFAULT_K if k is None else k
        min_context = k if min_context is None else min_context
        data = _from_documents(path, arrays, k, min_context, fractions, seed, split, horizon)
        # what must stay out of extra training data: every row of a val or test document, which at
        # horizon 1 the windows' targets and contexts cover (at h > 1 gap rows and short documents have none)
        held_out = data
        if horizon != 1 and extra_train:
            held_out = _from_documents(path, arrays, k, min_context, fractions, seed, split)
        for extra in extra_train:
            data = _add_training_documents(data, held_out, arrays["vectors"], path, Path(extra))
    return data.to(device)


def unsplit_windows(path: str | Path, vectors: np.ndarray, doc_ids: np.ndarray, k: int) -> LVMData:
    """Every window of native arrays held in memory, in one split ``all``: what
    ``load_data(path, k, split=False)`` gives once they are written to ``path``."""
    arrays = {"vectors": vectors, "doc_ids": doc_ids}
    return _from_documents(Path(path), arrays, k, k, DEFAULT_FRACTIONS, seed=0, split=False)


def check_context_length(data: LVMData, k: int, where: str) -> None:
    """Refuse a context length no target of ``data`` can fill: with min_context < k the older
    positions are padding, legal, but a k beyond the longest document reads padding at every window
    and costs batch_size x k x D memory for nothing (``--k 100000`` would ask for tens of GB)."""
    longest = data.longest_context()
    if k > longest:
        raise UserError(
            f"{where}: k={k:,} reads further back than any target of {data.source} has passages: its "
            f"longest document gives a target at most {longest:,} earlier passages, and positions beyond "
            f"would only be padding; use k <= {longest:,}"
        )


def is_windows_file(path: str | Path | None) -> bool:
    """Whether ``path`` is a windows-format file, from its array names alone (nothing is loaded); a
    file that cannot be read is not one (``load_data`` says what is wrong with it)."""
    try:
        z = np.load(Path(path) if path is not None else sample_path(), allow_pickle=False)
    except Exception:
        return False
    if not isinstance(z, np.lib.npyio.NpzFile):
        return False
    with z:
        return "context_sequences" in z.files or "target_vectors" in z.files


def _check_fractions(fractions) -> None:
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise UserError(f"split fractions must be three positive numbers summing to 1, got {fractions}")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise UserError(f"{path}: no such data file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected an .npz file")
    wanted = ("vectors", "doc_ids", "context_sequences", "target_vectors")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a bare .npy array
            raise UserError(f"{path}: expected an .npz archive of named arrays, got a single array")
        with z:
            return {name: z[name] for name in wanted if name in z.files}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as e:
        raise UserError(f"{path}: not a readable .npz file ({type(e).__name__}: {reason(e)})") from None


def _check_vectors(path: Path, name: str, v: np.ndarray, ndim: int) -> None:
    if v.ndim != ndim:
        raise UserError(f"{path}: '{name}' must have {ndim} dimensions, got shape {v.shape}")
    if v.dtype.kind != "f":
        raise UserError(f"{path}: '{name}' must be float16 or float32, got {v.dtype}")
    if v.shape[0] == 0 or v.shape[-1] == 0:
        raise UserError(f"{path}: '{name}' is empty (shape {v.shape})")


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).data)  # hashed in place: no copy of a 1 GB array
    return h.hexdigest()


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(np.ascontiguousarray(p).data if isinstance(p, np.ndarray) else json.dumps(p).encode())
    return h.hexdigest()[:16]


def _from_documents(path, arrays, k, min_context, fractions, seed, split=True, horizon=1) -> LVMData:
    vectors, doc_ids = _native_arrays(path, arrays)
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    if not 1 <= min_context <= k:
        raise UserError(f"min_context must be between 1 and k={k}, got {min_context}")

    starts, lengths = _document_runs(path, doc_ids)

    with_windows = np.flatnonzero(lengths > min_context)
    needs = f"k={k}" if min_context == k else f"min_context={min_context}"
    if len(with_windows) == 0:
        raise UserError(
            f"{path}: {needs} is larger than every document (longest has {lengths.max()} passages)"
        )
    if not split:
        doc_groups = {"all": with_windows}
    elif len(with_windows) < 3:
        raise UserError(
            f"{path}: needs at least 3 documents with more than {needs} passages to split by document, "
            f"found {len(with_windows)}"
        )

    else:
        doc_groups = _split_documents(path, with_windows, fractions, seed)

    before = min_context + horizon - 1  # earlier passages of its document a target needs
    if lengths.max() <= before:
        raise UserError(
            f"{path}: horizon {horizon} with {needs} needs documents of more than {before} passages "
            f"(longest has {lengths.max()})"
        )
    splits, split_targets = {}, []
    for name in doc_groups:
        docs = np.sort(doc_groups[name])  # reading order inside a split, for readable debugging
        targets, target_starts = _windows(starts, lengths, docs, before)
        split_targets.append(targets)
        splits[name] = Split(
            torch.from_numpy(targets), torch.from_numpy(target_starts), int((lengths[docs] > before).sum())
        )
        if split and len(targets) == 0:  # only a horizon can empty a split: h=1 keeps >= 1 document each
            raise UserError(
                f"{path}: horizon {horizon} leaves the {name} split without windows (none of its "
                f"{len(docs)} documents has more than {before} passages); use a shorter horizon"
            )
    pad = min_context < k
    table = _unit_rows(path, vectors, extra_rows=int(pad))
    data = LVMData(
        table,
        splits,
        k,
        "",
        str(path.resolve()),  # absolute: an ensemble built from another folder finds the file
        "native",
        min_context,
        pad_row=len(vectors) if pad else None,
        split_seed=seed,
        digests=(_digest(vectors, doc_ids),),
        main_train_windows=len(split_targets[0]),
        horizon=horizon,
    )
    data.fingerprint = data.compute_fingerprint()
    return data


def _split_documents(path: Path, documents: np.ndarray, fractions, seed: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng(seed).permutation(documents)
    n_val = max(1, round(fractions[1] * len(order)))
    n_test = max(1, round(fractions[2] * len(order)))
    n_train = len(order) - n_val - n_test
    if n_train < 1:
        raise UserError(f"{path}: too few documents ({len(order)}) for the split {fractions}")
    return dict(zip(SPLITS, (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])))


def _native_arrays(path: Path, arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    for name in ("vectors", "doc_ids"):
        if name not in arrays:
            raise UserError(f"{path}: missing array '{name}' (native format needs 'vectors' and 'doc_ids')")
    vectors, doc_ids = arrays["vectors"], arrays["doc_ids"]
    _check_vectors(path, "vectors", vectors, 2)
    if doc_ids.shape != (vectors.shape[0],) or doc_ids.dtype.kind not in "iu":
        raise UserError(
            f"{path}: 'doc_ids' must be integers of shape ({vectors.shape[0]},), "
            f"got {doc_ids.dtype} {doc_ids.shape}"
        )
    return vectors, doc_ids


def _document_runs(path: Path, doc_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start row and length of each document: one contiguous run of equal ids."""
    starts = np.flatnonzero(np.r_[True, doc_ids[1:] != doc_ids[:-1]])
    lengths = np.diff(np.r_[starts, len(doc_ids)])
    if len(np.unique(doc_ids)) != len(starts):  # an id in two runs is a broken file
        raise UserError(f"{path}: 'doc_ids' are not contiguous (a document's passages must be adjacent rows)")
    return starts, lengths


def _windows(starts, lengths, docs, before: int) -> tuple[np.ndarray, np.ndarray]:
    """Target rows [M] of documents ``docs`` (those with ``before`` earlier passages of their
    document) and the first row of each target's document."""
    if len(docs) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    counts = np.maximum(lengths[docs] - before, 0)
    first = np.repeat(starts[docs] + before, counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return (first + within).astype(np.int64), np.repeat(starts[docs], counts).astype(np.int64)


def _add_training_documents(
    data: LVMData, held_out: LVMData, main_vectors: np.ndarray, main_path: Path, path: Path
) -> LVMData:
    vectors, doc_ids = _native_arrays(path, _read_npz(path))
    if vectors.shape[1] != data.dim:
        raise UserError(f"{path}: vectors have D={vectors.shape[1]}, the main data D={data.dim}")
    _check_no_shared_passages(held_out, main_vectors, main_path, vectors, path)
    starts, lengths = _document_runs(path, doc_ids)
    before = data.min_context + data.horizon - 1
    docs = np.flatnonzero(lengths > before)
    if len(docs) == 0:
        raise UserError(f"{path}: no document has more than {before} passages")
    offset = data.vectors.shape[0]  # the new rows go after the table (and after its pad row)
    targets, target_starts = _windows(starts, lengths, docs, before)
    train = data.splits["train"]
    splits = {
        **data.splits,
        "train": Split(
            torch.cat([train.targets, torch.from_numpy(targets + offset)]),
            torch.cat([train.starts, torch.from_numpy(target_starts + offset)]),
            train.docs + len(docs),
        ),
    }
    more = dataclasses.replace(
        data,
        vectors=torch.cat([data.vectors, _unit_rows(path, vectors)]),
        splits=splits,
        extra_train=(*data.extra_train, str(path.resolve())),
        digests=(*data.digests, _digest(vectors, doc_ids)),
    )
    more.fingerprint = more.compute_fingerprint()
    return more


def _check_no_shared_passages(data: LVMData, main_vectors, main_path: Path, vectors, path: Path) -> None:
    """Extra training data must not contain a validation or test passage of the main file: it would
    put what the models are scored on into what they learn from."""
    if main_path.resolve() == path.resolve() or (main_path.exists() and os.path.samefile(main_path, path)):
        raise UserError(f"{path}: is the --data file itself; extra training data must be another corpus")
    shared = _rows_in(vectors, main_vectors[data.held_out_rows()])
    if shared.any():
        raise UserError(
            f"{path}: {int(shared.sum())} of its passages are validation or test passages of {main_path} "
            f"(first: row {int(np.argmax(shared))}); extra training data must not share passages with them"
        )


def _rows_in(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """[len(rows)] True where a row equals some row of ``table`` (compared as float16, bit for bit)."""

    def keys(v):
        bits = np.ascontiguousarray(v.astype(np.float16)).view(np.uint16).astype(np.uint64)
        weights = np.random.default_rng(0).integers(1, 2**62, size=v.shape[1], dtype=np.uint64) | np.uint64(1)
        return (bits * weights).sum(1)  # wraps modulo 2**64: a hash, confirmed row by row below

    row_keys, table_keys = keys(rows), keys(table)
    order = np.argsort(table_keys)
    pos = np.clip(np.searchsorted(table_keys[order], row_keys), 0, len(order) - 1)
    candidates = np.flatnonzero(table_keys[order][pos] == row_keys)
    found = np.zeros(len(rows), bool)
    for i in candidates:
        same_key = order[np.flatnonzero(table_keys[order] == row_keys[i])]
        found[i] = any(
            np.array_equal(rows[i].astype(np.float16), table[j].astype(np.float16)) for j in same_key
        )
    return found


def _from_windows(path, arrays, k, fractions, split=True) -> LVMData:
    for name in ("context_sequences", "target_vectors"):
        if name not in arrays:
            raise UserError(
                f"{path}: missing array '{name}' "
                "(windows format needs 'context_sequences' and 'target_vectors')"
            )
    ctx, tgt = arrays["context_sequences"], arrays["target_vectors"]
    _check_vectors(path, "context_sequences", ctx, 3)
    _check_vectors(path, "target_vectors", tgt, 2)
    m, file_k, d = ctx.shape
    if tgt.shape != (m, d):
        raise UserError(
            f"{path}: 'target_vectors' must have shape ({m}, {d}) to match 'context_sequences', "
            f"got {tgt.shape}"
        )
    if k is not None and k != file_k:
        raise UserError(f"{path}: the file's windows have k={file_k}, but k={k} was asked for")
    k = file_k
    # Window w is stored as rows w*(k+1) ... w*(k+1)+k: its context, then its target.
    vectors = np.concatenate([ctx, tgt[:, None]], axis=1).reshape(m * (k + 1), d)
    table = _unit_rows(path, vectors, name="context_sequences' or 'target_vectors")
    if not split:
        first = torch.arange(m) * (k + 1)
        return LVMData(
            table,
            {"all": Split(first + k, first, 1)},
            k,
            _fingerprint(ctx, tgt, {"k": k}),
            str(path.resolve()),
            "windows",
        )
    # Contiguous blocks with a gap of k windows between them: overlapping sliding windows of one
    # sequence then share no vector across splits. Documents may still straddle a block border.
    n_val, n_test = round(fractions[1] * m), round(fractions[2] * m)
    n_train = m - n_val - n_test - 2 * k
    if min(n_train, n_val, n_test) < 1:
        raise UserError(f"{path}: {m} windows are too few to split into train/val/test blocks")
    logger.warning(
        f"{path}: windows format has no document ids; split into contiguous blocks, "
        "but leakage between documents that straddle a block border cannot be ruled out"
    )
    bounds = {"train": (0, n_train), "val": (n_train + k, n_train + k + n_val), "test": (m - n_test, m)}
    splits = {}
    for name, (lo, hi) in bounds.items():
        first = torch.arange(lo, hi) * (k + 1)
        splits[name] = Split(first + k, first, 1)
    fingerprint = _fingerprint(ctx, tgt, {"k": k, "bounds": bounds})
    return LVMData(table, splits, k, fingerprint, str(path.resolve()), "windows")


def _unit_rows(path: Path, vectors: np.ndarray, extra_rows: int = 0, name: str = "vectors") -> torch.Tensor:
    """float32, L2-normalised, chunk by chunk (no float64 or second full copy), with ``extra_rows``
    zero rows appended. Stored float16 rows are unit only to ~1e-4, and the metrics assume 1."""
    n = len(vectors)
    table = torch.empty(n + extra_rows, vectors.shape[1], dtype=torch.float32)
    table[n:] = 0
    for lo in range(0, n, NORMALISE_CHUNK_ROWS):
        chunk = torch.from_numpy(np.asarray(vectors[lo : lo + NORMALISE_CHUNK_ROWS], dtype=np.float32))
        norms = chunk.norm(dim=1)
        huge = torch.isinf(norms)
        if huge.any():  # finite rows whose squared norm overflows float32: only their direction matters
            huge &= torch.isfinite(chunk).all(dim=1)
            chunk = chunk.clone()  # it may be a view of the caller's array
            chunk[huge] /= chunk[huge].abs().amax(dim=1, keepdim=True)
            norms[huge] = chunk[huge].norm(dim=1)
        bad = ~torch.isfinite(norms) | (norms < MIN_NORM)
        if bad.any():
            row = lo + int(torch.nonzero(bad)[0])
            what = "NaN or Inf" if not torch.isfinite(chunk[row - lo]).all() else "an all-zero vector"
            raise UserError(
                f"{path}: '{name}' row {row} is {what}; every passage needs a finite, non-zero embedding"
            )
        torch.div(chunk, norms[:, None], out=table[lo : lo + len(chunk)])
    return table
