"""The command line (``lvm_search.cli.main``) and the trainer's device choice.

A user's mistake must come back as exit code 2 and exactly one stderr line
``lvm-search: error: ...`` that names the file at fault; never as a traceback.
"""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import CONFINED, DEGENERATE, LEAKAGE, SMALL, one_error

from lvm_search.data.windows import load_data
from lvm_search.errors import UserError
from lvm_search.models.checkpoint import CONFIG, WEIGHTS, check_fingerprint, load_model
from lvm_search.train import resolve_device


def assert_user_error(code, out, err, *named):
    """Exit code 2, nothing on stdout, one stderr line 'lvm-search: error: ...' naming ``named``."""
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lvm-search: error: ")
    for name in named:
        assert str(name) in lines[0]


# --- bad data files --------------------------------------------------------------------------


def _nan_vectors(tmp_path, write_native):
    v = np.random.default_rng(0).standard_normal((60, 8))
    v[17, 3] = np.nan
    return write_native([10] * 6, vectors=v)


def _inf_vectors(tmp_path, write_native):
    v = np.random.default_rng(0).standard_normal((60, 8))
    v[5] = np.inf
    return write_native([10] * 6, vectors=v, dtype=np.float16)


def _truncated_sample(tmp_path, write_native, sample):
    raw = sample.read_bytes()
    path = tmp_path / "half.npz"
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _text_file(tmp_path, write_native):
    path = tmp_path / "notes.npz"
    path.write_text("vectors,doc_ids\n0.1,0\n")
    return path


def _empty_file(tmp_path, write_native):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    return path


def _folder(tmp_path, write_native):
    path = tmp_path / "data.npz"
    path.mkdir()
    return path


def _object_array(tmp_path, write_native):
    path = tmp_path / "objects.npz"
    np.savez(path, vectors=np.array([{"a": 1}, None], dtype=object), doc_ids=np.zeros(2, np.int32))
    return path


def _windows_without_targets(tmp_path, write_native):
    path = tmp_path / "w.npz"
    np.savez(path, context_sequences=np.ones((50, 3, 4), np.float32))
    return path


def _windows_shape_mismatch(tmp_path, write_native):
    path = tmp_path / "w.npz"
    np.savez(
        path, context_sequences=np.ones((50, 3, 4), np.float32), target_vectors=np.ones((49, 4), np.float32)
    )
    return path


BAD_FILES = {
    "missing file": lambda tmp_path, write_native: tmp_path / "nowhere.npz",
    "a folder": _folder,
    "text file": _text_file,
    "empty file": _empty_file,
    "object array": _object_array,
    "no vectors": lambda tmp_path, write_native: write_native(drop=("vectors",)),
    "no doc_ids": lambda tmp_path, write_native: write_native(drop=("doc_ids",)),
    "NaN vector": _nan_vectors,
    "Inf vector": _inf_vectors,
    "zero rows": lambda tmp_path, write_native: write_native(
        [], vectors=np.zeros((0, 8)), doc_ids=np.zeros(0, np.int32)
    ),
    "zero dimensions": lambda tmp_path, write_native: write_native([10] * 5, vectors=np.zeros((50, 0))),
    "integer vectors": lambda tmp_path, write_native: write_native([10] * 5, dtype=np.int16),
    "one-dimensional vectors": lambda tmp_path, write_native: write_native([10] * 5, vectors=np.ones(50)),
    "float doc_ids": lambda tmp_path, write_native: write_native([10] * 5, doc_ids=np.zeros(50)),
    "doc_ids too short": lambda tmp_path, write_native: write_native(
        [10] * 5, doc_ids=np.zeros(49, np.int32)
    ),
    "non-contiguous doc_ids": lambda tmp_path, write_native: write_native(
        [2, 2, 2], doc_ids=np.array([0, 1, 0, 1, 2, 2])
    ),
    "two documents": lambda tmp_path, write_native: write_native([10, 10]),
    "two documents with windows": lambda tmp_path, write_native: write_native([10, 3, 10, 5, 2]),
    "k larger than every document": lambda tmp_path, write_native: write_native([4] * 10),
    "k equal to every document": lambda tmp_path, write_native: write_native([5] * 10),
    "windows without targets": _windows_without_targets,
    "windows shape mismatch": _windows_shape_mismatch,
}


@pytest.mark.hostile(DEGENERATE)
@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_data_file_is_one_error_line_naming_it(cli, tmp_path, write_native, case):
    path = BAD_FILES[case](tmp_path, write_native)
    assert_user_error(*cli("baselines", "--data", path), path)


def test_truncated_npz_is_one_error_line_naming_it(cli, tmp_path, write_native, sample):
    path = _truncated_sample(tmp_path, write_native, sample)
    assert_user_error(*cli("baselines", "--data", path), path)


@pytest.mark.parametrize("case", ["missing file", "NaN vector", "two documents"])
def test_train_reports_bad_data_the_same_way(cli, tmp_path, write_native, case):
    path = BAD_FILES[case](tmp_path, write_native)
    out = tmp_path / "out"
    assert_user_error(*cli("train", "--arch", "lstm", "--epochs", "1", "--data", path, "--out", out), path)
    assert not out.exists()


def test_k_flag_larger_than_every_document_names_file_and_k(cli, write_native):
    path = write_native([10] * 6)
    code, out, err = cli("baselines", "--data", path, "--k", "10")
    assert_user_error(code, out, err, path, "k=10")


def test_npy_instead_of_npz_is_one_error_line(cli, tmp_path):
    path = tmp_path / "vectors.npy"
    np.save(path, np.ones((50, 8), np.float32))
    assert_user_error(*cli("baselines", "--data", path), path)


def test_damaged_compressed_npz_is_one_error_line(cli, tmp_path):
    v = np.random.default_rng(0).standard_normal((60, 8)).astype(np.float32)
    good = tmp_path / "good.npz"
    np.savez_compressed(good, vectors=v, doc_ids=np.repeat(np.arange(6), 10).astype(np.int32))
    raw = bytearray(good.read_bytes())
    raw[60:400] = bytes(b ^ 0xFF for b in raw[60:400])  # inside the first member's data, zip directory intact
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(raw))
    assert_user_error(*cli("baselines", "--data", path), path)


# --- bad train settings ----------------------------------------------------------------------


@pytest.fixture
def tiny(write_native):
    """A tiny native file: 12 documents of 10 passages, D=8."""
    return write_native([10] * 12, dim=8)


def test_unknown_set_key_is_one_error_line_naming_it(cli, tiny, tmp_path):
    code, out, err = cli(
        "train", "--arch", "amn", "--set", "colour=blue", "--data", tiny, "--out", tmp_path / "o"
    )
    assert_user_error(code, out, err, "colour", "--set")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv,named",
    [
        (["--arch", "mamba"], "mamba"),
        (["--arch", "amn", "--set", "width"], "width"),
        (["--arch", "lstm", "--set", "depth=0"], "depth"),
        (["--arch", "lstm", "--set", "schedule=linear"], "schedule"),
        (["--arch", "lstm", "--set", "epochs=many"], "--set"),
        (["--arch", "lstm", "--epochs", "0"], "epochs"),
    ],
)
def test_bad_train_settings_are_one_error_line(cli, tiny, tmp_path, argv, named):
    assert_user_error(*cli("train", *argv, "--data", tiny, "--out", tmp_path / "o"), named)


@pytest.mark.hostile(SMALL)
@pytest.mark.parametrize("value", ["0", "-3"])
def test_an_epochs_flag_out_of_range_is_named_as_the_flag_not_as_set(cli, tiny, tmp_path, value):
    code, out, err = cli("train", "--arch", "amn", "--epochs", value, "--data", tiny, "--out", tmp_path / "o")
    assert_user_error(code, out, err, f"lvm-search: error: --epochs: epochs must be >= 1, got {value}")
    assert "--set" not in err


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_an_out_path_train_may_not_replace_is_refused_before_training(cli, tiny, tmp_path, kind):
    out = tmp_path / "mine"
    mine = out / "notes.txt" if kind == "folder" else out
    mine.parent.mkdir(exist_ok=True)
    mine.write_text("keep me")
    code, stdout, err = cli("train", "--arch", "amn", "--data", tiny, "--out", out)
    assert_user_error(code, stdout, err, out, "choose another path")  # stdout empty: no epoch ran
    assert mine.read_text() == "keep me"


@pytest.mark.hostile(CONFINED)
def test_an_out_path_under_a_file_is_one_error_line_and_the_file_stays(cli, tiny, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    argv = ["--arch", "amn", "--epochs", "1", "--set", "width=8", "--data", tiny, "--out", notes / "ck"]
    code, _, err = cli("train", *argv)
    assert code == 2 and f"{notes / 'ck'}: cannot write here" in one_error(err)
    assert notes.read_text() == "keep me" and sorted(tmp_path.iterdir()) == sorted([notes, tiny])


def test_a_warning_about_the_users_data_is_one_line(write_windows):
    path, _, _ = write_windows(m=100, k=3, dim=8)
    argv = [sys.executable, "-m", "lvm_search.cli", "baselines", "--data", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"lvm-search: warning: {path}: windows format has no document ids")


def test_set_accepts_a_learning_rate_in_exponent_notation(cli, tiny, tmp_path):
    code, out, err = cli(
        "train",
        "--arch",
        "amn",
        "--epochs",
        "1",
        "--set",
        "lr=1e-3",
        "--set",
        "width=8",
        "--data",
        tiny,
        "--out",
        tmp_path / "o",
    )
    assert code == 0, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_train_on_an_absent_device_is_one_error_line(cli, tiny, tmp_path):
    assert_user_error(
        *cli("train", "--arch", "lstm", "--device", "cuda", "--data", tiny, "--out", tmp_path / "o"), "cuda"
    )


# --- baselines -------------------------------------------------------------------------------


def test_baselines_json_on_the_packaged_sample(cli, sample):
    code, out, err = cli("baselines", "--json")
    assert code == 0, err
    report = json.loads(out)  # the whole of stdout is one JSON object
    assert isinstance(report, dict)

    data = report["data"]
    assert data["D"] == 384 and data["k"] == 5
    assert data["fingerprint"] == load_data().fingerprint
    assert re.fullmatch(r"[0-9a-f]{16}", data["fingerprint"])

    splits = report["splits"]
    assert set(splits) == {"train", "val", "test"}
    assert {name: s["docs"] for name, s in splits.items()} == {"train": 52, "val": 6, "test": 6}
    _, lengths = np.unique(np.load(sample)["doc_ids"], return_counts=True)
    assert (
        sum(s["windows"] for s in splits.values()) == int(np.maximum(lengths - 5, 0).sum()) == 3554 - 64 * 5
    )

    assert set(report["baselines"]) == {"mean", "last", "recency", "ridge"}
    for name, b in report["baselines"].items():
        for split in ("val", "test"):
            assert isinstance(b[split], float) and -1 <= b[split] <= 1, (name, split)
            assert b[split] == b["metrics"][split]["cosine"]
    # The fitted baselines are fitted: each is at least as good as the plain mean on val.
    assert report["baselines"]["recency"]["val"] >= report["baselines"]["mean"]["val"]
    assert report["baselines"]["ridge"]["val"] >= report["baselines"]["mean"]["val"]


def test_baselines_text_report_on_a_tiny_file(cli, tiny):
    code, out, err = cli("baselines", "--data", tiny)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"data {tiny}") and "D=8 k=5" in lines[0]
    assert [line.split()[0] for line in lines[1:4]] == ["train", "val", "test"]
    assert {line.split()[0] for line in lines[5:]} == {"mean", "last", "recency", "ridge"}


def test_split_seed_flag_changes_the_fingerprint(cli, write_native):
    path = write_native([10] * 30, dim=4)
    fingerprints = [
        json.loads(cli("baselines", "--json", "--data", path, "--split-seed", s)[1])["data"]["fingerprint"]
        for s in (0, 1)
    ]
    assert fingerprints[0] != fingerprints[1]


# --- train -----------------------------------------------------------------------------------


def test_train_amn_one_epoch_on_the_sample_writes_a_checkpoint(cli, tmp_path):
    out_dir = tmp_path / "amn"
    code, out, err = cli("train", "--arch", "amn", "--epochs", "1", "--set", "width=32", "--out", out_dir)
    assert code == 0, err
    lines = out.splitlines()
    assert len([line for line in lines if line.startswith("epoch ")]) == 1
    assert lines[-1].startswith("best epoch 1:") and str(out_dir) in lines[-1]
    assert (out_dir / WEIGHTS).is_file() and (out_dir / CONFIG).is_file()

    meta = json.loads((out_dir / CONFIG).read_text())
    assert meta["arch"] == "amn" and meta["model_config"]["width"] == 32
    assert meta["dim"] == 384 and meta["k"] == 5
    model, meta = load_model(out_dir)
    check_fingerprint(meta, load_data().fingerprint, out_dir)


def test_train_prints_one_line_per_epoch(cli, tiny, tmp_path):
    code, out, err = cli(
        "train",
        "--arch",
        "lstm",
        "--epochs",
        "3",
        "--set",
        "width=8",
        "--set",
        "depth=1",
        "--data",
        tiny,
        "--out",
        tmp_path / "o",
    )
    assert code == 0, err
    epochs = [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")]
    assert epochs == ["1", "2", "3"]
    assert json.loads((tmp_path / "o" / CONFIG).read_text())["epoch"] in (1, 2, 3)


# --- devices ---------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_resolve_device_refuses_cuda_on_a_machine_without_it():
    with pytest.raises(UserError, match="cuda"):
        resolve_device("cuda")
    with pytest.raises(UserError):
        resolve_device("cuda:0")


def test_resolve_device_accepts_cpu_and_refuses_unknown_names():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="tpu"):
        resolve_device("tpu")


@pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(), reason="has an accelerator"
)
def test_auto_device_is_cpu_without_an_accelerator():
    assert resolve_device("auto") == torch.device("cpu")


def test_ema_evaluates_keeps_and_saves_the_averaged_weights(tiny, tmp_path):
    from lvm_search.scoring.metrics import predict
    from lvm_search.train import TrainConfig, train

    data = load_data(tiny)
    target = data.batch("val", slice(None))[1]

    def val_cosine(model):
        return (predict(model, data, "val") * target).sum(-1).mean().item()

    saved = {}

    def report(epoch, metrics, save):
        if save:
            save(tmp_path / "ckpt")
            saved.update(metrics)

    settings = dict(arch="lstm", model={"width": 8, "depth": 1}, epochs=3, batch_size=4, device="cpu")
    averaged = train(TrainConfig(**settings, ema=0.9), data, report)
    raw = train(TrainConfig(**settings), data)
    assert val_cosine(averaged.model) == pytest.approx(averaged.best["val_cosine"], abs=1e-5)
    assert val_cosine(load_model(tmp_path / "ckpt")[0]) == pytest.approx(saved["val_cosine"], abs=1e-5)
    assert averaged.best["val_cosine"] != pytest.approx(raw.best["val_cosine"], abs=1e-6)


def test_ema_outside_0_to_1_is_one_error_line(cli, tiny, tmp_path):
    code, out, err = cli(
        "train", "--arch", "amn", "--data", tiny, "--set", "ema=1.0", "--out", tmp_path / "o"
    )
    assert_user_error(code, out, err, "ema")


@pytest.mark.hostile(LEAKAGE)
def test_extra_train_flag_grows_train_only_and_a_missing_file_is_one_error_line(cli, write_native, tmp_path):
    main_path = write_native([10] * 10)
    extra_path = write_native([8] * 4, seed=3, name="extra.npz")
    plain = json.loads(cli("baselines", "--json", "--data", main_path)[1])
    code, out, err = cli("baselines", "--json", "--data", main_path, "--extra-train", extra_path)
    assert code == 0, err
    more = json.loads(out)
    assert more["splits"]["train"]["windows"] == plain["splits"]["train"]["windows"] + 4 * (8 - 5)
    assert (
        more["splits"]["val"] == plain["splits"]["val"] and more["splits"]["test"] == plain["splits"]["test"]
    )
    code, out, err = cli("baselines", "--data", main_path, "--extra-train", tmp_path / "nope.npz")
    assert_user_error(code, out, err, "nope.npz")
