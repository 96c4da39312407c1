"""What a user reads: an ensemble's members once each, what eval says it scored, the time left, the
words of an error (an integer, not "a int"), and a library's error quoted whole words only."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from conftest import SMALL, one_error, one_trial_space

PACKAGE = Path(__file__).resolve().parent.parent / "lvm_search"


@pytest.mark.hostile(SMALL)
def test_a_recipe_naming_a_run_twice_is_one_line(cli, tmp_path):
    """It listed the run's member twice, with weight 1.000 each."""
    recipe = tmp_path / "twice.yaml"
    recipe.write_text("runs: [amn, lstm, amn]\n")
    code, _, err = cli("ensemble", recipe, "--storage", tmp_path / "runs")
    assert code == 2 and f"{recipe}: runs: 'amn' is named twice; name each run once" in one_error(err)


@pytest.mark.hostile(SMALL)
def test_eval_of_an_untouched_ensemble_on_its_own_data_scores_its_test_split(tmp_path, cli):
    """Its runs searched k (data loaded at the longest, 6) while its member reads 5: eval said
    "windowed or split differently" although it scored exactly the ensemble's test split."""
    from dataclasses import replace

    from lvm_search.ensemble.build import build_ensemble, load_recipe
    from lvm_search.search.spaces import parse_space
    from lvm_search.search.tuner import SearchOptions, run_search

    raw = one_trial_space(data={"min_context": 5})
    raw["space"] = {**raw["space"], "k": {"type": "choice", "values": [5, 6]}}  # trial 0 reads k=5
    storage = tmp_path / "runs"
    run_search(parse_space(raw, "amn.yaml"), SearchOptions(storage=str(storage)))
    record = build_ensemble(replace(load_recipe(None), top_k=1, baselines=False), storage)
    assert record["data"]["k"] == 6 and [m["k"] for m in record["members"]] == [5]
    code, out, err = cli("eval", record["path"], "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["relation"] == "the test split of the data it was trained on"
    assert result["scores"]["model"]["cosine"] == pytest.approx(record["metrics"]["test"]["cosine"], abs=1e-5)
    code, out, err = cli("predict", record["path"], "--out", tmp_path / "p.npz", "--json")
    assert code == 0, err
    assert json.loads(out)["relation"].startswith("every window of the corpus it was trained on")


@pytest.mark.hostile(SMALL)
def test_the_time_left_counts_the_trials_a_budget_holds_and_stays_readable(caplog):
    """A budget of 10 epochs with samples: 100000 estimated the time left for 100,000 trials."""
    from lvm_search.search.progress import Progress, _duration
    from lvm_search.search.spaces import parse_space

    raw = {**one_trial_space(), "samples": 100000, "budget_epochs": 10, "fixed": {"epochs": 12}}
    raw["scheduler"] = {"type": "asha", "grace_period": 2}
    progress = Progress(parse_space(raw, "b.yaml"), done=0, concurrency=1)
    progress.start -= 3600  # an hour per finished trial
    with caplog.at_level(logging.INFO, logger="lvm_search.search.progress"):
        progress._end("trial 0 finished: val 0.5000")
    assert caplog.records[-1].getMessage().endswith("1/~5 done, about 4.0 h left")
    assert _duration(3 * 86400) == "3 days"
    assert _duration(8364596397017535.0 * 3600) == "more than 1,000 days"
    assert _duration(float("inf")) == "an unknown time"


@pytest.mark.hostile(SMALL)
@pytest.mark.parametrize(
    "argv, said",
    [
        (["--arch", "lstm", "--set", "depth=2.5"], "lstm: setting 'depth' expects an integer, got 2.5"),
        (["--arch", "lstm", "--set", "residual=3"], "setting 'residual' expects true or false, got 3"),
        (["--arch", "lstm", "--set", "batch_size=2.5"], "batch_size expects an integer, got 2.5"),
        (["--arch", "lstm", "--set", "bf16=1"], "bf16 expects true or false, or auto, got 1"),
    ],
)
def test_a_setting_of_the_wrong_kind_says_what_it_expects_in_words(cli, tmp_path, argv, said):
    code, _, err = cli("train", *argv, "--out", tmp_path / "o")
    assert code == 2 and said in one_error(err) and "a int" not in err and "a bool" not in err


@pytest.mark.hostile(SMALL)
def test_a_library_error_is_quoted_to_a_word_boundary():
    from lvm_search.errors import reason

    words = "the zip directory says the member named vectors.npy ends after the archive " * 5
    quoted = reason(ValueError(words + "\nsecond line"))
    assert len(quoted) <= 163 and quoted.endswith("...") and words.startswith(quoted[:-3])
    assert words[len(quoted) - 3] == " "  # cut between words, never inside one
    assert reason(ValueError("short\nmore")) == "short" and reason(ValueError("")) == "ValueError"


@pytest.mark.hostile(SMALL)
def test_no_module_slices_an_error_message_by_characters():
    """Every quote of a library's error goes through errors.reason; a slice [:120] cut words."""
    for path in PACKAGE.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not re.search(
                r"(str\(e\)|\berror\b|lines\[-?\d*\]|candidates\[-1\])[^#]*\[:\d+\]", line
            ), f"{path.name}:{number}: {line.strip()}"
