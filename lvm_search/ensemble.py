"""Ensembles: weighted averages of the best checkpoints' predicted vectors.

Members' predictions are L2-normalised, summed with non-negative weights that add up to 1, and
normalised again. The weights are fitted on the validation split only:

* greedy: Caruana et al. (2004), forward selection with replacement from a sorted initialisation
  (the n best members, n chosen on validation); weight = times selected / selections.
* simplex: starting from the greedy weights, direct optimisation of validation cosine over the
  simplex (softmax parametrisation).

``auto`` keeps whichever scores higher on validation. The test split only scores the result.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.nn.functional import normalize

from .checkpoint import check_fingerprint, load_model
from .data import LVMData, load_data
from .errors import UserError
from .metrics import predict, reference_mean, score

ARTIFACT = "ensemble.json"
METHODS = ("auto", "greedy", "simplex")


# --- the recipe ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    runs: tuple[str, ...] = ()  # run names under the storage folder; empty = latest run of each arch
    top_k: int = 1  # best trials taken from each run
    method: str = "auto"
    ensemble_size: int = 20  # greedy selections (with replacement)
    name: str = "default"  # artifact folder: <storage>/ensembles/<name>
    source: str = ""


def load_recipe(path: str | Path | None) -> Recipe:
    if path is None:
        return Recipe(source="(defaults)")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such ensemble recipe")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        raise UserError(f"{path}: not valid YAML") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    allowed = set(Recipe.__dataclass_fields__) - {"source"}
    unknown = set(map(str, raw)) - allowed
    if unknown:
        raise UserError(f"{path}: unknown key(s) {sorted(unknown)} (allowed: {', '.join(sorted(allowed))})")
    runs = raw.get("runs") or []
    if not isinstance(runs, list) or not all(isinstance(r, str) and r for r in runs):
        raise UserError(f"{path}: runs: expected a list of run names")
    for key in ("top_k", "ensemble_size"):
        value = raw.get(key, getattr(Recipe, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{path}: {key}: expected an integer >= 1, got {value!r}")
    if raw.get("method", "auto") not in METHODS:
        raise UserError(f"{path}: method: expected one of {METHODS}, got {raw.get('method')!r}")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name or "/" in name:
        raise UserError(f"{path}: name: expected a folder name, got {name!r}")
    return Recipe(
        tuple(runs), raw.get("top_k", 1), raw.get("method", "auto"), raw.get("ensemble_size", 20), name, str(path)
    )


# --- weights ------------------------------------------------------------------------------------


def ensemble_cosine(preds: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cosine of the normalised weighted sum. preds [m, M, D], weights [m], targets [M, D]."""
    combined = normalize(torch.einsum("m,mnd->nd", weights, preds), dim=-1)
    return (combined * targets).sum(-1).mean()


def greedy_weights(preds: torch.Tensor, targets: torch.Tensor, size: int) -> torch.Tensor:
    """Caruana's forward selection with replacement, from the best sorted initialisation."""
    m = len(preds)
    singles = torch.stack([ensemble_cosine(preds[i : i + 1], torch.ones(1), targets) for i in range(m)])
    order = torch.argsort(singles, descending=True)

    def counts_of(members) -> torch.Tensor:
        return torch.bincount(torch.as_tensor(members, dtype=torch.long), minlength=m).float()

    def value(counts) -> float:
        return ensemble_cosine(preds, counts / counts.sum(), targets).item()

    inits = [order[: n].tolist() for n in range(1, min(m, size) + 1)]
    selected = max(inits, key=lambda members: value(counts_of(members)))
    best_counts, best_value = counts_of(selected), value(counts_of(selected))
    counts = best_counts.clone()
    for _ in range(size - len(selected)):
        candidates = [counts + torch.eye(m)[i] for i in range(m)]
        scores = [value(c) for c in candidates]
        i = max(range(m), key=lambda j: scores[j])  # ties go to the lower index: the better single
        counts = candidates[i]
        if scores[i] > best_value:
            best_counts, best_value = counts.clone(), scores[i]
    return best_counts / best_counts.sum()


def simplex_weights(preds: torch.Tensor, targets: torch.Tensor, start: torch.Tensor, steps: int = 300) -> torch.Tensor:
    """Maximise validation cosine over non-negative weights summing to one, from ``start``."""
    logits = torch.log(start.clamp_min(1e-4)).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -ensemble_cosine(preds, logits.softmax(0), targets)
        loss.backward()
        optimizer.step()
    weights = logits.detach().softmax(0)
    # Softmax never reaches zero; members below half a percent are dropped rather than carried.
    weights = torch.where(weights < 0.005, torch.zeros_like(weights), weights)
    return weights / weights.sum()


def fit_weights(val_preds: torch.Tensor, val_targets: torch.Tensor, size: int, method: str = "auto") -> tuple[str, torch.Tensor]:
    """Weights fitted on validation only: greedy, simplex, or (auto) whichever scores higher on val."""
    candidates = {"greedy": greedy_weights(val_preds, val_targets, size)}
    if method in ("auto", "simplex"):
        candidates["simplex"] = simplex_weights(val_preds, val_targets, candidates["greedy"])
    if method != "auto":
        candidates = {method: candidates[method]}
    best = max(candidates, key=lambda name: ensemble_cosine(val_preds, candidates[name], val_targets).item())
    return best, candidates[best]


# --- the artifact -------------------------------------------------------------------------------


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
    """Rebuild an ensemble artifact folder; returns (model, the artifact's record)."""
    path = Path(path)
    record_path = path / ARTIFACT
    if not record_path.is_file():
        raise UserError(f"{path}: not an ensemble folder (no {ARTIFACT})")
    try:
        record = json.loads(record_path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{record_path}: not valid JSON ({e})") from None
    models, ks = [], []
    for member in record["members"]:
        model, meta = load_model(path / member["checkpoint"], device)
        check_fingerprint(meta, member["fingerprint"], path / member["checkpoint"])
        models.append(model)
        ks.append(meta["k"])
    weights = torch.tensor([m["weight"] for m in record["members"]])
    return Ensemble(models, weights, ks).to(device).eval(), record


# --- the command ----------------------------------------------------------------------------------


@dataclass
class Member:
    run: str
    trial_id: str
    arch: str
    checkpoint: Path
    model: nn.Module = field(repr=False)
    data: LVMData = field(repr=False)  # at the member's k
    val_pred: torch.Tensor = field(repr=False, default=None)
    test_pred: torch.Tensor = field(repr=False, default=None)


def find_runs(storage: Path, names: tuple[str, ...], where: str) -> list[dict]:
    """Summaries of the named runs, or of the latest run of each architecture."""
    if names:
        summaries = []
        for name in names:
            path = storage / name / "summary.json"
            if not path.is_file():
                raise UserError(f"{where}: runs: no finished run '{name}' under {storage} (no {path.name})")
            summaries.append(json.loads(path.read_text()))
        return summaries
    latest: dict[str, tuple[float, dict]] = {}
    for path in sorted(storage.glob("*/summary.json")):
        summary = json.loads(path.read_text())
        mtime = path.stat().st_mtime
        if summary["arch"] not in latest or mtime > latest[summary["arch"]][0]:
            latest[summary["arch"]] = (mtime, summary)
    if not latest:
        raise UserError(f"{storage}: no finished search (no */summary.json); run `lvm-search run` first")
    return [latest[arch][1] for arch in sorted(latest)]


def runs_data(summaries: list[dict], data_path: str | None, classic: bool = False) -> dict[int, LVMData]:
    """The data the runs were trained on, by context length k (with ``classic``, also k = min_context,
    the windows the baselines are quoted on): ``data_path``, else the one file the runs were trained on.

    Runs may differ in k only. With one min_context (and split) every k has the same val and test
    targets, so models of different k are scored, compared and ensembled window by window.
    """
    sources = {s["data"]["source"] for s in summaries}
    if data_path is None and len(sources) == 1 and Path(next(iter(sources))).is_file():
        data_path = next(iter(sources))
    specs = [s["data"] for s in summaries]
    shared = {(spec.get("min_context") or spec["k"], tuple(spec.get("extra_train", ()))) for spec in specs}
    if len(shared) > 1:
        raise UserError(
            f"runs {[s['name'] for s in summaries]} were windowed differently (min_context or extra training data); "
            "their scores are not comparable window by window"
        )
    min_context, extra = shared.pop()
    ks = sorted({spec["k"] for spec in specs} | ({min_context} if classic else set()))
    return {k: load_data(data_path, k=k, min_context=min_context, extra_train=extra) for k in ks}


def build_ensemble(recipe: Recipe, storage: str | Path = "runs", data_path: str | None = None) -> dict:
    storage = Path(storage)
    summaries = find_runs(storage, recipe.runs, recipe.source)
    datas = runs_data(summaries, data_path)
    data = datas[max(datas)]  # the ensemble reads the longest context; every k scores the same windows

    members = []
    for summary in summaries:
        trials = sorted(
            (t for t in summary["trials"] if t["status"] == "ok" and t["checkpoint"]),
            key=lambda t: t["val_cosine"],
            reverse=True,
        )
        for trial in trials[: recipe.top_k]:
            checkpoint = storage / summary["name"] / trial["checkpoint"]
            member_data = datas[summary["data"]["k"]]
            model, meta = load_model(checkpoint, data.device)
            check_fingerprint(meta, member_data.fingerprint, checkpoint)
            members.append(Member(summary["name"], trial["trial_id"], meta["arch"], checkpoint, model, member_data))
    if not members:
        raise UserError(f"{storage}: the runs {[s['name'] for s in summaries]} have no finished trial with a checkpoint")

    for member in members:
        member.val_pred = normalize(predict(member.model, member.data, "val"), dim=-1)
        member.test_pred = normalize(predict(member.model, member.data, "test"), dim=-1)
    val_preds = torch.stack([m.val_pred for m in members])
    _, val_targets = data.batch("val", slice(None))

    method, weights = fit_weights(val_preds, val_targets, recipe.ensemble_size, recipe.method)

    kept = [i for i, w in enumerate(weights.tolist()) if w > 0]
    weights = weights[kept] / weights[kept].sum()
    chosen = [members[i] for i in kept]

    def scores(val_pred, test_pred) -> dict:
        return {"val": score(val_pred, data, "val"), "test": score(test_pred, data, "test")}

    combined = {
        split: normalize(torch.einsum("m,mnd->nd", weights, torch.stack([getattr(m, f"{split}_pred") for m in chosen])), dim=-1)
        for split in ("val", "test")
    }
    ens_scores = scores(combined["val"], combined["test"])
    baseline = scores(*(reference_mean(data, s) for s in ("val", "test")))
    member_scores = [scores(m.val_pred, m.test_pred) for m in members]
    best_single = max(range(len(members)), key=lambda i: member_scores[i]["val"]["cosine"])  # chosen on val

    out_dir = storage / "ensembles" / recipe.name
    record = {
        "name": recipe.name,
        "recipe": recipe.source,
        "method": method,
        "fingerprint": data.fingerprint,
        "data": data.summary(),
        "splits": data.split_sizes(),
        "members": [
            {
                "run": m.run,
                "trial_id": m.trial_id,
                "arch": m.arch,
                "checkpoint": os.path.relpath(m.checkpoint, out_dir),
                "k": m.data.k,
                "fingerprint": m.data.fingerprint,
                "weight": w,
                "metrics": member_scores[members.index(m)],
            }
            for m, w in zip(chosen, weights.tolist())
        ],
        "candidates": [
            {"run": m.run, "trial_id": m.trial_id, "arch": m.arch, "metrics": s} for m, s in zip(members, member_scores)
        ],
        "metrics": ens_scores,
        "baseline": {"mean": baseline},
        "best_single": {"run": members[best_single].run, "trial_id": members[best_single].trial_id, "metrics": member_scores[best_single]},
        "gain_pct": {
            split: {
                "over_mean": 100 * (ens_scores[split]["cosine"] / baseline[split]["cosine"] - 1),
                "over_best_single": 100 * (ens_scores[split]["cosine"] / member_scores[best_single][split]["cosine"] - 1),
            }
            for split in ("val", "test")
        },
    }
    _write_artifact(out_dir, record)
    record["path"] = str(out_dir)
    return record


def _write_artifact(out_dir: Path, record: dict) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{ARTIFACT}.tmp"
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, out_dir / ARTIFACT)
    except OSError as e:
        raise UserError(f"{out_dir}: cannot write the ensemble ({e.strerror})") from None
