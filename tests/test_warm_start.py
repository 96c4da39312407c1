"""Warm starts (--init): training starts from a checkpoint's weights, the settings that size them take
its values, and checkpoints and runs record it so that a resume from other weights is refused."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from conftest import one_error, one_trial_space
from safetensors.torch import load_file

from lvm_search.data.windows import load_data
from lvm_search.errors import UserError
from lvm_search.models import build_model
from lvm_search.models.checkpoint import save_checkpoint
from lvm_search.search.spaces import load_space
from lvm_search.search.tuner import _fit_to_init
from lvm_search.warm_start import WarmStart, load_init, same_init, settings_from_init


def _init(arch="amn", dim=8, k=5, **model) -> WarmStart:
    torch.manual_seed(0)
    net = build_model(arch, dim, k, **model)
    with torch.no_grad():  # as if trained: a new model's output layer is zero, so it computes the base only
        for weights in net.parameters():
            weights.normal_(std=0.3)
    return WarmStart("/x/init", "/x/init", "d", arch, dim, k, dict(vars(net.cfg)), net.state_dict())


def test_the_settings_that_size_the_weights_or_change_what_they_compute_take_the_inits_values(caplog):
    init = _init(width=16, depth=1, dropout=0.1, base_decay=0.6)
    searched = {"width": [8, 32], "dropout": [0.0, 0.5], "base_decay": [0.5, 1.0], "k": [5, 16]}
    # width is searched and sizes the weights: fixed at 16; depth left at its default (2): fixed at 1;
    # base_decay is searched and changes what they compute: fixed at 0.6; dropout (off at inference)
    # and k (the context read) neither: still searched
    pinned = {"width": 16, "depth": 1, "base_decay": 0.6}
    assert settings_from_init(init, "amn", 8, {}, searched, "s.yaml") == pinned
    assert (
        settings_from_init(init, "amn", 8, {"width": 16, "depth": 1, "base_decay": 0.6}, {}, "s.yaml") == {}
    )
    # a base the user fixed is theirs to try: kept, with a warning
    assert (
        settings_from_init(init, "amn", 8, {"width": 16, "depth": 1, "base_decay": 0.9}, {}, "s.yaml") == {}
    )
    assert "s.yaml: base_decay=0.9 changes what --init /x/init computes (base_decay=0.6)" in caplog.text
    # an init without the residual base: the default (residual) would compute something else from it
    assert settings_from_init(_init(residual=False), "amn", 8, {}, {}, "s.yaml") == {"residual": False}
    # the same weights read as another number of heads are another model
    transformer = _init("transformer", width=16, depth=1, heads=4, ff=32)
    assert settings_from_init(transformer, "transformer", 8, {}, {"heads": [2, 8]}, "s.yaml")["heads"] == 4
    # heads that cannot divide the init's width: refused for that, not for sizing the weights
    with pytest.raises(UserError, match="heads=32 with the init's other settings: .*not divisible"):
        settings_from_init(transformer, "transformer", 8, {"heads": 32}, {}, "s.yaml")
    with pytest.raises(
        UserError, match=r"s.yaml: width=32 sizes the weights otherwise than --init .*\(width=16\)"
    ):
        settings_from_init(init, "amn", 8, {"width": 32}, {}, "s.yaml")
    with pytest.raises(UserError, match="arch amn, not lstm"):
        settings_from_init(init, "lstm", 8, {}, {}, "s.yaml")
    with pytest.raises(UserError, match="D=8 vectors; the data has D=16"):
        settings_from_init(init, "amn", 16, {}, {}, "s.yaml")


def test_train_starts_from_the_inits_weights_and_records_it(cli, tmp_path):
    common = ("train", "--arch", "amn", "--epochs", "1", "--k", "5")
    assert cli(*common, "--set", "width=8", "--out", tmp_path / "a")[0] == 0
    # a step too small to move the weights: what is saved is what training started from
    code, out, err = cli(*common, "--set", "lr=1e-12", "--init", tmp_path / "a", "--out", tmp_path / "b")
    assert code == 0, err
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.allclose(a[n], b[n], atol=1e-6) for n in a)
    meta = json.loads((tmp_path / "b" / "config.json").read_text())
    assert meta["init"]["source"] == str(tmp_path / "a") and meta["model_config"]["width"] == 8

    code, _, err = cli(*common, "--set", "width=16", "--init", tmp_path / "a", "--out", tmp_path / "c")
    assert code == 2 and "width=16 sizes the weights otherwise than --init" in one_error(err)
    assert not (tmp_path / "c").exists()
    code, _, err = cli(*common, "--init", tmp_path / "nothing", "--out", tmp_path / "c")
    assert code == 2 and "nothing: --init: no such file or folder" in one_error(err)
    code, _, err = cli(*common, "--init", tmp_path, "--out", tmp_path / "c")
    assert code == 2 and "not a checkpoint or run folder" in one_error(err)
    code, _, err = cli(*common, "--init", tmp_path / "a", "--out", tmp_path / "a")
    assert code == 2 and "--out would overwrite the --init checkpoint" in one_error(err)
    # the weights file itself names its checkpoint (as does its config.json)
    code, _, err = cli(
        *common, "--set", "lr=1e-12", "--init", tmp_path / "a" / "model.safetensors", "--out", tmp_path / "f"
    )
    assert code == 0, err
    code, _, err = cli(
        *common, "--set", "lr=1e-12", "--init", tmp_path / "a" / "config.json", "--out", tmp_path / "g"
    )
    assert code == 0, err

    # heads=3 divides the init's width (24), if not the default one (512)
    tf = ("train", "--arch", "transformer", "--epochs", "1", "--k", "5")
    assert (
        cli(*tf, "--set", "width=24", "--set", "depth=1", "--set", "ff=32", "--out", tmp_path / "t")[0] == 0
    )
    code, _, err = cli(*tf, "--set", "heads=3", "--init", tmp_path / "t", "--out", tmp_path / "t3")
    assert code == 0, err
    assert json.loads((tmp_path / "t3" / "config.json").read_text())["model_config"]["heads"] == 3

    # a folder of one init per architecture gives the one of the model trained
    shutil.copytree(tmp_path / "a", tmp_path / "inits" / "amn")
    code, _, err = cli(*common, "--set", "lr=1e-12", "--init", tmp_path / "inits", "--out", tmp_path / "d")
    assert code == 0, err
    meta = json.loads((tmp_path / "d" / "config.json").read_text())
    assert meta["init"]["source"] == str(tmp_path / "inits" / "amn")
    other = ("train", "--arch", "gru", "--epochs", "1", "--k", "5", "--out", tmp_path / "e")
    code, _, err = cli(*other, "--init", tmp_path / "inits")
    assert code == 2 and "nor a folder with one for gru in gru/" in one_error(err)


def test_a_search_starts_every_trial_from_the_init_and_a_resume_checks_it(cli, tmp_path):
    assert (
        cli(
            "train",
            "--arch",
            "amn",
            "--epochs",
            "1",
            "--k",
            "5",
            "--set",
            "width=16",
            "--out",
            tmp_path / "a",
        )[0]
        == 0
    )
    space = tmp_path / "amn.yaml"
    space.write_text(yaml.safe_dump(one_trial_space()))  # searches width only
    code, _, err = cli("run", space, "--storage", tmp_path / "runs", "--init", tmp_path / "a", "--k", "5")
    assert code == 2 and "nothing is left to search (width: the init's values)" in one_error(err)
    lr = {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    space.write_text(
        yaml.safe_dump(one_trial_space(space={"width": {"type": "choice", "values": [8, 16]}, "lr": lr}))
    )
    storage = tmp_path / "runs"
    code, out, err = cli("run", space, "--storage", storage, "--init", tmp_path / "a", "--k", "5", "-q")
    assert code == 0, err
    run = storage / "amn"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["init"]["source"] == str(tmp_path / "a")
    assert "width" not in summary["trials"][0]["config"]  # fixed at the init's, not searched
    best = json.loads((run / summary["best"]["checkpoint"] / "config.json").read_text())
    assert best["model_config"]["width"] == 16 and best["init"] == summary["init"]

    # the same folder retrained is other weights: the resume is refused, and so is none
    assert (
        cli(
            "train",
            "--arch",
            "amn",
            "--epochs",
            "2",
            "--k",
            "5",
            "--set",
            "width=16",
            "--out",
            tmp_path / "a",
        )[0]
        == 0
    )
    for more in (("--init", tmp_path / "a"), ()):
        code, _, err = cli("run", space, "--storage", storage, "--k", "5", "--samples", "2", *more)
        assert code == 2 and "started from other initial weights" in one_error(err)
    code, _, err = cli("run", space, "--storage", storage, "--k", "5", "--init", run, "--name", "amn")
    assert code == 2 and "--init is in the run folder this search writes" in one_error(err)


def test_an_init_is_known_by_its_weights_wherever_it_lies(tmp_path):
    net = build_model("amn", 8, 5, width=8, depth=1)
    meta = {"arch": "amn", "model_config": dict(vars(net.cfg)), "dim": 8, "k": 5, "fingerprint": "f"}
    save_checkpoint(tmp_path / "a", net, meta)
    recorded = load_init(tmp_path / "a", "amn").describe()
    # moved, reached through a link in a folder of inits, or with a file browser's .DS_Store beside it
    shutil.move(tmp_path / "a", tmp_path / "moved")
    (tmp_path / "inits").mkdir()
    (tmp_path / "inits" / "amn").symlink_to(tmp_path / "moved")
    (tmp_path / "moved" / ".DS_Store").write_bytes(b"\0\1")
    init = load_init(tmp_path / "inits", "amn")
    assert init.source == str(tmp_path / "moved") and same_init(recorded, init)
    # other weights are another init
    save_checkpoint(tmp_path / "b", build_model("amn", 8, 5, width=8, depth=1), meta)
    assert not same_init(recorded, load_init(tmp_path / "b", "amn"))
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(UserError, match="loop: --init: cannot read it"):
        load_init(tmp_path / "loop", "amn")


def test_a_space_is_checked_on_the_inits_settings(write_native, tmp_path):
    """heads: 3 cannot divide the default width (512) but divides the init's (24): with --init the
    space's trials are checked once the init's settings are in."""
    path = tmp_path / "t.yaml"
    lr = {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    path.write_text(yaml.safe_dump({"arch": "transformer", "fixed": {"heads": 3}, "space": {"lr": lr}}))
    with pytest.raises(UserError, match="not divisible by heads 3"):
        load_space(path)
    data = load_data(write_native([9] * 12, dim=8), k=5)
    init = _init("transformer", width=24, depth=1, heads=4, ff=32)
    space, _ = _fit_to_init(load_space(path, check_trials=False), data, init)
    assert space.fixed["width"] == 24 and space.fixed["heads"] == 3 and set(space.space) == {"lr"}
    path.write_text(yaml.safe_dump({"arch": "transformer", "fixed": {"heads": 5}, "space": {"lr": lr}}))
    with pytest.raises(UserError, match="heads=5 with the init's other settings: .*not divisible by heads 5"):
        _fit_to_init(load_space(path, check_trials=False), data, init)
    # what load_space left unchecked is checked there all the same
    path.write_text(yaml.safe_dump({"arch": "transformer", "fixed": {"ema": 1.5}, "space": {"lr": lr}}))
    with pytest.raises(UserError, match=r"ema must be in \[0, 1\)"):
        _fit_to_init(load_space(path, check_trials=False), data, init)
