"""Reusing a trained model: score it on any corpus (``eval``) or write its predictions (``predict``).

A *predictor* is a checkpoint folder, a run folder (its best trial) or an ensemble folder. Scoring
on other data than it was trained on is allowed and said so; the classical baselines are fitted on
the other corpus's train split (ridge's lambda on its val) and scored on exactly the same windows,
and every number carries a bootstrap interval over the scored documents. ``eval`` also analyses the
errors against the best baseline (``analysis.error_analysis``): per document, by position and
context, and the worst windows with their texts where the file has them.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.texts import PassageTexts
from ..data.windows import LVMData, Split, is_windows_file, load_data
from ..ensemble.build import load_ensemble
from ..errors import UserError
from ..limits import MAX_K
from ..models import Rollout
from ..models.checkpoint import CONFIG, check_dimension, load_model
from ..scoring.intervals import DocumentBootstrap, verdict
from ..scoring.metrics import ReferenceMean, fit_baselines, per_window, predict, summarise
from ..store import provenance
from ..store.runs import (
    ENSEMBLE_RECORD,
    SUMMARY,
    check_output_file,
    npz_meta,
    read_summary,
    to_json,
    write_file,
)
from .analysis import error_analysis

EVAL_SPLITS = ("test", "all")
PREDICTIONS_MARK = "lvm_search_predictions"

logger = logging.getLogger(__name__)


@dataclass
class Predictor:
    model: nn.Module
    kind: str  # checkpoint, run or ensemble
    path: Path
    k: int
    dim: int
    min_context: int
    trained_on: dict  # the summary of the data it was trained on (DataInfo)
    horizon: int = 1  # how far ahead it was trained to predict

    def describe(self) -> str:
        return f"{self.kind} {self.path}"

    def at_horizon(self, horizon: int | None) -> tuple[nn.Module, int]:
        """The model predicting ``horizon`` passages ahead (None: its own), and that horizon. A model
        trained at 1 rolls forward on its own predictions; one trained further ahead predicts only that."""
        if horizon is None or horizon == self.horizon:
            return self.model, self.horizon
        if self.horizon != 1:
            raise UserError(
                f"{self.path}: the {self.kind} was trained to predict {self.horizon} passages ahead, not "
                f"{horizon}; only a model trained at horizon 1 rolls forward to another"
            )
        logger.info(f"{self.describe()}: rolled forward {horizon} steps on its own predictions")
        return Rollout(self.model, horizon).eval(), horizon


def load_predictor(path: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """A checkpoint, a run folder (its best trial) or an ensemble folder, ready to predict."""
    path = Path(path)
    if (path / ENSEMBLE_RECORD).is_file():
        model, record = load_ensemble(path, device)
        data = record["data"]
        return Predictor(
            model,
            "ensemble",
            path,
            max(model.ks),
            data["D"],
            data["min_context"],
            data,
            data.get("horizon", 1),
        )
    if (path / SUMMARY).is_file():
        summary = read_summary(path)
        if summary.best is None:
            raise UserError(f"{path}: this run has no finished trial to use")
        return _from_checkpoint(path / summary.best.checkpoint, "run", path, device)
    if (path / CONFIG).is_file():
        return _from_checkpoint(path, "checkpoint", path, device)
    raise UserError(
        f"{path}: not a checkpoint, run or ensemble folder (no {CONFIG}, {SUMMARY} or {ENSEMBLE_RECORD})"
    )


def _from_checkpoint(checkpoint: Path, kind: str, path: Path, device) -> Predictor:
    model, meta = load_model(checkpoint, device)
    data = meta.get("data") or {"fingerprint": meta["fingerprint"], "k": meta["k"], "min_context": meta["k"]}
    return Predictor(
        model,
        kind,
        path,
        meta["k"],
        meta["dim"],
        data.get("min_context") or meta["k"],
        data,
        data.get("horizon", 1),
    )


def _load_for(predictor: Predictor, data_path: str | None, split: bool, horizon: int) -> LVMData:
    try:
        data = load_data(
            data_path,
            k=predictor.k,
            # a windows-format file has fixed windows of k real passages: no min_context to ask for
            min_context=None if is_windows_file(data_path) else predictor.min_context,
            split=split,
            seed=predictor.trained_on.get("split_seed", 0),
            horizon=horizon,
        )
    except UserError as e:
        raise UserError(f"{e} (the {predictor.kind} reads k={predictor.k} passages)") from None
    check_dimension({"dim": predictor.dim}, data.dim, predictor.path, data.source)
    return data


def _with_all_windows(data: LVMData) -> LVMData:
    """The data with one more split, ``all``: every window of train, val and test."""
    parts = [data.splits[name] for name in ("train", "val", "test")]
    every = Split(
        torch.cat([s.targets for s in parts]),
        torch.cat([s.starts for s in parts]),
        sum(s.docs for s in parts),
    )
    return dataclasses.replace(data, splits={**data.splits, "all": every})


def relation(predictor: Predictor, data: LVMData, split: str) -> str:
    """What ``data`` is to the data the predictor was trained on. An ensemble reads up to its longest
    member's k, and records its data at the longest k of its runs: the windows are compared at that k."""
    trained = predictor.trained_on
    same_file = data.summary()["content_digest"] == trained.get("content_digest", None)
    k = trained.get("k")
    same_windows = data.fingerprint == trained.get("fingerprint") or (
        data.format == "native"
        and isinstance(k, int)
        and data.min_context <= k <= MAX_K
        and data.fingerprint_at(k) == trained.get("fingerprint")
    )
    # another horizon shifts every target, so the fingerprints differ; its documents and their split
    # are horizon 1's, so on the same file, context and split seed the test documents are the same
    trained_horizon = trained.get("horizon", 1)
    ahead = "" if data.horizon == trained_horizon else f", {data.horizon} passages ahead"
    same_split_elsewhere_ahead = (
        ahead
        and same_file
        and data.min_context == trained.get("min_context")
        and data.split_seed == trained.get("split_seed")
        and list(data.extra_train) == list(trained.get("extra_train", []))
    )
    if same_windows or same_split_elsewhere_ahead:
        if split == "test":
            return f"the test split of the data it was trained on{ahead}"
        return (
            f"every window of the data it was trained on{ahead}, its own training windows included: "
            "not held out"
        )
    unsplit = set(data.splits) == {"all"}
    if same_file and unsplit and data.min_context == trained.get("min_context") and not data.extra_train:
        return "every window of the corpus it was trained on, its own training windows included: not held out"
    if same_file:
        return f"the corpus it was trained on, windowed or split differently ({split} windows)"
    return f"other data than it was trained on ({split} windows)"


def evaluate(
    path: str | Path, data_path: str | None, split: str = "test", horizon: int | None = None
) -> dict:
    """Scores, intervals and baselines of a predictor on the ``split`` windows of another corpus,
    ``horizon`` passages ahead (default: the predictor's own; the baselines are fitted at it)."""
    if split not in EVAL_SPLITS:
        raise UserError(f"--split must be one of {EVAL_SPLITS}, got {split!r}")
    predictor = load_predictor(path)
    model, horizon = predictor.at_horizon(horizon)
    data = _load_for(predictor, data_path, True, horizon)
    scored = _with_all_windows(data) if split == "all" else data
    logger.info(
        f"eval: {predictor.describe()} on {data.source} ({len(scored.splits[split]):,} {split} windows)"
    )
    windows = {"model": per_window(predict(model, scored, split), scored, split)}
    logger.info("eval: fitting the classical baselines on its train split")
    baselines, fitted = fit_baselines(data)
    val_cosine = {}
    for name, fn in baselines.items():
        windows[name] = per_window(predict(fn, scored, split), scored, split)
        val_cosine[name] = summarise(per_window(predict(fn, data, "val"), data, "val"))["cosine"]
    windows["reference mean"] = per_window(
        predict(ReferenceMean(data.min_context), scored, split), scored, split
    )
    best_baseline = max(baselines, key=val_cosine.get)  # chosen on the corpus's val split

    boot = DocumentBootstrap(scored.splits[split].groups())
    cos = {name: w["cosine"].cpu().numpy() for name, w in windows.items()}
    gain = boot.gain_pct(cos["model"], cos[best_baseline])
    rows = {
        name: {**summarise(w), "cosine_interval": boot.mean(cos[name]).as_dict()}
        for name, w in windows.items()
    }
    logger.info(f"eval: error analysis against {best_baseline}")
    analysis = error_analysis(model, scored, split, cos["model"], cos[best_baseline], PassageTexts(data))
    return {
        "predictor": {
            "kind": predictor.kind,
            "path": str(predictor.path),
            "k": predictor.k,
            "horizon": predictor.horizon,
            "trained_on": predictor.trained_on,
        },
        "horizon": horizon,
        "rolled_forward": horizon != predictor.horizon,
        "evaluated_on": {
            **data.summary(),
            "split": split,
            "windows": len(scored.splits[split]),
            "documents": int(scored.splits[split].groups().max()) + 1 if len(scored.splits[split]) else 0,
        },
        "relation": relation(predictor, data, split),
        "baselines_fitted": {
            **fitted,
            "ridge": {"lambda": baselines["ridge"].lam},
            "best_on_val": best_baseline,
        },
        "baselines_note": (
            "baselines were fitted on the train split and scored on windows that include it"
            if split == "all"
            else "baselines were fitted on the train split"
        ),
        "scores": rows,
        "gain_over_best_baseline_pct": gain.as_dict(),
        "gain_over_mean_pct": boot.gain_pct(cos["model"], cos["reference mean"]).as_dict(),
        "verdict": f"the {predictor.kind} {verdict(gain)} the best classical baseline ({best_baseline})",
        "error_analysis": {"baseline": best_baseline, **analysis},
        "intervals": {"level": 0.95, "resamples": len(boot.counts), "unit": "documents"},
        "provenance": to_json(provenance.collect(data.device)),
    }


def write_predictions(
    path: str | Path, data_path: str | None, out: str | Path, last: bool = False, horizon: int | None = None
) -> dict:
    """The predicted vector of every window of a corpus, ``horizon`` passages ahead (default: the
    predictor's own), in file order, with each window's document id and the position in its
    document of the passage predicted (``last``: also one window per document predicting the
    passage ``horizon`` after its end, with ``rows`` -1)."""
    predictor = load_predictor(path)
    model, horizon = predictor.at_horizon(horizon)
    out = Path(out)
    check_output_file(out, ".npz", _is_predictions, "a predictions file that lvm-search wrote")
    data = _load_for(predictor, data_path, False, horizon)
    if last and data.format != "native":
        raise UserError(f"{data.source}: --last needs documents; a windows-format file has none")
    windows = data.splits["all"]
    logger.info(f"predict: {predictor.describe()} on {len(windows):,} windows of {data.source}")
    splits = {"all": windows}
    if last:
        splits["ends"] = _document_ends(data)
    viewed = dataclasses.replace(data, splits=splits)
    predictions, rows, positions, documents = [], [], [], []
    model.eval()
    with torch.no_grad():
        for name, s in splits.items():
            size = data.chunk_size()
            for lo in range(0, len(s), size):
                predictions.append(model(data.vectors[viewed.contexts(name, slice(lo, lo + size))].float()))
            rows.append(s.targets if name == "all" else torch.full_like(s.targets, -1))
            positions.append(s.targets - s.starts)
            documents.append(s.starts)
    doc_ids = _file_doc_ids(data)
    meta = {
        PREDICTIONS_MARK: True,
        "predictor": {
            "kind": predictor.kind,
            "path": str(predictor.path),
            "k": predictor.k,
            "horizon": predictor.horizon,
        },
        "data": data.summary(),  # its horizon: how far ahead these predictions are
        "rolled_forward": horizon != predictor.horizon,
        "last": last,
        "relation": relation(predictor, data, "all"),
        "provenance": to_json(provenance.collect(data.device)),
    }
    buffer = io.BytesIO()
    np.savez(
        buffer,
        predictions=torch.cat(predictions).float().cpu().numpy(),
        doc_ids=doc_ids[torch.cat(documents).numpy()],
        positions=torch.cat(positions).numpy(),
        rows=torch.cat(rows).numpy(),
        meta_json=np.array(json.dumps(meta)),
    )
    write_file(out, buffer.getvalue())
    return {
        "out": str(out),
        "windows": len(windows),
        "document_ends": len(splits.get("ends", [])),
        "D": data.dim,
        "horizon": horizon,
        "relation": meta["relation"],
    }


def _is_predictions(path: Path) -> bool:
    return npz_meta(path).get(PREDICTIONS_MARK) is True


def _file_doc_ids(data: LVMData) -> np.ndarray:
    """Every row's document id as the file has it (windows format: the window's number)."""
    if data.format != "native":
        return np.repeat(np.arange(len(data.vectors) // (data.k + 1)), data.k + 1)
    with np.load(data.source, allow_pickle=False) as z:
        return z["doc_ids"].astype(np.int64)


def _document_ends(data: LVMData) -> Split:
    """One window per document with at least min_context passages: its last passages as context,
    its "target" the row ``horizon`` past its end (never gathered)."""
    doc_ids = _file_doc_ids(data)
    starts = np.flatnonzero(np.r_[True, doc_ids[1:] != doc_ids[:-1]])
    lengths = np.diff(np.r_[starts, len(doc_ids)])
    keep = lengths >= data.min_context
    ends = starts[keep] + lengths[keep] + data.horizon - 1
    return Split(torch.from_numpy(ends), torch.from_numpy(starts[keep]), int(keep.sum()))
