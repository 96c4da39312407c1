"""Ray Tune's trackers through the product: --log tensorboard writes event files holding each
trial's validation curve, --log mlflow a local MLflow store with it; a tracker whose package is
missing is one line before Ray starts."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from conftest import LATE, one_error, one_trial_space


def _space(tmp_path: Path, **extra) -> Path:
    space = tmp_path / "tracked.yaml"
    raw = one_trial_space(**extra)
    raw["fixed"] = {"epochs": 3}
    space.write_text(json.dumps(raw))
    return space


def _events(path: Path) -> list:
    """The Event records of a TensorBoard event file (TFRecord framing: length, crc, data, crc)."""
    from tensorboardX.proto.event_pb2 import Event

    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at : at + 8])
        events.append(Event.FromString(data[at + 12 : at + 12 + length]))
        at += 12 + length + 4
    return events


@pytest.mark.slow
def test_tensorboard_event_files_hold_each_trials_val_curve(tmp_path, cli):
    code, out, err = cli(
        "run", _space(tmp_path), "--storage", tmp_path / "runs", "--log", "tensorboard", "--json"
    )
    assert code == 0, err[-2000:]
    [trial] = json.loads(out)["trials"]
    files = list((tmp_path / "runs" / "tracked").rglob("events.out.tfevents.*"))
    assert len(files) == 1
    curve = {
        event.step: value.simple_value
        for event in _events(files[0])
        for value in event.summary.value
        if value.tag == "ray/tune/val_cosine"
    }
    assert curve == pytest.approx({h["epoch"]: h["val_cosine"] for h in trial["history"]}, abs=1e-6)


def test_mlflow_records_each_trials_val_curve_in_a_local_store(tmp_path, cli, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out, err = cli(
        "run", _space(tmp_path, loggers=["mlflow"]), "--storage", tmp_path / "runs", "--json"
    )
    assert code == 0, err[-2000:]
    [trial] = json.loads(out)["trials"]
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'tracked' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    [run] = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "val_cosine")
    assert sorted((m.step, round(m.value, 6)) for m in history) == [
        (h["epoch"], round(h["val_cosine"], 6)) for h in trial["history"]
    ]


@pytest.mark.hostile(LATE)
def test_a_tracker_whose_package_is_missing_is_one_line_before_anything_starts(tmp_path, cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    code, _, err = cli("run", _space(tmp_path), "--storage", tmp_path / "runs", "--log", "wandb")
    assert code == 2 and "tracker wandb (--log or loggers:): needs the wandb package" in one_error(err)
    assert "pip install 'lvm-search[wandb]'" in err
    assert not (tmp_path / "runs" / "tracked").exists()


@pytest.mark.hostile(LATE)
@pytest.mark.parametrize(
    "loggers, message", [(["neptune"], "unknown tracker 'neptune'"), ({}, "expected a list")]
)
def test_an_unknown_tracker_in_a_space_file_is_one_line(tmp_path, cli, loggers, message):
    code, _, err = cli("run", _space(tmp_path, loggers=loggers), "--storage", tmp_path / "runs")
    assert code == 2 and f"loggers: {message}" in one_error(err)


@pytest.mark.hostile(LATE)
def test_an_mlflow_file_store_is_one_line_before_ray_starts(tmp_path, cli, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "mlruns"))
    code, _, err = cli("run", _space(tmp_path), "--storage", tmp_path / "runs", "--log", "mlflow")
    assert code == 2 and "a file store, which MLflow 3 refuses" in one_error(err)
    assert not (tmp_path / "runs").exists()
