"""Scores of predicted vectors, and the classical baselines every model must beat.

All scores are computed on a split's windows, so a model and a baseline scored on the same split
see exactly the same windows.

* cosine: mean cos(prediction, target).
* Hit@1, Hit@5, MRR: rank the true next passage among all target passages of the split by cosine
  to the prediction (ties count in the prediction's favour: a repeated passage is the same text).
  Above ``MAX_CANDIDATES`` target passages, each window ranks its passage among a fixed seeded
  sample of that many (and itself), so scoring stays linear in the split's size; the shipped
  corpora's splits are all below it, so their scores are exact.
* backward margin: mean cos(pred, target) - cos(pred, last context vector); positive when the
  prediction leans forward rather than repeating the last passage.

A prediction that is not a finite, non-zero vector (NaN weights, say) scores the worst on every
metric: cosine -1 and the last rank.

Whole splits are never gathered at once: contexts are built chunk by chunk from the data's index
tensors, and the ridge baseline accumulates its normal equations over chunks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.functional import normalize

from ..data.windows import LVMData
from ..errors import UserError
from ..limits import MAX_RIDGE_BYTES, gib
from ..models import context_mean

RECENCY_DECAYS = np.linspace(0.0, 1.0, 21)  # weight of context position i is decay**(age)
RIDGE_LAMBDAS = [10.0**p for p in range(-2, 5)]
MAX_CANDIDATES = 4096
SIMILARITY_BYTES = 2**26  # working memory of one chunk of the similarity matrix
MIN_NORM = 1e-12
CHUNK = 4096


def cosines(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[M] cos(pred, unit target); a prediction that is not a finite non-zero vector scores -1."""
    pred = pred.float()
    norms = pred.norm(dim=-1)
    usable = torch.isfinite(pred).all(-1) & (norms > MIN_NORM)
    cos = (pred * target).sum(-1) / norms.clamp_min(MIN_NORM)
    return torch.where(usable, cos, torch.full_like(cos, -1.0))


def score(pred: torch.Tensor, data: LVMData, split: str) -> dict[str, float]:
    """All metrics of predictions [M, D] for the windows of ``split`` (in the split's order)."""
    return summarise(per_window(pred, data, split))


def per_window(pred: torch.Tensor, data: LVMData, split: str) -> dict[str, torch.Tensor]:
    """Each metric of each window [M]: what ``score`` averages and the bootstrap resamples."""
    s = data.splits[split]
    target = data.targets(split)
    pred = pred.to(target.device).float()
    cos_target = cosines(pred, target)
    # the last context row: always a passage (min_context >= 1), horizon rows before the target
    last = data.vectors[s.targets - data.horizon].float()
    cos_last = cosines(pred, last)
    usable = torch.isfinite(pred).all(-1) & (pred.norm(dim=-1) > MIN_NORM)

    candidates, true_col, n_candidates = _candidates(data.vectors, s.targets, seed=len(s))
    pred = normalize(torch.where(usable[:, None], pred, torch.zeros_like(pred)), dim=-1)
    chunk = max(1, SIMILARITY_BYTES // (4 * max(1, len(candidates))))
    ranks = []
    for lo in range(0, len(pred), chunk):
        p, cols = pred[lo : lo + chunk], true_col[lo : lo + chunk]
        sims = p @ candidates.T
        # The true passage's similarity, read from the same matrix where it is a column, so it
        # never counts as ahead of itself.
        true_sim = torch.where(
            cols >= 0,
            sims.gather(1, cols.clamp_min(0)[:, None]).squeeze(1),
            (p * target[lo : lo + chunk]).sum(-1),
        )
        ranks.append(1 + (sims > true_sim[:, None]).sum(1))
    rank = torch.cat(ranks).float() if ranks else torch.zeros(0)
    rank = torch.where(usable, rank, torch.full_like(rank, float(n_candidates)))
    return {
        "cosine": cos_target,
        "hit1": (rank <= 1).float(),
        "hit5": (rank <= 5).float(),
        "mrr": 1.0 / rank,
        "backward_margin": cos_target - cos_last,
        "candidates": torch.full_like(rank, float(n_candidates)),
    }


def summarise(windows: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: values.mean().item() for name, values in windows.items()}


def _candidates(
    vectors: torch.Tensor, targets: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The split's distinct target passages to rank among (their vectors), each window's column in
    them (-1 where its own passage was not sampled), and how many there are."""
    rows, column = torch.unique(targets, return_inverse=True)
    if len(rows) <= MAX_CANDIDATES:
        return vectors[rows].float(), column, len(rows)
    sample = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:MAX_CANDIDATES]
    position = torch.full((len(rows),), -1, dtype=torch.long)
    position[sample] = torch.arange(MAX_CANDIDATES)
    return vectors[rows[sample.to(rows.device)]].float(), position.to(column.device)[column], MAX_CANDIDATES


@torch.no_grad()
def predict(model, data: LVMData, split: str, batch_size: int = CHUNK) -> torch.Tensor:
    """Predictions of ``model`` (an ``nn.Module`` or a function of contexts) for every window of
    ``split``, on the data's device."""
    is_module = isinstance(model, torch.nn.Module)
    was_training = is_module and model.training
    if is_module:
        model.eval()
    out = [model(x).float() for x, _ in data.chunks(split, batch_size)]
    if is_module:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, data.dim, device=data.device)


# --- baselines -------------------------------------------------------------------------------


def context_mean_baseline(contexts: torch.Tensor) -> torch.Tensor:
    return normalize(context_mean(contexts), dim=-1)


def last_vector_baseline(contexts: torch.Tensor) -> torch.Tensor:
    return normalize(contexts[:, -1], dim=-1)


def recency_weighted_baseline(contexts: torch.Tensor, decay: float) -> torch.Tensor:
    return normalize(context_mean(contexts, decay), dim=-1)


class ReferenceMean:
    """The baseline gains are always quoted against: the mean of the last ``min_context`` passages
    (the reference work's k=5 mean), so runs of any k are compared on the same windows."""

    def __init__(self, min_context: int):
        self.min_context = min_context

    def __call__(self, contexts: torch.Tensor) -> torch.Tensor:
        return context_mean_baseline(contexts[:, -self.min_context :])


def reference_mean(data: LVMData, split: str) -> torch.Tensor:
    return predict(ReferenceMean(data.min_context), data, split)


def fit_recency_decay(data: LVMData) -> float:
    """The decay that maximises train cosine, from a fixed grid (0 = last vector, 1 = plain mean).

    All decays in one pass: the prediction is the normalised weighted sum of the context (padding is
    zero, and the normalisation removes the sum of weights), so one einsum per chunk scores them all.
    """
    decays = torch.tensor(RECENCY_DECAYS, dtype=torch.float32, device=data.device)
    ages = torch.arange(data.k - 1, -1, -1, dtype=torch.float32, device=data.device)
    weights = decays[:, None] ** ages  # [decays, k]; 0 ** 0 = 1: decay 0 keeps the last position
    totals = torch.zeros(len(decays), dtype=torch.float64, device=data.device)
    for x, y in data.chunks("train", 1024):
        sums = torch.einsum("jk,bkd->jbd", weights, x)
        totals += ((sums * y).sum(-1) / sums.norm(dim=-1).clamp_min(MIN_NORM)).double().sum(1)
    # Ties go to the first, as max over the grid did.
    return float(RECENCY_DECAYS[int(torch.argmax(totals))])


class RidgeBaseline:
    """Ridge regression from the flattened context to the residual (target - context mean).

    Fitted on train in float64 from normal equations accumulated chunk by chunk (memory: (k*D)^2,
    whatever the number of windows), with one Cholesky factorisation per lambda; in the dual form
    (windows x windows) when train has fewer windows than k*D. Lambda is chosen on val cosine.
    """

    def __init__(self, x_mean: torch.Tensor, r_mean: torch.Tensor, weights: torch.Tensor, lam: float):
        self.x_mean, self.r_mean, self.weights, self.lam = x_mean, r_mean, weights, lam

    @classmethod
    def fit(cls, data: LVMData) -> "RidgeBaseline":
        features = data.k * data.dim
        n = len(data.splits["train"])
        dual = n < features
        need = 8 * (n * features + n * n if dual else features * features + features * data.dim)
        if need > MAX_RIDGE_BYTES:
            raise UserError(
                f"{data.source}: the ridge baseline at k={data.k} (k x D = {features:,} features) on {n:,} "
                f"train windows needs about {gib(need)}, above the {gib(MAX_RIDGE_BYTES)} lvm-search "
                "allows; use a smaller k"
            )
        sx = torch.zeros(features, dtype=torch.float64)
        sr = torch.zeros(data.dim, dtype=torch.float64)
        gram = torch.zeros(features, features, dtype=torch.float64) if not dual else None
        xtr = torch.zeros(features, data.dim, dtype=torch.float64) if not dual else None
        rows, residuals = [], []
        for x, y in data.chunks("train"):
            X, R = cls._features(x), (y - context_mean(x)).double().cpu()
            sx += X.sum(0)
            sr += R.sum(0)
            if dual:
                rows.append(X)
                residuals.append(R)
            else:
                gram += X.T @ X
                xtr += X.T @ R
        x_mean, r_mean = sx / n, sr / n
        if dual:
            Xc = torch.cat(rows) - x_mean
            Rc = torch.cat(residuals) - r_mean
            kernel = Xc @ Xc.T
            solve = lambda lam: Xc.T @ _solve_spd(kernel, Rc, lam)  # noqa: E731
        else:
            gram -= n * torch.outer(x_mean, x_mean)
            xtr -= n * torch.outer(x_mean, r_mean)
            solve = lambda lam: _solve_spd(gram, xtr, lam)  # noqa: E731
        best = None
        for lam in RIDGE_LAMBDAS:
            candidate = cls(x_mean, r_mean, solve(lam), lam)
            value = cosines(predict(candidate, data, "val"), data.targets("val")).double().mean().item()
            if best is None or value > best[0]:
                best = (value, candidate)
        return best[1]

    @staticmethod
    def _features(x):
        return x.reshape(len(x), -1).double().cpu()

    def __call__(self, contexts):
        return ridge_prediction(contexts, self.x_mean, self.r_mean, self.weights)


def ridge_prediction(contexts, x_mean, r_mean, weights) -> torch.Tensor:
    """The ridge baseline's prediction from its fitted numbers, wherever they live (the fit keeps them
    on the CPU; an ensemble member, on its device): the context mean plus the predicted residual."""
    features = contexts.reshape(len(contexts), -1).to(weights.device, torch.float64)
    residual = (features - x_mean) @ weights + r_mean
    return normalize(context_mean(contexts) + residual.to(contexts.device, contexts.dtype), dim=-1)


def _solve_spd(matrix: torch.Tensor, rhs: torch.Tensor, lam: float) -> torch.Tensor:
    factor = torch.linalg.cholesky(matrix + lam * torch.eye(len(matrix), dtype=matrix.dtype))
    return torch.cholesky_solve(rhs, factor)


def fit_baselines(data: LVMData) -> tuple[dict[str, object], dict[str, dict]]:
    """Every classical baseline as a predictor of contexts, fitted on train (ridge's lambda on val),
    and what was fitted."""
    return baseline_predictors(RidgeBaseline.fit(data), fit_recency_decay(data))


def baseline_predictors(ridge: RidgeBaseline, decay: float) -> tuple[dict[str, object], dict[str, dict]]:
    """The classical baselines as predictors of contexts, from the ridge and recency decay fitted."""
    return {
        "mean": context_mean_baseline,
        "last": last_vector_baseline,
        "recency": lambda x, decay=decay: recency_weighted_baseline(x, decay),
        "ridge": ridge,
    }, {"recency": {"decay": decay}}


def baselines(data: LVMData, splits=("val", "test")) -> dict[str, dict]:
    """Every baseline scored on the windows of ``splits``, plus what was fitted on train/val."""
    predictors, fitted = fit_baselines(data)
    fitted["ridge"] = {"lambda": predictors["ridge"].lam}
    out = {}
    for name, fn in predictors.items():
        out[name] = {split: score(predict(fn, data, split), data, split) for split in splits}
        out[name].update(fitted.get(name, {}))
    return out
