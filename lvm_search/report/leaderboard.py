"""The leaderboard: a markdown file with PNG plots beside it, generated from a storage folder.

Rows: the best trial of every run in the storage (each named by its run, so a second search of an
architecture never hides the first; runs windowed unlike the newest are named and left out), every
ensemble, and the classical baselines, all scored here on the same test windows and ranked by test
cosine. Every row carries a 95% interval from a bootstrap over test documents, and every gain is
paired (both sides scored on the same resampled documents). The wording says "beats" only where a
gain's interval excludes zero.

Beyond the table: which single model to use when (the most accurate, and the fastest and smallest
of those as accurate on validation), the error analysis of the best single model against the best
baseline (``analysis``), the best AMN's attention, and PED-ANOVA parameter importances.

Every "best" (model, baseline, AMN, the most accurate, the fastest and smallest as accurate) is chosen
on validation by ``_best_on_val`` or paired val intervals; test scores only rank and compare what was
chosen. Computing is here, the markdown in ``report_markdown``, the figures in ``plots``. No Ray is
imported.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
import warnings
from pathlib import Path

import optuna
import torch
from sqlalchemy.exc import SQLAlchemyError

from ..data.texts import PassageTexts
from ..data.windows import LVMData
from ..ensemble.build import load_ensemble, runs_data
from ..errors import UserError
from ..logs import quieted
from ..models.checkpoint import check_fingerprint, load_model
from ..scoring.baseline_cache import fitted_baselines
from ..scoring.intervals import DocumentBootstrap, verdict
from ..scoring.metrics import (
    ReferenceMean,
    last_vector_baseline,
    per_window,
    predict,
    summarise,
)
from ..store.runs import STUDY, all_runs, check_output_file, find_ensembles, write_file
from . import plots as plots_
from .analysis import attention_examples, attention_profile, document_means, error_analysis
from .markdown import IMPORTANCE_TOP, MARK, MIN_TRIALS_FOR_IMPORTANCE, Content, markdown

PLOTS = (
    "val_curves.png",
    "search_progress.png",
    "ensemble_weights.png",
    "document_gains.png",
    "amn_attention.png",
)


logger = logging.getLogger(__name__)


def _log(message: str) -> None:
    logger.info(f"report: {message}")


def measure_latency(fn, data: LVMData, repeats: int = 10) -> dict:
    """Median ms for one window, and predictions/s at batch 1024, on the data's device."""
    test = len(data.splits["test"])
    x1, _ = data.batch("test", slice(0, 1))
    xb, _ = data.batch("test", torch.arange(1024, device=data.device) % test)

    def timed(x) -> float:
        if data.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(x)
        if data.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.no_grad():
        fn(x1), fn(xb)  # warm-up
        one = statistics.median(timed(x1) for _ in range(repeats))
        batch = statistics.median(timed(xb) for _ in range(3))
    return {"ms_batch1": 1000 * one, "preds_per_s_batch1024": 1024 / batch}


def check_out(out: Path) -> Path:
    """The report may replace a report it wrote, and its own plots, nothing else."""
    check_output_file(out, ".md", _is_report, "a report that lvm-search wrote")
    plots = out.parent / f"{out.stem}_plots"
    if plots.exists():
        foreign = [p.name for p in plots.iterdir()] if plots.is_dir() else [plots.name]
        foreign = [name for name in foreign if name not in PLOTS]
        if foreign or not plots.is_dir():
            raise UserError(
                f"{plots}: holds files lvm-search did not write ({', '.join(foreign[:3])}); "
                "choose another --out"
            )
    return plots


def _is_report(path: Path) -> bool:
    try:
        return path.read_text(errors="replace").startswith(MARK)
    except OSError:
        return False


def build_report(
    storage: str | Path = "runs", out: str | Path = "reports/leaderboard.md", data_path: str | None = None
) -> dict:
    t0 = time.perf_counter()
    storage, out = Path(storage), Path(out)
    plots = check_out(out)
    runs, left_out = _comparable_runs(all_runs(storage), data_path)
    summaries = [s for _, s in runs]
    _log(f"loading the data of {len(runs)} run(s)")
    data = runs_data(summaries, data_path)
    boot = DocumentBootstrap(data.splits["test"].groups())
    val_boot = DocumentBootstrap(data.splits["val"].groups())

    rows, models = _model_rows(runs, data)
    ensemble_rows, ensembles = _ensemble_rows(storage, data)
    rows += ensemble_rows
    rows += _baseline_rows(
        data, {r["k"] for r in rows if "k" in r} | ({data.k} if ensembles else set()), storage
    )

    mean_row, best_baseline = _intervals_and_ranks(rows, ensembles, runs, data, boot)

    seconds = {"scoring": time.perf_counter() - t0}
    t1 = time.perf_counter()
    usage = _usage(rows, val_boot, boot)
    texts = PassageTexts(data)
    analysis = _error_analysis(rows, models, best_baseline, data, texts)
    attention = _attention(rows, models, texts)
    seconds["choices_error_analysis_attention"] = time.perf_counter() - t1

    _log("plots and parameter importances")
    t1 = time.perf_counter()
    figures = {
        "curves": plots_.val_curves(summaries, plots / PLOTS[0], mean_row["val"]["cosine"]),
        "progress": plots_.search_progress(summaries, plots / PLOTS[1]),
    }
    if ensembles:
        figures["weights"] = plots_.ensemble_weights(ensembles, plots / PLOTS[2])
    t2 = time.perf_counter()
    if analysis:
        figures["documents"] = plots_.document_gains(
            analysis.pop("document_differences"), best_baseline["model"], plots / PLOTS[3]
        )
    if attention:
        figures["attention"] = plots_.attention(
            attention["profile"], f"AMN run {attention['run']}", plots / PLOTS[4]
        )
    seconds["document_and_attention_plots"] = time.perf_counter() - t2
    importances = {s.name: _importances(folder / STUDY, s.name) for folder, s in runs}
    content = Content(rows, summaries, ensembles, data, best_baseline, importances, figures, out, boot)
    content.usage, content.analysis, content.attention, content.left_out = (
        usage,
        analysis,
        attention,
        left_out,
    )
    write_file(out, markdown(content))
    seconds["plots_importances_markdown"] = time.perf_counter() - t1
    for r in rows:
        del r["windows"], r["val_windows"]
    _log(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return {
        "path": str(out),
        "rows": rows,
        "best_baseline": best_baseline["model"],
        "which_model": usage,
        "error_analysis": analysis,
        "amn_attention": attention,
        "runs_left_out": left_out,
        "data": data.summary(),
        "splits": data.split_sizes(),
        "figures": {k: str(v) for k, v in figures.items()},
        "seconds": time.perf_counter() - t0,
        "seconds_by_part": seconds,  # plots_importances_markdown includes the two new plots
    }


def _intervals_and_ranks(
    rows: list[dict], ensembles: list[dict], runs, data: LVMData, boot: DocumentBootstrap
) -> tuple[dict, dict]:
    """Add each row's bootstrap intervals over test documents, then rank the rows by test cosine.
    Returns the mean-of-context row and the best baseline on val, which the report compares against."""
    _log("bootstrap intervals over test documents")
    mean_row = next(r for r in rows if r["model"] == "mean of context")
    best_baseline = _best_on_val([r for r in rows if r["kind"] == "baseline"])
    _intervals(rows, boot, mean_row, best_baseline)
    for r, record in zip((r for r in rows if r["kind"] == "ensemble"), ensembles):
        member_windows = _member_windows(record, record["best_single"]["name"], runs, data)
        if member_windows is not None:
            r["gain_over_best_member_pct"] = boot.gain_pct(r["windows"], member_windows).as_dict()
    rows.sort(key=lambda r: r["test"]["cosine"], reverse=True)
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    return mean_row, best_baseline


def _comparable_runs(runs, data_path: str | None):
    """The runs windowed like the newest one (same file, min_context, extra training data, split
    seed and horizon): every row is scored on one set of windows. The others are named, with the reason."""

    def windowing(s):
        return (
            None if data_path else s.data.source,
            s.data.min_context,
            tuple(s.data.extra_train),
            s.data.split_seed,
            s.data.horizon,
        )

    newest = windowing(runs[-1][1])
    kept = [(f, s) for f, s in runs if windowing(s) == newest]
    left_out = [
        f"{s.arch} run `{s.name}`: trained on {Path(s.data.source).name} with min_context "
        f"{s.data.min_context}, split seed {s.data.split_seed}"
        + (f", horizon {s.data.horizon}" if s.data.horizon != 1 or newest[-1] != 1 else "")
        + (
            f" and extra training data {', '.join(Path(e).name for e in s.data.extra_train)}"
            if s.data.extra_train
            else ""
        )
        for f, s in runs
        if windowing(s) != newest
    ]
    for line in left_out:
        logger.warning(f"report: left out {line}, not the windows of the newest run")
    return sorted(kept, key=lambda r: (r[1].arch, r[1].name)), left_out


def _model_rows(runs, data: LVMData) -> tuple[list[dict], dict]:
    """One row per run: its best trial (chosen on val by the search); and each row's model and data."""
    rows, models = [], {}
    for folder, s in runs:
        if not s.best:
            continue
        trial = s.trial(s.best.trial_id)
        k = s.trial_k(trial)
        name = f"{s.arch} run `{s.name}` (best of {s.counts.trials} trials, k={k})"
        _log(f"scoring {s.arch} run {s.name} (best of {s.counts.trials} trials, k={k})")
        model, meta = load_model(folder / s.best.checkpoint, data.device)
        check_fingerprint(meta, data.with_k(k).fingerprint, folder / s.best.checkpoint)
        row = _row(name, "model", model, data.with_k(k), meta["params"], trial.time_total_s)
        rows.append({**row, "run": s.name, "arch": s.arch, "k": k})
        models[name] = (model, data.with_k(k))
    return rows, models


def _ensemble_rows(storage: Path, data: LVMData) -> tuple[list[dict], list[dict]]:
    rows, records = [], []
    for folder, record in find_ensembles(storage):
        if record.fingerprint != data.fingerprint:
            _log(f"skipping ensemble {record.name}: built on other data")
            continue
        _log(f"scoring ensemble {record.name} ({len(record.members)} members)")
        model, record_json = load_ensemble(folder, data.device)
        params = sum(p.numel() for p in model.parameters())
        name = f"ensemble {record.name} ({record.method}, {len(record.members)} members)"
        row = _row(name, "ensemble", model, data, params, None)
        row["best_member"] = record.best_single["name"]
        rows.append(row)
        records.append(record_json)
    return rows, records


def _baseline_rows(data: LVMData, model_ks: set[int], storage: Path) -> list[dict]:
    """The baselines, fitted on train (ridge's lambda on val): on the classic k = min_context windows,
    and the fitted ones again at every context length a model row reads (fits kept in ``storage``)."""
    classic = data.with_k(data.min_context)
    rows = [
        _row("mean of context", "baseline", ReferenceMean(data.min_context), classic, 0, 0.0),
        _row("last vector", "baseline", last_vector_baseline, classic, 0, 0.0),
    ]
    for d in (data.with_k(k) for k in sorted({classic.k, *model_ks})):
        _log(f"the recency and ridge baselines at k={d.k}")  # fitted, or read back (baseline_cache)
        predictors, fitted = fitted_baselines(d, storage)
        decay, recency, ridge = fitted["recency"]["decay"], predictors["recency"], predictors["ridge"]
        rows.append(
            _row(f"recency-weighted mean (k={d.k}, decay {decay:.2f})", "baseline", recency, d, 1, 0.0)
        )
        params = ridge.weights.numel() + ridge.r_mean.numel()
        rows.append(_row(f"ridge (k={d.k}, lambda {ridge.lam:g})", "baseline", ridge, d, params, 0.0))
    return rows


def _intervals(rows, boot: DocumentBootstrap, mean_row: dict, best_baseline: dict) -> None:
    for r in rows:
        r["test_interval"] = boot.mean(r["windows"]).as_dict()
        r["gain_over_mean_pct"] = boot.gain_pct(r["windows"], mean_row["windows"]).as_dict()
        if r["kind"] != "baseline":
            r["gain_over_best_baseline_pct"] = boot.gain_pct(r["windows"], best_baseline["windows"]).as_dict()


def _best_on_val(rows: list[dict]) -> dict:
    """The row with the best val cosine: every "best" of the report is chosen here, never on test."""
    return max(rows, key=lambda r: r["val"]["cosine"])


def _usage(rows, val_boot: DocumentBootstrap, test_boot: DocumentBootstrap) -> dict | None:
    """Which single model to use when, chosen on validation: the most accurate (best val cosine), and
    the fastest and the smallest of those whose paired val difference to it includes zero. Test only
    compares each with the most accurate (paired, over test documents)."""
    singles = [r for r in rows if r["kind"] == "model"]
    if not singles:
        return None
    best = _best_on_val(singles)
    as_good = []
    for r in singles:
        val_diff = val_boot.difference(r["val_windows"], best["val_windows"])
        if r is best or val_diff.low <= 0 <= val_diff.high:
            as_good.append((r, val_diff))

    def entry(r, val_diff) -> dict:
        test_diff = test_boot.difference(r["windows"], best["windows"])
        return {
            "model": r["model"],
            "val_cosine": r["val"]["cosine"],
            "val_difference": val_diff.as_dict(),
            "test_cosine": r["test_interval"],
            "test_difference": test_diff.as_dict(),
            "test_verdict": verdict(test_diff, "beats"),
            "ms_batch1": r["latency"]["ms_batch1"],
            "preds_per_s_batch1024": r["latency"]["preds_per_s_batch1024"],
            "params": r["params"],
        }

    fastest = min(as_good, key=lambda p: p[0]["latency"]["ms_batch1"])
    smallest = min(as_good, key=lambda p: p[0]["params"])
    return {
        "candidates": len(singles),
        "val_documents": int(val_boot.windows_per_doc.size),
        "test_documents": int(test_boot.windows_per_doc.size),
        "as_accurate_on_val": [r["model"] for r, _ in as_good],
        "most_accurate": entry(best, val_boot.difference(best["val_windows"], best["val_windows"])),
        "fastest": entry(*fastest),
        "smallest": entry(*smallest),
    }


def _error_analysis(
    rows, models: dict, best_baseline: dict, data: LVMData, texts: PassageTexts
) -> dict | None:
    """The error analysis of the best single model on validation against the best baseline (both chosen
    on val), and every model's per-document differences to that baseline (for the plot)."""
    singles = [r for r in rows if r["kind"] == "model"]
    if not singles:
        return None
    best = _best_on_val(singles)
    model, view = models[best["model"]]
    _log(f"error analysis of {best['model']}")
    result = error_analysis(model, view, "test", best["windows"], best_baseline["windows"], texts)
    test = data.splits["test"]
    result["model"], result["baseline"] = best["model"], best_baseline["model"]
    result["document_differences"] = {
        r.get("run", r["model"]): document_means(r["windows"], test)
        - document_means(best_baseline["windows"], test)
        for r in rows
        if r["kind"] != "baseline"
    }
    return result


def _attention(rows, models: dict, texts: PassageTexts) -> dict | None:
    """The attention of the best AMN on validation: its mean weight per position and a few windows."""
    amns = [r for r in rows if r.get("arch") == "amn"]
    if not amns:
        return None
    best = _best_on_val(amns)
    model, view = models[best["model"]]
    _log(f"attention of {best['model']}")
    return {
        "model": best["model"],
        "run": best["run"],
        "residual": model.cfg.residual,
        "profile": attention_profile(model, view, "test"),
        "examples": attention_examples(model, view, "test", texts),
    }


def _member_windows(record: dict, name: str, runs, data: LVMData):
    """The per-window test cosine of an ensemble's best member (a trial of one of the runs)."""
    run_name, _, trial_id = name.partition("/")
    for folder, s in runs:
        if s.name == run_name:
            trial = next((t for t in s.trials if t.trial_id == trial_id and t.checkpoint), None)
            if trial is None:
                return None
            view = data.with_k(s.trial_k(trial))
            model, _ = load_model(folder / trial.checkpoint, data.device)
            return per_window(predict(model, view, "test"), view, "test")["cosine"].cpu().numpy()
    return None


def _row(name: str, kind: str, fn, data: LVMData, params: int, train_s) -> dict:
    with torch.no_grad():
        val, test = predict(fn, data, "val"), predict(fn, data, "test")
    val_windows, test_windows = per_window(val, data, "val"), per_window(test, data, "test")
    return {
        "model": name,
        "kind": kind,
        "val": summarise(val_windows),
        "test": summarise(test_windows),
        "windows": test_windows["cosine"].cpu().numpy(),
        "val_windows": val_windows["cosine"].cpu().numpy(),
        "params": params,
        "cos_per_m_params": summarise(test_windows)["cosine"] / (params / 1e6) if params >= 1000 else None,
        "train_s": train_s,
        "latency": measure_latency(fn, data),
    }


def _importances(study_path: Path, name: str) -> dict | None:
    """PED-ANOVA importances of the run's settings, named as what ran (Optuna's default evaluator has
    changed across versions; fANOVA would need scikit-learn, which lvm-search does not install)."""
    if not study_path.exists():
        return None
    try:
        with quieted("optuna"):
            study = optuna.load_study(study_name=name, storage=f"sqlite:///{study_path}")
    except (KeyError, ValueError, RuntimeError, SQLAlchemyError):
        # A study file from another tool or version, or not a database: importances are optional.
        logger.warning(f"report: {study_path}: not a readable Optuna study; importances left out")
        return None
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE or len({t.value for t in complete}) < 2:
        return None
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=IMPORTANCE_TOP)
    with quieted("optuna"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's notes on small studies: the report states the counts
        values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return {
        "evaluator": f"PED-ANOVA (Optuna {optuna.__version__}, PedAnovaImportanceEvaluator)",
        "finished": len(complete),
        "top": math.ceil(IMPORTANCE_TOP * len(complete)),
        "values": values,
    }
