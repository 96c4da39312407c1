"""Ensembles: Caruana's greedy weights, the simplex refinement, the artifact, and the data check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import DEGENERATE, FALSE_REFUSALS, one_error, one_trial_space
from torch.nn.functional import normalize

from lvm_search.data.windows import load_data
from lvm_search.ensemble.build import (
    _SimplexObjective,
    build_ensemble,
    ensemble_cosine,
    greedy_weights,
    load_ensemble,
    load_recipe,
    simplex_weights,
)
from lvm_search.errors import UserError
from lvm_search.models.checkpoint import save_checkpoint
from lvm_search.scoring.metrics import predict
from lvm_search.store.runs import Counts, DataInfo, EpochResult, RunSummary, Trial, write_json
from lvm_search.train import TrainConfig, train

BASELINES = ("mean", "last", "recency", "ridge")  # the classical baselines, as ensemble candidates


def two_members(b_y: float):
    """Targets (1, 0); member A predicts (1, 0.5), member B (1, b_y), both normalised."""
    targets = torch.tensor([[1.0, 0.0]] * 4)
    a = normalize(torch.tensor([[1.0, 0.5]] * 4), dim=-1)
    b = normalize(torch.tensor([[1.0, b_y]] * 4), dim=-1)
    return torch.stack([a, b]), targets


def test_greedy_gives_equal_weights_to_two_mirror_image_members():
    # Alone each scores cos(atan 0.5) = 0.894; together their errors cancel and score 1.0, and
    # adding either again only unbalances the pair, so greedy must stop at one of each.
    preds, targets = two_members(-0.5)
    weights = greedy_weights(preds, targets, size=10)
    assert weights.tolist() == [0.5, 0.5]
    assert ensemble_cosine(preds, weights, targets).item() == pytest.approx(1.0)


def test_greedy_keeps_a_dominant_member_alone():
    # B points further from the target than A and to the same side: any share of B hurts.
    preds, targets = two_members(2.0)
    assert greedy_weights(preds, targets, size=10).tolist() == [1.0, 0.0]


def test_simplex_refinement_reaches_the_exact_optimum():
    # With B = (1, -1), the y-components cancel when w_A * 0.5/|a| = w_B * 1/|b|.
    preds, targets = two_members(-1.0)
    w_a = (1 / math.sqrt(2)) / (1 / math.sqrt(2) + 0.5 / math.sqrt(1.25))
    greedy = greedy_weights(preds, targets, size=5)
    refined = simplex_weights(preds, targets, greedy)
    assert refined.sum().item() == pytest.approx(1.0) and (refined >= 0).all()
    assert refined[0].item() == pytest.approx(w_a, abs=2e-3)
    assert ensemble_cosine(preds, refined, targets) >= ensemble_cosine(preds, greedy, targets)


@pytest.mark.parametrize("candidates, dim", [(5, 16), (12, 4)], ids=["few candidates", "more than D"])
def test_the_simplex_objective_is_the_ensembles_val_cosine_value_and_gradient(candidates, dim):
    """With few candidates the simplex reads the candidates' dot products instead of their vectors:
    the same function of the weights, to float rounding, also where a candidate predicts zeros."""
    preds = normalize(torch.randn(candidates, 30, dim, dtype=torch.float64), dim=-1)
    preds[1, :7] = 0  # an unusable prediction, as normalize leaves it
    targets = normalize(torch.randn(30, dim, dtype=torch.float64), dim=-1)
    objective = _SimplexObjective(preds, targets)
    one_hot = torch.eye(candidates, dtype=torch.float64)[1]  # only the candidate with zero rows
    for weights in (torch.rand(candidates, dtype=torch.float64), one_hot):
        w1 = (weights / weights.sum()).requires_grad_(True)
        w2 = w1.detach().clone().requires_grad_(True)
        expected, got = ensemble_cosine(preds, w1, targets), objective(w2)
        expected.backward()
        got.backward()
        assert got.item() == pytest.approx(expected.item(), abs=1e-12)
        assert torch.allclose(w2.grad, w1.grad, rtol=1e-9, atol=1e-10)


def fake_run(
    storage: Path, name: str, arch: str, data, model_config: dict, fingerprint: str | None = None
) -> Path:
    """A finished run folder as `lvm-search run` writes it, with one trained trial."""
    cfg = TrainConfig(arch=arch, model=model_config, epochs=2, batch_size=256)
    result = train(cfg, data)
    meta = dict(result.meta, fingerprint=fingerprint or data.fingerprint)
    checkpoint = storage / name / "attempt-1" / "trial_000_x" / "checkpoint_000001"
    save_checkpoint(checkpoint, result.model, meta)
    trial = Trial(
        number=0,
        trial_id=f"{name}0",
        attempt=1,
        config={},
        status="ok",
        val_cosine=result.best["val_cosine"],
        epochs_run=2,
        stopped_early=False,
        history=[EpochResult(h["epoch"], h["val_cosine"]) for h in result.history],
        checkpoint=str(checkpoint.relative_to(storage / name)),
    )
    summary = RunSummary(
        name=name,
        arch=arch,
        space_file="x.yaml",
        complete=True,
        data=DataInfo(**data.summary()),
        splits={},
        baseline_val={"mean": {"cosine": 0.0}},
        counts=Counts(samples=1, trials=1, ok=1, stopped_early=0, diverged=0, errored=0),
        wall_s=1.0,
        trials=[trial],
    )
    write_json(storage / name / "summary.json", summary)
    return checkpoint


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    storage = tmp_path_factory.mktemp("storage")
    data = load_data()
    fake_run(storage, "amn-run", "amn", data, {"width": 64, "key_dim": 32, "residual": True})
    fake_run(storage, "gru-run", "gru", data, {"width": 32, "depth": 1, "residual": True})
    return storage, data


def test_an_ensemble_artifact_predicts_like_a_single_model(two_runs, tmp_path):
    storage, data = two_runs
    recipe = tmp_path / "r.yaml"
    recipe.write_text("runs: [amn-run, gru-run]\nname: pair\n")
    record = build_ensemble(load_recipe(recipe), storage)
    assert sum(m["weight"] for m in record["members"]) == pytest.approx(1.0)
    model, stored = load_ensemble(storage / "ensembles" / "pair")
    _, target = data.batch("test", slice(None))
    test_cosine = (predict(model, data, "test") * target).sum(-1).mean().item()
    assert test_cosine == pytest.approx(stored["metrics"]["test"]["cosine"], abs=1e-5)
    # Weights were chosen on val, so the ensemble can be no worse than its best member there.
    best_val = max(c["metrics"]["val"]["cosine"] for c in record["candidates"])
    assert record["metrics"]["val"]["cosine"] >= best_val - 1e-6


def test_a_moved_ensemble_folder_still_loads_and_predicts_the_same(two_runs, tmp_path):
    import shutil

    storage, data = two_runs
    recipe = tmp_path / "r.yaml"
    recipe.write_text("runs: [amn-run, gru-run]\nname: moving\n")
    build_ensemble(load_recipe(recipe), storage)
    original, _ = load_ensemble(storage / "ensembles" / "moving")
    moved = shutil.move(str(storage / "ensembles" / "moving"), str(tmp_path / "elsewhere"))
    model, record = load_ensemble(moved)
    assert all(m["checkpoint"].startswith("members/") for m in record["members"])
    assert torch.equal(predict(model, data, "test"), predict(original, data, "test"))


def test_the_ensemble_record_carries_paired_intervals_and_provenance(two_runs, tmp_path):
    storage, _ = two_runs
    recipe = tmp_path / "r.yaml"
    recipe.write_text("runs: [amn-run, gru-run]\nname: ci\n")
    record = build_ensemble(load_recipe(recipe), storage)
    i = record["intervals"]
    assert i["resamples"] >= 1000 and i["unit"] == "test documents"
    for key in ("test_cosine", "gain_over_mean_pct", "gain_over_best_single_pct"):
        assert i[key]["low"] <= i[key]["value"] <= i[key]["high"]
    assert i["test_cosine"]["value"] == pytest.approx(record["metrics"]["test"]["cosine"])
    p = record["provenance"]
    assert p["lvm_search"] and p["torch"] and p["python"] and p["device"] and p["command"]


def test_candidates_can_be_every_trial_and_the_classical_baselines(two_runs, tmp_path):
    storage, _ = two_runs
    recipe = tmp_path / "r.yaml"
    recipe.write_text("runs: [amn-run, gru-run]\nname: wide\ntop_k: all\nbaselines: true\nmethod: bagged\n")
    record = build_ensemble(load_recipe(recipe), storage)
    names = [c["name"] for c in record["candidates"]]
    assert names[:2] == ["amn-run/amn-run0", "gru-run/gru-run0"]
    assert names[2:] == [f"baseline:{b}" for b in BASELINES]
    assert record["method"] == "bagged"
    model, _ = load_ensemble(storage / "ensembles" / "wide")  # baseline members load too


def test_the_default_is_every_trial_of_the_latest_run_of_each_architecture_and_the_baselines(two_runs):
    storage, _ = two_runs
    record = build_ensemble(load_recipe(None), storage)
    names = [c["name"] for c in record["candidates"]]
    assert names == ["amn-run/amn-run0", "gru-run/gru-run0"] + [f"baseline:{b}" for b in BASELINES]


def test_the_packaged_default_recipe_is_the_recipe_with_no_file():
    """`lvm-search ensemble` and `lvm-search ensemble ensembles/default.yaml` build the same thing."""
    from dataclasses import replace

    from lvm_search import presets

    packaged = load_recipe(presets.folder("recipe") / "default.yaml")
    assert replace(packaged, source="") == replace(load_recipe(None), source="")
    assert packaged.top_k == "all" and packaged.baselines


def test_a_checkpoint_trained_on_other_data_is_refused(two_runs, tmp_path, cli):
    storage, data = two_runs
    fake_run(storage, "alien", "amn", data, {"width": 16, "key_dim": 8}, fingerprint="0123456789abcdef")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("runs: [amn-run, alien]\n")
    code, _, err = cli("ensemble", recipe, "--storage", storage)
    error = one_error(err)
    assert code == 2 and "fingerprint 0123456789abcdef" in error and "alien" in error


def test_a_recipe_naming_a_missing_run_is_one_line_and_exit_2(two_runs, tmp_path, cli):
    storage, _ = two_runs
    recipe = tmp_path / "r.yaml"
    recipe.write_text("runs: [nope]\n")
    code, _, err = cli("ensemble", recipe, "--storage", storage)
    error = one_error(err)
    assert code == 2 and "runs: no finished run 'nope'" in error and str(recipe) in error


@pytest.mark.parametrize(
    "text, message", [("top_k: 0\n", "top_k"), ("method: vote\n", "method"), ("colour: red\n", "unknown key")]
)
def test_a_bad_recipe_is_refused(tmp_path, text, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(UserError, match=message):
        load_recipe(recipe)


def test_auto_chooses_the_method_by_cross_fitting_over_validation_documents(two_runs, tmp_path):
    storage, data = two_runs
    recipe = tmp_path / "r.yaml"
    recipe.write_text("runs: [amn-run, gru-run]\nname: crossfit\nbaselines: true\n")
    record = build_ensemble(load_recipe(recipe), storage)
    crossfit = record["val_crossfit"]
    assert set(crossfit) == {"greedy", "bagged", "simplex"}
    assert record["method"] == max(crossfit, key=crossfit.get)
    # Cross-fitted scores are out of sample: none beats the in-sample val cosine of the chosen weights
    # by more than noise, and all are real cosines.
    assert all(-1 <= v <= 1 for v in crossfit.values())


@pytest.mark.hostile(DEGENERATE)
def test_a_member_with_nan_weights_is_left_out_and_all_broken_is_one_error(two_runs, tmp_path, cli):
    storage, data = two_runs
    broken = fake_run(storage, "nan-run", "amn", data, {"width": 16, "key_dim": 8, "residual": True})
    from safetensors.torch import load_file, save_file

    weights = load_file(broken / "model.safetensors")
    save_file({k: torch.full_like(v, float("nan")) for k, v in weights.items()}, broken / "model.safetensors")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("runs: [amn-run, nan-run]\nname: with-nan\nbaselines: false\n")
    record = build_ensemble(load_recipe(recipe), storage)
    assert [c["name"] for c in record["candidates"]] == ["amn-run/amn-run0"]
    assert math.isfinite(record["metrics"]["test"]["cosine"])
    for extra in ("baselines: false\n", "top_k: all\nbaselines: true\n"):
        recipe.write_text(f"runs: [nan-run]\nname: only-nan\n{extra}")
        code, _, err = cli("ensemble", recipe, "--storage", storage)
        assert code == 2 and "no trained candidate gives finite predictions" in one_error(err)
        assert not (storage / "ensembles" / "only-nan").exists()


def test_runs_on_a_windows_format_file_given_relatively_ensemble_from_another_folder(
    write_windows, tmp_path, monkeypatch, caplog
):
    from lvm_search.ensemble.build import build_ensemble, load_recipe
    from lvm_search.search.spaces import parse_space
    from lvm_search.search.tuner import SearchOptions, run_search

    write_windows(m=300, k=5, dim=8)
    raw = one_trial_space()
    monkeypatch.chdir(tmp_path)  # the data is named as the user typed it, relative to here
    run_search(parse_space(raw, "amn.yaml"), SearchOptions(data="windows.npz", storage="runs"))
    monkeypatch.chdir(tmp_path.parent)
    record = build_ensemble(load_recipe(None), tmp_path / "runs")
    assert caplog.text.count("no document ids") == 2  # once per load, logged, not printed
    assert record["data"]["source"] == str(tmp_path / "windows.npz") and record["members"]


@pytest.mark.hostile(FALSE_REFUSALS)
def test_eval_and_predict_read_a_windows_format_file_even_the_models_own(write_windows, tmp_path, cli):
    """They passed the model's min_context, which a windows-format file (fixed windows) refused."""
    from lvm_search.ensemble.build import build_ensemble, load_recipe
    from lvm_search.search.spaces import parse_space
    from lvm_search.search.tuner import SearchOptions, run_search

    path, _, _ = write_windows(m=300, k=5, dim=8)
    storage = tmp_path / "runs"
    run_search(
        parse_space(one_trial_space(), "amn.yaml"), SearchOptions(data=str(path), storage=str(storage))
    )
    ensemble = build_ensemble(load_recipe(None), storage)["path"]
    for model in (storage / "amn", ensemble):
        code, out, err = cli("eval", model, "--data", path, "--json")
        assert code == 0, err
        assert json.loads(out)["relation"] == "the test split of the data it was trained on"
        code, out, err = cli("predict", model, "--data", path, "--out", tmp_path / "p.npz", "--json")
        assert code == 0, err
        assert json.loads(out)["windows"] == 300
