"""Scores of predicted vectors, and the classical baselines every model must beat.

All scores are computed on a split's windows, so a model and a baseline scored on the same split
see exactly the same windows.

* cosine: mean cos(prediction, target).
* Hit@1, Hit@5, MRR: rank the true next passage among all target passages of the split by cosine
  to the prediction (ties count in the prediction's favour).
* backward margin: mean cos(pred, target) - cos(pred, last context vector); positive when the
  prediction leans forward rather than repeating the last passage.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn.functional import normalize

from .data import LVMData, Split, context_mean

RECENCY_DECAYS = np.linspace(0.0, 1.0, 21)  # weight of context position i is decay**(age)
RIDGE_LAMBDAS = [10.0**p for p in range(-2, 5)]


def score(pred: torch.Tensor, data: LVMData, split: str, chunk: int = 2048) -> dict[str, float]:
    """All metrics of predictions [M, D] for the windows of ``split`` (in the split's order)."""
    s: Split = data.splits[split]
    pred = normalize(pred.float(), dim=-1)
    target, last = data.vectors[s.targets], data.vectors[s.contexts[:, -1]]
    cos_target = (pred * target).sum(-1)
    cos_last = (pred * normalize(last, dim=-1)).sum(-1)

    candidate_rows, true_col = torch.unique(s.targets, return_inverse=True)
    candidates = data.vectors[candidate_rows]
    ranks = []
    for lo in range(0, len(pred), chunk):
        sims = pred[lo : lo + chunk] @ candidates.T
        true_sim = sims.gather(1, true_col[lo : lo + chunk, None])
        ranks.append(1 + (sims > true_sim).sum(1))
    rank = torch.cat(ranks).float()
    return {
        "cosine": cos_target.mean().item(),
        "hit1": (rank <= 1).float().mean().item(),
        "hit5": (rank <= 5).float().mean().item(),
        "mrr": (1.0 / rank).mean().item(),
        "backward_margin": (cos_target - cos_last).mean().item(),
    }


@torch.no_grad()
def predict(model: torch.nn.Module, data: LVMData, split: str, batch_size: int = 4096) -> torch.Tensor:
    """Predictions of ``model`` for every window of ``split``, on the data's device."""
    was_training = model.training
    model.eval()
    out = [model(data.batch(split, slice(lo, lo + batch_size))[0]).float() for lo in range(0, len(data.splits[split]), batch_size)]
    model.train(was_training)
    return torch.cat(out)


# --- baselines -------------------------------------------------------------------------------


def context_mean_baseline(contexts: torch.Tensor) -> torch.Tensor:
    return normalize(context_mean(contexts), dim=-1)


def reference_mean(data: LVMData, split: str) -> torch.Tensor:
    """The gain is always quoted against: the mean of the last ``min_context`` passages (the reference
    work's k=5 mean), so runs of any k are compared with the same baseline on the same windows."""
    return context_mean_baseline(data.batch(split, slice(None))[0][:, -data.min_context :])


def last_vector_baseline(contexts: torch.Tensor) -> torch.Tensor:
    return normalize(contexts[:, -1], dim=-1)


def recency_weighted_baseline(contexts: torch.Tensor, decay: float) -> torch.Tensor:
    return normalize(context_mean(contexts, decay), dim=-1)


def _cosine(pred, target) -> float:
    return (normalize(pred, dim=-1) * target).sum(-1).mean().item()


def fit_recency_decay(data: LVMData) -> float:
    """The decay that maximises train cosine, from a fixed grid (0 = last vector, 1 = plain mean)."""
    x, y = data.batch("train", slice(None))
    return float(max(RECENCY_DECAYS, key=lambda d: _cosine(recency_weighted_baseline(x, d), y)))


class RidgeBaseline:
    """Ridge regression from the flattened context to the residual (target - context mean).

    Fitted on train with float64 normal equations; lambda is chosen on val cosine.
    """

    def __init__(self, data: LVMData):
        x, y = data.batch("train", slice(None))
        X, R = self._features(x), (y - context_mean(x)).double()
        self.x_mean, self.r_mean = X.mean(0), R.mean(0)
        Xc, Rc = X - self.x_mean, R - self.r_mean
        # One eigendecomposition of X^T X serves every lambda.
        self.eigval, self.eigvec = torch.linalg.eigh(Xc.T @ Xc)
        self.xtr = self.eigvec.T @ (Xc.T @ Rc)
        xv, yv = data.batch("val", slice(None))
        self.lam = max(RIDGE_LAMBDAS, key=lambda lam: self._val_cosine(lam, xv, yv))
        self.weights = self._solve(self.lam)

    @staticmethod
    def _features(x):
        return x.reshape(len(x), -1).double()

    def _solve(self, lam):
        return self.eigvec @ (self.xtr / (self.eigval + lam)[:, None])

    def _predict(self, x, weights):
        residual = (self._features(x) - self.x_mean) @ weights + self.r_mean
        return normalize(context_mean(x) + residual.to(x.dtype), dim=-1)

    def _val_cosine(self, lam, xv, yv):
        return _cosine(self._predict(xv, self._solve(lam)), yv)

    def __call__(self, contexts):
        return self._predict(contexts, self.weights)


def baselines(data: LVMData, splits=("val", "test")) -> dict[str, dict]:
    """Every baseline scored on the windows of ``splits``, plus what was fitted on train/val."""
    decay = fit_recency_decay(data)
    ridge = RidgeBaseline(data)
    predictors = {
        "mean": context_mean_baseline,
        "last": last_vector_baseline,
        "recency": lambda x: recency_weighted_baseline(x, decay),
        "ridge": ridge,
    }
    out = {}
    for name, fn in predictors.items():
        out[name] = {split: score(fn(data.batch(split, slice(None))[0]), data, split) for split in splits}
    out["recency"]["decay"] = decay
    out["ridge"]["lambda"] = ridge.lam
    return out
