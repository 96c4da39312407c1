"""Checkpoints: a safetensors + config.json folder that round-trips exactly and never unpickles."""

import json
import pickle
import re

import numpy as np
import pytest
import torch
from conftest import CONFINED, CORRUPT

from lvm_search.data.windows import load_data
from lvm_search.errors import UserError
from lvm_search.models.checkpoint import (
    CONFIG,
    WEIGHTS,
    check_fingerprint,
    load_model,
    read_meta,
    save_checkpoint,
)
from lvm_search.scoring.metrics import predict
from lvm_search.train import TrainConfig, train


def write_tiny_native(path, dim=16, n_docs=12, length=10, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n_docs * length, dim))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    np.savez(
        path, vectors=v.astype(np.float32), doc_ids=np.repeat(np.arange(n_docs), length).astype(np.int32)
    )
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch of a tiny LSTM (depth 1, width 16) on a tiny D=16 file, saved as a checkpoint."""
    root = tmp_path_factory.mktemp("ckpt")
    data = load_data(write_tiny_native(root / "tiny.npz"))
    result = train(
        TrainConfig(arch="lstm", model={"depth": 1, "width": 16}, epochs=1, batch_size=32, device="cpu"), data
    )
    path = save_checkpoint(root / "run" / "best", result.model, result.meta)
    return data, result, path


@pytest.fixture
def checkpoint_copy(trained, tmp_path):
    """A private copy of the trained checkpoint folder, free to damage."""
    _, _, path = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (WEIGHTS, CONFIG):
        (copy / name).write_bytes((path / name).read_bytes())
    return copy


class Payload:
    """Unpickling this creates ``marker``: proof that a loader executed pickled code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_payload_is_live_when_unpickled(tmp_path):
    # Guard for the tests below: a plain unpickle of Payload does create its marker.
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(marker))).close()
    assert marker.exists()


def test_checkpoint_folder_holds_safetensors_and_config(trained):
    _, result, path = trained
    assert sorted(p.name for p in path.iterdir()) == sorted([WEIGHTS, CONFIG])
    meta = json.loads((path / CONFIG).read_text())
    assert meta["arch"] == "lstm"
    assert meta["model_config"]["depth"] == 1 and meta["model_config"]["width"] == 16
    assert meta["dim"] == 16 and meta["k"] == 5
    assert meta["params"] == sum(p.numel() for p in result.model.parameters())
    assert meta["epoch"] == 1 and "val_cosine" in meta["metrics"]


def test_save_then_load_gives_identical_predictions(trained):
    data, result, path = trained
    model, meta = load_model(path)
    assert not model.training
    for split in ("val", "test"):
        assert torch.equal(predict(model, data, split), predict(result.model, data, split))
    check_fingerprint(meta, data.fingerprint, path)  # same data: no error
    assert meta == json.loads(json.dumps(result.meta))


@pytest.mark.hostile(CONFINED)
def test_saving_over_an_existing_checkpoint_replaces_it(trained, tmp_path):
    data, result, path = trained
    dest = tmp_path / "best"
    save_checkpoint(dest, torch.nn.Linear(2, 2), {"stale": True})  # an older checkpoint in its place
    save_checkpoint(dest, result.model, result.meta)
    assert sorted(p.name for p in dest.iterdir()) == sorted([WEIGHTS, CONFIG])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no temporary folder left behind
    model, _ = load_model(dest)
    assert torch.equal(predict(model, data, "val"), predict(result.model, data, "val"))


@pytest.mark.hostile(CONFINED)
@pytest.mark.parametrize("what", ["a folder of results", "the current folder", "a file"])
def test_saving_over_anything_but_a_checkpoint_is_refused_and_it_stays(trained, tmp_path, what):
    _, result, _ = trained
    if what == "a file":
        dest = tmp_path / "notes.txt"
        dest.write_text("mine")
        before = {dest: "mine"}
    else:
        dest = tmp_path / "runs"
        (dest / "lstm").mkdir(parents=True)
        (dest / "lstm" / "summary.json").write_text("{}")
        if what == "the current folder":
            (dest / "config.json").write_text("{}")  # even with a config.json beside other files
        before = {p: p.read_text() for p in dest.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="is not a checkpoint folder that lvm-search wrote"):
        save_checkpoint(dest, result.model, result.meta)
    assert {p: p.read_text() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({dest.name})


@pytest.mark.hostile(CONFINED)
def test_a_save_that_fails_midway_keeps_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    data, result, path = trained
    dest = tmp_path / "best"
    save_checkpoint(dest, result.model, result.meta)
    import lvm_search.models.checkpoint as checkpoint

    def broken(state, filename):
        open(filename, "wb").write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", broken)
    with pytest.raises(OSError):
        save_checkpoint(dest, torch.nn.Linear(2, 2), {"other": True})
    model, _ = load_model(dest)  # the previous checkpoint, whole
    assert torch.equal(predict(model, data, "val"), predict(result.model, data, "val"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_check_fingerprint_refuses_other_data(trained, tmp_path):
    data, _, path = trained
    _, meta = load_model(path)
    other = load_data(write_tiny_native(tmp_path / "other.npz", seed=1))
    with pytest.raises(UserError, match=re.escape(str(path))):
        check_fingerprint(meta, other.fingerprint, path)


def test_check_fingerprint_refuses_another_split_of_the_same_data(trained):
    data, _, path = trained
    _, meta = load_model(path)
    resplit = load_data(data.source, seed=1)
    with pytest.raises(UserError, match="fingerprint"):
        check_fingerprint(meta, resplit.fingerprint, path)


def test_checkpoint_of_another_dimension_is_refused_for_the_data(trained, tmp_path, cli):
    _, _, path = trained  # D=16
    narrow = write_tiny_native(tmp_path / "d8.npz", dim=8)
    code, out, err = cli("eval", path, "--data", narrow)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "reads D=16 vectors" in err and "d8.npz has D=8" in err
    code, _, err = cli("predict", path, "--data", narrow, "--out", tmp_path / "p.npz")
    assert code == 2 and "D=8" in err and not (tmp_path / "p.npz").exists()


def test_config_whose_dim_does_not_fit_the_weights_is_refused(checkpoint_copy):
    meta = json.loads((checkpoint_copy / CONFIG).read_text())
    meta["dim"] = 12
    (checkpoint_copy / CONFIG).write_text(json.dumps(meta))
    with pytest.raises(UserError, match="do not fit"):
        load_model(checkpoint_copy)


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickled_weights_are_refused_and_never_executed(checkpoint_copy, tmp_path, writer):
    marker = tmp_path / "pwned"
    weights = checkpoint_copy / WEIGHTS
    if writer == "pickle":
        weights.write_bytes(pickle.dumps({"lstm.weight_ih_l0": Payload(marker)}))
    else:
        torch.save({"lstm.weight_ih_l0": Payload(marker)}, weights)
    with pytest.raises(UserError, match="safetensors"):
        load_model(checkpoint_copy)
    assert not marker.exists()


@pytest.mark.hostile(CORRUPT)
@pytest.mark.parametrize("keep", [0.5, 0.9, 8])
def test_truncated_safetensors_is_refused(checkpoint_copy, keep):
    weights = checkpoint_copy / WEIGHTS
    raw = weights.read_bytes()
    weights.write_bytes(raw[: int(len(raw) * keep) if keep < 1 else keep])
    with pytest.raises(UserError, match=re.escape(str(weights))):
        load_model(checkpoint_copy)


def test_missing_weights_or_config_is_refused(checkpoint_copy):
    (checkpoint_copy / WEIGHTS).unlink()
    with pytest.raises(UserError, match=WEIGHTS):
        load_model(checkpoint_copy)
    (checkpoint_copy / CONFIG).unlink()
    with pytest.raises(UserError, match=CONFIG):
        load_model(checkpoint_copy)


@pytest.mark.hostile(CORRUPT)
@pytest.mark.parametrize("damage", ["not json", "missing field"])
def test_broken_config_is_refused(checkpoint_copy, damage):
    config = checkpoint_copy / CONFIG
    if damage == "not json":
        config.write_text("{arch: lstm")
    else:
        meta = json.loads(config.read_text())
        del meta["fingerprint"]
        config.write_text(json.dumps(meta))
    with pytest.raises(UserError, match=CONFIG):
        read_meta(checkpoint_copy)


@pytest.mark.hostile(CORRUPT)
def test_config_with_a_wrongly_typed_setting_is_refused(checkpoint_copy):
    config = checkpoint_copy / CONFIG
    meta = json.loads(config.read_text())
    meta["model_config"]["width"] = "16"
    config.write_text(json.dumps(meta))
    with pytest.raises(UserError):
        load_model(checkpoint_copy)


@pytest.mark.hostile(CONFINED)
def test_saving_over_a_link_to_a_checkpoint_is_refused_and_both_stay(trained, tmp_path):
    _, result, _ = trained
    target = tmp_path / "ck"
    save_checkpoint(target, result.model, result.meta)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    link = tmp_path / "cklink"
    link.symlink_to(target, target_is_directory=True)
    with pytest.raises(UserError, match="is a symbolic link"):
        save_checkpoint(link, result.model, result.meta)
    assert link.is_symlink() and {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "cklink"]
