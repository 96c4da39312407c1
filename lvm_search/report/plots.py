"""The report's figures, each a PNG written atomically. No pyplot: no GUI backend, no global state.

matplotlib is imported only when a figure is made: a bundle for a GPU machine may leave it out
(scripts/offline_bundle.sh), and every other command works without it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..store.runs import write_file


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("lvm-search report needs matplotlib for its plots: pip install matplotlib") from None
    return Figure(**kwargs)


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    write_file(path, buffer.getvalue())
    return path


def val_curves(summaries, path: Path, baseline: float) -> Path:
    fig = _figure(figsize=(7, 4))
    ax = fig.subplots()
    for s in summaries:
        if s.best:
            h = s.best.history
            ax.plot([e.epoch for e in h], [e.val_cosine for e in h], label=f"{s.arch} ({s.name})")
    ax.axhline(baseline, color="grey", linestyle="--", label="mean of context")
    ax.set(xlabel="epoch", ylabel="val cosine", title="Best trial of each search: validation cosine")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def _best_so_far(trials) -> list[float]:
    best, curve = float("-inf"), []
    for t in trials:
        best = max(best, t.val_cosine)
        curve.append(best)
    return curve


def search_progress(summaries, path: Path) -> Path:
    fig = _figure(figsize=(10, 4))
    by_trial, by_time = fig.subplots(1, 2)
    for s in summaries:
        label = f"{s.arch} ({s.name})"
        done = [t for t in s.trials if t.status == "ok" and t.val_cosine is not None]
        by_number = sorted(done, key=lambda t: t.number)
        by_trial.plot([t.number for t in by_number], _best_so_far(by_number), marker="o", label=label)
        by_end = sorted(done, key=lambda t: t.finished_at or 0)
        if by_end and by_end[0].finished_at:
            start = min(t.finished_at - (t.time_total_s or 0) for t in by_end)
            by_time.plot(
                [t.finished_at - start for t in by_end], _best_so_far(by_end), marker="o", label=label
            )
    by_trial.set(xlabel="trial number", ylabel="best val cosine so far", title="Search progress by trial")
    by_time.set(xlabel="wall time (s)", title="Search progress by wall time")
    by_trial.legend()
    fig.tight_layout()
    return _save(fig, path)


def ensemble_weights(ensembles, path: Path) -> Path:
    fig = _figure(figsize=(7, 3 + 0.2 * sum(len(e["members"]) for e in ensembles)))
    ax = fig.subplots()
    labels, weights = [], []
    for e in ensembles:
        for m in e["members"]:
            labels.append(f"{e['name']}: {m['name']}")
            weights.append(m["weight"])
    ax.barh(labels, weights)
    ax.set(xlabel="weight", title="Ensemble weights (fitted on validation)")
    fig.tight_layout()
    return _save(fig, path)


def document_gains(differences: dict[str, np.ndarray], baseline: str, path: Path) -> Path:
    """Per model, the distribution over test documents of (model - baseline) mean cosine: a box and
    one dot per document."""
    names = list(differences)
    fig = _figure(figsize=(9, 1.5 + 0.45 * len(names)))
    ax = fig.subplots()
    ax.boxplot([differences[n] for n in names], vert=False, showfliers=False, widths=0.5)
    jitter = np.random.default_rng(0)
    for i, name in enumerate(names, 1):
        values = differences[name]
        ax.scatter(values, i + jitter.uniform(-0.15, 0.15, len(values)), s=10, alpha=0.6, color="C0")
    ax.axvline(0, color="grey", linestyle="--")
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set(
        xlabel=f"test cosine minus the baseline's, mean per document\n(baseline: {baseline})",
        title="Per test document: each model against the best baseline",
    )
    fig.tight_layout()
    return _save(fig, path)


def attention(profile: dict, label: str, path: Path) -> Path:
    """The AMN's mean attention weight per context position, beside its base's recency weights."""
    k = profile["k"]
    ages = np.arange(k, 0, -1)  # oldest first, as the model reads them
    fig = _figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.bar(
        ages,
        profile["mean_weight"],
        color="C0",
        alpha=0.7,
        label=f"attention, all {profile['windows']} windows",
    )
    if profile["mean_weight_full"] is not None:
        ax.plot(
            ages,
            profile["mean_weight_full"],
            "o-",
            color="C1",
            label=f"attention, the {profile['full_windows']} windows with all {k} passages",
        )
    ax.plot(
        ages,
        profile["base_weight"],
        "s--",
        color="grey",
        label=f"base: decay {profile['base_decay']:.2f} ** age",
    )
    ax.invert_xaxis()
    ax.set(
        xlabel="passages back from the predicted one (1 = the last context passage)",
        ylabel="mean weight",
        title=f"{label}: mean attention per context position (test)",
    )
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)
