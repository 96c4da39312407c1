"""Embedding data sets: loading, windows inside documents, the document split, the fingerprint.

Two input formats are accepted:

* native (see ``shared/data/README.md``): ``vectors`` [N, D] and ``doc_ids`` [N], the passages of a
  document contiguous and in reading order. Windows of ``k`` context rows never cross a document
  border, and train/val/test are split by whole documents.
* windows (the reference work's): ``context_sequences`` [M, k, D] and ``target_vectors`` [M, D].
  There are no document ids, so the windows are cut into three contiguous blocks with a gap of
  ``k`` windows between blocks; leakage across documents cannot be ruled out and we say so once.

Everything ends up as one float32 ``vectors`` table plus, per split, integer index tensors. A batch
is ``vectors[contexts[idx]]``: an index slice of tensors already on the device, no copies.

Longer contexts without losing windows: with ``min_context < k`` a target needs only ``min_context``
earlier passages of its document, and the missing older positions point at an all-zero pad row.
Zero rows are invisible to a normalised (weighted) mean and to ``context_mean``, so the baselines
and residual models mean the same thing at any k; ``k=12, min_context=5`` scores exactly the
windows (targets) of ``k=5``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

SPLITS = ("train", "val", "test")
DEFAULT_K = 5
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SAMPLE_NAME = "python-docs-sample.npz"


def sample_path() -> Path:
    """The small real data set shipped inside the package (the default wherever --data is absent)."""
    return Path(str(resources.files("lvm_search") / "samples" / SAMPLE_NAME))


@dataclass
class Split:
    """The windows of one split, as row indices into ``LVMData.vectors``."""

    contexts: torch.Tensor  # [M, k] int64, oldest context row first
    targets: torch.Tensor  # [M] int64
    docs: int  # documents in this split (windows-format data: contiguous blocks, counted as 1)

    def __len__(self) -> int:
        return len(self.targets)

    def to(self, device) -> "Split":
        return Split(self.contexts.to(device), self.targets.to(device), self.docs)


@dataclass
class LVMData:
    vectors: torch.Tensor  # [N, D] float32, unit rows
    splits: dict[str, Split]
    k: int
    fingerprint: str  # hash of the vectors, the document ids, k, min_context and the split assignment
    source: str
    format: str  # "native" or "windows"
    min_context: int | None = None  # earlier passages a target needs (= k unless padded)
    extra_train: tuple[str, ...] = ()  # other files whose every window was added to train

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def device(self) -> torch.device:
        return self.vectors.device

    def batch(self, split: str, idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Contexts [B, k, D] and targets [B, D] of the windows ``idx`` of ``split``."""
        s = self.splits[split]
        return self.vectors[s.contexts[idx]], self.vectors[s.targets[idx]]

    def to(self, device) -> "LVMData":
        device = torch.device(device)
        if device == self.device:
            return self
        return LVMData(
            self.vectors.to(device),
            {name: s.to(device) for name, s in self.splits.items()},
            self.k,
            self.fingerprint,
            self.source,
            self.format,
            self.min_context,
            self.extra_train,
        )

    def __post_init__(self):
        if self.min_context is None:
            self.min_context = self.k

    @property
    def padded(self) -> bool:
        """Whether ``vectors`` holds the zero pad row."""
        return self.min_context < self.k

    def summary(self) -> dict:
        return {
            "source": self.source,
            "format": self.format,
            "fingerprint": self.fingerprint,
            "D": self.dim,
            "k": self.k,
            "min_context": self.min_context,
            "extra_train": list(self.extra_train),
            "passages": int(self.vectors.shape[0]) - int(self.padded),
        }

    def split_sizes(self) -> dict:
        return {name: {"docs": s.docs, "windows": len(s)} for name, s in self.splits.items()}


def load_data(
    path: str | Path | None = None,
    k: int | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    min_context: int | None = None,
    extra_train: tuple[str | Path, ...] = (),
) -> LVMData:
    """Load an .npz in either format and split it; ``path=None`` loads the packaged sample.

    ``min_context`` (native format only, default k): earlier passages a target needs; older context
    positions are zero-padded. The document split depends on ``min_context``, not on ``k``.
    ``extra_train``: native files whose every window joins the train split (more training data from
    other corpora); val and test stay the main file's.
    """
    path = Path(path) if path is not None else sample_path()
    _check_fractions(fractions)
    arrays = _read_npz(path)
    if "context_sequences" in arrays or "target_vectors" in arrays:
        if min_context is not None:
            raise UserError(f"{path}: min_context needs document ids; windows-format files have fixed windows")
        data = _from_windows(path, arrays, k, fractions)
    else:
        k = DEFAULT_K if k is None else k
        data = _from_documents(path, arrays, k, k if min_context is None else min_context, fractions, seed)
    for extra in extra_train:
        data = _add_training_documents(data, Path(extra))
    return data.to(device)


def real_positions(contexts: torch.Tensor) -> torch.Tensor:
    """[B, k] True where a context position holds a passage, False at the all-zero pad row."""
    return contexts.abs().sum(-1) > 0


def context_mean(contexts: torch.Tensor, decay: float = 1.0) -> torch.Tensor:
    """Recency-weighted mean of the real context vectors [B, k, D] -> [B, D].

    Position i gets weight ``decay ** (k - 1 - i)`` (1 = plain mean, 0 = last vector); pad rows
    (all zero) get none, so the mean is over the passages that exist.
    """
    k = contexts.shape[1]
    weights = decay ** torch.arange(k - 1, -1, -1, dtype=contexts.dtype, device=contexts.device)
    real = real_positions(contexts).to(contexts.dtype) * weights
    return (contexts * weights[:, None]).sum(1) / real.sum(1, keepdim=True).clamp(min=1e-12)


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
        raise UserError(f"{path}: not a readable .npz file ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None


def _check_vectors(path: Path, name: str, v: np.ndarray, ndim: int) -> None:
    if v.ndim != ndim:
        raise UserError(f"{path}: '{name}' must have {ndim} dimensions, got shape {v.shape}")
    if v.dtype.kind != "f":
        raise UserError(f"{path}: '{name}' must be float16 or float32, got {v.dtype}")
    if v.shape[0] == 0 or v.shape[-1] == 0:
        raise UserError(f"{path}: '{name}' is empty (shape {v.shape})")
    bad = ~np.isfinite(v.reshape(v.shape[0], -1)).all(axis=1)
    if bad.any():
        raise UserError(
            f"{path}: '{name}' has {int(bad.sum())} rows with NaN or Inf (first: row {int(np.argmax(bad))})"
        )


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray) else json.dumps(p).encode())
    return h.hexdigest()[:16]


def _from_documents(path, arrays, k, min_context, fractions, seed) -> LVMData:
    vectors, doc_ids = _native_arrays(path, arrays)
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    if not 1 <= min_context <= k:
        raise UserError(f"min_context must be between 1 and k={k}, got {min_context}")

    starts, lengths = _document_runs(path, doc_ids)

    with_windows = np.flatnonzero(lengths > min_context)
    needs = f"k={k}" if min_context == k else f"min_context={min_context}"
    if len(with_windows) == 0:
        raise UserError(f"{path}: {needs} is larger than every document (longest has {lengths.max()} passages)")
    if len(with_windows) < 3:
        raise UserError(
            f"{path}: needs at least 3 documents with more than {needs} passages to split by document, found {len(with_windows)}"
        )

    order = np.random.default_rng(seed).permutation(with_windows)
    n_val = max(1, round(fractions[1] * len(order)))
    n_test = max(1, round(fractions[2] * len(order)))
    n_train = len(order) - n_val - n_test
    if n_train < 1:
        raise UserError(f"{path}: too few documents ({len(order)}) for the split {fractions}")
    doc_groups = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}

    pad_row = len(vectors)  # appended below when some context position falls before its document
    splits, split_targets = {}, []
    for name in SPLITS:
        docs = np.sort(doc_groups[name])  # reading order inside a split, for readable debugging
        contexts, targets = _windows(starts, lengths, docs, k, min_context, pad_row)
        split_targets.append(targets)
        splits[name] = Split(torch.from_numpy(contexts), torch.from_numpy(targets), len(docs))
    window_spec = {"k": k} if min_context == k else {"k": k, "min_context": min_context}
    fingerprint = _fingerprint(vectors, doc_ids, window_spec, *split_targets)
    table = _unit_rows(vectors)
    if min_context < k:
        table = torch.cat([table, torch.zeros(1, table.shape[1])])
    return LVMData(table, splits, k, fingerprint, str(path), "native", min_context)


def _native_arrays(path: Path, arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    for name in ("vectors", "doc_ids"):
        if name not in arrays:
            raise UserError(f"{path}: missing array '{name}' (native format needs 'vectors' and 'doc_ids')")
    vectors, doc_ids = arrays["vectors"], arrays["doc_ids"]
    _check_vectors(path, "vectors", vectors, 2)
    if doc_ids.shape != (vectors.shape[0],) or doc_ids.dtype.kind not in "iu":
        raise UserError(f"{path}: 'doc_ids' must be integers of shape ({vectors.shape[0]},), got {doc_ids.dtype} {doc_ids.shape}")
    return vectors, doc_ids


def _document_runs(path: Path, doc_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start row and length of each document: one contiguous run of equal ids."""
    starts = np.flatnonzero(np.r_[True, doc_ids[1:] != doc_ids[:-1]])
    lengths = np.diff(np.r_[starts, len(doc_ids)])
    if len(np.unique(doc_ids)) != len(starts):  # an id in two runs is a broken file
        raise UserError(f"{path}: 'doc_ids' are not contiguous (a document's passages must be adjacent rows)")
    return starts, lengths


def _windows(starts, lengths, docs, k: int, min_context: int, pad_row: int) -> tuple[np.ndarray, np.ndarray]:
    """Context rows [M, k] and target rows [M] of documents ``docs``; positions before a document's
    start point at ``pad_row``."""
    targets = np.concatenate([np.arange(starts[d] + min_context, starts[d] + lengths[d]) for d in docs])
    contexts = targets[:, None] + np.arange(-k, 0)
    contexts[contexts < np.repeat(starts, lengths)[targets][:, None]] = pad_row
    return contexts, targets


def _add_training_documents(data: LVMData, path: Path) -> LVMData:
    if data.format != "native":
        raise UserError(f"{path}: extra training data needs a native-format main file")
    vectors, doc_ids = _native_arrays(path, _read_npz(path))
    if vectors.shape[1] != data.dim:
        raise UserError(f"{path}: vectors have D={vectors.shape[1]}, the main data D={data.dim}")
    starts, lengths = _document_runs(path, doc_ids)
    docs = np.flatnonzero(lengths > data.min_context)
    if len(docs) == 0:
        raise UserError(f"{path}: no document has more than {data.min_context} passages")
    offset = data.vectors.shape[0]  # the new rows go after the table; a pad row stays its last row
    contexts, targets = _windows(starts, lengths, docs, data.k, data.min_context, pad_row=-1)
    pad = contexts < 0
    contexts = torch.from_numpy(np.where(pad, offset - 1, contexts + offset))
    targets = torch.from_numpy(targets + offset)
    train = data.splits["train"]
    splits = {**data.splits, "train": Split(torch.cat([train.contexts, contexts]), torch.cat([train.targets, targets]), train.docs + len(docs))}
    fingerprint = _fingerprint(data.fingerprint, vectors, doc_ids)
    return dataclasses.replace(
        data, vectors=torch.cat([data.vectors, _unit_rows(vectors)]), splits=splits, fingerprint=fingerprint,
        extra_train=(*data.extra_train, str(path)),
    )


def _from_windows(path, arrays, k, fractions) -> LVMData:
    for name in ("context_sequences", "target_vectors"):
        if name not in arrays:
            raise UserError(f"{path}: missing array '{name}' (windows format needs 'context_sequences' and 'target_vectors')")
    ctx, tgt = arrays["context_sequences"], arrays["target_vectors"]
    _check_vectors(path, "context_sequences", ctx, 3)
    _check_vectors(path, "target_vectors", tgt, 2)
    m, file_k, d = ctx.shape
    if tgt.shape != (m, d):
        raise UserError(f"{path}: 'target_vectors' must have shape ({m}, {d}) to match 'context_sequences', got {tgt.shape}")
    if k is not None and k != file_k:
        raise UserError(f"{path}: the file's windows have k={file_k}, but k={k} was asked for")
    k = file_k
    # Contiguous blocks with a gap of k windows between them: overlapping sliding windows of one
    # sequence then share no vector across splits. Documents may still straddle a block border.
    n_val, n_test = round(fractions[1] * m), round(fractions[2] * m)
    n_train = m - n_val - n_test - 2 * k
    if min(n_train, n_val, n_test) < 1:
        raise UserError(f"{path}: {m} windows are too few to split into train/val/test blocks")
    warnings.warn(
        f"{path}: windows format has no document ids; split into contiguous blocks, "
        "but leakage between documents that straddle a block border cannot be ruled out",
        stacklevel=3,
    )
    bounds = {"train": (0, n_train), "val": (n_train + k, n_train + k + n_val), "test": (m - n_test, m)}
    vectors = np.concatenate([ctx.reshape(m * k, d), tgt])
    splits = {}
    for name, (lo, hi) in bounds.items():
        windows = torch.arange(lo, hi)
        contexts = windows[:, None] * k + torch.arange(k)
        splits[name] = Split(contexts, m * k + windows, 1)
    fingerprint = _fingerprint(ctx, tgt, {"k": k, "bounds": bounds})
    return LVMData(_unit_rows(vectors), splits, k, fingerprint, str(path), "windows")


def _unit_rows(vectors: np.ndarray) -> torch.Tensor:
    """float32, L2-normalised: stored float16 rows are unit only to ~1e-4, and the metrics assume 1."""
    return torch.nn.functional.normalize(torch.from_numpy(vectors.astype(np.float32)), dim=-1)
