"""Every number a user gives (flags, space files, recipes, --set) is checked against what the data and
the libraries accept before anything starts: one error line and exit 2, no Ray, no run folder; what
has no natural bound has a documented one (lvm_search/limits.py, README "Bounds")."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import BOUNDS, one_error
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lvm_search import limits
from lvm_search.data.windows import load_data
from lvm_search.ensemble.build import load_recipe
from lvm_search.errors import UserError
from lvm_search.search.spaces import check_against_data, check_every_trial, parse_space, trial_settings

# --- the cases of issue 28 and their class, through the command line ---------------------------------

SPACE = """\
arch: amn
samples: 1
fixed: {{epochs: 1}}
{extra}
space:
  width: {{type: choice, values: [8, 512]}}
"""


@pytest.mark.hostile(BOUNDS)
@pytest.mark.parametrize(
    "argv, message",
    [
        # context lengths: far beyond the longest document (the sample's gives 290 earlier passages)
        (
            ["baselines", "--k", "100000", "--min-context", "5"],
            "argument --k: expected an integer from 1 to 1,024",
        ),
        (
            ["baselines", "--k", "1000", "--min-context", "5"],
            "--k: k=1,000 reads further back than any target",
        ),
        (["train", "--arch", "amn", "--k", "500", "--min-context", "5"], "use k <= 290"),
        (["run", "{space}", "--k", "291", "--min-context", "5"], "data.k: k=291 reads further back"),
        (["run", "{space:data: {k: 100000, min_context: 5}}"], "data.k: expected an integer from 1 to 1,024"),
        (["run", "{space:data: {k: 600, min_context: 5}}"], "data.k: k=600 reads further back"),
        (
            ["run", "{kspace:5, 100000}", "--min-context", "5"],
            "k: context lengths must be integers from 1 to",
        ),
        (["run", "{kspace:5, 300}", "--min-context", "5"], "space.k: k=300 reads further back"),
        # memory of a batch, size of a model
        (["train", "--arch", "amn", "--set", "batch_size=65536", "--k", "290", "--min-context", "5"], "GiB"),
        (
            ["run", "{bspace:256, 200000}", "--k", "64", "--min-context", "5"],
            "the largest trial (batch_size=200000",
        ),
        (["train", "--arch", "lstm", "--set", "width=65536", "--set", "depth=64"], "parameters at D=384"),
        (["train", "--arch", "lstm", "--set", "width=1000000"], "width must be at most 65,536"),
        (["train", "--arch", "gru", "--set", "depth=100000"], "depth must be at most 64"),
        (["train", "--arch", "amn", "--set", "batch_size=10000000"], "batch_size must be at most"),
        (["train", "--arch", "amn", "--epochs", "1000000000"], "--epochs: epochs must be at most 10,000"),
        (["train", "--arch", "amn", "--set", "warmup_epochs=1e308"], "warmup_epochs must be from 0 to"),
        # seeds: numpy, torch and Optuna's samplers take at most 2**32 - 1 (and a resume adds trials)
        (["train", "--arch", "amn", "--set", f"seed={2**32}"], "seed must be from 0 to 2,147,483,647"),
        (["train", "--arch", "amn", "--set", f"seed={2**64}"], "seed must be from 0 to 2,147,483,647"),
        (["baselines", "--split-seed", "-1"], "argument --split-seed: expected an integer from 0 to"),
        (["run", "{space}", "--split-seed", str(2**40)], "argument --split-seed: expected an integer from 0"),
        (["run", "{space}", "--seed", str(2**32)], "--seed: expected an integer from 0 to 2,147,483,647"),
        (["run", "{space:seed: 18446744073709551616}"], "seed: expected an integer from 0 to 2,147,483,647"),
        # counts with no natural bound
        (["run", "{space}", "--samples", str(10**12)], "--samples: expected an integer from 1 to 100,000"),
        (
            ["run", "{space}", "--budget-epochs", str(10**30)],
            "--budget-epochs: expected an integer from 1 to",
        ),
        (["run", "{space:budget_epochs: 1.0e+300}"], "budget_epochs: expected an integer >= 1"),
        # what Ray takes: a share of at least 0.0001, and no more than this machine has
        (["run", "{space}", "--cpus-per-trial", "0.00001"], "cpus_per_trial: must be from 0.0001"),
        (["run", "{space}", "--gpus-per-trial", "1e-9"], "gpus_per_trial: must be 0, from 0.0001"),
        (["run", "{space}", "--cpus-per-trial", "1e308"], "cpus_per_trial: must be from 0.0001 (Ray's"),
        (["run", "{space}", "--cpus-per-trial", "64"], "a trial asks for 64 CPU(s), but this machine has"),
        # the low end of each run flag, and values no range holds
        (["run", "{space}", "--k", "3", "--min-context", "5"], "min_context: must be <= k (3), got 5"),
        (["run", "{space}", "--min-context", "0"], "argument --min-context: expected an integer from 1"),
        (["run", "{space}", "--k", "0"], "argument --k: expected an integer from 1 to 1,024, got 0"),
        (["run", "{space}", "--samples", "0"], "--samples: expected an integer >= 1, got 0"),
        (["run", "{space}", "--max-epochs", "0"], "--max-epochs: expected an integer >= 1, got 0"),
        (["run", "{space}", "--max-concurrent", "0"], "--max-concurrent (or auto): expected an integer >= 1"),
        (["run", "{space}", "--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
        (["run", "{space}", "--cpus-per-trial", "0"], "cpus_per_trial: must be from 0.0001"),
        (["run", "{space}", "--cpus-per-trial", "nan"], "cpus_per_trial: expected a finite number, got nan"),
        (["run", "{space}", "--gpus-per-trial", "-1"], "gpus_per_trial: must be 0, from 0.0001"),
        (["run", "{space}", "--device", "tpu"], "resources.device: expected auto, cpu, cuda, cuda:N or mps"),
        # recipes
        (
            ["ensemble", "{recipe:ensemble_size: 1000000000000}"],
            "ensemble_size: expected an integer from 1 to 1,000",
        ),
        (["ensemble", "{recipe:seed: 4294967296}"], "seed: expected an integer from 0 to 2,147,483,647"),
    ],
)
def test_a_number_out_of_range_is_one_line_before_anything_starts(cli, tmp_path, argv, message):
    files = {}

    def resolve(arg: str) -> str:
        if arg.startswith(("{space", "{kspace", "{bspace", "{recipe")):
            kind, _, extra = arg[1:-1].partition(":")
            if kind == "recipe":
                text = extra + "\n"
            elif kind in ("kspace", "bspace"):
                name = "k" if kind == "kspace" else "batch_size"
                text = SPACE.format(extra="") + f"  {name}: {{type: choice, values: [{extra}]}}\n"
            else:
                text = SPACE.format(extra=extra)
            path = tmp_path / f"{kind}{len(files)}.yaml"
            path.write_text(text)
            files[path] = text
            return str(path)
        return arg

    argv = [resolve(a) for a in argv]
    storage = tmp_path / "runs"
    extra = {"train": ["--out", tmp_path / "ck"], "run": ["--storage", storage]}.get(argv[0], [])
    if argv[0] == "ensemble":
        extra = ["--storage", storage]
    code, out, err = cli(*argv, *extra)
    assert code == 2 and out == "" and message in one_error(err)
    assert not storage.exists() and not (tmp_path / "ck").exists()  # no Ray was started, nothing written
    assert all(path.read_text() == text for path, text in files.items())


@pytest.mark.hostile(BOUNDS)
def test_embed_bounds_its_numbers_too(cli, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Some text. " * 50)
    for argv, message in (
        (["--k", "100000"], "--k must be from 1 to 1,024"),
        (["--batch-size", str(2**40)], "--batch-size must be from 1 to 1,048,576"),
    ):
        code, _, err = cli("embed", tmp_path / "docs", "--out", tmp_path / "o.npz", *argv)
        assert code == 2 and message in one_error(err)
    assert not (tmp_path / "o.npz").exists()


# --- the validators themselves, with extreme numbers anywhere ---------------------------------------

EXTREMES = st.sampled_from(
    [0, 1, -1, 3, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63, 2**64, 10**30, 10**400]
    + [0.5, -0.0, 1e-300, 5e-5, 0.0001, 2.5, 1e300, 1.7e308]
)
PLACES = [
    ("samples",),
    ("seed",),
    ("budget_epochs",),
    ("max_concurrent",),
    ("scheduler", "grace_period"),
    ("scheduler", "reduction_factor"),
    ("resources", "cpus_per_trial"),
    ("resources", "gpus_per_trial"),
    ("data", "k"),
    ("data", "min_context"),
    ("fixed", "epochs"),
    ("fixed", "batch_size"),
    ("fixed", "seed"),
    ("fixed", "warmup_epochs"),
    ("fixed", "lr"),
    ("fixed", "key_dim"),
    ("fixed", "depth"),
    ("fixed", "grad_clip"),
    ("space", "width", "high"),
    ("space", "width", "low"),
    ("space", "lr", "high"),
    ("space", "batch_size", "high"),
]
# A corpus like the packaged sample: D=384, targets up to 290 passages into their document.
SAMPLE_LIKE = SimpleNamespace(dim=384, source="sample.npz", longest_context=lambda: 290)


def _libraries_accept(space) -> None:
    """What a search hands its seeds, resources and sizes to takes them without an error."""
    from ray._common.ray_option_utils import _validate_resource_quantity
    from ray.tune.schedulers import ASHAScheduler

    last_seed = space.seed + space.samples  # a resume seeds its sampler with seed + trials done
    np.random.RandomState(last_seed)
    space.make_sampler(last_seed)
    space.distributions()
    assert _validate_resource_quantity("CPU", space.resources.cpus_per_trial) is None
    if space.resources.gpus_per_trial != "auto":
        assert _validate_resource_quantity("GPU", space.resources.gpus_per_trial) is None
    ASHAScheduler(
        time_attr="training_iteration",
        max_t=space.max_epochs,
        grace_period=min(space.scheduler.grace_period, space.max_epochs),
        reduction_factor=space.scheduler.reduction_factor,
        metric="m",
        mode="max",
    )
    cfg, _ = trial_settings(space.arch, space.fixed, space.reference_point())
    torch.Generator().manual_seed(cfg.seed)
    assert cfg.epochs <= limits.MAX_EPOCHS and cfg.batch_size <= limits.MAX_BATCH_SIZE
    steps_per_epoch = math.ceil(10**7 / cfg.batch_size)  # ten million windows
    round(cfg.warmup_epochs * steps_per_epoch)  # no overflow


@pytest.mark.hostile(BOUNDS)
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.lists(st.tuples(st.sampled_from(PLACES), EXTREMES), min_size=1, max_size=4),
    flags=st.fixed_dictionaries(
        {},
        optional={
            "samples": EXTREMES,
            "seed": EXTREMES,
            "budget_epochs": EXTREMES,
            "cpus_per_trial": EXTREMES,
            "k": EXTREMES,
            "max_epochs": EXTREMES,
        },
    ),
)
def test_extreme_numbers_anywhere_are_one_line_or_a_search_every_library_accepts(changes, flags):
    raw = {
        "arch": "amn",
        "samples": 4,
        "fixed": {"epochs": 2},
        "data": {"min_context": 1},
        "resources": {"cpus_per_trial": 1},
        "space": {
            "width": {"type": "int", "low": 8, "high": 512},
            "lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
            "batch_size": {"type": "choice", "values": [128, 256]},
        },
    }
    for place, value in changes:
        target = raw
        for key in place[:-1]:
            target = target.setdefault(key, {})
        target[place[-1]] = value
    try:
        space = parse_space(raw, "x.yaml", check_data=False).with_overrides(**flags)
        check_every_trial(space)
        check_against_data(space, SAMPLE_LIKE)
    except UserError as e:
        assert "\n" not in str(e) and str(e).startswith(("x.yaml", "command line")), str(e)
        assert len(str(e)) < 400, str(e)  # a 400-digit number is not quoted whole
        return
    event("valid: handed to the libraries")
    _libraries_accept(space)


@pytest.mark.hostile(BOUNDS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["ensemble_size", "seed", "top_k"]), value=EXTREMES)
def test_extreme_numbers_in_a_recipe_are_one_line_or_a_bounded_recipe(tmp_path, key, value):
    path = tmp_path / "r.yaml"
    path.write_text(f"{key}: {value!r}\n")
    try:
        recipe = load_recipe(path)
    except UserError as e:
        assert "\n" not in str(e) and str(e).startswith(str(path)) and len(str(e)) < 400
        return
    assert 1 <= recipe.ensemble_size <= limits.MAX_ENSEMBLE_SIZE and 0 <= recipe.seed <= limits.MAX_SEED
    np.random.default_rng(recipe.seed)


# --- what the data must judge ---------------------------------------------------------------------------


@pytest.mark.hostile(BOUNDS)
def test_scoring_a_long_context_gathers_a_bounded_chunk_at_a_time():
    data = load_data(None, k=290, min_context=5)
    size = data.chunk_size()
    assert 1 <= size < 4096 and size * data.k * data.dim * 4 <= limits.SCORING_CHUNK_BYTES
    lengths = [len(x) for x, _ in data.chunks("train")]
    assert max(lengths) == size and sum(lengths) == len(data.splits["train"])


@pytest.mark.hostile(BOUNDS)
def test_a_ridge_baseline_beyond_its_memory_bound_is_one_line_naming_k(monkeypatch):
    from lvm_search.scoring import metrics

    data = load_data(None)
    monkeypatch.setattr(metrics, "MAX_RIDGE_BYTES", 2**20)
    with pytest.raises(UserError, match=r"the ridge baseline at k=5 \(k x D = 1,920 features\).*smaller k"):
        metrics.baselines(data)
