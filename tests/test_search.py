"""The search end to end through Ray Tune and Optuna, on the packaged sample, with tiny trials."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml
from conftest import FALSE_REFUSALS, HANGS, LATE, RESUME, one_error, one_trial_space

from lvm_search.data.windows import load_data
from lvm_search.models.checkpoint import load_model
from lvm_search.scoring.metrics import predict, reference_mean, score
from lvm_search.search.progress import _short
from lvm_search.search.spaces import load_space, parse_space
from lvm_search.search.tuner import (
    SearchOptions,
    resolve_concurrency,
    resolve_device,
    run_search,
    run_searches,
)
from lvm_search.store.runs import read_summary

# AMN trains in a fraction of a second per epoch on the sample; trial 0, the space's reference, is
# the small end of each choice.
TINY_SPACE = """
arch: amn
samples: {samples}
seed: 0
max_concurrent: {concurrent}
scheduler: {{type: asha, grace_period: 1, reduction_factor: 2}}
resources: {{cpus_per_trial: 1}}
sampler: {sampler}
data: {{k: 7, min_context: 5}}
space:
  width: {{type: choice, values: [32, 512]}}
  key_dim: {{type: choice, values: [16, 256]}}
  lr: {{type: float, low: 1.0e-4, high: 3.0e-3, log: true}}
  epochs: {{type: int, low: 2, high: 20}}
reference: {{width: 32, key_dim: 16}}
"""


def write_space(tmp_path: Path, samples: int, sampler: str = "tpe", concurrent="1", name="tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY_SPACE.format(samples=samples, sampler=sampler, concurrent=concurrent))
    return path


def lvm_temp_folders() -> set[str]:
    """Ray folders of searches under the temp folder, but those of other processes still running
    (another search on this machine is not this one's leftover)."""
    parent = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir())

    def others(folder: Path) -> bool:
        try:
            return int((folder / "lvm-owner").read_text().split()[1]) != os.getpid()
        except (OSError, ValueError, IndexError):
            return False

    return {p.name for p in parent.glob("lvm-ray-*") if not others(p)}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    before = lvm_temp_folders(), dict(os.environ)
    space = load_space(write_space(tmp, samples=3)).with_overrides(max_epochs=2)
    summary = run_search(space, SearchOptions(storage=str(tmp / "runs")))
    return space, summary, tmp / "runs" / "tiny", before


def test_a_tiny_search_writes_summary_checkpoints_and_study(tiny_run):
    _, summary, run_dir, _ = tiny_run
    assert summary.counts.trials == 3
    assert read_summary(run_dir) == summary
    assert (run_dir / "study.db").exists()
    for trial in summary.trials:
        assert trial.status == "ok"
        assert (run_dir / trial.checkpoint / "model.safetensors").exists()
    p = summary.provenance
    assert p.lvm_search and p.torch and p.ray and p.optuna and p.python and p.device and p.command


def test_the_reference_configuration_is_trial_zero(tiny_run):
    space, summary, _, _ = tiny_run
    first = summary.trials[0]
    assert first.number == 0
    assert first.config == space.reference_point()
    assert first.config["width"] == 32 and first.config["key_dim"] == 16  # the space's reference
    # without a reference: the architecture's defaults (AMN width 512, key_dim 256), both searched
    without = yaml.safe_load(TINY_SPACE.format(samples=3, sampler="tpe", concurrent=1))
    del without["reference"]
    defaults = parse_space(without, "tiny.yaml").reference_point()
    assert defaults["width"] == 512 and defaults["key_dim"] == 256


def test_the_best_checkpoint_reproduces_its_recorded_val_cosine(tiny_run):
    _, summary, run_dir, _ = tiny_run
    best = summary.best
    assert best.val_cosine == max(t.val_cosine for t in summary.trials)
    model, meta = load_model(run_dir / best.checkpoint)
    data = load_data(k=7, min_context=5)  # the space file's data section
    assert meta["fingerprint"] == data.fingerprint and meta["k"] == 7
    _, target = data.batch("val", slice(None))
    cosine = (predict(model, data, "val") * target).sum(-1).mean().item()
    assert cosine == pytest.approx(best.val_cosine, abs=1e-5)
    assert meta["provenance"]["device"] and meta["provenance"]["command"] == summary.provenance.command


def test_the_summary_quotes_gains_over_the_mean_of_context_on_the_same_val_windows(tiny_run):
    _, summary, _, _ = tiny_run
    data = load_data(k=7, min_context=5)
    mean = score(reference_mean(data, "val"), data, "val")["cosine"]
    assert summary.baseline_val["mean"]["cosine"] == pytest.approx(mean, abs=1e-6)
    assert summary.best.gain_over_mean_pct == pytest.approx(100 * (summary.best.val_cosine / mean - 1))


def test_the_optuna_study_tells_pruned_from_finished_with_every_epoch(tiny_run):
    _, summary, run_dir, _ = tiny_run
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert len(study.trials) == len(summary.trials)
    by_params = {json.dumps(t.params, sort_keys=True): t for t in study.trials}
    for trial in summary.trials:
        ot = by_params[
            json.dumps({k: trial.config[k] for k in ("width", "key_dim", "lr", "epochs")}, sort_keys=True)
        ]
        assert ot.intermediate_values == {h.epoch: h.val_cosine for h in trial.history}
        if trial.stopped_early:
            assert ot.state == optuna.trial.TrialState.PRUNED
        else:
            assert ot.state == optuna.trial.TrialState.COMPLETE and ot.value == trial.val_cosine


@pytest.mark.hostile(HANGS)
def test_ray_leaves_no_files_and_no_settings_behind(tiny_run):
    _, _, run_dir, (folders_before, environ_before) = tiny_run
    assert lvm_temp_folders() <= folders_before  # the private Ray's temp folder is gone
    assert not (run_dir / ".staging").exists()
    ignore = {"RAY_AUTH_TOKEN", "PYTEST_CURRENT_TEST"}  # the token lives on in this process, by design
    assert {k: v for k, v in os.environ.items() if k not in ignore} == {
        k: v for k, v in environ_before.items() if k not in ignore
    }
    assert not (Path.home() / ".ray" / "auth_token").exists() or os.environ.get("RAY_AUTH_TOKEN") is None


def _trials_done(run_dir: Path) -> int:
    log = run_dir / "trials.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.hostile(RESUME)
# SIGTERM takes SIGINT's path (cluster.sigterm_as_interrupt): its 30 s run under -m slow
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)], ids=["SIGINT", "SIGTERM"]
)
def test_an_interrupted_search_resumes_to_exactly_samples_trials(tmp_path, sig):
    space = write_space(tmp_path, samples=4)
    cmd = [
        sys.executable,
        "-m",
        "lvm_search.cli",
        "run",
        str(space),
        "--storage",
        str(tmp_path / "runs"),
        "--max-epochs",
        "3",
        "--json",
    ]
    run_dir = tmp_path / "runs" / "tiny"
    stderr = open(tmp_path / "stderr.txt", "w")
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    deadline = time.time() + 120
    while _trials_done(run_dir) < 1 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.2)
    assert driver.poll() is None, "the search finished before it could be interrupted"
    if sig == signal.SIGINT:
        os.killpg(driver.pid, sig)  # Ctrl-C reaches the terminal's whole process group
    else:
        driver.send_signal(sig)  # kill, timeout and schedulers signal the driver alone
    assert driver.wait(timeout=60) == 130  # "interrupted: run the same command again"
    assert "received at time" not in (tmp_path / "stderr.txt").read_text()  # no C++ stack dump
    interrupted = _trials_done(run_dir)
    assert 1 <= interrupted < 4

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)  # stdout is the JSON alone; progress went to stderr
    assert "trial" in resumed.stderr and "started" in resumed.stderr
    assert summary["counts"]["trials"] == 4
    assert len({t["trial_id"] for t in summary["trials"]}) == 4
    assert sorted(t["number"] for t in summary["trials"]) == [0, 1, 2, 3]
    assert all(t["status"] == "ok" for t in summary["trials"])
    assert {t["attempt"] for t in summary["trials"]} == {1, 2}
    configs = [json.dumps(t["config"], sort_keys=True) for t in summary["trials"]]
    assert len(set(configs)) == 4, "a resumed search proposed a configuration again"
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert len(study.trials) == 4 and all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)


def test_every_sampler_runs_a_real_tiny_search(tmp_path):
    """GP, auto (here GP: all-numeric, no early stopping) and random, each a real search; the three in
    one Ray session, as `lvm-search run` searches several spaces."""
    spaces = []
    for sampler in ("gp", "auto", "random"):
        raw = {
            "arch": "amn",
            "samples": 3,
            "max_concurrent": 2,
            "sampler": sampler,
            "scheduler": {"type": "none"},
            "fixed": {"epochs": 1, "width": 32, "key_dim": 16},
            "space": {
                "lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
                "dropout": {"type": "float", "low": 0.0, "high": 0.3},
            },
        }
        spaces.append(parse_space(raw, f"{sampler}.yaml"))
        assert spaces[-1].resolved_sampler() == {"auto": "gp"}.get(sampler, sampler)
    summaries = run_searches(spaces, SearchOptions(storage=str(tmp_path / "runs")))
    assert [s.name for s in summaries] == ["gp", "auto", "random"]
    for summary in summaries:
        assert summary.counts.trials == 3 and summary.counts.ok == 3, summary.name
        assert len({json.dumps(t.config, sort_keys=True) for t in summary.trials}) == 3


@pytest.mark.parametrize(
    "scheduler, space, expected",
    [
        ("none", {"lr": {"type": "float", "low": 1e-4, "high": 3e-3}}, "gp"),
        ("asha", {"lr": {"type": "float", "low": 1e-4, "high": 3e-3}}, "tpe"),  # GP would stay random
        ("none", {"width": {"type": "choice", "values": [32, 512]}}, "tpe"),
    ],
)
def test_auto_picks_a_gaussian_process_only_for_numeric_spaces_whose_trials_all_finish(
    scheduler, space, expected
):
    raw = {"arch": "amn", "samples": 12, "sampler": "auto", "scheduler": {"type": scheduler}, "space": space}
    if "width" not in space:
        raw["fixed"] = {"width": 512}
    parsed = parse_space(raw, "auto.yaml")
    assert parsed.resolved_sampler() == expected
    kind = {"gp": optuna.samplers.GPSampler, "tpe": optuna.samplers.TPESampler}[expected]
    assert isinstance(parsed.make_sampler(seed=0), kind)


def test_the_progress_is_one_short_line_per_trial_event_on_stderr(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "lvm_search.cli",
        "run",
        str(write_space(tmp_path, 2, concurrent="2")),
        "--storage",
        str(tmp_path / "runs"),
        "--max-epochs",
        "2",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    # each line names a trial by its number in the summary, whichever of two started first
    started = {int(line.split()[1]): line.split(" started: ")[1] for line in lines if " started: " in line}
    summary = json.loads((tmp_path / "runs" / "tiny" / "summary.json").read_text())
    assert started == {
        t["number"]: " ".join(f"{k}={_short(v)}" for k, v in t["config"].items()) for t in summary["trials"]
    }
    assert (
        sum(
            line.startswith("trial ") and (" finished: " in line or " stopped early " in line)
            for line in lines
        )
        == 2
    )
    assert any("2/2 done" in line for line in lines) and any("1/2 done, about" in line for line in lines)
    assert not any(box in done.stderr + done.stdout for box in ("╭", "│", "+-----")), "Ray's tables"
    assert "tensorboard" not in done.stderr.lower()
    assert max(len(line) for line in lines) < 250
    assert done.stdout.splitlines()[0].startswith("tiny: 2 trials")


def test_max_concurrent_auto_fills_the_cpus_of_this_machine(tmp_path):
    space = load_space(write_space(tmp_path, samples=3, concurrent="auto")).with_overrides(max_epochs=1)
    summary = run_search(space, SearchOptions(storage=str(tmp_path / "runs")))
    cpus = summary.resources["cluster_cpus"]
    assert cpus >= 1 and summary.resources["device"] == "cpu"
    assert summary.resources["concurrency"] == min(3, int(cpus))


def test_resolve_concurrency_counts_gpus_cpus_and_trials_left():
    space = parse_space(
        {
            "arch": "amn",
            "samples": 10,
            "space": {"dropout": {"type": "float", "low": 0, "high": 0.1}},
            "resources": {"cpus_per_trial": 2},
        },
        "s.yaml",
    )
    assert resolve_concurrency(space, 0.0, {"CPU": 16}, done=0) == 8
    assert resolve_concurrency(space, 0.25, {"CPU": 16, "GPU": 1}, done=0) == 4
    assert resolve_concurrency(space, 0.125, {"CPU": 16, "GPU": 1}, done=0) == 8
    assert resolve_concurrency(space, 0.125, {"CPU": 16, "GPU": 2}, done=0) == 8  # then the CPUs bind
    assert resolve_concurrency(space, 0.0, {"CPU": 16}, done=7) == 3  # never more than the trials left
    assert resolve_concurrency(space, 0.0, {"CPU": 1}, done=0) == 1
    fixed = parse_space(
        {
            "arch": "amn",
            "samples": 10,
            "max_concurrent": 3,
            "space": {"dropout": {"type": "float", "low": 0, "high": 0.1}},
        },
        "s.yaml",
    )
    assert resolve_concurrency(fixed, 0.0, {"CPU": 16}, done=0) == 3


@pytest.mark.parametrize(
    "requested, gpus_per_trial, cluster_gpus, local_gpu, expected",
    [
        ("auto", "auto", 1, "cuda", ("cuda", 0.25)),
        ("auto", 0.5, 2, "cuda", ("cuda", 0.5)),
        ("auto", "auto", 1, None, ("cuda", 0.25)),  # a CPU driver joining a GPU cluster
        # a Mac: the private cluster counts Apple's GPU as one, so four trials share it as on CUDA
        ("auto", "auto", 1, "mps", ("mps", 0.25)),
        ("auto", "auto", 0, "mps", ("cpu", 0.0)),  # a cluster that counts no GPU
        ("auto", "auto", 0, None, ("cpu", 0.0)),
        ("cpu", "auto", 4, "mps", ("cpu", 0.0)),  # a Mac user keeps trials off the GPU
        ("mps", "auto", 1, "mps", ("mps", 0.25)),
        ("mps", 0, 1, "mps", ("mps", 0.0)),  # no GPU asked of Ray: trials share it, up to max_concurrent
        ("cuda", 1, 8, "cuda", ("cuda", 1.0)),
    ],
)
def test_the_device_choice(requested, gpus_per_trial, cluster_gpus, local_gpu, expected):
    assert resolve_device(requested, gpus_per_trial, cluster_gpus, local_gpu) == expected


@pytest.mark.parametrize(
    "requested, gpus_per_trial, cluster_gpus, local_gpu, message",
    [
        ("cuda", "auto", 0, "mps", "cuda was asked for, but the Ray cluster has no GPU"),
        ("mps", "auto", 1, None, "mps was asked for, but this machine has no working Apple GPU"),
        ("mps", "auto", 1, "cuda", "mps was asked for, but this machine has no working Apple GPU"),
        ("cpu", 0.5, 1, "cuda", "device cpu takes no GPUs, but gpus_per_trial is 0.5"),
    ],
)
def test_a_device_the_machine_lacks_is_a_user_error(
    requested, gpus_per_trial, cluster_gpus, local_gpu, message
):
    from lvm_search.errors import UserError

    with pytest.raises(UserError, match=message):
        resolve_device(requested, gpus_per_trial, cluster_gpus, local_gpu)


@pytest.mark.hostile(FALSE_REFUSALS)
@pytest.mark.parametrize(
    "requested, gpus_per_trial, cluster_gpus, expected",
    [
        ("cuda:0", "auto", 1, ("cuda", 0.25)),
        ("cuda:1", "auto", 2, ("cuda", 0.25)),  # GPU 1 of this machine; its trials see it as cuda
        ("cuda:3", 1, 4, ("cuda", 1.0)),
    ],
)
def test_run_takes_cuda_n_as_train_does(requested, gpus_per_trial, cluster_gpus, expected):
    assert resolve_device(requested, gpus_per_trial, cluster_gpus, "cuda") == expected
    space = parse_space({**one_trial_space(), "resources": {"device": requested}}, "gpu.yaml")
    assert space.resources.device == requested


@pytest.mark.hostile(FALSE_REFUSALS)
@pytest.mark.parametrize(
    "index, visible, count, expected",
    [
        (None, None, 2, ({}, 2)),  # every GPU
        (1, None, 2, ({"CUDA_VISIBLE_DEVICES": "1"}, 1)),  # GPU 1 alone
        (1, "4,5", 2, ({"CUDA_VISIBLE_DEVICES": "5"}, 1)),  # torch's cuda:1 is the machine's GPU 5
        (0, "GPU-a1, GPU-b2", 2, ({"CUDA_VISIBLE_DEVICES": "GPU-a1"}, 1)),
    ],
)
def test_the_private_cluster_is_given_gpu_n_alone(index, visible, count, expected):
    from lvm_search.search.cluster import gpu_settings

    assert gpu_settings(index, visible, count) == expected


@pytest.mark.hostile(FALSE_REFUSALS)
@pytest.mark.parametrize(
    "device, message",
    [
        ("cuda:2", "cuda:2 was asked for, but this machine has 2 GPU(s)"),
        ("cuda:x", "expected auto, cpu, cuda, cuda:N or mps, got 'cuda:x'"),
        ("auto:1", "expected auto, cpu, cuda, cuda:N or mps"),
        ("mps:1", "expected auto, cpu, cuda, cuda:N or mps"),
    ],
)
def test_a_gpu_index_the_machine_lacks_or_a_misspelt_device_is_a_user_error(device, message):
    from lvm_search.errors import UserError

    with pytest.raises(UserError, match=re.escape(message)):
        resolve_device(device, "auto", 2, "cuda")


@pytest.mark.hostile(FALSE_REFUSALS)
def test_run_device_cuda_n_is_understood_and_refused_only_for_what_the_machine_lacks(tmp_path, cli):
    space = tmp_path / "space.yaml"
    space.write_text(json.dumps(one_trial_space()))
    code, _, err = cli(
        "run", space, "--device", "cuda:1", "--address", "127.0.0.1:1", "--storage", tmp_path / "r"
    )
    assert code == 2 and "names a GPU of this machine, but on a cluster (--address)" in one_error(err)
    if not torch.cuda.is_available():
        code, _, err = cli("run", space, "--device", "cuda:0", "--storage", tmp_path / "r")
        assert code == 2 and "cuda:0 was asked for, but the Ray cluster has no GPU" in one_error(err)
    assert not (tmp_path / "r").exists()


def test_asking_for_a_device_this_machine_lacks_is_one_line_and_exit_2(tmp_path, cli):
    import torch

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has a GPU")
    for device in ("cuda", "mps"):
        code, _, err = cli(
            "run", str(write_space(tmp_path, 1)), "--device", device, "--storage", str(tmp_path / "runs")
        )
        assert code == 2 and f"{device} was asked for" in one_error(err)


def test_the_gp_sampler_without_scipy_is_one_line_and_exit_2_before_anything_is_written(
    tmp_path, cli, monkeypatch
):
    # What the offline bundle without --with-gp installs: every package but scipy.
    monkeypatch.setitem(sys.modules, "scipy", None)
    storage = tmp_path / "runs"
    code, _, err = cli("run", str(write_space(tmp_path, 1, sampler="gp")), "--storage", str(storage))
    assert code == 2 and "tiny.yaml: sampler gp is Optuna's GPSampler, which needs scipy" in one_error(err)
    assert not storage.exists()


@pytest.mark.hostile(LATE)
@pytest.mark.parametrize(
    "text, message",
    [
        (
            "arch: lstm\nspace: {lr: {type: float, low: 0.1, high: 0.01}}\n",
            "space.lr: low (0.1) > high (0.01)",
        ),
        ("arch: nope\n", "arch: unknown architecture 'nope'"),
        ("arch: lstm\nspace: {colour: {type: int, low: 1, high: 2}}\n", "space.colour: unknown setting"),
        ("arch: lstm\nspace: {lr: {type: float, low: -1.0, high: 0.01}}\n", "lr=-1.0: lr must be > 0"),
        ("arch: lstm\nsamplez: 3\n", "unknown key(s) ['samplez']"),
        ("arch: [lstm\n", "not valid YAML"),
        ("arch: lstm\nspace: {epochs: {type: int, low: 0, high: 20}}\n", "epochs=0: epochs must be >= 1"),
        (
            "arch: lstm\nfixed: {epochs: 0}\nspace: {lr: {type: float, low: 0.0001, high: 0.01}}\n",
            "epochs must be >= 1",
        ),
        ("arch: lstm\nfixed: {lr: 0}\nspace: {depth: {type: int, low: 1, high: 2}}\n", "lr must be > 0"),
        (
            "arch: lstm\ndata: {k: 5, min_context: 8}\nspace: {depth: {type: int, low: 1, high: 2}}\n",
            "data.min_context: must be <= k (5)",
        ),
        (
            "arch: lstm\ndata: {window: 5}\nspace: {depth: {type: int, low: 1, high: 2}}\n",
            "data: unknown key(s) ['window']",
        ),
        (
            "arch: lstm\nspace: {base_decay: {type: float, low: 0.8, high: 0.9}}\n",
            "space.base_decay: the reference default 0.75",
        ),
        ("arch: lstm\nfixed: {epochs: 3}\n", "space: a search needs at least one searched setting"),
        (
            "arch: lstm\nspace: {width: {type: choice, values: [0, 512]}}\n",
            "width=0: lstm: depth and width must be >= 1",
        ),
        (
            "arch: transformer\nspace: {heads: {type: choice, values: [8, 5]}}\n",
            "width 512 is not divisible by heads 5",
        ),
        (
            "arch: transformer\nfixed: {heads: 8}\nspace: {width: {type: choice, values: [512, 100]}}\n",
            "width=100: transformer: width 100 is not divisible by heads 8",
        ),
        (
            "arch: lstm\nspace: {batch_size: {type: float, low: 1, high: 512}}\n",
            "batch_size expects an integer, got 1.0",
        ),
        ("arch: lstm\nspace: {residual: {type: choice, values: [true, 'yes']}}\n", "residual"),
        (
            "arch: lstm\nspace: {k: {type: choice, values: [5, 8]}}\n",
            "searching the context length needs data.min_context",
        ),
        (
            "arch: lstm\ndata: {k: 6, min_context: 6}\nspace: {k: {type: choice, values: [6, 4]}}\n",
            "k=4 is shorter than data.min_context=6",
        ),
        (
            "arch: lstm\nmax_concurrent: many\nspace: {depth: {type: int, low: 1, high: 2}}\n",
            "max_concurrent (or auto)",
        ),
        (
            "arch: lstm\nresources: {device: tpu}\nspace: {depth: {type: int, low: 1, high: 2}}\n",
            "resources.device",
        ),
        (
            "a: &a [1,1,1,1,1,1,1,1,1,1]\n"  # each line ten times the one before: 10**6 values in 6 lines
            + "".join(f"{a}: &{a} [{','.join([f'*{b}'] * 10)}]\n" for b, a in zip("abcde", "bcdef")),
            "expands to more than 100,000 values",
        ),
    ],
)
def test_a_bad_space_file_is_one_line_and_exit_2_before_ray_starts(tmp_path, cli, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = cli("run", str(path), "--storage", str(tmp_path / "runs"))
    assert code == 2
    error = one_error(err)
    assert err.strip() == error  # nothing before it: Ray never started
    assert str(path) in error and message in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.hostile(LATE)
def test_a_space_file_asking_yaml_to_run_code_is_refused_and_runs_nothing(tmp_path, cli):
    pwned = tmp_path / "pwned"
    path = tmp_path / "space.yaml"
    path.write_text(f"!!python/object/apply:os.system ['touch {pwned}']\n")
    code, _, err = cli("run", path, "--storage", tmp_path / "runs")
    assert code == 2 and f"{path}: not valid YAML at line 1" in one_error(err)
    assert not pwned.exists() and not (tmp_path / "runs").exists()


# Files a YAML reader must not trust: each would cost memory or time, or is no YAML mapping at all.
UNREADABLE_SPACES = {
    "a merge-key bomb": (  # each level merges the one before and lists it eight times: 8**8 values
        "a: &a {x1: 1, x2: 2, x3: 3}\n"
        + "".join(
            f"{n}: &{n} {{<<: *{p}, {n}1: [{', '.join([f'*{p}'] * 8)}]}}\n"
            for p, n in zip("abcdefgh", "bcdefghi")
        ),
        "the document expands to more than 100,000 values",
    ),
    "20,000 nested lists": ("[" * 20_000 + "]" * 20_000 + "\n", "nested too deeply"),
    "1.1 MB of comments": (
        "arch: lstm\n" + "# padding\n" * 110_000,
        "bytes is too large for a space file (at most 1,048,576)",
    ),
    "two YAML documents": ("arch: lstm\nsamples: 2\n---\narch: gru\n", "not valid YAML at line 3"),
    "an empty file": ("", "expected a mapping at the top level"),
    "not UTF-8": (b"arch: amn\xff\xfe\nsamples: 2\n", "not UTF-8 text"),
    "a folder without space files": (None, "a folder without space files (*.yaml)"),
}


@pytest.mark.hostile(LATE)
@pytest.mark.parametrize("case", list(UNREADABLE_SPACES))
def test_a_space_file_that_is_no_bounded_yaml_mapping_is_one_line_before_ray_starts(tmp_path, cli, case):
    content, message = UNREADABLE_SPACES[case]
    path = tmp_path / "space.yaml"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, _, err = cli("run", path, "--storage", tmp_path / "runs")
    error = one_error(err)
    assert code == 2 and err.strip() == error  # nothing before it: Ray never started
    assert error.startswith(f"lvm-search: error: {path}: ") and message in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.hostile(LATE)
@pytest.mark.parametrize(
    "what", ["a data file with an all-zero row", "--extra-train a link to the --data file"]
)
def test_bad_data_is_one_line_before_ray_starts_and_writes_nothing(tmp_path, cli, write_native, what):
    space = tmp_path / "space.yaml"
    space.write_text(json.dumps(one_trial_space()))
    vectors = np.random.default_rng(0).standard_normal((120, 8))
    extra = []
    if what == "a data file with an all-zero row":
        vectors[7] = 0
        expected = "'vectors' row 7 is an all-zero vector"
    else:
        (tmp_path / "link.npz").symlink_to("native.npz")
        extra, expected = ["--extra-train", tmp_path / "link.npz"], "link.npz: is the --data file itself"
    data = write_native(vectors=vectors)
    code, _, err = cli("run", space, "--data", data, *extra, "--storage", tmp_path / "runs")
    error = one_error(err)
    assert code == 2 and err.strip() == error  # nothing before it: Ray never started
    assert expected in error and not (tmp_path / "runs").exists()


@pytest.mark.hostile(LATE)
def test_a_missing_space_file_is_one_line_and_exit_2(tmp_path, cli):
    code, _, err = cli("run", str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml: no such space file" in one_error(err)


def test_asking_for_more_gpus_than_the_cluster_has_is_a_clear_error(tmp_path, cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = cli(
        "run", str(write_space(tmp_path, 1)), "--gpus-per-trial", "1", "--storage", str(tmp_path / "runs")
    )
    assert code == 2 and "cuda was asked for, but the Ray cluster has no GPU" in one_error(err)


def test_an_epoch_budget_ends_the_search_at_equal_compute(tmp_path):
    raw = {
        "arch": "amn",
        "samples": 100,
        "max_concurrent": 1,
        "budget_epochs": 7,
        "scheduler": {"type": "none"},
        "fixed": {"epochs": 3, "width": 32, "key_dim": 16},
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}},
    }
    summary = run_search(parse_space(raw, "budget.yaml"), SearchOptions(storage=str(tmp_path / "runs")))
    epochs = [t.epochs_run for t in summary.trials]
    assert (
        sum(epochs) == 7 and epochs[:2] == [3, 3] and summary.complete
    )  # the third trial was cut at 1 epoch
    stamps = [h.at for t in summary.trials for h in t.history]
    assert all(stamps) and stamps == sorted(stamps)  # one at a time: epochs reported in order


def test_a_space_may_name_its_own_reference_configuration(tmp_path):
    raw = {
        "arch": "lstm",
        "samples": 2,
        "reference": {"width": 128, "depth": 1},
        "space": {
            "width": {"type": "choice", "values": [64, 128]},
            "depth": {"type": "int", "low": 1, "high": 2},
        },
    }
    assert parse_space(raw, "ref.yaml").reference_point() == {"width": 128, "depth": 1}
    from lvm_search.errors import UserError

    with pytest.raises(UserError, match="reference 256 must lie inside the space"):
        parse_space({**raw, "reference": {"width": 256}}, "ref.yaml")
    with pytest.raises(UserError, match="reference.lr: only searched settings"):
        parse_space({**raw, "reference": {"lr": 0.1}}, "ref.yaml")


@pytest.mark.parametrize("arch", ["amn", "gru", "lstm", "transformer"])
def test_every_shipped_space_loads_and_searches_the_context_length(arch):
    space = load_space(Path(__file__).resolve().parent.parent / "spaces" / f"{arch}.yaml")
    assert space.max_concurrent == "auto" and space.budget_epochs and "k" in space.space
    assert space.load_k == 16 and space.data.min_context == 5
