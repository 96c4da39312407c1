"""Several spaces searched in one Ray session (``lvm-search run a.yaml b.yaml``, or a folder): Ray
starts once, each view of the data is loaded once, and each space keeps its own run folder, summary,
study and resume, as when searched alone."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import LATE, RESUME, TWO_THINGS, one_error

import lvm_search.search.tuner as tuner
from lvm_search.errors import UserError
from lvm_search.presets import folder as packaged_folder
from lvm_search.presets import resolve_all
from lvm_search.search.spaces import parse_space
from lvm_search.search.tuner import SearchOptions, run_searches
from lvm_search.store.runs import read_summary, read_trial_log


def tiny(arch_settings: dict | None = None, samples: int = 2) -> dict:
    """A search of AMN trials of a few hundred parameters, one or two epochs each."""
    return {
        "arch": "amn",
        "samples": samples,
        "max_concurrent": 1,
        "scheduler": {"type": "none"},
        "data": {"k": 6, "min_context": 5},
        "fixed": {"width": 8, "key_dim": 8, **(arch_settings or {})},
        "reference": {"epochs": 1},
        "space": {
            "epochs": {"type": "int", "low": 1, "high": 2},
            "lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
        },
    }


def write(folder: Path, name: str, raw: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_two_spaces_share_one_ray_session_and_keep_their_own_runs(tmp_path, monkeypatch, caplog):
    clusters, loads = [], []
    real_cluster, real_load = tuner.private_cluster, tuner.load_data
    monkeypatch.setattr(tuner, "private_cluster", lambda **kw: clusters.append(kw) or real_cluster(**kw))
    monkeypatch.setattr(tuner, "load_data", lambda *a, **kw: loads.append(kw) or real_load(*a, **kw))
    spaces = [parse_space(tiny(), "one.yaml"), parse_space(tiny({"dropout": 0.1}, samples=3), "two.yaml")]
    storage = tmp_path / "runs"
    with caplog.at_level(logging.INFO, logger="lvm_search"):
        summaries = run_searches(spaces, SearchOptions(storage=str(storage)))

    assert len(clusters) == 1, "Ray started once for both searches"
    assert len(loads) == 1, "one view of the data (k 6, min_context 5) is loaded once"
    assert [s.name for s in summaries] == ["one", "two"]
    assert [s.counts.trials for s in summaries] == [2, 3]
    for summary in summaries:
        run = storage / summary.name
        assert read_summary(run) == summary and summary.complete and summary.best is not None
        assert (run / summary.best.checkpoint).is_dir()
        assert {e.attempt for e in read_trial_log(run)} == {1}
        study = optuna.load_study(study_name=summary.name, storage=f"sqlite:///{run / 'study.db'}")
        assert len(study.trials) == summary.counts.trials
    assert all(t.config.get("dropout") is None for t in summaries[0].trials)  # each its own fixed settings
    # the two searches ran at once (one trial at a time each, on a machine of two CPUs or more)
    spans = {
        s.name: [(e.finished_at - e.time_total_s, e.finished_at) for e in read_trial_log(storage / s.name)]
        for s in summaries
    }
    assert any(a0 < b1 and b0 < a1 for a0, a1 in spans["one"] for b0, b1 in spans["two"])
    progress = [r.getMessage() for r in caplog.records if r.name == "lvm_search.search.progress"]
    assert any(line.startswith("one: trial ") for line in progress)
    assert any(line.startswith("two: trial ") for line in progress)
    assert not [line for line in progress if not line.startswith(("one: ", "two: "))]

    again = run_searches(spaces, SearchOptions(storage=str(storage)))  # resumed: nothing left to run
    assert len(clusters) == 1, "a finished pair needs no Ray"
    assert [s.counts.trials for s in again] == [2, 3]
    ids = [[t.trial_id for t in s.trials] for s in summaries]
    assert [[t.trial_id for t in s.trials] for s in again] == ids


@pytest.mark.hostile(TWO_THINGS)
def test_name_with_several_spaces_and_two_runs_of_one_name_are_refused_before_ray(tmp_path, cli):
    """--name names one run, and two files of one stem would write one run folder."""
    a, b = write(tmp_path / "a", "amn", tiny()), write(tmp_path / "b", "amn", tiny())
    other = write(tmp_path / "a", "other", tiny())
    storage = tmp_path / "runs"
    code, _, err = cli("run", a, other, "--name", "mine", "--storage", storage)
    assert code == 2 and "--name names one run" in one_error(err)
    code, _, err = cli("run", a, b, "--storage", storage)
    assert code == 2 and f"{storage.resolve() / 'amn'}" in one_error(err)
    assert not storage.exists()


@pytest.mark.hostile(LATE)
def test_a_run_folder_refused_for_the_second_space_leaves_nothing_of_the_first(tmp_path):
    storage = tmp_path / "runs"
    storage.mkdir()
    (storage / "two").write_text("a user's file where the second run would go\n")
    spaces = [parse_space(tiny(), "one.yaml"), parse_space(tiny(), "two.yaml")]
    with pytest.raises(UserError, match="two: exists and is not a run folder"):
        run_searches(spaces, SearchOptions(storage=str(storage)))
    assert sorted(p.name for p in storage.iterdir()) == ["two"]  # no run one, no lock files
    assert (storage / "two").read_text() == "a user's file where the second run would go\n"


@pytest.mark.hostile(LATE)
def test_a_bad_space_among_several_fails_before_anything_is_written(tmp_path, cli):
    good = write(tmp_path, "good", tiny())
    bad = write(tmp_path, "bad", {**tiny(), "samples": 0})
    code, _, err = cli("run", good, bad, "--storage", tmp_path / "runs")
    assert code == 2 and str(bad) in one_error(err)
    assert not (tmp_path / "runs").exists()


def test_folders_files_and_packaged_names_resolve_in_order_each_once(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    b, a = write(mine, "b", tiny()), write(mine, "a", tiny())
    assert resolve_all("space", [str(mine)]) == [a, b]  # a folder: its files sorted
    assert resolve_all("space", [str(b), str(mine)]) == [b, a]  # b once, where first named
    monkeypatch.chdir(tmp_path)  # no spaces/ here: the README's spelling means the packaged spaces
    packaged = resolve_all("space", ["spaces/"])
    assert [p.stem for p in packaged] == ["amn", "gru", "lstm", "transformer"]
    assert all(p.parent == packaged_folder("space") for p in packaged)
    assert resolve_all("space", ["lstm", "spaces"])[0].stem == "lstm"
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="empty: a folder without space files"):
        resolve_all("space", ["empty"])


@pytest.mark.slow
@pytest.mark.hostile(RESUME)
def test_ctrl_c_stops_every_search_and_the_same_command_resumes_each(tmp_path):
    folder = tmp_path / "spaces"
    longer = {**tiny(samples=4), "reference": {"epochs": 2}}
    longer["space"] = {**longer["space"], "epochs": {"type": "int", "low": 2, "high": 3}}
    write(folder, "one", longer)
    write(folder, "two", {**longer, "fixed": {**longer["fixed"], "dropout": 0.1}})
    storage = tmp_path / "runs"
    cmd = [sys.executable, "-m", "lvm_search.cli", "run", str(folder), "--storage", str(storage), "--json"]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 180
    logs = [storage / name / "trials.jsonl" for name in ("one", "two")]
    while not any(p.exists() for p in logs) and time.time() < deadline and driver.poll() is None:
        time.sleep(0.2)
    assert driver.poll() is None, "the searches finished before they could be interrupted"
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=90)
    assert driver.returncode == 130, err[-2000:]
    assert "Traceback" not in err.decode()
    before = {p.parent.name: len(p.read_text().splitlines()) if p.exists() else 0 for p in logs}
    assert sum(before.values()) < 8

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summaries = json.loads(resumed.stdout)
    assert [s["name"] for s in summaries] == ["one", "two"]
    for s in summaries:
        assert s["counts"]["trials"] == 4 and s["complete"]
        assert sorted(t["number"] for t in s["trials"]) == [0, 1, 2, 3]
        kept = [t for t in s["trials"] if t["attempt"] == 1]
        assert len(kept) == before[s["name"]], "a finished trial was run again or lost"
