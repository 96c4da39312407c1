"""Render reports/quality.md from the results of the product's own default pipeline.

Inputs (``--results``, default ``benchmarks/results/cpu``): ``quality_<corpus>.json`` written by
``quality_pipeline.py`` (the four shipped spaces, ``lvm-search ensemble``, ``lvm-search report`` on
one corpus, timed), ``quality_python_before.json`` (the same pipeline with the spaces of commit
ef08a8d, the defaults before this work) and ``ensembles_linux.json`` from ``ensemble_study.py``
(ensemble recipes compared on one storage folder) and ``distill_<corpus>.json`` from
``distill_study.py`` (the shipped spaces searched again with an ensemble as teacher), and
``ablation_<corpus>.json`` / ``horizons_<corpus>.json`` / ``warm_start_<corpus>.json`` (rendered by
``_ablation.py``, ``_horizons.py`` and ``_warm_start.py`` here). Every number and every verdict below
is computed here from those files; nothing is typed in. The studies are in ``benchmarks/``; nothing
of theirs is imported.

    python benchmarks/render/quality_report.py --out reports/quality.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _ablation import ablation_section
from _horizons import horizons_section
from _markdown import markdown_table
from _warm_start import target_checks, warm_start_section

REPO = Path(__file__).resolve().parents[2]
CORPORA = {  # result file stem: (corpus, role)
    "quality_linux": ("linux-docs", "the corpus the shipped spaces were first tuned on"),
    "quality_python": (
        "python-docs",
        "never used to tune the spaces before this work; chosen on its val here",
    ),
    "quality_austen": ("Austen novels", "held out of every decision: embedded for this report"),
}
TARGET_MINUTES, TARGET_SINGLE_PCT, TARGET_ENSEMBLE_PCT = 20, 6.5, 1.0


def ci(interval: dict, spec: str = ".4f", suffix: str = "") -> str:
    return f"{interval['value']:{spec}}{suffix} [{interval['low']:{spec}}, {interval['high']:{spec}}]"


def verdict(gain: dict) -> str:
    if gain["low"] > 0:
        return "beats"
    if gain["high"] < 0:
        return "**is beaten by**"
    return "**not distinguishable from**"


def model_rows(result: dict) -> list[dict]:
    """The pipeline's own choices: each search's best and its default ensemble (the storage folder
    may also hold the ensembles of ``ensemble_study.py``, reported in their own section)."""
    return [
        r
        for r in result["report"]["rows"]
        if r["kind"] == "model" or (r["kind"] == "ensemble" and r["model"].startswith("ensemble default "))
    ]


def transfer_section(results: dict) -> tuple[list[str], list[tuple[str, bool]]]:
    rows, checks = [], []
    for stem, result in results.items():
        corpus = CORPORA[stem][0]
        best = result["report"]["best_baseline"]
        for r in model_rows(result):
            g = r["gain_over_best_baseline_pct"]
            rows.append([corpus, r["model"], ci(r["test_interval"]), ci(g, "+.2f", "%"), verdict(g)])
            checks.append((f"{corpus}: {r['model'].split(' (')[0]}", g["low"] > 0))
        rows.append(
            [
                corpus,
                f"best classical baseline (on val): {best}",
                f"{next(r for r in result['report']['rows'] if r['model'] == best)['test']['cosine']:.4f}",
                "–",
                "–",
            ]
        )
    lines = [
        "## Transfer: the default pipeline on each corpus",
        "",
        "Each row is a model the pipeline chose on validation (the best trial of each search, and the "
        "ensemble), scored on the corpus's held-out test documents. The gain is over the best classical "
        "baseline, chosen on validation among the mean of context, the last vector, the recency-weighted "
        "mean and ridge regression, each at every context length a model read; the interval is a paired "
        'bootstrap over test documents (1,000 resamples). "beats" only where the interval excludes zero.',
        "",
        markdown_table(
            ["corpus", "model", "test cosine [95% CI]", "gain over best baseline [95% CI]", "verdict"], rows
        ),
        "",
    ]
    return lines, checks


def time_section(results: dict, before: dict | None) -> tuple[list[str], list[tuple[str, bool]]]:
    rows, checks = [], []
    runs = {**{CORPORA[s][0]: r for s, r in results.items()}}
    if before:
        runs["python-docs, defaults of ef08a8d"] = before
    for corpus, result in runs.items():
        steps = result["steps"]
        cells, resumed = [], False
        for s in ("run amn", "run gru", "run lstm", "run transformer", "ensemble", "report"):
            cells.append(f"{steps[s]['wall_s'] / 60:.1f}")
            search = result["searches"].get(s.removeprefix("run "))
            # A search resumed from an earlier start: its summary counts the time of every start.
            if search and search["wall_s"] > steps[s]["wall_s"] + 30:
                cells[-1] += f" (resumed; {search['wall_s'] / 60:.1f} in all, earlier on a shared machine)"
                resumed = True
        total = "not one run" if resumed else f"**{result['total_s'] / 60:.1f}**"
        note = f"; {result['note']}" if result.get("note") else ""
        rows.append([corpus, *cells, total, result["machine"] + note])
    lines = [
        "## Time to a result",
        "",
        "Minutes per step of the default pipeline, each step the product's own command in its own process, "
        "run one after another on an otherwise idle machine unless the machine column says otherwise.",
        "",
        markdown_table(
            [
                "corpus",
                "run amn",
                "run gru",
                "run lstm",
                "run transformer",
                "ensemble",
                "report",
                "total",
                "machine",
            ],
            rows,
        ),
        "",
    ]
    if "quality_python" in results:
        minutes = results["quality_python"]["total_s"] / 60
        checks.append(
            (
                f"default pipeline on python-docs in {TARGET_MINUTES} minutes or less ({minutes:.1f})",
                minutes <= TARGET_MINUTES,
            )
        )
    if before and "quality_python" in results:
        lines += quality_against_before(results["quality_python"], before, checks)
    return lines, checks


def quality_against_before(now: dict, before: dict, checks: list) -> list[str]:
    rows = []
    old = {r["model"].split(" (")[0]: r for r in model_rows(before)}
    for r in model_rows(now):
        name = r["model"].split(" (")[0]
        if name not in old:
            continue
        o = old[name]
        inside = r["test"]["cosine"] >= o["test_interval"]["low"]
        rows.append([name, ci(o["test_interval"]), ci(r["test_interval"]), "yes" if inside else "**no**"])
        checks.append(
            (
                f"python-docs {name}: test cosine at or above the lower end of the old defaults' interval",
                inside,
            )
        )
    return [
        "On python-docs, against the defaults before this work (the spaces of commit ef08a8d, run through "
        "the same pipeline): is each new test cosine within or above the old one's 95% interval?",
        "",
        markdown_table(
            ["model", "old defaults: test [95% CI]", "new defaults: test [95% CI]", "within or above"], rows
        ),
        "",
    ]


def searches_section(results: dict) -> list[str]:
    rows = []
    for stem, result in results.items():
        for arch, s in result["searches"].items():
            best = s["best"] or {}
            config = best.get("config", {})
            rows.append(
                [
                    CORPORA[stem][0],
                    arch,
                    s["counts"]["trials"],
                    s["counts"]["stopped_early"],
                    f"{best.get('val_cosine', float('nan')):.4f}",
                    config.get("k", "–"),
                    f"{config['base_decay']:.2f}" if "base_decay" in config else "–",
                    ", ".join(f"{k}={_short(v)}" for k, v in config.items() if k not in ("k", "base_decay")),
                ]
            )
    return [
        "## The searches",
        "",
        "What each search chose, on validation. The context length k and the base decay are searched per "
        "trial "
        "(every k scores the same windows: targets need 5 earlier passages).",
        "",
        markdown_table(
            ["corpus", "arch", "trials", "stopped early", "best val", "k", "base decay", "other settings"],
            rows,
        ),
        "",
    ]


def crossfit_val(record: dict) -> float | None:
    """The val cosine of the method ``auto`` chose, cross-fitted over validation documents."""
    return (record.get("val_crossfit") or {}).get(record.get("method"))


def ensemble_row(corpus: str, recipe: str, e: dict) -> list:
    g = e["intervals"]["gain_over_best_single_pct"]
    corr = e["intervals"].get("val_error_correlation") or {}
    val = crossfit_val(e)
    return [
        corpus,
        recipe,
        e["method"],
        len(e["members"]),
        "–" if val is None else f"{val:.4f}",
        ci(e["intervals"]["test_cosine"]),
        ci(g, "+.2f", "%"),
        verdict(g),
        f"{corr.get('mean', float('nan')):.3f}",
    ]


def ensembles_section(results: dict, studies: list[dict]) -> tuple[list[str], list[tuple[str, bool]]]:
    lines, checks = ["## Ensembles", ""], []
    rows = [ensemble_row(CORPORA[stem][0], "default recipe", r["ensemble"]) for stem, r in results.items()]
    for study in studies:
        for recipe in study["recipes"]:
            rows.append(ensemble_row(study["corpus"], recipe["name"], recipe["record"]))
            g = recipe["record"]["intervals"]["gain_over_best_single_pct"]
            if study["corpus"] == "linux-docs":
                checks.append(
                    (
                        f"linux-docs ensemble ({recipe['name']}) beats its best member by "
                        f"{TARGET_ENSEMBLE_PCT}% or more, interval excluding zero",
                        g["low"] > 0 and g["value"] >= TARGET_ENSEMBLE_PCT,
                    )
                )
    lines += [
        "Every ensemble's weights were fitted on validation only (its method chosen by 2-fold cross-fitting "
        "over validation documents); the gain is over its best single candidate, chosen on validation, with "
        "a paired bootstrap interval over test documents. The last column is the mean pairwise correlation, "
        "over validation windows, of the candidates' errors (1 - cosine): near 1, averaging cannot help "
        "much.",
        "",
        markdown_table(
            [
                "corpus",
                "recipe",
                "method",
                "members",
                "val (cross-fitted)",
                "test cosine [95% CI]",
                "gain over best member [95% CI]",
                "verdict",
                "error correlation",
            ],
            rows,
        ),
        "",
    ]
    for study in studies:
        best = max(study["recipes"], key=lambda r: crossfit_val(r["record"]) or -1.0)
        lines += [
            f"Recipes compared on {study['corpus']} (one storage folder, `{study['command']}`): "
            + "; ".join(f"**{r['name']}**: {r['description']}" for r in study["recipes"])
            + f". On validation (cross-fitted) **{best['name']}** scores best.",
            "",
        ]
    return lines, checks


def distill_section(studies: dict[str, dict]) -> list[str]:
    if not studies:
        return []
    lines = [
        "## Distilling the ensemble into one model",
        "",
        "The teacher is the `ensembles/wide.yaml` ensemble of the corpus's pipeline run above (every "
        "finished trial and the classical baselines as candidates, weights fitted on validation). "
        "Each shipped space was searched again with `--teacher` (every training target "
        "moved towards the teacher's prediction by `distill` 0.8; the teacher's members trained on the "
        "training documents only), and each search's best trial, chosen on validation, is scored on test "
        "by `lvm-search eval` (`benchmarks/distill_study.py`). Intervals: 95%, bootstrap over test "
        "documents, each model against its own baselines on the same windows. The line under each "
        "table is the share of the teacher's test gain over each search without a teacher that its "
        "student recovers.",
        "",
    ]
    for corpus, study in studies.items():
        lines += distill_table(corpus, study)
    return lines


def distill_table(corpus: str, study: dict) -> list[str]:
    models = study["models"]
    rows = []
    for name, m in models.items():
        e = m["eval"]
        val = m["best"]["val_cosine"] if "best" in m else None
        rows.append(
            [
                name,
                "–" if val is None else f"{val:.4f}",
                ci(e["scores"]["model"]["cosine_interval"]),
                ci(e["gain_over_mean_pct"], "+.2f", "%"),
                ci(e["gain_over_best_baseline_pct"], "+.2f", "%"),
            ]
        )
    recovered = []
    test = lambda m: m["eval"]["scores"]["model"]["cosine"]  # noqa: E731
    for name in models:
        if name.endswith(" with teacher"):
            arch = name.removesuffix(" with teacher")
            plain = models[f"{arch} without teacher"]
            share = (test(models[name]) - test(plain)) / (test(models["teacher"]) - test(plain))
            recovered.append(f"{arch} {100 * share:.0f}%")
    searches = sum(s["wall_s"] for name, s in study["steps"].items() if name.startswith("run "))
    return [
        f"**{corpus}** (the searches with a teacher took {searches / 60:.1f} min"
        f"{'; ' + study['note'] if study.get('note') else ''}):",
        "",
        markdown_table(
            [
                f"model ({corpus})",
                "val (best trial)",
                "test cosine [95% CI]",
                "gain over mean of context [95% CI]",
                "gain over best baseline [95% CI]",
            ],
            rows,
        ),
        "",
        "Recovered: " + ", ".join(recovered) + ".",
        "",
    ]


def single_model_check(results: dict, study: dict | None) -> list[tuple[str, bool]]:
    """The best single model on linux-docs val, among the pipeline's searches and their students."""
    if "quality_linux" not in results:
        return []
    candidates = [
        (r["val"]["cosine"], r["model"].split(" (")[0], r["gain_over_mean_pct"])
        for r in model_rows(results["quality_linux"])
        if r["kind"] == "model"
    ]
    if study is not None:
        candidates += [
            (m["best"]["val_cosine"], name, m["eval"]["gain_over_mean_pct"])
            for name, m in study["models"].items()
            if name.endswith(" with teacher")
        ]
    _, name, gain = max(candidates, key=lambda c: c[0])  # chosen on val
    return [
        (
            f"linux-docs best single model (on val: {name}) {ci(gain, '+.2f', '%')} "
            f"over the mean of context, target +{TARGET_SINGLE_PCT}%",
            gain["value"] >= TARGET_SINGLE_PCT,
        )
    ]


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "cpu"))
    p.add_argument("--out", default=str(REPO / "reports" / "quality.md"))
    args = p.parse_args(argv)
    folder = Path(args.results)
    results = {
        stem: json.loads((folder / f"{stem}.json").read_text())
        for stem in CORPORA
        if (folder / f"{stem}.json").exists()
    }
    before_path = folder / "quality_python_before.json"
    before = json.loads(before_path.read_text()) if before_path.exists() else None
    studies = [json.loads(p.read_text()) for p in sorted(folder.glob("ensembles_*.json"))]
    distill = {  # corpus: study
        CORPORA["quality_" + p.stem.removeprefix("distill_")][0]: json.loads(p.read_text())
        for p in sorted(folder.glob("distill_*.json"))
    }

    transfer, checks = transfer_section(results)
    timing, time_checks = time_section(results, before)
    ensembles, ensemble_checks = ensembles_section(results, studies)
    checks = checks + time_checks + ensemble_checks + single_model_check(results, distill.get("linux-docs"))
    checks += target_checks([json.loads(p.read_text()) for p in sorted(folder.glob("warm_start_*.json"))])
    corpora = [f"`{Path(r['data']).name}` ({CORPORA[s][0]}: {CORPORA[s][1]})" for s, r in results.items()]
    lines = [
        "# Model quality: the default pipeline, on corpora the defaults never saw",
        "",
        "Generated by `python benchmarks/render/quality_report.py` from the results of "
        "`benchmarks/quality_pipeline.py`, "
        "which runs the product's own commands (`lvm-search run` on the four shipped spaces, `lvm-search "
        "ensemble`, "
        "`lvm-search report`) on each corpus. Corpora: "
        + "; ".join(corpora)
        + ". Every split is by document "
        "(80/10/10); test chose nothing.",
        "",
        "## Targets",
        "",
        markdown_table(["target", "met"], [[text, "yes" if ok else "**no**"] for text, ok in checks]),
        "",
        *transfer,
        *timing,
        *searches_section(results),
        *ensembles,
        *distill_section(distill),
        *ablation_section(folder),
        *horizons_section(folder),
        *warm_start_section(folder),
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
