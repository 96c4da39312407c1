"""Confidence intervals by bootstrap over documents.

Windows of one document are not independent (they share passages and topic), so a resample draws
whole documents with replacement and every window of a drawn document comes along. A mean over a
resample is then (sum over drawn documents of their window sums) / (their window counts).

Gains are *paired*: both rows are scored on the same resampled documents, so what the two have in
common (easy or hard documents) cancels. An interval is the 2.5th to 97.5th percentile of the
resampled values; a gain "beats" zero only when its whole interval lies above zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    value: float  # on the data as it is
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


class DocumentBootstrap:
    """One set of resampled documents, shared by every interval computed from it (so gains pair)."""

    def __init__(self, groups: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED):
        self.groups = np.asarray(groups)
        n_docs = int(self.groups.max()) + 1 if len(self.groups) else 0
        self.windows_per_doc = np.bincount(self.groups, minlength=n_docs).astype(np.float64)
        rng = np.random.default_rng(seed)
        # counts[r, d]: how often document d was drawn in resample r
        self.counts = rng.multinomial(n_docs, np.full(n_docs, 1.0 / n_docs), size=resamples).astype(
            np.float64
        )
        self.resampled_windows = self.counts @ self.windows_per_doc

    def _doc_sums(self, per_window: np.ndarray) -> np.ndarray:
        return np.bincount(
            self.groups, weights=np.asarray(per_window, dtype=np.float64), minlength=len(self.windows_per_doc)
        )

    def resampled_means(self, per_window: np.ndarray) -> np.ndarray:
        return (self.counts @ self._doc_sums(per_window)) / self.resampled_windows

    def mean(self, per_window: np.ndarray) -> Interval:
        return _interval(float(np.mean(per_window)), self.resampled_means(per_window))

    def difference(self, a: np.ndarray, b: np.ndarray) -> Interval:
        """mean(a) - mean(b), paired."""
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return _interval(float(a.mean() - b.mean()), self.resampled_means(a - b))

    def gain_pct(self, a: np.ndarray, b: np.ndarray) -> Interval:
        """100 * (mean(a) / mean(b) - 1), paired: the relative gain of a over b."""
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        ratios = self.resampled_means(a) / self.resampled_means(b)
        return _interval(float(100 * (a.mean() / b.mean() - 1)), 100 * (ratios - 1))


def _interval(value: float, resampled: np.ndarray) -> Interval:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


def verdict(gain: Interval, what: str = "beats") -> str:
    """The report's wording: "beats" only where the interval excludes zero."""
    if gain.low > 0:
        return what
    if gain.high < 0:
        return "is beaten by"
    return "is not distinguishable from"
