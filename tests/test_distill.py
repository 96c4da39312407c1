"""Distillation: a teacher ensemble's predictions on the training windows, mixed into the targets."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import DIGESTS, FALSE_REFUSALS, one_error, one_trial_space
from torch.nn.functional import normalize

from lvm_search.data.windows import load_data
from lvm_search.ensemble.build import load_ensemble
from lvm_search.ensemble.distill import load_teacher
from lvm_search.errors import UserError
from lvm_search.models.checkpoint import CONFIG
from lvm_search.scoring.metrics import cosines, predict
from lvm_search.search.spaces import parse_space
from lvm_search.search.tuner import SearchOptions, run_search
from lvm_search.store.runs import read_summary
from lvm_search.teacher import Teacher
from lvm_search.train import TrainConfig, train

SPACES = Path(__file__).resolve().parent.parent / "spaces"


def test_distill_moves_the_training_targets_towards_the_teacher():
    data = load_data(None)
    u = normalize(torch.randn(data.dim, generator=torch.Generator().manual_seed(1)), dim=0)
    targets = u.expand(len(data.splits["train"]), -1).clone()
    teacher = Teacher("one direction", data.fingerprint, "0" * 16, targets)

    def fit(teacher, distill):
        cfg = TrainConfig(arch="amn", model={"width": 32}, epochs=3, ema=0, distill=distill)
        result = train(cfg, data, teacher=teacher)
        return result, predict(result.model, data, "val")

    plain, plain_pred = fit(None, 1.0)
    taught, taught_pred = fit(teacher, 1.0)
    toward = lambda pred: cosines(pred, u.expand_as(pred)).mean().item()  # noqa: E731
    assert toward(taught_pred) > 0.7 > 0.2 > toward(plain_pred)
    assert taught.meta["teacher"] == {
        "source": "one direction",
        "fingerprint": data.fingerprint,
        "digest": "0" * 16,
    }
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
    for k in (4, 6):  # other windows: targets need another number of earlier passages
        with pytest.raises(UserError, match=f"min_context=5, this data has min_context={k}: other windows"):
            load_teacher(folder, load_data(None, k=k))
    longer = load_data(None, k=6, min_context=5)  # the same windows, read further back
    assert torch.equal(load_teacher(folder, longer).targets, teacher.targets)


def test_train_distils_a_teacher_and_records_it(cli, tiny_storage, tmp_path):
    folder = tiny_storage / "ensembles" / "default"
    out = tmp_path / "student"
    code, _, err = cli(
        "train", "--arch", "amn", "--epochs", "1", "--set", "width=8", "--teacher", folder, "--out", out
    )
    assert code == 0, err
    meta = json.loads((out / CONFIG).read_text())
    assert meta["teacher"]["source"] == str(folder) and meta["train_config"]["distill"] == 0.8


@pytest.mark.slow
def test_a_student_reads_fewer_passages_than_its_teacher(cli, tmp_path):
    from lvm_search.ensemble.build import build_ensemble, load_recipe

    storage = tmp_path / "storage"
    # a teacher reading 6 passages, targets from the 5th on
    raw = one_trial_space(data={"k": 6, "min_context": 4})
    run_search(parse_space(raw, "amn.yaml"), SearchOptions(storage=str(storage)))
    teacher = build_ensemble(load_recipe(None), storage)["path"]
    out = tmp_path / "student"
    student = ["train", "--arch", "amn", "--epochs", "1", "--set", "width=8", "--teacher", teacher]
    code, _, err = cli(*student, "--k", "4", "--min-context", "4", "--out", out)
    assert code == 0, err
    meta = json.loads((out / CONFIG).read_text())
    assert meta["k"] == 4 and meta["data"]["min_context"] == 4
    assert meta["teacher"]["fingerprint"] == load_data(None, k=6, min_context=4).fingerprint
    # other windows (min_context 5) are still refused, naming what to load
    code, _, err = cli(*student, "--k", "5", "--out", tmp_path / "other")
    assert code == 2 and "load it with min_context 4" in one_error(err)
    # a search's trials too
    raw = {**raw, "data": {"k": 4, "min_context": 4, "teacher": teacher}}
    summary = run_search(parse_space(raw, "amn.yaml"), SearchOptions(storage=str(storage), name="student"))
    assert summary.counts.ok == 1


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--set", "distill=0.5"], "--teacher"),
        (["--teacher", "{ensemble}", "--split-seed", "1"], "another split"),
        (["--teacher", "{empty}"], "not an ensemble folder"),
        (["--teacher", "{missing}"], "no such ensemble folder"),
    ],
)
def test_a_teacher_that_cannot_teach_is_one_error_line(cli, tiny_storage, tmp_path, argv, named):
    paths = {
        "{ensemble}": str(tiny_storage / "ensembles" / "default"),
        "{empty}": str(tmp_path),
        "{missing}": str(tmp_path / "nowhere"),
    }
    argv = [paths.get(a, a) for a in argv]
    out = tmp_path / "student"
    code, stdout, err = cli("train", "--arch", "amn", "--epochs", "1", *argv, "--out", out)
    assert code == 2 and stdout == "" and named in one_error(err)
    assert not out.exists()


def test_a_teacher_record_that_contradicts_itself_is_named(cli, tiny_storage, tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_storage / "ensembles" / "default", teacher)
    record = json.loads((teacher / "ensemble.json").read_text())
    record["data"]["k"] = record["data"]["min_context"] - 1
    del record["digest"]  # as an ensemble written before records carried one
    (teacher / "ensemble.json").write_text(json.dumps(record))
    out = tmp_path / "student"
    code, _, err = cli("train", "--arch", "amn", "--epochs", "1", "--teacher", teacher, "--out", out)
    assert code == 2 and f"{teacher / 'ensemble.json'}: data: k=4 is below" in one_error(err)


def test_training_into_the_teachers_own_folder_is_refused(cli, tiny_storage, tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_storage / "ensembles" / "default", teacher)
    before = {p: p.read_bytes() for p in teacher.rglob("*") if p.is_file()}
    code, _, err = cli(
        "train", "--arch", "amn", "--epochs", "1", "--teacher", teacher, "--out", teacher / "members" / "00"
    )
    assert code == 2 and "inside the teacher" in one_error(err)
    assert {p: p.read_bytes() for p in teacher.rglob("*") if p.is_file()} == before


def test_a_search_distils_the_teacher_in_every_trial(tiny_storage, tmp_path, cli):
    folder = tmp_path / "teacher"
    shutil.copytree(tiny_storage / "ensembles" / "default", folder)
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
    assert read_summary(tmp_path / "student").teacher["source"] == str(folder)
    for trial in summary.trials:
        meta = json.loads((tmp_path / "student" / trial.checkpoint / CONFIG).read_text())
        assert meta["teacher"]["source"] == str(folder)
        assert meta["train_config"]["distill"] == trial.config["distill"]

    with pytest.raises(UserError, match="data.teacher is not set"):
        parse_space({**raw, "data": {}}, "student.yaml")

    # a resume names the same teacher however it is spelled, and refuses one rebuilt in its folder
    respelled = {**raw, "samples": 3, "data": {"teacher": f"{folder}/../teacher/"}}
    summary = run_search(parse_space(respelled, "student.yaml"), SearchOptions(storage=str(tmp_path)))
    assert len(summary.trials) == 3
    record = folder / "ensemble.json"
    record.write_text(json.dumps(json.loads(record.read_text())))  # the same ensemble, other bytes
    with pytest.raises(UserError, match="another teacher"):
        run_search(parse_space({**raw, "samples": 4}, "student.yaml"), SearchOptions(storage=str(tmp_path)))
    untaught = {**raw, "data": {}, "space": {"width": {"type": "choice", "values": [32, 512]}}}
    with pytest.raises(UserError, match="another teacher"):  # not "another data section"
        run_search(parse_space(untaught, "student.yaml"), SearchOptions(storage=str(tmp_path)))


def test_run_with_a_teacher_that_is_not_there_is_exactly_one_line(cli, tmp_path):
    code, out, err = cli(
        "run", SPACES / "amn.yaml", "--storage", tmp_path / "s", "--teacher", tmp_path / "nowhere"
    )
    assert code == 2 and out == "" and err.count("\n") == 1 and "no such ensemble folder" in one_error(err)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "extra, argv",
    [
        ({"fixed": {"epochs": 1, "distill": 0.5}}, []),  # distill fixed, its teacher from --teacher
        ({"space": {"k": {"type": "choice", "values": [5, 8]}}}, ["--min-context", "5"]),  # k searched
    ],
)
def test_the_command_line_completes_the_data_section_before_it_is_checked(cli, tmp_path, extra, argv):
    raw = {
        "arch": "amn",
        "samples": 1,
        "fixed": {"epochs": 1},
        "space": {"dropout": {"type": "float", "low": 0, "high": 0.2}},
    }
    for key, value in extra.items():
        raw[key] = {**raw[key], **value}
    space = tmp_path / "space.yaml"
    space.write_text(json.dumps(raw))  # JSON is YAML
    code, _, err = cli("run", space, "--storage", tmp_path / "s", "--teacher", tmp_path / "nowhere", *argv)
    assert code == 2 and "no such ensemble folder" in one_error(err)  # past the space's own checks


def test_a_search_may_not_store_its_runs_inside_its_teacher(cli, tiny_storage, tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_storage / "ensembles" / "default", teacher)
    code, _, err = cli("run", SPACES / "amn.yaml", "--teacher", teacher, "--storage", teacher / "runs")
    assert code == 2 and "lies inside the teacher" in one_error(err)
    assert not (teacher / "runs").exists()


# --- a teacher is what it was built as: its record and every member file --------------------------------


def _perturb_weights(member: Path) -> None:
    """Replace a member's weights by others of the same shapes (a retrained checkpoint copied in)."""
    from safetensors.torch import load_file, save_file

    weights = member / "model.safetensors"
    state = load_file(weights)
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}, weights)


def _without_digests(folder: Path) -> None:
    """Make an ensemble folder look like one built before records carried digests."""
    record = json.loads((folder / "ensemble.json").read_text())
    record.pop("digest")
    for member in record["members"]:
        member.pop("digest")
    (folder / "ensemble.json").write_text(json.dumps(record, indent=2))


EDITS = {
    "member weights replaced": lambda t: _perturb_weights(t / "members" / "00"),
    "member config.json edited": lambda t: (t / "members" / "00" / CONFIG).write_text(
        (t / "members" / "00" / CONFIG).read_text().replace('"epoch": 1', '"epoch": 2')
    ),
    "ensemble fingerprint edited": lambda t: (t / "ensemble.json").write_text(
        (t / "ensemble.json")
        .read_text()
        .replace(json.loads((t / "ensemble.json").read_text())["fingerprint"], "0123456789abcdef")
    ),
}


@pytest.mark.hostile(DIGESTS)
@pytest.mark.parametrize("edit", list(EDITS))
def test_an_ensemble_changed_since_it_was_built_is_one_line_wherever_it_is_used(
    cli, tiny_storage, tmp_path, edit
):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_storage / "ensembles" / "default", teacher)
    EDITS[edit](teacher)
    named = (
        "edited since lvm-search wrote it"
        if "ensemble" in edit
        else "has changed since the ensemble was built"
    )
    code, _, err = cli("eval", teacher)
    assert code == 2 and named in one_error(err)
    out = tmp_path / "student"
    code, _, err = cli("train", "--arch", "amn", "--epochs", "1", "--teacher", teacher, "--out", out)
    assert code == 2 and named in one_error(err) and not out.exists()


@pytest.mark.hostile(DIGESTS)
def test_a_member_rewritten_in_its_run_is_found_in_the_ensemble_that_links_it(tiny_storage, tmp_path):
    """Members are hard links where the file system allows: a checkpoint rewritten in place in its run
    changes the ensemble too, and loading it says so."""
    storage = tmp_path / "runs"
    shutil.copytree(tiny_storage, storage)
    from lvm_search.ensemble.build import build_ensemble, load_recipe

    folder = Path(build_ensemble(load_recipe(None), storage)["path"])
    record = json.loads((folder / "ensemble.json").read_text())
    run, trial = record["members"][0]["name"].split("/")
    summary = json.loads((storage / run / "summary.json").read_text())
    checkpoint = storage / run / next(t["checkpoint"] for t in summary["trials"] if t["trial_id"] == trial)
    weights = checkpoint / "model.safetensors"
    content = bytearray(weights.read_bytes())
    content[-4:] = b"\x00\x00\x80\x3f"  # the last float32 of the last tensor, in place
    with open(weights, "r+b") as f:  # same inode: a hard-linked member sees it
        f.write(content)
    if os.path.samefile(weights, folder / "members" / "00" / "model.safetensors"):
        with pytest.raises(UserError, match="has changed since the ensemble was built"):
            load_ensemble(folder)


@pytest.mark.hostile(DIGESTS)
@pytest.mark.slow
def test_a_resume_refuses_a_teacher_whose_member_was_replaced_between_starts(tiny_storage, tmp_path, cli):
    for legacy in (False, True):
        teacher = tmp_path / f"teacher-{legacy}"
        shutil.copytree(tiny_storage / "ensembles" / "default", teacher)
        if legacy:
            _without_digests(teacher)
        space = tmp_path / "student.yaml"
        space.write_text(json.dumps(one_trial_space(data={"teacher": str(teacher)})))
        storage = tmp_path / f"s-{legacy}"
        code, _, err = cli("run", space, "--storage", storage)
        assert code == 0, err[-2000:]
        log = (storage / "student" / "trials.jsonl").read_bytes()
        _perturb_weights(teacher / "members" / "00")  # the same ensemble.json, another member
        code, _, err = cli("run", space, "--storage", storage, "--samples", "2")
        # an ensemble that records its members' digests refuses to load; an older one is another teacher
        named = "another teacher" if legacy else "has changed since the ensemble was built"
        assert code == 2 and named in one_error(err)
        assert (storage / "student" / "trials.jsonl").read_bytes() == log


@pytest.mark.hostile(FALSE_REFUSALS)
def test_an_ensemble_built_before_records_carried_digests_still_loads_and_teaches(
    cli, tiny_storage, tmp_path
):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_storage / "ensembles" / "default", teacher)
    _without_digests(teacher)
    code, _, err = cli("eval", teacher, "--json")
    assert code == 0, err
    assert load_teacher(teacher, load_data(None)).files_digest
