"""Ensembles: weighted averages of predicted vectors, weights fitted on validation only.

Members' predictions are L2-normalised, summed with non-negative weights that add up to 1, and
normalised again. The candidates are the best trials of the chosen runs (``top_k`` per run, or
every finished trial), and optionally the classical baselines. Weights:

* greedy: Caruana et al. (2004), forward selection with replacement from a sorted initialisation
  (the n best candidates, n chosen on validation); weight = times selected / selections.
* bagged: Caruana et al. (2006), greedy selection repeated on random halves of the candidates
  (seeded), the weights averaged: less fitted to the validation windows than one greedy pass.
* simplex: starting from the greedy weights, direct optimisation of validation cosine over the
  simplex (softmax parametrisation).

``auto`` keeps whichever of the three scores higher on validation. The test split only scores the
result. The ensemble folder holds copies of its members, so it can be moved or copied whole.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.functional import normalize

from ..data.windows import LVMData, is_windows_file, load_data
from ..errors import UserError, reason
from ..limits import MAX_ENSEMBLE_SIZE, MAX_SEED
from ..models.checkpoint import check_fingerprint, load_model
from ..scoring.baseline_cache import fitted_baselines
from ..scoring.intervals import DocumentBootstrap
from ..scoring.metrics import (
    ReferenceMean,
    context_mean_baseline,
    last_vector_baseline,
    per_window,
    predict,
    recency_weighted_baseline,
    ridge_prediction,
    summarise,
)
from ..store import provenance, records
from ..store.runs import (
    ENSEMBLE_MEMBERS,
    ENSEMBLE_RECORD,
    RIDGE_WEIGHTS,
    DataInfo,
    EnsembleRecord,
    MemberRecord,
    RunSummary,
    SplitSize,
    check_name,
    ensemble_dir,
    files_digest,
    find_runs,
    read_ensemble,
    record_digest,
    to_json,
    write_folder,
    write_json,
)
from ..store.yaml_files import read_yaml

Method = Literal["auto", "greedy", "bagged", "simplex"]  # auto: the best of the three on cross-fitted val
BASELINE_MEMBERS = ("mean", "last", "recency", "ridge")
BAGS = 20
BAG_FRACTION = 0.5
NORM_EPS = 1e-12  # torch.nn.functional.normalize's

logger = logging.getLogger(__name__)


# --- the recipe ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """An ensemble recipe (``ensembles/*.yaml``); a file leaving a key out gets its default here,
    which is also the recipe with no file."""

    runs: tuple[str, ...] = ()  # run names under the storage folder; empty = latest run of each arch
    # every finished trial of each run, or the best top_k of each
    top_k: int | Literal["all"] = field(default="all", metadata={"range": (1, None)})
    method: Method = "auto"
    # greedy selections (with replacement)
    ensemble_size: int = field(default=20, metadata={"range": (1, MAX_ENSEMBLE_SIZE)})
    baselines: bool = True  # the classical baselines join the candidates
    seed: int = field(default=0, metadata={"range": (0, MAX_SEED)})  # of the bags
    name: str = "default"  # artifact folder: <storage>/ensembles/<name>; a file's: its stem
    source: str = field(default="", metadata=records.NOT_READ)


def load_recipe(path: str | Path | None) -> Recipe:
    if path is None:
        return Recipe(source="(defaults)")
    path = Path(path)
    raw = read_yaml(path, "ensemble recipe")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    # `runs:` left empty names no run, as `runs: []` does; the name is a folder name, checked below
    given = {
        key: value for key, value in raw.items() if key != "name" and not (key == "runs" and value is None)
    }
    recipe = records.parse(Recipe, given, str(path))
    for i, run in enumerate(recipe.runs):
        if not run:
            raise UserError(f"{path}: runs: expected a list of run names")
        check_name(run, f"{path}: runs")
        if run in recipe.runs[:i]:  # it would be one run's trials twice among the candidates
            raise UserError(f"{path}: runs: {run!r} is named twice; name each run once")
    name = check_name(raw.get("name", path.stem), f"{path}: name")
    return dataclasses.replace(recipe, name=name, source=str(path))


# --- weights ------------------------------------------------------------------------------------


def ensemble_cosine(preds: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cosine of the normalised weighted sum. preds [m, M, D], weights [m], targets [M, D]."""
    combined = normalize(torch.einsum("m,mnd->nd", weights, preds), dim=-1)
    return (combined * targets).sum(-1).mean()


class _Selection:
    """Forward selection state: the running sum of the selected (unit) predictions, so trying every
    candidate costs one pass over the predictions instead of one per candidate."""

    def __init__(self, preds: torch.Tensor, targets: torch.Tensor):
        self.preds, self.targets = preds, targets
        self.pred_target = torch.einsum("mnd,nd->mn", preds, targets)  # [m, M]
        self.pred_norm2 = (preds * preds).sum(-1)  # [m, M]: 1, or 0 for an unusable prediction

    def value(self, total: torch.Tensor) -> float:
        return (normalize(total, dim=-1) * self.targets).sum(-1).mean().item()

    def try_each(self, total: torch.Tensor) -> torch.Tensor:
        """[m] the value of total + preds[i] for every candidate i."""
        dot = (total * self.targets).sum(-1)[None] + self.pred_target
        norm2 = (
            (total * total).sum(-1)[None]
            + 2 * torch.einsum("nd,mnd->mn", total, self.preds)
            + self.pred_norm2
        )
        return (dot / norm2.clamp_min(1e-12).sqrt()).mean(1)


def greedy_weights(preds: torch.Tensor, targets: torch.Tensor, size: int) -> torch.Tensor:
    """Caruana's forward selection with replacement, from the best sorted initialisation."""
    m = len(preds)
    sel = _Selection(preds, targets)
    order = torch.argsort(sel.try_each(torch.zeros_like(targets)), descending=True)  # the singles
    total, best = torch.zeros_like(targets), (float("-inf"), 0)
    for n in range(1, min(m, size) + 1):
        total = total + preds[order[n - 1]]
        value = sel.value(total)
        if value > best[0]:
            best = (value, n)
    counts = torch.zeros(m)
    counts[order[: best[1]]] = 1
    best_counts, best_value = counts.clone(), best[0]
    total = torch.einsum("m,mnd->nd", counts, preds)
    for _ in range(size - best[1]):
        scores = sel.try_each(total)
        i = int(torch.argmax(scores))  # ties go to the lower index
        counts[i] += 1
        total = total + preds[i]
        if scores[i].item() > best_value:
            best_counts, best_value = counts.clone(), scores[i].item()
    return best_counts / best_counts.sum()


def bagged_weights(
    preds: torch.Tensor, targets: torch.Tensor, size: int, seed: int, bags: int = BAGS
) -> torch.Tensor:
    """Greedy selection on ``bags`` random subsets of the candidates, weights averaged."""
    m = len(preds)
    if m < 3:
        return greedy_weights(preds, targets, size)
    rng = np.random.default_rng(seed)
    weights = torch.zeros(m)
    for _ in range(bags):
        subset = np.sort(rng.choice(m, size=max(2, round(BAG_FRACTION * m)), replace=False))
        weights[subset] += greedy_weights(preds[subset], targets, size)
    return weights / weights.sum()


def simplex_weights(
    preds: torch.Tensor, targets: torch.Tensor, start: torch.Tensor, steps: int = 300
) -> torch.Tensor:
    """Maximise validation cosine over non-negative weights summing to one, from ``start``."""
    objective = _SimplexObjective(preds, targets)
    logits = torch.log(start.clamp_min(1e-4)).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -objective(logits.softmax(0))
        loss.backward()
        optimizer.step()
    weights = logits.detach().softmax(0)
    # Softmax never reaches zero; members below half a percent are dropped rather than carried.
    weights = torch.where(weights < 0.005, torch.zeros_like(weights), weights)
    return weights / weights.sum()


class _SimplexObjective:
    """``ensemble_cosine(preds, w, targets)`` as a function of the weights alone. With at most half as
    many candidates as dimensions it reads each window's dot products among the candidates and with
    its target ([M, m, m] and [M, m], at most half the predictions' size), so a step costs M*m^2, not
    M*m*D (near m = D building them costs more than the steps save):
    on python-docs' 58 candidates (D=384) `lvm-search ensemble` took 33 s instead of 46
    (benchmarks/results/cpu/ensemble_speed_simplex.json)."""

    def __init__(self, preds: torch.Tensor, targets: torch.Tensor):
        self.preds, self.targets = preds, targets.to(preds.dtype)
        self.small = 2 * len(preds) <= preds.shape[-1]
        if self.small:
            self.pred_target = torch.einsum("mnd,nd->nm", preds, self.targets)
            self.gram = torch.einsum("mnd,knd->nmk", preds, preds)

    def __call__(self, weights: torch.Tensor) -> torch.Tensor:
        if not self.small:
            return ensemble_cosine(self.preds, weights, self.targets)
        dot = self.pred_target @ weights
        norm2 = (self.gram @ weights * weights).sum(-1)
        return (dot / norm2.clamp_min(NORM_EPS**2).sqrt()).mean()  # normalize's x / max(|x|, eps)


def weights_by(method: str, preds: torch.Tensor, targets: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    with torch.no_grad():
        greedy = greedy_weights(preds, targets, size)
        if method == "greedy":
            return greedy
        if method == "bagged":
            return bagged_weights(preds, targets, size, seed)
    return simplex_weights(preds, targets, greedy)


def fit_weights(
    val_preds: torch.Tensor,
    val_targets: torch.Tensor,
    size: int,
    method: str = "auto",
    seed: int = 0,
    val_groups: np.ndarray | None = None,
) -> tuple[str, torch.Tensor, dict[str, float]]:
    """Weights fitted on validation only, and the cross-fitted val cosine of each method tried.

    ``auto`` chooses the method by 2-fold cross-fitting over validation documents (``val_groups``):
    weights fitted on one half of the documents are scored on the other, so a method that fits the
    validation windows more closely (the simplex) is not preferred for that alone. The chosen
    method is then fitted on the whole validation split.
    """
    methods = ("greedy", "bagged", "simplex") if method == "auto" else (method,)
    crossfit = {}
    if val_groups is not None and len(np.unique(val_groups)) >= 2:
        docs = np.unique(val_groups)
        half = np.isin(val_groups, np.random.default_rng(seed).permutation(docs)[: len(docs) // 2])
        folds = [torch.from_numpy(half), torch.from_numpy(~half)]
        for name in methods:
            scores = []
            for fit, held in (folds, folds[::-1]):
                w = weights_by(name, val_preds[:, fit], val_targets[fit], size, seed)
                scores.append((ensemble_cosine(val_preds[:, held], w, val_targets[held]) * held.sum()).item())
            crossfit[name] = sum(scores) / len(val_groups)
    best = max(crossfit, key=crossfit.get) if crossfit else methods[0]
    return best, weights_by(best, val_preds, val_targets, size, seed), crossfit


# --- members --------------------------------------------------------------------------------------


class BaselineMember(nn.Module):
    """A classical baseline as an ensemble member: a fixed function of the context, with the
    fitted numbers (recency's decay, ridge's weights) as buffers, so it saves like a model."""

    def __init__(
        self, name: str, decay: float | None = None, ridge: dict | None = None, min_context: int = 1
    ):
        super().__init__()
        self.name, self.decay, self.min_context = name, decay, min_context
        for key, value in (ridge or {}).items():
            self.register_buffer(key, value)

    def forward(self, x):
        if self.name == "mean":
            return context_mean_baseline(x[:, -self.min_context :])
        if self.name == "last":
            return last_vector_baseline(x)
        if self.name == "recency":
            return recency_weighted_baseline(x, self.decay)
        return ridge_prediction(x, self.x_mean, self.r_mean, self.weights)

    def describe(self) -> dict:
        return {"name": self.name, "decay": self.decay, "min_context": self.min_context}


def fitted_baseline_members(data: LVMData, storage: Path) -> list[BaselineMember]:
    predictors, fitted = fitted_baselines(data, storage)
    ridge = predictors["ridge"]
    return [
        BaselineMember("mean", min_context=data.min_context),
        BaselineMember("last"),
        BaselineMember("recency", decay=fitted["recency"]["decay"]),
        BaselineMember(
            "ridge", ridge={"x_mean": ridge.x_mean, "r_mean": ridge.r_mean, "weights": ridge.weights}
        ),
    ]


class Ensemble(nn.Module):
    """Predicts like a single model: contexts [B, k, D] -> normalised weighted mean of members.

    Members may read shorter contexts than the ensemble; each sees the last ``ks[i]`` positions.
    """

    def __init__(self, members: list[nn.Module], weights: torch.Tensor, ks: list[int]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.ks = list(ks)
        self.register_buffer("weights", weights.float())

    def forward(self, x):
        preds = torch.stack([normalize(m(x[:, -k:]).float(), dim=-1) for m, k in zip(self.members, self.ks)])
        return normalize(torch.einsum("m,mbd->bd", self.weights, preds), dim=-1)


def load_ensemble(path: str | Path, device: str | torch.device = "cpu") -> tuple[Ensemble, dict]:
    """Rebuild an ensemble folder; returns (model, the record as a dict)."""
    path = Path(path)
    record = read_ensemble(path)
    models, ks = [], []
    for member in record.members:
        if member.baseline is not None:
            models.append(_load_baseline_member(path, member))
        else:
            folder = _member_folder(path, member)
            _check_member_files(path, member)
            model, meta = load_model(folder, device)
            check_fingerprint(meta, member.fingerprint, folder)
            models.append(model)
        ks.append(member.k)
    weights = torch.tensor([m.weight for m in record.members])
    return Ensemble(models, weights, ks).to(device).eval(), to_json(record)


def _check_member_files(root: Path, member: MemberRecord) -> None:
    """A member's files are what the ensemble was built with (ensembles written before digests were
    recorded carry none and are taken as they are)."""
    folder = _member_folder(root, member)
    if member.digest is not None and folder.is_dir() and files_digest(folder) != member.digest:
        raise UserError(
            f"{folder}: member {member.name} has changed since the ensemble was built (its weights or "
            "config.json were replaced or edited); rebuild the ensemble with `lvm-search ensemble`"
        )


def _member_folder(root: Path, member: MemberRecord) -> Path:
    relative = Path(member.checkpoint or "")
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise UserError(
            f"{root / ENSEMBLE_RECORD}: member {member.name}: checkpoint must be a folder inside the ensemble"
        )
    return root / relative


def _load_baseline_member(root: Path, member: MemberRecord) -> BaselineMember:
    spec = member.baseline
    name = spec.get("name")
    if name not in BASELINE_MEMBERS:
        raise UserError(f"{root / ENSEMBLE_RECORD}: member {member.name}: unknown baseline {name!r}")
    ridge = None
    if name == "ridge":
        _check_member_files(root, member)
        weights = _member_folder(root, member) / RIDGE_WEIGHTS
        try:
            ridge = load_file(weights)
        except Exception as e:  # safetensors raises several types for a damaged file
            raise UserError(f"{weights}: not a readable safetensors file ({reason(e)})") from None
    return BaselineMember(
        name, decay=spec.get("decay"), ridge=ridge, min_context=spec.get("min_context") or 1
    )


# --- the command ----------------------------------------------------------------------------------


@dataclass
class Candidate:
    name: str  # "<run>/<trial_id>" or "baseline:<name>"
    arch: str
    k: int
    fingerprint: str
    model: nn.Module = field(repr=False)
    source: Path | None = None  # the checkpoint folder
    val_pred: torch.Tensor = field(repr=False, default=None)
    test_pred: torch.Tensor = field(repr=False, default=None)


def runs_data(summaries: list[RunSummary], data_path: str | None) -> LVMData:
    """The data the runs were trained on, loaded once at their longest context: ``data_path``, else
    the one file the runs were trained on. ``.with_k(k)`` gives it at any run's k.

    Runs may differ in k only. With one min_context (and split) every k has the same val and test
    targets, so models of different k are scored, compared and ensembled window by window.
    """
    sources = {s.data.source for s in summaries}
    if data_path is None and len(sources) == 1 and Path(next(iter(sources))).is_file():
        data_path = next(iter(sources))
    shared = {
        (s.data.min_context, tuple(s.data.extra_train), s.data.split_seed, s.data.horizon) for s in summaries
    }
    if len(shared) > 1:
        raise UserError(
            f"runs {[s.name for s in summaries]} were windowed differently (min_context, split seed, extra "
            "training data or horizon); their scores are not comparable window by window"
        )
    min_context, extra, split_seed, horizon = shared.pop()
    k = max(s.data.k for s in summaries)
    if is_windows_file(data_path):  # fixed windows: no min_context to ask for
        min_context = None
    return load_data(
        data_path, k=k, min_context=min_context, extra_train=extra, seed=split_seed, horizon=horizon
    )


def build_ensemble(recipe: Recipe, storage: str | Path = "runs", data_path: str | None = None) -> dict:
    storage = Path(storage)
    out_dir = ensemble_dir(storage, recipe.name)
    runs = find_runs(storage, recipe.runs, recipe.source)
    data = runs_data([s for _, s in runs], data_path)
    candidates = _predict_candidates(_load_candidates(recipe, storage, runs, data), data, storage)

    val_targets = data.targets("val")
    logger.info(f"ensemble: fitting weights on val ({recipe.method}, {recipe.ensemble_size} selections)")
    method, weights, crossfit = fit_weights(
        torch.stack([c.val_pred for c in candidates]),
        val_targets,
        recipe.ensemble_size,
        recipe.method,
        recipe.seed,
        data.splits["val"].groups(),
    )
    kept = [i for i, w in enumerate(weights.tolist()) if w > 0]
    weights = weights[kept] / weights[kept].sum()
    members = [candidates[i] for i in kept]

    scores, best_single, intervals = _score(data, candidates, members, weights, val_targets)
    record = _ensemble_record(
        recipe, data, method, members, weights, candidates, scores, best_single, intervals, crossfit
    )
    logger.info(f"ensemble: writing {out_dir}")
    write_folder(out_dir, lambda tmp: _fill(tmp, record, members), _is_ensemble, "an ensemble folder")
    return {**to_json(record), "path": str(out_dir)}


def _load_candidates(
    recipe: Recipe, storage: Path, runs: list[tuple[Path, RunSummary]], data: LVMData
) -> list[Candidate]:
    """The best trials of each run (``recipe.top_k``), then the classical baselines if asked for."""
    candidates = []
    for folder, summary in runs:
        trials = sorted(
            (t for t in summary.trials if t.status == "ok" and t.checkpoint),
            key=lambda t: t.val_cosine,
            reverse=True,
        )
        chosen = trials if recipe.top_k == "all" else trials[: recipe.top_k]
        logger.info(f"ensemble: {summary.name}: {len(chosen)} of {len(trials)} finished trials")
        for trial in chosen:
            member_data = data.with_k(summary.trial_k(trial))
            checkpoint = folder / trial.checkpoint
            model, meta = load_model(checkpoint, data.device)
            check_fingerprint(meta, member_data.fingerprint, checkpoint)
            candidates.append(
                Candidate(
                    f"{summary.name}/{trial.trial_id}",
                    meta["arch"],
                    member_data.k,
                    member_data.fingerprint,
                    model,
                    checkpoint,
                )
            )
    if not candidates:
        raise UserError(
            f"{storage}: the runs {[s.name for _, s in runs]} have no finished trial with a checkpoint"
        )
    if recipe.baselines:
        # fitted, or read back from the storage (baseline_cache says which)
        logger.info(f"ensemble: the classical baselines at k={data.k}")
        for member in fitted_baseline_members(data, storage):
            candidates.append(
                Candidate(f"baseline:{member.name}", "baseline", data.k, data.fingerprint, member)
            )
    return candidates


def _predict_candidates(candidates: list[Candidate], data: LVMData, storage: Path) -> list[Candidate]:
    """Fill in each candidate's normalised val and test predictions; the candidates whose val
    predictions are all finite (the others are left out, with a warning)."""
    logger.info(f"ensemble: predicting val and test windows with {len(candidates)} candidates")
    for c in candidates:
        view = data.with_k(c.k)
        c.val_pred = normalize(predict(c.model, view, "val"), dim=-1)
        c.test_pred = normalize(predict(c.model, view, "test"), dim=-1)
    finite = [bool(torch.isfinite(c.val_pred).all()) for c in candidates]
    for c, ok in zip(candidates, finite):
        if not ok:
            logger.warning(
                f"ensemble: {c.name}: left out, its val predictions are not finite (NaN or Inf weights?)"
            )
    candidates = [c for c, ok in zip(candidates, finite) if ok]
    if not any(c.source is not None for c in candidates):  # baselines alone are not an ensemble of models
        raise UserError(f"{storage}: no trained candidate gives finite predictions on val; retrain the runs")
    return candidates


def _score(
    data: LVMData,
    candidates: list[Candidate],
    members: list[Candidate],
    weights: torch.Tensor,
    val_targets: torch.Tensor,
) -> tuple[dict, Candidate, dict]:
    """The ensemble, the mean of context and every candidate scored on val and test; the best single
    model (chosen on val); and bootstrap intervals over test documents for the ensemble's gains."""
    windows = {split: {} for split in ("val", "test")}
    for split in ("val", "test"):
        combined = normalize(
            torch.einsum("m,mnd->nd", weights, torch.stack([getattr(m, f"{split}_pred") for m in members])),
            dim=-1,
        )
        windows[split]["ensemble"] = per_window(combined, data, split)
        windows[split]["mean"] = per_window(
            predict(ReferenceMean(data.min_context), data, split), data, split
        )
        for c in candidates:
            windows[split][c.name] = per_window(getattr(c, f"{split}_pred"), data, split)
    scores = {split: {name: summarise(w) for name, w in windows[split].items()} for split in windows}

    models = [c for c in candidates if c.source is not None]
    best_single = max(models, key=lambda c: scores["val"][c.name]["cosine"])  # chosen on val
    boot = DocumentBootstrap(data.splits["test"].groups())
    test = {name: w["cosine"].cpu().numpy() for name, w in windows["test"].items()}
    intervals = {
        "test_cosine": boot.mean(test["ensemble"]).as_dict(),
        "gain_over_mean_pct": boot.gain_pct(test["ensemble"], test["mean"]).as_dict(),
        "gain_over_best_single_pct": boot.gain_pct(test["ensemble"], test[best_single.name]).as_dict(),
        "resamples": len(boot.counts),
        "unit": "test documents",
        "val_error_correlation": _error_correlation([c.val_pred for c in models], val_targets),
    }
    return scores, best_single, intervals


def _ensemble_record(
    recipe: Recipe,
    data: LVMData,
    method: str,
    members: list[Candidate],
    weights: torch.Tensor,
    candidates: list[Candidate],
    scores: dict,
    best_single: Candidate,
    intervals: dict,
    crossfit: dict[str, float],
) -> EnsembleRecord:
    """What ensemble.json holds: the members and their weights, every candidate's scores, the gains."""
    return EnsembleRecord(
        name=recipe.name,
        recipe=recipe.source,
        method=method,
        fingerprint=data.fingerprint,
        data=DataInfo(**data.summary()),
        splits={name: SplitSize(**size) for name, size in data.split_sizes().items()},
        members=[
            MemberRecord(
                name=m.name,
                arch=m.arch,
                k=m.k,
                weight=w,
                fingerprint=m.fingerprint,
                checkpoint=f"{ENSEMBLE_MEMBERS}/{i:02d}",
                baseline=m.model.describe() if isinstance(m.model, BaselineMember) else None,
                metrics={split: scores[split][m.name] for split in ("val", "test")},
            )
            for i, (m, w) in enumerate(zip(members, weights.tolist()))
        ],
        candidates=[
            {
                "name": c.name,
                "arch": c.arch,
                "k": c.k,
                "metrics": {split: scores[split][c.name] for split in ("val", "test")},
            }
            for c in candidates
        ],
        metrics={split: scores[split]["ensemble"] for split in ("val", "test")},
        baseline={"mean": {split: scores[split]["mean"] for split in ("val", "test")}},
        best_single={
            "name": best_single.name,
            "metrics": {s: scores[s][best_single.name] for s in ("val", "test")},
        },
        gain_pct={
            split: {
                "over_mean": 100
                * (scores[split]["ensemble"]["cosine"] / scores[split]["mean"]["cosine"] - 1),
                "over_best_single": 100
                * (scores[split]["ensemble"]["cosine"] / scores[split][best_single.name]["cosine"] - 1),
            }
            for split in ("val", "test")
        },
        intervals=intervals,
        val_crossfit=crossfit,
        provenance=provenance.collect(data.device),
    )


def _fill(folder: Path, record: EnsembleRecord, members: list[Candidate]) -> None:
    """Copy the members in, then record the digest of each member's files and of the record itself:
    what loading the ensemble (and a search it teaches) checks it still is."""
    for member, entry in zip(members, record.members):
        target = folder / entry.checkpoint
        if member.source is not None:
            _link_or_copy(member.source, target)
        elif member.model.name == "ridge":
            target.mkdir(parents=True)
            save_file(
                {k: v.contiguous() for k, v in member.model.state_dict().items()},
                target / RIDGE_WEIGHTS,
            )
        if target.is_dir():
            entry.digest = files_digest(target)
    record.digest = record_digest(to_json(record))
    write_json(folder / ENSEMBLE_RECORD, record)


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard links where the file system allows (no extra space), else copies."""
    target.mkdir(parents=True)
    for item in source.iterdir():
        try:
            os.link(item, target / item.name)
        except OSError:
            shutil.copy2(item, target / item.name)


def _is_ensemble(path: Path) -> bool:
    return (path / ENSEMBLE_RECORD).is_file()


def _error_correlation(preds: list[torch.Tensor], targets: torch.Tensor) -> dict | None:
    """How alike the members' mistakes are: the mean pairwise correlation, over val windows, of
    their per-window cosine errors. Near 1, averaging them cannot help much."""
    if len(preds) < 2:
        return None
    errors = torch.stack([1 - (p * targets).sum(-1) for p in preds]).double()
    corr = torch.corrcoef(errors)
    pairs = corr[torch.triu_indices(len(preds), len(preds), 1).unbind()]
    return {
        "mean": pairs.mean().item(),
        "min": pairs.min().item(),
        "max": pairs.max().item(),
        "members": len(preds),
    }
