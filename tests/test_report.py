"""The leaderboard, built from tiny real searches of two architectures and their ensemble.

The searches read different context lengths (k=5 and k=7, both with min_context 5), as the shipped
spaces do, so they score the same windows and still ensemble. The AMN is searched twice (the second
time at k=7, under another run name): both runs get their row."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFINED, DEGENERATE, FALSE_REFUSALS, copy_of, one_error

from lvm_search.ensemble.build import build_ensemble, load_recipe
from lvm_search.logs import quieted
from lvm_search.report.leaderboard import _importances, _usage, build_report
from lvm_search.report.markdown import _importance_lines
from lvm_search.scoring.intervals import DocumentBootstrap
from lvm_search.search.spaces import parse_space
from lvm_search.search.tuner import SearchOptions, run_searches

AMN_SPACE = {
    "width": {"type": "choice", "values": [32, 64]},
    "key_dim": {"type": "choice", "values": [16, 32]},
}
# Trial 0 of each at the small end, not at the architecture's full size: the report is under test here.
RUNS = {  # run name: (arch, space, reference, data, samples)
    "amn": ("amn", AMN_SPACE, {"width": 32, "key_dim": 16}, {}, 2),
    "gru": (
        "gru",
        {"width": {"type": "choice", "values": [16, 32]}, "depth": {"type": "int", "low": 1, "high": 2}},
        {"width": 16, "depth": 1},
        {"k": 7, "min_context": 5},
        2,
    ),
    "amn-k7": ("amn", AMN_SPACE, {"width": 32, "key_dim": 16}, {"k": 7, "min_context": 5}, 1),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    storage = tmp / "runs"
    spaces = [
        parse_space(
            {
                "arch": arch,
                "samples": samples,
                "max_concurrent": 2,
                "fixed": {"epochs": 2},
                "space": space,
                "reference": reference,
                "data": data,
            },
            f"{name}.yaml",
        )
        for name, (arch, space, reference, data, samples) in RUNS.items()
    ]
    run_searches(spaces, SearchOptions(storage=str(storage), verbose=0))  # one Ray session for the three
    build_ensemble(load_recipe(None), storage)
    result = build_report(storage, tmp / "reports" / "leaderboard.md")
    return storage, result, (tmp / "reports" / "leaderboard.md").read_text()


def table_rows(markdown: str) -> list[list[str]]:
    lines = markdown.split("\n| rank |")[1].split("\n\n")[0].splitlines()[2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def run_of(model: str) -> str | None:
    found = re.search(r" run `([^`]+)` ", model)
    return found[1] if found else None


def test_the_table_has_one_row_per_run_ensemble_and_baseline(report):
    _, _, markdown = report
    models = [row[1] for row in table_rows(markdown)]
    assert len(models) == 3 + 1 + 4 + 2  # recency and ridge again at the longest context, k=7
    assert sorted(filter(None, map(run_of, models))) == ["amn", "amn-k7", "gru"]
    assert sum(m.startswith("ensemble default") for m in models) == 1
    for baseline in ("mean of context", "last vector"):
        assert sum(m.startswith(baseline) for m in models) == 1
    for baseline in ("recency-weighted mean", "ridge"):
        assert {m.split(",")[0] for m in models if m.startswith(baseline)} == {
            f"{baseline} (k=5",
            f"{baseline} (k=7",
        }


def test_a_second_search_of_an_architecture_keeps_the_first_in_every_section(report):
    storage, result, markdown = report
    rows = {run_of(r["model"]): r for r in result["rows"] if r["kind"] == "model"}
    for name, (arch, *_) in RUNS.items():
        summary = json.loads((storage / name / "summary.json").read_text())
        assert rows[name]["model"].startswith(f"{arch} run `{name}` (best of {len(summary['trials'])} trials")
        assert rows[name]["val"]["cosine"] == pytest.approx(summary["best"]["val_cosine"], abs=1e-4)
        assert f"### {arch} (run `{name}`)" in markdown
    assert rows["amn-k7"]["k"] == 7 and rows["amn"]["k"] == 5


def test_rows_are_ranked_by_test_cosine(report):
    _, _, markdown = report
    rows = table_rows(markdown)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    test_cos = [float(r[2].split()[0]) for r in rows]
    assert test_cos == sorted(test_cos, reverse=True)


def test_numbers_match_the_stored_results(report):
    storage, _, markdown = report
    rows = {run_of(r[1]) or r[1].split(" (")[0]: r for r in table_rows(markdown)}
    for name in RUNS:
        summary = json.loads((storage / name / "summary.json").read_text())
        assert float(rows[name][3]) == pytest.approx(summary["best"]["val_cosine"], abs=1e-4)
    ensemble = json.loads((storage / "ensembles" / "default" / "ensemble.json").read_text())
    row = next(r for name, r in rows.items() if name.startswith("ensemble default"))
    assert float(row[2].split()[0]) == pytest.approx(ensemble["metrics"]["test"]["cosine"], abs=1e-4)
    assert float(row[3]) == pytest.approx(ensemble["metrics"]["val"]["cosine"], abs=1e-4)
    assert rows["mean of context"][4] == "+0.00% [+0.00, +0.00]"


def test_the_report_says_beats_only_where_the_paired_interval_excludes_zero(report):
    _, result, markdown = report
    best_baseline = max(
        (r for r in result["rows"] if r["kind"] == "baseline"), key=lambda r: r["val"]["cosine"]
    )
    assert f"The best classical baseline on validation is {best_baseline['model']}" in markdown
    for r in result["rows"]:
        if r["kind"] == "baseline":
            continue
        gain = r["gain_over_best_baseline_pct"]
        if gain["low"] > 0:
            verdict = "beats"
        elif gain["high"] < 0:
            verdict = "is **beaten** by"
        else:
            verdict = "is **not distinguishable** from"
        assert f"- {r['model']} {verdict} the best classical baseline on test" in markdown
    assert "its best member" in markdown  # the ensemble against its best member, paired


def test_every_row_has_an_interval_around_its_test_cosine(report):
    _, result, markdown = report
    for r in result["rows"]:
        i = r["test_interval"]
        assert i["low"] <= r["test"]["cosine"] <= i["high"] and i["value"] == pytest.approx(
            r["test"]["cosine"]
        )
    assert "1,000 bootstrap resamples of the 6 test documents" in markdown


def test_the_header_records_provenance(report):
    _, _, markdown = report
    header = markdown.splitlines()[3]
    for part in ("lvm-search 0.", "Python 3.", "torch 2.", "Ray 2.", "Optuna ", " on "):
        assert part in header, header


@pytest.mark.hostile(CONFINED)
def test_an_existing_file_that_is_not_a_report_is_never_overwritten(report, tmp_path, cli):
    storage, _, _ = report
    notes = tmp_path / "notes.md"
    notes.write_text("my notes")
    code, _, err = cli("report", "--storage", storage, "--out", notes)
    assert code == 2 and "is not a report that lvm-search wrote" in one_error(err)
    assert notes.read_text() == "my notes" and not (tmp_path / "notes_plots").exists()
    code, _, err = cli("report", "--storage", storage, "--out", tmp_path / "report.txt")
    assert code == 2 and "must name a .md file" in one_error(err)


def _tree(folder: Path) -> dict:
    """Every entry under ``folder``: a link's target, a file's bytes, or that it is a folder."""
    return {
        p.relative_to(folder): os.readlink(p)
        if p.is_symlink()
        else p.read_bytes()
        if p.is_file()
        else "folder"
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.hostile(CONFINED)
@pytest.mark.parametrize(
    "out, message",
    [
        ("mydocs", "mydocs: is a folder, expected a .md file path"),
        ("folder.md", "folder.md: is a folder, expected a .md file path"),
        ("r.md", "r_plots: holds files lvm-search did not write (holiday.png)"),
        ("s.md", "s_plots: holds files lvm-search did not write (s_plots)"),
        ("link.md", "link.md: already exists and is not a report that lvm-search wrote"),
        ("notes.txt/r.md", "notes.txt/r.md: cannot write here"),
    ],
    ids=[
        "a folder",
        "a folder named .md",
        "its plots folder holds a user's file",
        "its plots folder is a user's file",
        "a link to a user's markdown file",
        "a path under a file",
    ],
)
def test_an_out_path_the_report_did_not_write_is_refused_and_left_as_it_was(
    report, tmp_path, cli, out, message
):
    storage, _, _ = report
    (tmp_path / "mydocs").mkdir()
    (tmp_path / "mydocs" / "thesis.tex").write_text("mine")
    (tmp_path / "folder.md").mkdir()
    (tmp_path / "r_plots").mkdir()
    (tmp_path / "r_plots" / "holiday.png").write_bytes(b"\x89PNG mine")
    (tmp_path / "s_plots").write_text("mine")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "README.md").write_text("# mine")
    (tmp_path / "link.md").symlink_to("README.md")
    before = _tree(tmp_path)
    code, _, err = cli("report", "--storage", storage, "--out", tmp_path / out)
    assert code == 2 and f"{tmp_path / message}" in one_error(err)
    assert _tree(tmp_path) == before


@pytest.mark.hostile(FALSE_REFUSALS)
@pytest.mark.slow
def test_a_report_replaces_the_report_and_plots_it_wrote(tiny_storage, tmp_path, cli):
    out = tmp_path / "leaderboard.md"
    assert cli("report", "--storage", tiny_storage, "--out", out)[0] == 0
    out.write_text(out.read_text() + "\nan old line\n")
    code, _, err = cli("report", "--storage", tiny_storage, "--out", out)
    assert code == 0, err[-2000:]
    assert "an old line" not in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leaderboard.md", "leaderboard_plots"]


@pytest.mark.hostile(DEGENERATE)
@pytest.mark.slow
def test_a_run_whose_checkpoints_predict_nan_ranks_last_with_the_worst_scores(tiny_storage, tmp_path, cli):
    from safetensors.torch import load_file, save_file

    storage = copy_of(tiny_storage, tmp_path)  # one run, "amn", and its ensemble (its own copies)
    checkpoints = list((storage / "amn").glob("attempt-*/trial_*/checkpoint_*/model.safetensors"))
    assert checkpoints
    for weights in checkpoints:
        save_file({k: torch.full_like(v, float("nan")) for k, v in load_file(weights).items()}, weights)
    out = tmp_path / "r.md"
    code, _, err = cli("report", "--storage", storage, "--out", out)
    assert code == 0, err[-2000:]
    rows = table_rows(out.read_text())
    (row,) = [r for r in rows if run_of(r[1]) == "amn"]
    assert row[2].startswith("-1.0000 ") and row[5] == "0.000"  # test cos and Hit@1: the worst there is
    assert int(row[0]) == len(rows)  # ranked below every baseline and the ensemble, never first


def test_the_report_and_the_ensemble_do_not_import_ray():
    import subprocess
    import sys

    code = (
        "import sys, lvm_search.report.leaderboard, lvm_search.ensemble.build, lvm_search.report.evaluate\n"
        "print('ray' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )


def test_plots_are_written_beside_the_report(report):
    _, result, markdown = report
    for path in result["figures"].values():
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert len(re.findall(r"!\[[^]]+\]\(leaderboard_plots/[a-z_]+\.png\)", markdown)) == 5


# --- which model to use when -----------------------------------------------------------------------


def test_which_model_to_use_is_chosen_on_validation_among_single_models(report):
    _, result, markdown = report
    usage = result["which_model"]
    singles = [r for r in result["rows"] if r["kind"] == "model"]
    best = max(singles, key=lambda r: r["val"]["cosine"])
    assert usage["most_accurate"]["model"] == best["model"] and usage["candidates"] == 3
    as_good = [r for r in singles if r["model"] in usage["as_accurate_on_val"]]
    assert best in as_good
    assert usage["fastest"]["ms_batch1"] == min(r["latency"]["ms_batch1"] for r in as_good)
    assert usage["smallest"]["params"] == min(r["params"] for r in as_good)
    assert "## Which model to use when" in markdown and "Chosen on **validation**" in markdown


def usage_rows(test_a: float = 0.5):
    """Four models on 10 validation and 10 test documents of 5 windows each: A is the best on val; B
    is as good on val within noise, faster and bigger; C is the fastest and smallest but clearly worse
    on val; D is the best on test only."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 5)
    val_a, test_a = rng.uniform(0.5, 0.7, 50), np.full(50, test_a)

    def row(name, val, test, ms, params):
        return {
            "model": name,
            "kind": "model",
            "val": {"cosine": float(val.mean())},
            "val_windows": val,
            "windows": test,
            "test_interval": {"value": float(test.mean()), "low": 0.0, "high": 1.0},
            "latency": {"ms_batch1": ms, "preds_per_s_batch1024": 1000.0},
            "params": params,
        }

    rows = [
        row("A", val_a, test_a, 5.0, 1_000),
        row("B", val_a + rng.normal(0, 0.01, 50) - 0.001, test_a - 0.01, 1.0, 10_000),
        row("C", val_a - 0.1, test_a, 0.1, 10),
        row("D", val_a - 0.1, test_a + 0.3, 0.2, 10),
    ]
    return rows, DocumentBootstrap(groups), DocumentBootstrap(groups)


def test_the_fastest_and_smallest_are_only_those_as_accurate_on_val_and_test_never_chooses():
    rows, val_boot, test_boot = usage_rows()
    usage = _usage(rows, val_boot, test_boot)
    assert usage["as_accurate_on_val"] == ["A", "B"]  # C and D are clearly worse on val
    assert (usage["most_accurate"]["model"], usage["fastest"]["model"], usage["smallest"]["model"]) == (
        "A",
        "B",
        "A",
    )
    fastest = usage["fastest"]
    assert (
        fastest["test_difference"] == test_boot.difference(rows[1]["windows"], rows[0]["windows"]).as_dict()
    )
    assert fastest["test_verdict"] == "is beaten by"  # 0.01 below A on every test window
    other_test, _, _ = usage_rows(test_a=0.1)  # the same val scores with other test scores: the same choice
    again = _usage(other_test, val_boot, test_boot)
    assert [again[k]["model"] for k in ("most_accurate", "fastest", "smallest")] == ["A", "B", "A"]


# --- error analysis and the AMN's attention ---------------------------------------------------------


def test_the_error_analysis_is_of_the_best_single_model_on_val_with_the_sample_texts(report):
    _, result, markdown = report
    analysis = result["error_analysis"]
    singles = [r for r in result["rows"] if r["kind"] == "model"]
    assert analysis["model"] == max(singles, key=lambda r: r["val"]["cosine"])["model"]
    assert analysis["baseline"] == result["best_baseline"]
    docs = analysis["per_document"]
    assert len(docs) == 6 and sum(d["windows"] for d in docs) == result["splits"]["test"]["windows"]
    assert [d["cosine"] for d in docs] == sorted((d["cosine"] for d in docs), reverse=True)
    assert all(d["document"].endswith(".rst.txt") for d in docs)  # the sample's titles
    for d in docs:
        assert f"| `{d['document']}` | {d['windows']} | {d['cosine']:.4f} |" in markdown
    worst = analysis["worst_windows"]
    assert len(worst) == 5 and all(w["next"]["text"] and w["nearest_training"]["text"] for w in worst)
    assert "## Error analysis" in markdown and "*True next passage:*" in markdown
    assert "*Nearest training passage*" in markdown and "(the file has no text" not in markdown
    assert json.loads(json.dumps(result, allow_nan=False))["error_analysis"] == analysis  # what --json prints


def test_the_attention_of_the_best_amn_on_val_is_a_distribution_over_positions(report):
    _, result, markdown = report
    attention = result["amn_attention"]
    amns = [r for r in result["rows"] if r.get("arch") == "amn"]
    assert attention["model"] == max(amns, key=lambda r: r["val"]["cosine"])["model"]
    profile = attention["profile"]
    assert sum(profile["mean_weight"]) == pytest.approx(1.0)
    assert profile["windows"] == result["splits"]["test"]["windows"]
    assert sum(profile["base_weight"]) == pytest.approx(1.0)
    assert len(attention["examples"]) == 3
    for example in attention["examples"]:
        assert sum(c["weight"] for c in example["context"]) == pytest.approx(1.0, abs=1e-5)
        assert [c["age"] for c in example["context"]] == list(range(profile["k"], 0, -1))
    assert "## AMN attention" in markdown and "a softmax over the real context positions" in markdown


# --- parameter importances -----------------------------------------------------------------------------


def test_importances_are_pedanova_chosen_explicitly_and_labelled_as_what_ran(tmp_path):
    import optuna

    path = tmp_path / "study.db"
    with quieted("optuna"):
        study = optuna.create_study(study_name="run", storage=f"sqlite:///{path}", direction="maximize")
        study.optimize(lambda t: t.suggest_float("x", 0, 1) + 0.01 * t.suggest_float("y", 0, 1), n_trials=12)
    imp = _importances(path, "run")
    expected = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(target_quantile=0.1)
    )
    assert imp["values"] == pytest.approx(expected) and (imp["finished"], imp["top"]) == (12, 2)
    assert imp["evaluator"].startswith(f"PED-ANOVA (Optuna {optuna.__version__}")
    text = "\n".join(_importance_lines(imp))
    assert "PED-ANOVA" in text and "fANOVA" not in text and "top 10% of the 12 trials" in text


def test_runs_windowed_unlike_the_newest_are_named_and_left_out():
    from types import SimpleNamespace

    from lvm_search.report.leaderboard import _comparable_runs

    def run(name, min_context, source="a.npz", horizon=1):
        data = SimpleNamespace(
            source=source, min_context=min_context, extra_train=[], split_seed=0, horizon=horizon
        )
        return Path(name), SimpleNamespace(name=name, arch="amn", data=data)

    runs = [run("old", 3), run("other-file", 5, "b.npz"), run("b", 5), run("a", 5)]  # oldest first
    kept, left_out = _comparable_runs(runs, None)
    assert [s.name for _, s in kept] == ["a", "b"]
    assert len(left_out) == 2 and left_out[0].startswith("amn run `old`: trained on a.npz with min_context 3")
    kept, left_out = _comparable_runs(runs, "c.npz")  # --data: any file, the same windowing
    assert [s.name for _, s in kept] == ["a", "b", "other-file"] and len(left_out) == 1
    # a horizon that differs from the newest run's is named, the default 1 included
    kept, left_out = _comparable_runs([run("h1", 5), run("h3", 5, horizon=3)], None)
    assert [s.name for _, s in kept] == ["h3"] and left_out[0].endswith("split seed 0, horizon 1")
