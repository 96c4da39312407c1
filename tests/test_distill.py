"""Distillation: a teacher ensemble's predictions on the training windows, mixed into the targets."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import one_error
from torch.nn.functional import normalize

from lvm_search.checkpoint import CONFIG
from lvm_search.data import load_data
from lvm_search.distill import Teacher, load_teacher
from lvm_search.ensemble import load_ensemble
from lvm_search.errors import UserError
from lvm_search.metrics import cosines, predict
from lvm_search.search import SearchOptions, run_search
from lvm_search.spaces import parse_space
from lvm_search.train import TrainConfig, train


def test_distill_moves_the_training_targets_towards_the_teacher():
    data = load_data(None)
    u = normalize(torch.randn(data.dim, generator=torch.Generator().manual_seed(1)), dim=0)
    teacher = Teacher("one direction", data.fingerprint, u.expand(len(data.splits["train"]), -1).clone())

    def fit(teacher, distill):
        cfg = TrainConfig(arch="amn", model={"width": 32}, epochs=3, ema=0, distill=distill)
        result = train(cfg, data, teacher=teacher)
        return result, predict(result.model, data, "val")

    plain, plain_pred = fit(None, 1.0)
    taught, taught_pred = fit(teacher, 1.0)
    toward = lambda pred: cosines(pred, u.expand_as(pred)).mean().item()  # noqa: E731
    assert toward(taught_pred) > 0.7 > 0.2 > toward(plain_pred)
    assert taught.meta["teacher"] == {"source": "one direction", "fingerprint": data.fingerprint}
    # distill 0 with a teacher is plain training: the targets are the true ones
    untaught, untaught_pred = fit(teacher, 0.0)
    assert torch.equal(untaught_pred, plain_pred)


def test_the_teacher_predicts_the_training_windows_of_its_own_split_only(tiny_storage):
    folder = tiny_storage / "ensembles" / "default"
    data = load_data(None)
    teacher = load_teacher(folder, data)
    model, _ = load_ensemble(folder)
    assert teacher.targets.shape == (len(data.splits["train"]), data.dim)
    assert torch.allclose(teacher.targets, predict(model, data, "train"))

    with pytest.raises(UserError, match="another split"):  # its members trained on these val/test docs
        load_teacher(folder, load_data(None, seed=1))
    with pytest.raises(UserError, match="reads 5 context passages but the data is loaded at k=4"):
        load_teacher(folder, load_data(None, k=4))


def test_train_distils_a_teacher_and_records_it(cli, tiny_storage, tmp_path):
    folder = tiny_storage / "ensembles" / "default"
    out = tmp_path / "student"
    code, _, err = cli(
        "train", "--arch", "amn", "--epochs", "1", "--set", "width=8", "--teacher", folder, "--out", out
    )
    assert code == 0, err
    meta = json.loads((out / CONFIG).read_text())
    assert meta["teacher"]["source"] == str(folder) and meta["train_config"]["distill"] == 0.8


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--set", "distill=0.5"], "--teacher"),
        (["--teacher", "{ensemble}", "--split-seed", "1"], "another split"),
        (["--teacher", "{missing}"], "not an ensemble folder"),
    ],
)
def test_a_teacher_that_cannot_teach_is_one_error_line(cli, tiny_storage, tmp_path, argv, named):
    paths = {"{ensemble}": str(tiny_storage / "ensembles" / "default"), "{missing}": str(tmp_path)}
    argv = [paths.get(a, a) for a in argv]
    out = tmp_path / "student"
    code, stdout, err = cli("train", "--arch", "amn", "--epochs", "1", *argv, "--out", out)
    assert code == 2 and stdout == "" and named in one_error(err)
    assert not out.exists()


def test_a_search_distils_the_teacher_in_every_trial(tiny_storage, tmp_path):
    folder = tiny_storage / "ensembles" / "default"
    raw = {
        "arch": "amn",
        "samples": 2,
        "max_concurrent": 2,
        "data": {"teacher": str(folder)},
        "fixed": {"epochs": 1},
        "space": {"distill": {"type": "float", "low": 0.5, "high": 1.0}},
    }
    summary = run_search(parse_space(raw, "student.yaml"), SearchOptions(storage=str(tmp_path)))
    assert [t.status for t in summary.trials] == ["ok", "ok"]
    for trial in summary.trials:
        meta = json.loads((tmp_path / "student" / trial.checkpoint / CONFIG).read_text())
        assert meta["teacher"]["source"] == str(folder)
        assert meta["train_config"]["distill"] == trial.config["distill"]

    with pytest.raises(UserError, match="data.teacher is not set"):
        parse_space({**raw, "data": {}}, "student.yaml")
