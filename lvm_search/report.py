"""The leaderboard: a markdown file with PNG plots beside it, generated from a storage folder.

Rows: the best trial of the latest run of each architecture, every ensemble, and the classical
baselines, all scored here on the same test windows and ranked by test cosine. Test scores only
rank what was already chosen on validation; nothing here chooses anything.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import optuna
import torch
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

from .checkpoint import check_fingerprint, load_model
from .data import LVMData
from .ensemble import ARTIFACT, find_runs, load_ensemble, runs_data
from .errors import UserError
from .metrics import (
    RidgeBaseline,
    context_mean_baseline,
    fit_recency_decay,
    last_vector_baseline,
    predict,
    recency_weighted_baseline,
    score,
)
from .search import STUDY

MIN_TRIALS_FOR_IMPORTANCE = 4


def measure_latency(fn, data: LVMData, repeats: int = 30) -> dict:
    """Median ms for one window, and predictions/s at batch 1024, on the data's device."""
    x1, _ = data.batch("test", slice(0, 1))
    xb, _ = data.batch("test", torch.arange(1024, device=data.device) % len(data.splits["test"]))

    def timed(x) -> float:
        if data.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(x)
        if data.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.no_grad():
        for _ in range(3):
            fn(x1), fn(xb)  # warm-up
        one = statistics.median(timed(x1) for _ in range(repeats))
        batch = statistics.median(timed(xb) for _ in range(max(3, repeats // 5)))
    return {"ms_batch1": 1000 * one, "preds_per_s_batch1024": 1024 / batch}


def build_report(storage: str | Path = "runs", out: str | Path = "reports/leaderboard.md", data_path: str | None = None) -> dict:
    storage, out = Path(storage), Path(out)
    summaries = find_runs(storage, (), str(storage))
    datas = runs_data(summaries, data_path, classic=True)
    classic, data = datas[min(datas)], datas[max(datas)]  # k = min_context, and the longest context
    plots = out.parent / f"{out.stem}_plots"
    try:
        plots.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out}: cannot write the report folder ({e.strerror})") from None

    rows = []
    # architectures: the best trial of each latest run, chosen on val by the search
    for s in summaries:
        if not s["best"]:
            continue
        checkpoint = storage / s["name"] / s["best"]["checkpoint"]
        run_data = datas[s["data"]["k"]]
        model, meta = load_model(checkpoint, run_data.device)
        check_fingerprint(meta, run_data.fingerprint, checkpoint)
        trial = next(t for t in s["trials"] if t["trial_id"] == s["best"]["trial_id"])
        rows.append(
            _row(f"{s['arch']} (best of {s['counts']['trials']} trials, k={run_data.k})", "model", model, run_data, meta["params"], trial["time_total_s"])
        )
    # ensembles
    ensembles = []
    for path in sorted((storage / "ensembles").glob(f"*/{ARTIFACT}")):
        model, record = load_ensemble(path.parent, data.device)
        if record["fingerprint"] != data.fingerprint:
            continue  # built on other data; not comparable
        params = sum(p.numel() for p in model.parameters())
        rows.append(_row(f"ensemble {record['name']} ({record['method']}, {len(record['members'])} members)", "ensemble", model, data, params, None))
        ensembles.append(record)
    # baselines, fitted on train (and ridge's lambda on val): on the classic k = min_context windows,
    # and the fitted ones again on the longest context the runs read
    rows.append(_row("mean of context", "baseline", context_mean_baseline, classic, 0, 0.0))
    rows.append(_row("last vector", "baseline", last_vector_baseline, classic, 0, 0.0))
    for d in [classic] if classic is data else [classic, data]:
        decay, ridge = fit_recency_decay(d), RidgeBaseline(d)
        rows.append(_row(f"recency-weighted mean (k={d.k}, decay {decay:.2f})", "baseline",
                         lambda x, decay=decay: recency_weighted_baseline(x, decay), d, 1, 0.0))
        rows.append(_row(f"ridge (k={d.k}, lambda {ridge.lam:g})", "baseline", ridge, d, ridge.weights.numel() + ridge.r_mean.numel(), 0.0))

    mean_row = next(r for r in rows if r["model"] == "mean of context")
    mean_test = mean_row["test"]["cosine"]
    best_baseline = max((r for r in rows if r["kind"] == "baseline"), key=lambda r: r["test"]["cosine"])
    rows.sort(key=lambda r: r["test"]["cosine"], reverse=True)
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
        r["gain_over_mean_pct"] = 100 * (r["test"]["cosine"] / mean_test - 1)

    figures = {
        "curves": _plot_curves(summaries, plots / "val_curves.png", mean_row["val"]["cosine"]),
        "progress": _plot_progress(summaries, plots / "search_progress.png"),
    }
    if ensembles:
        figures["weights"] = _plot_weights(ensembles, plots / "ensemble_weights.png")
    importances = {s["arch"]: _importances(storage / s["name"] / STUDY, s["name"]) for s in summaries}
    text = _markdown(rows, summaries, ensembles, data, best_baseline, importances, figures, out)
    out.write_text(text)
    return {"path": str(out), "rows": rows, "figures": {k: str(v) for k, v in figures.items()}}


def _row(name: str, kind: str, fn, data: LVMData, params: int, train_s) -> dict:
    with torch.no_grad():
        if isinstance(fn, torch.nn.Module):
            val, test = predict(fn, data, "val"), predict(fn, data, "test")
        else:
            val, test = (fn(data.batch(split, slice(None))[0]) for split in ("val", "test"))
    test_scores = score(test, data, "test")
    return {
        "model": name,
        "kind": kind,
        "val": score(val, data, "val"),
        "test": test_scores,
        "params": params,
        "cos_per_m_params": test_scores["cosine"] / (params / 1e6) if params >= 1000 else None,
        "train_s": train_s,
        "latency": measure_latency(fn, data),
    }


def _importances(study_path: Path, name: str) -> dict | None:
    if not study_path.exists():
        return None
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{study_path}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    return optuna.importance.get_param_importances(study)


def _plot_curves(summaries, path: Path, baseline: float) -> Path:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for s in summaries:
        if s["best"]:
            h = s["best"]["history"]
            ax.plot([e["epoch"] for e in h], [e["val_cosine"] for e in h], label=s["arch"])
    ax.axhline(baseline, color="grey", linestyle="--", label="mean of context")
    ax.set(xlabel="epoch", ylabel="val cosine", title="Best trial of each search: validation cosine")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _plot_progress(summaries, path: Path) -> Path:
    fig = Figure(figsize=(10, 4))
    by_trial, by_time = fig.subplots(1, 2)
    for s in summaries:
        done = [t for t in s["trials"] if t["status"] == "ok"]
        by_number = sorted(done, key=lambda t: t["number"])
        best, curve = float("-inf"), []
        for t in by_number:
            best = max(best, t["val_cosine"])
            curve.append(best)
        by_trial.plot([t["number"] for t in by_number], curve, marker="o", label=s["arch"])
        by_end = sorted(done, key=lambda t: t["finished_at"] or 0)
        if by_end and by_end[0]["finished_at"]:
            start = min(t["finished_at"] - (t["time_total_s"] or 0) for t in by_end)
            best, curve = float("-inf"), []
            for t in by_end:
                best = max(best, t["val_cosine"])
                curve.append(best)
            by_time.plot([t["finished_at"] - start for t in by_end], curve, marker="o", label=s["arch"])
    by_trial.set(xlabel="trial number", ylabel="best val cosine so far", title="Search progress by trial")
    by_time.set(xlabel="wall time (s)", title="Search progress by wall time")
    by_trial.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _plot_weights(ensembles, path: Path) -> Path:
    fig = Figure(figsize=(7, 3 + 0.2 * sum(len(e["members"]) for e in ensembles)))
    ax = fig.subplots()
    labels, weights = [], []
    for e in ensembles:
        for m in e["members"]:
            labels.append(f"{e['name']}: {m['run']}/{m['trial_id']}")
            weights.append(m["weight"])
    ax.barh(labels, weights)
    ax.set(xlabel="weight", title="Ensemble weights (fitted on validation)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _fmt(value, spec: str, empty: str = "–") -> str:
    return empty if value is None else format(value, spec)


def _markdown(rows, summaries, ensembles, data: LVMData, best_baseline, importances, figures, out: Path) -> str:
    rel = lambda p: Path(p).relative_to(out.parent).as_posix()  # noqa: E731
    lines = [
        "# LVM leaderboard",
        "",
        f"Generated by `lvm-search report` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"latency measured on {data.device.type} ({torch.get_num_threads()} threads). "
        "Ranked by **test** cosine; every row is scored on the same test windows. Models and ensemble "
        "weights were chosen on validation only.",
        "",
        "| rank | model | test cos | val cos | gain vs mean (test) | Hit@1 | Hit@5 | MRR | backward margin | params | cos / M params | train s | ms @ batch 1 | preds/s @ 1024 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['rank']} | {r['model']} | {t['cosine']:.4f} | {r['val']['cosine']:.4f} | {r['gain_over_mean_pct']:+.2f}% "
            f"| {t['hit1']:.3f} | {t['hit5']:.3f} | {t['mrr']:.3f} | {t['backward_margin']:+.4f} | {r['params']:,} "
            f"| {_fmt(r['cos_per_m_params'], '.3f')} | {_fmt(r['train_s'], '.0f')} | {r['latency']['ms_batch1']:.3f} "
            f"| {r['latency']['preds_per_s_batch1024']:,.0f} |"
        )
    lines += ["", "## Against the baselines", ""]
    for r in rows:
        if r["kind"] == "baseline":
            continue
        beats = r["test"]["cosine"] > best_baseline["test"]["cosine"]
        verdict = "beats" if beats else "does **not** beat"
        lines.append(
            f"- {r['model']} {verdict} the best baseline on test ({best_baseline['model']}, "
            f"{best_baseline['test']['cosine']:.4f}) with {r['test']['cosine']:.4f}."
        )

    sizes = data.split_sizes()
    lines += [
        "",
        "## Data",
        "",
        f"Source `{Path(data.source).name}` ({data.format} format), D={data.dim}, contexts of up to k={data.k} passages "
        f"(a target needs {data.min_context} earlier passages of its document), fingerprint `{data.fingerprint}`.",
        "",
        "| split | documents | windows |",
        "|---|---:|---:|",
        *[f"| {name} | {s['docs']} | {s['windows']} |" for name, s in sizes.items()],
        "",
        "## Searches",
    ]
    for s in summaries:
        c = s["counts"]
        scores = [t["val_cosine"] for t in s["trials"] if t["status"] == "ok"]
        lines += [
            "",
            f"### {s['arch']} (run `{s['name']}`)",
            "",
            f"{c['trials']} trials in {s['wall_s']:.0f} s: {c['ok']} finished, {c['stopped_early']} stopped early by ASHA, "
            f"{c['diverged']} diverged, {c['errored']} errored.",
        ]
        if scores:
            lines.append(
                f"Val cosine over finished trials: min {min(scores):.4f}, median {statistics.median(scores):.4f}, "
                f"max {max(scores):.4f} (mean-of-context on val: {s['baseline_val']['mean']['cosine']:.4f})."
            )
        if s["best"]:
            lines += ["", "| best config | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v, '.4g') if isinstance(v, float) else v} |" for k, v in s["best"]["config"].items()]
        imp = importances.get(s["arch"])
        if imp:
            lines += ["", "| parameter | importance (fANOVA, Optuna) |", "|---|---:|"]
            lines += [f"| {k} | {v:.3f} |" for k, v in imp.items()]
        else:
            lines += ["", f"(Parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCE} finished trials.)"]

    if ensembles:
        lines += ["", "## Ensembles"]
        for e in ensembles:
            g = e["gain_pct"]["test"]
            lines += [
                "",
                f"### {e['name']} ({e['method']})",
                "",
                f"Test gain {g['over_mean']:+.2f}% over the mean of context and {g['over_best_single']:+.2f}% over the "
                "best single member (the one with the best val cosine).",
                "",
                "| member | arch | weight | val cos | test cos |",
                "|---|---|---:|---:|---:|",
            ]
            lines += [
                f"| {m['run']}/{m['trial_id']} | {m['arch']} | {m['weight']:.3f} | {m['metrics']['val']['cosine']:.4f} | {m['metrics']['test']['cosine']:.4f} |"
                for m in e["members"]
            ]
    lines += ["", "## Plots", ""]
    titles = {"curves": "Validation cosine per epoch", "progress": "Best-so-far val cosine", "weights": "Ensemble weights"}
    lines += [f"![{titles[k]}]({rel(v)})" for k, v in figures.items()]
    return "\n".join(lines) + "\n"
