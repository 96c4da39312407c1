"""The search end to end through Ray Tune and Optuna, on the packaged sample, with tiny trials."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lvm_search.checkpoint import load_model
from lvm_search.data import load_data
from lvm_search.metrics import predict
from lvm_search.search import SearchOptions, run_search
from lvm_search.spaces import load_space

# AMN trains in a fraction of a second per epoch on the sample; the reference (width 512,
# key_dim 256) must lie inside the space, so it is one of the choices.
TINY_SPACE = """
arch: amn
samples: {samples}
seed: 0
max_concurrent: 1
scheduler: {{type: asha, grace_period: 1, reduction_factor: 2}}
resources: {{cpus_per_trial: 1}}
data: {{k: 7, min_context: 5}}
space:
  width: {{type: choice, values: [32, 512]}}
  key_dim: {{type: choice, values: [16, 256]}}
  lr: {{type: float, low: 1.0e-4, high: 3.0e-3, log: true}}
  epochs: {{type: int, low: 2, high: 20}}
"""


def write_space(tmp_path: Path, samples: int) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE.format(samples=samples))
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    space = load_space(write_space(tmp, samples=3)).with_overrides(max_epochs=2)
    summary = run_search(space, SearchOptions(storage=str(tmp / "runs"), verbose=0))
    return space, summary, tmp / "runs" / "tiny"


def test_a_tiny_search_writes_summary_checkpoints_and_study(tiny_run):
    _, summary, run_dir = tiny_run
    assert summary["counts"]["trials"] == 3
    assert json.loads((run_dir / "summary.json").read_text())["best"] == summary["best"]
    assert (run_dir / "study.db").exists()
    for trial in summary["trials"]:
        assert trial["status"] == "ok"
        assert (run_dir / trial["checkpoint"] / "model.safetensors").exists()


def test_the_reference_configuration_is_trial_zero(tiny_run):
    space, summary, _ = tiny_run
    first = summary["trials"][0]
    assert first["number"] == 0
    assert first["config"] == space.reference_point()
    assert first["config"]["width"] == 512 and first["config"]["key_dim"] == 256


def test_the_best_checkpoint_reproduces_its_recorded_val_cosine(tiny_run):
    _, summary, run_dir = tiny_run
    best = summary["best"]
    assert best["val_cosine"] == max(t["val_cosine"] for t in summary["trials"])
    model, meta = load_model(run_dir / best["checkpoint"])
    data = load_data(k=7, min_context=5)  # the space file's data section
    assert meta["fingerprint"] == data.fingerprint and meta["k"] == 7
    _, target = data.batch("val", slice(None))
    cosine = (predict(model, data, "val") * target).sum(-1).mean().item()
    assert cosine == pytest.approx(best["val_cosine"], abs=1e-5)


def test_the_optuna_study_holds_every_finished_trial(tiny_run):
    import optuna

    _, summary, run_dir = tiny_run
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert sorted(t.value for t in study.trials) == sorted(t["val_cosine"] for t in summary["trials"])


def test_ray_leaves_no_files_outside_the_run(tiny_run):
    _, _, run_dir = tiny_run
    assert not (run_dir / "ray").exists()
    assert not (Path.home() / ".ray" / "auth_token").exists() or os.environ.get("RAY_AUTH_TOKEN") is None


def _trials_done(run_dir: Path) -> int:
    log = run_dir / "trials.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_an_interrupted_search_resumes_to_exactly_samples_trials(tmp_path):
    space = write_space(tmp_path, samples=4)
    cmd = [sys.executable, "-m", "lvm_search.cli", "run", str(space), "--storage", str(tmp_path / "runs"),
           "--max-epochs", "3", "--json"]
    run_dir = tmp_path / "runs" / "tiny"
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while _trials_done(run_dir) < 1 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.2)
    assert driver.poll() is None, "the search finished before it could be interrupted"
    os.killpg(driver.pid, signal.SIGINT)
    assert driver.wait(timeout=60) == 130  # "interrupted: run the same command again"
    interrupted = _trials_done(run_dir)
    assert 1 <= interrupted < 4

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)
    assert summary["counts"]["trials"] == 4
    assert len({t["trial_id"] for t in summary["trials"]}) == 4
    assert sorted(t["number"] for t in summary["trials"]) == [0, 1, 2, 3]
    assert all(t["status"] == "ok" for t in summary["trials"])
    assert {t["attempt"] for t in summary["trials"]} == {1, 2}
    configs = [json.dumps(t["config"], sort_keys=True) for t in summary["trials"]]
    assert len(set(configs)) == 4, "a resumed search proposed a configuration again"


@pytest.mark.parametrize(
    "text, message",
    [
        ("arch: lstm\nspace: {lr: {type: float, low: 0.1, high: 0.01}}\n", "space.lr: low (0.1) > high (0.01)"),
        ("arch: nope\n", "arch: unknown architecture 'nope'"),
        ("arch: lstm\nspace: {colour: {type: int, low: 1, high: 2}}\n", "space.colour: unknown setting"),
        ("arch: lstm\nspace: {lr: {type: float, low: -1.0, high: 0.01}}\n", "space.lr.low"),
        ("arch: lstm\nsamplez: 3\n", "unknown key(s) ['samplez']"),
        ("arch: [lstm\n", "not valid YAML"),
        ("arch: lstm\nspace: {epochs: {type: int, low: 0, high: 5}}\n", "space.epochs.low: epochs must be >= 1"),
        ("arch: lstm\nfixed: {epochs: 0}\n", "epochs must be >= 1"),
        ("arch: lstm\nfixed: {lr: 0}\n", "lr must be > 0"),
        ("arch: lstm\ndata: {k: 5, min_context: 8}\n", "data.min_context: must be <= k (5)"),
        ("arch: lstm\ndata: {window: 5}\n", "data: unknown key(s) ['window']"),
        ("arch: lstm\nspace: {base_decay: {type: float, low: 0.5, high: 0.9}}\n", "space.base_decay: the reference default 1.0"),
    ],
)
def test_a_bad_space_file_is_one_line_and_exit_2(tmp_path, cli, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = cli("run", str(path), "--storage", str(tmp_path / "runs"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("lvm-search: error: ")
    assert str(path) in err and message in err
    assert not (tmp_path / "runs").exists()


def test_a_missing_space_file_is_one_line_and_exit_2(tmp_path, cli):
    code, _, err = cli("run", str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml: no such space file" in err and err.count("\n") == 1


def test_asking_for_more_gpus_than_the_cluster_has_is_a_clear_error(tmp_path, cli):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = cli("run", str(write_space(tmp_path, 1)), "--gpus-per-trial", "1", "--storage", str(tmp_path / "runs"))
    assert code == 2 and "asks for 1 GPU(s) but the cluster has 0" in err
