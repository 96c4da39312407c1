"""Error analysis: where a model wins and loses against a baseline on the same windows, with texts.

Everything here starts from per-window scores that ``metrics.per_window`` already computed on one
split (a model's and a baseline's, window for window), so nothing is predicted twice:

* per document: each document's mean cosine for the model and the baseline, and their difference;
* by position in the document (of the passage predicted) and by how much context a window has (the
  real passages among its k, fewer near a document's start): the two means and a paired 95% interval
  of their difference from a bootstrap over the documents in that group;
* the worst windows of the model: the last context passage, the passage to predict and the training
  passage nearest to the prediction (searched over the train split's passages only, in chunked
  matrix products), with their texts where the file has them;
* for an AMN: its attention weights over context positions (``AMNModel.attention``).

Choosing is done by the caller, on validation; this module only describes.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.nn.functional import normalize

from ..data.texts import PassageTexts
from ..data.windows import LVMData, Split
from ..scoring.intervals import DocumentBootstrap
from ..scoring.metrics import CHUNK, SIMILARITY_BYTES

WORST_WINDOWS = 5
POSITION_EDGES = (10, 20, 50, 100, 200, 500)  # bins of the predicted passage's index in its document
ATTENTION_EXAMPLES = 3

logger = logging.getLogger(__name__)


def positions(split: Split) -> np.ndarray:
    """[M] the index in its document of each window's predicted passage (0 = the document's first)."""
    return (split.targets - split.starts).cpu().numpy()


def context_passages(split: Split, k: int, horizon: int = 1) -> np.ndarray:
    """[M] the real (not padding) passages among a window's k context positions."""
    return np.minimum(positions(split) - (horizon - 1), k)


def per_document(cosine, baseline, split: Split, texts: PassageTexts) -> list[dict]:
    """Each document's windows, mean model and baseline cosine and their difference, best first."""
    groups = split.groups()
    counts = np.bincount(groups)
    model = np.bincount(groups, weights=cosine) / counts
    base = np.bincount(groups, weights=baseline) / counts
    first = np.unique(groups, return_index=True)[1]
    starts = split.starts.cpu().numpy()[first]
    rows = [
        {
            "document": texts.locate(int(start))[0],
            "windows": int(n),
            "cosine": float(m),
            "baseline": float(b),
            "difference": float(m - b),
        }
        for start, n, m, b in zip(starts, counts, model, base)
    ]
    return sorted(rows, key=lambda r: r["cosine"], reverse=True)


def by_bins(values, edges, cosine, baseline, split: Split, last_label: str | None = None) -> list[dict]:
    """The windows whose ``values`` fall in [edges[i], edges[i+1]): their count, documents, mean model
    and baseline cosine, and the paired 95% interval of the difference over their documents."""
    groups = split.groups()
    cosine, baseline = np.asarray(cosine, np.float64), np.asarray(baseline, np.float64)
    rows = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        inside = (values >= lo) & (values < hi)
        if not inside.any():
            continue
        docs = np.unique(groups[inside], return_inverse=True)[1]
        difference = DocumentBootstrap(docs).difference(cosine[inside], baseline[inside])
        label = f"{lo}" if hi - lo == 1 else f"{lo}–{hi - 1}" if np.isfinite(hi) else f"{lo}+"
        rows.append(
            {
                "label": last_label if last_label and i == len(edges) - 2 else label,
                "low": int(lo),
                "high": int(hi - 1) if np.isfinite(hi) else None,  # None: open-ended
                "windows": int(inside.sum()),
                "documents": int(docs.max()) + 1,
                "cosine": float(cosine[inside].mean()),
                "baseline": float(baseline[inside].mean()),
                "difference": difference.as_dict(),
            }
        )
    return rows


def position_edges(min_context: int) -> list[float]:
    return [min_context, *(e for e in POSITION_EDGES if e > min_context), float("inf")]


def context_edges(min_context: int, k: int) -> list[int]:
    """One bin per context length up to six of them, else four bins below k; k (full) alone."""
    if k - min_context < 6:
        return list(range(min_context, k + 2))
    inner = sorted({int(v) for v in np.linspace(min_context, k, 5)})
    return [*inner[:-1], k, k + 1]


@torch.no_grad()
def training_passage_rows(data: LVMData) -> torch.Tensor:
    """The rows of every passage of the train split's documents (each document from its first row to
    its last target): what a model learned from, and nothing of validation or test."""
    s = data.splits["train"]
    firsts, which = torch.unique(s.starts, return_inverse=True)
    lasts = torch.full_like(firsts, -1).scatter_reduce(0, which, s.targets, reduce="amax")
    lengths = lasts - firsts + 1
    offsets = torch.arange(int(lengths.sum()), device=firsts.device)
    offsets -= torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return torch.repeat_interleave(firsts, lengths) + offsets


@torch.no_grad()
def nearest_rows(predictions: torch.Tensor, vectors: torch.Tensor, rows: torch.Tensor):
    """For each prediction [n, D], the row of ``rows`` whose vector is nearest by cosine, and that
    cosine; ``rows`` are searched in chunks (one matrix product each), never all at once."""
    queries = normalize(predictions.float(), dim=-1)
    best = torch.full((len(queries),), -2.0, device=queries.device)
    where = torch.zeros(len(queries), dtype=torch.long, device=queries.device)
    chunk = max(1, SIMILARITY_BYTES // (4 * vectors.shape[1]))
    for lo in range(0, len(rows), chunk):
        part = rows[lo : lo + chunk]
        sims = queries @ vectors[part].float().T
        value, column = sims.max(1)
        better = value > best
        best = torch.where(better, value, best)
        where = torch.where(better, part[column], where)
    return where, best


@torch.no_grad()
def worst_windows(
    model, data: LVMData, split: str, cosine, baseline, texts: PassageTexts, n: int = WORST_WINDOWS
):
    """The ``n`` windows where ``model`` scores lowest, with the passages around each one."""
    order = np.argsort(np.asarray(cosine), kind="stable")[:n]
    idx = torch.as_tensor(order, device=data.device)
    x, target = data.batch(split, idx)
    model.eval()
    predictions = model(x).float()
    nearest, near_cos = nearest_rows(predictions, data.vectors, training_passage_rows(data))
    near_to_target = (normalize(data.vectors[nearest].float(), dim=-1) * target).sum(-1)
    s = data.splits[split]
    targets, starts = s.targets[idx].tolist(), s.starts[idx].tolist()
    last = [t - data.horizon for t in targets]  # the context's last passage
    text = texts.texts([*targets, *last, *nearest.tolist()])
    out = []
    for j, window in enumerate(order.tolist()):
        t, row = targets[j], int(nearest[j])
        document, position = texts.locate(t)
        near_document, near_position = texts.locate(row)
        out.append(
            {
                "window": window,
                "document": document,
                "position": position,
                "context_passages": min(last[j] + 1 - starts[j], data.k),
                "cosine": float(cosine[window]),
                "baseline": float(baseline[window]),
                "last_context": {"row": last[j], "text": text[last[j]]},
                "next": {"row": t, "text": text[t]},
                "nearest_training": {
                    "row": row,
                    "document": near_document,
                    "position": near_position,
                    "cosine_to_prediction": float(near_cos[j]),
                    "cosine_to_next": float(near_to_target[j]),
                    "text": text[row],
                },
            }
        )
    return out


def error_analysis(model, data: LVMData, split: str, cosine, baseline, texts: PassageTexts) -> dict:
    """Per document, by position, by context and the worst windows of ``model`` (scored on ``data``
    at its own k) against ``baseline``, window for window."""
    s = data.splits[split]
    cosine, baseline = np.asarray(cosine, np.float64), np.asarray(baseline, np.float64)
    m = data.min_context
    return {
        "per_document": per_document(cosine, baseline, s, texts),
        "by_position": by_bins(positions(s), position_edges(m + data.horizon - 1), cosine, baseline, s),
        "by_context": by_bins(
            context_passages(s, data.k, data.horizon),
            context_edges(m, data.k),
            cosine,
            baseline,
            s,
            f"{data.k} (full)",
        ),
        "worst_windows": worst_windows(model, data, split, cosine, baseline, texts),
        "texts": texts.has_texts,
        "texts_note": texts.note,
    }


# --- AMN attention -------------------------------------------------------------------------------


@torch.no_grad()
def attention_profile(model, data: LVMData, split: str) -> dict:
    """The AMN's mean attention weight at each context position (oldest first) over the windows of
    ``split``, over all of them (padding counts as 0) and over those with a full context, beside the
    fixed weights of its recency-weighted base (``base_decay ** age``, normalised); and how far any
    window's weights come from uniform over its real passages (0: the plain mean of the passages)."""
    model.eval()
    k = data.k
    total, full_total = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
    windows = full = 0
    deviation = 0.0
    for lo in range(0, len(data.splits[split]), CHUNK):
        x, _ = data.batch(split, slice(lo, lo + CHUNK))
        weights = model.attention(x).double().cpu()
        real = (x.abs().sum(-1) > 0).cpu()
        uniform = real.double() / real.sum(-1, keepdim=True).clamp_min(1)
        deviation = max(deviation, float((weights - uniform).abs().max()))
        is_full = real.all(-1)
        total += weights.sum(0)
        full_total += weights[is_full].sum(0)
        windows, full = windows + len(x), full + int(is_full.sum())
    base = model.cfg.base_decay ** torch.arange(k - 1, -1, -1, dtype=torch.float64)
    return {
        "k": k,
        "windows": windows,
        "full_windows": full,
        "mean_weight": (total / max(windows, 1)).tolist(),
        "mean_weight_full": (full_total / full).tolist() if full else None,
        "base_weight": (base / base.sum()).tolist(),
        "base_decay": model.cfg.base_decay,
        "max_deviation_from_uniform": deviation,
    }


@torch.no_grad()
def attention_examples(model, data: LVMData, split: str, texts: PassageTexts, n: int = ATTENTION_EXAMPLES):
    """The attention weights of ``n`` windows with a full context, evenly spaced through ``split``
    (chosen by place, not by score), next to their context passages."""
    s = data.splits[split]
    full = np.flatnonzero(context_passages(s, data.k, data.horizon) >= data.k)
    if not len(full):
        return []
    chosen = full[np.unique(np.linspace(0, len(full) - 1, n).round().astype(int))]
    idx = torch.as_tensor(chosen, device=data.device)
    rows = data.contexts(split, idx)
    weights = model.attention(data.vectors[rows].float()).cpu()
    text = texts.texts(rows.flatten().tolist() + s.targets[idx].tolist())
    out = []
    for j, window in enumerate(chosen.tolist()):
        target = int(s.targets[window])
        document, position = texts.locate(target)
        out.append(
            {
                "window": window,
                "document": document,
                "position": position,
                "context": [
                    {"age": data.k - i, "row": int(r), "weight": float(w), "text": text[int(r)]}
                    for i, (r, w) in enumerate(zip(rows[j].tolist(), weights[j].tolist()))
                ],
                "next": {"row": target, "text": text[target]},
            }
        )
    return out


def document_means(values, split: Split) -> np.ndarray:
    """[documents] the mean of per-window ``values`` over each document's windows, in split order."""
    groups = split.groups()
    return np.bincount(groups, weights=np.asarray(values, np.float64)) / np.bincount(groups)
