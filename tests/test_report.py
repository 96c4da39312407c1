"""The leaderboard, built from a tiny real search of two architectures and their ensemble.

The two searches read different context lengths (k=5 and k=7, both with min_context 5), as the
shipped spaces do, so they score the same windows and still ensemble."""

from __future__ import annotations

import json
import re

import pytest
from conftest import CONFINED, one_error

from lvm_search.ensemble import build_ensemble, load_recipe
from lvm_search.report import build_report
from lvm_search.search import SearchOptions, run_search
from lvm_search.spaces import parse_space

SPACES = {
    "amn": {
        "width": {"type": "choice", "values": [32, 512]},
        "key_dim": {"type": "choice", "values": [16, 256]},
    },
    "gru": {"width": {"type": "choice", "values": [16, 512]}, "depth": {"type": "int", "low": 1, "high": 4}},
}

DATA = {"amn": {}, "gru": {"k": 7, "min_context": 5}}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    storage = tmp / "runs"
    for arch, space in SPACES.items():
        raw = {
            "arch": arch,
            "samples": 2,
            "max_concurrent": 2,
            "fixed": {"epochs": 2},
            "space": space,
            "data": DATA[arch],
        }
        run_search(
            parse_space(raw, f"{arch}.yaml"), SearchOptions(storage=str(storage), name=arch, verbose=0)
        )
    build_ensemble(load_recipe(None), storage)
    result = build_report(storage, tmp / "reports" / "leaderboard.md")
    return storage, result, (tmp / "reports" / "leaderboard.md").read_text()


def table_rows(markdown: str) -> list[list[str]]:
    lines = markdown.split("\n| rank |")[1].split("\n\n")[0].splitlines()[2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_the_table_has_one_row_per_architecture_ensemble_and_baseline(report):
    _, _, markdown = report
    models = [row[1] for row in table_rows(markdown)]
    assert len(models) == 2 + 1 + 4 + 2  # recency and ridge again at the longest context, k=7
    assert sum(m.startswith("amn") for m in models) == 1 and sum(m.startswith("gru") for m in models) == 1
    assert sum(m.startswith("ensemble default") for m in models) == 1
    for baseline in ("mean of context", "last vector"):
        assert sum(m.startswith(baseline) for m in models) == 1
    for baseline in ("recency-weighted mean", "ridge"):
        assert {m.split(",")[0] for m in models if m.startswith(baseline)} == {
            f"{baseline} (k=5",
            f"{baseline} (k=7",
        }


def test_rows_are_ranked_by_test_cosine(report):
    _, _, markdown = report
    rows = table_rows(markdown)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    test_cos = [float(r[2].split()[0]) for r in rows]
    assert test_cos == sorted(test_cos, reverse=True)


def test_numbers_match_the_stored_results(report):
    storage, _, markdown = report
    rows = {r[1].split(" (")[0]: r for r in table_rows(markdown)}
    for arch in SPACES:
        summary = json.loads((storage / arch / "summary.json").read_text())
        assert float(rows[arch][3]) == pytest.approx(summary["best"]["val_cosine"], abs=1e-4)
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


def test_the_report_and_the_ensemble_do_not_import_ray():
    import subprocess
    import sys

    code = (
        "import sys, lvm_search.report, lvm_search.ensemble, lvm_search.evaluate; print('ray' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )


def test_plots_are_written_beside_the_report(report):
    _, result, markdown = report
    for path in result["figures"].values():
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert len(re.findall(r"!\[[^]]+\]\(leaderboard_plots/[a-z_]+\.png\)", markdown)) == 3
