"""Horizons: predicting the passage h steps after the context, inside one document, on the split of
h = 1; recorded by checkpoints, runs and ensembles and checked by eval and predict; and a model
trained at h = 1 rolled forward on its own predictions."""

import json

import numpy as np
import pytest
import torch
from conftest import LEAKAGE, doc_ids_for, one_error, one_trial_space
from torch.nn.functional import normalize

from lvm_search.data.windows import load_data
from lvm_search.errors import UserError
from lvm_search.models import Rollout
from lvm_search.scoring.metrics import baselines, last_vector_baseline, per_window, predict
from lvm_search.search.spaces import parse_space
from lvm_search.store.yaml_files import parse_yaml


def _rows(split):
    return split.targets.numpy(), split.starts.numpy()


@pytest.mark.parametrize("horizon", [1, 2, 4])
def test_context_ends_horizon_rows_before_the_target_inside_its_document(write_native, horizon):
    lengths = [3, 6, 9, 12, 7, 15, 5, 11, 8, 10]
    data = load_data(write_native(lengths=lengths), k=4, min_context=2, horizon=horizon)
    ends = np.cumsum(lengths)
    for name, split in data.splits.items():
        targets, starts = _rows(split)
        rows = data.contexts(name).numpy()
        assert (rows[:, -1] == targets - horizon).all()  # the context's last passage is h rows back
        real = rows != data.pad_row
        assert (rows[real] >= np.repeat(starts, real.sum(1))).all()  # never before its document
        assert real.sum(1).min() >= 2  # min_context real passages
        # the target lies in the same document as its context
        doc_end = ends[np.searchsorted(ends, starts, side="right")]
        assert (targets < doc_end).all()


def test_every_horizon_splits_the_same_documents(write_native):
    """The document split is h = 1's: a document too short for h has no windows, none moves split."""
    path = write_native(lengths=[4, 6, 9, 12, 7, 15, 5, 11, 8, 10, 6, 13])
    split_docs = {
        h: {name: set(_rows(s)[1]) for name, s in load_data(path, k=3, horizon=h).splits.items()}
        for h in (1, 2, 3)
    }
    for h in (2, 3):
        for name in ("train", "val", "test"):
            assert split_docs[h][name] <= split_docs[1][name]
    assert split_docs[3]["train"] < split_docs[1]["train"]  # the 4-passage document has no h=3 window


def test_horizon_one_is_what_it_was_and_others_are_other_windows(sample):
    default = load_data(sample, k=8, min_context=5)
    assert load_data(sample, k=8, min_context=5, horizon=1).fingerprint == default.fingerprint
    assert default.summary()["horizon"] == 1
    two = load_data(sample, k=8, min_context=5, horizon=2)
    assert two.fingerprint != default.fingerprint
    assert two.with_k(12).horizon == 2 and two.with_k(12).fingerprint == two.fingerprint_at(12)


def test_baselines_at_a_horizon_read_the_context_that_ends_h_back(sample):
    """The last-vector baseline at h predicts the passage h rows back; the backward margin compares
    against that passage, so it is that baseline's cosine minus exactly 1."""
    data = load_data(sample, k=5, horizon=3)
    split = data.splits["test"]
    last = predict(last_vector_baseline, data, "test")
    assert torch.allclose(last, data.vectors[split.targets - 3], atol=1e-6)
    windows = per_window(last, data, "test")
    assert torch.allclose(windows["backward_margin"], windows["cosine"] - 1, atol=1e-5)
    scores = {h: baselines(load_data(sample, k=5, horizon=h))["mean"]["test"]["cosine"] for h in (1, 3)}
    assert scores[3] < scores[1]  # further ahead is harder, for the baselines too


def test_rollout_reads_its_own_predictions():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4, 4))
    x = normalize(torch.randn(5, 3, 4), dim=-1)
    by_hand = x
    for _ in range(3):
        p = normalize(model(by_hand), dim=-1)
        by_hand = torch.cat([by_hand[:, 1:], p[:, None]], 1)
    assert torch.allclose(Rollout(model, 3)(x), p)
    assert torch.allclose(Rollout(model, 1)(x), normalize(model(x), dim=-1))
    # a model that repeats its last passage repeats it at any horizon
    assert torch.allclose(Rollout(last_vector_baseline, 4)(x), x[:, -1], atol=1e-6)


def test_data_a_horizon_cannot_use_is_one_line(cli, write_native, write_windows):
    path, _, _ = write_windows(m=60, k=3, dim=8)
    code, _, err = cli("baselines", "--data", path, "--horizon", "2")
    assert code == 2 and "horizon 2 needs documents" in one_error(err)
    short = write_native(lengths=[6] * 10, name="short.npz")
    code, _, err = cli("baselines", "--data", short, "--k", "3", "--horizon", "4")
    assert code == 2 and "needs documents of more than 6 passages (longest has 6)" in one_error(err)
    code, _, err = cli("baselines", "--data", short, "--horizon", "0")
    assert code == 2 and "--horizon" in one_error(err)


def test_a_split_left_without_windows_is_one_line(write_native):
    """One long training document and short ones elsewhere: at h = 3 val and test are empty."""

    lengths = [30] + [4] * 9
    path = write_native(lengths=lengths, vectors=None, doc_ids=doc_ids_for(lengths))
    for seed in range(20):  # a split seed that puts the long document in train
        if 0 in load_data(path, k=3, seed=seed).splits["train"].starts.tolist():
            break
    with pytest.raises(UserError, match="leaves the (val|test) split without windows"):
        load_data(path, k=3, seed=seed, horizon=3)


def test_space_horizon_is_parsed_recorded_and_old_runs_still_resume(tmp_path):
    text = "arch: amn\nspace: {lr: {type: float, low: 1.0e-4, high: 1.0e-2}}\n"
    space = parse_space(parse_yaml(text + "data: {horizon: 3}\n", "s.yaml"), "s.yaml")
    assert space.data.horizon == 3 and space.identity()["data"]["horizon"] == 3
    plain = parse_space(parse_yaml(text, "s.yaml"), "s.yaml")
    assert "horizon" not in plain.identity()["data"]  # as run.json recorded it before horizons
    assert plain.with_overrides(horizon=2).data.horizon == 2
    # --horizon 1 (or data: {horizon: 1}) names the default: the same run, so it resumes
    assert plain.with_overrides(horizon=1).identity() == plain.identity()

    with pytest.raises(UserError, match="data.horizon"):
        parse_space(parse_yaml(text + "data: {horizon: 0}\n", "s.yaml"), "s.yaml")


def test_train_eval_predict_record_and_check_the_horizon(cli, tmp_path, sample):
    """A checkpoint trained at h = 2 records it; eval scores it at 2 and refuses 3; a checkpoint
    trained at 1 rolls forward to 2 on request and scores what Rollout gives."""
    common = ("--arch", "amn", "--epochs", "1", "--set", "width=8", "--k", "5")
    code, out, err = cli("train", *common, "--horizon", "2", "--out", tmp_path / "h2")
    assert code == 0, err
    meta = json.loads((tmp_path / "h2" / "config.json").read_text())
    assert meta["data"]["horizon"] == 2

    code, out, err = cli("eval", tmp_path / "h2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["horizon"] == 2 and result["evaluated_on"]["horizon"] == 2
    assert not result["rolled_forward"]
    assert result["relation"] == "the test split of the data it was trained on"

    code, _, err = cli("eval", tmp_path / "h2", "--horizon", "3")
    assert code == 2 and "trained to predict 2 passages ahead, not 3" in one_error(err)

    assert cli("train", *common, "--out", tmp_path / "h1")[0] == 0
    code, out, err = cli("eval", tmp_path / "h1", "--horizon", "2", "--json")
    assert code == 0, err
    rolled = json.loads(out)
    assert rolled["rolled_forward"] and rolled["horizon"] == 2
    assert rolled["evaluated_on"]["windows"] == result["evaluated_on"]["windows"]  # the same windows
    # the test documents are the ones it was trained beside: held out, 2 passages ahead
    assert rolled["relation"] == "the test split of the data it was trained on, 2 passages ahead"
    code, out, err = cli("eval", tmp_path / "h1", "--horizon", "2")  # what a person reads says so too
    assert code == 0 and "the passage 2 steps after each context, the model rolled forward" in out
    code, out, err = cli("eval", tmp_path / "h1", "--horizon", "2", "--split", "all", "--json")
    assert json.loads(out)["relation"].endswith(
        "2 passages ahead, its own training windows included: not held out"
    )

    from lvm_search.report.evaluate import load_predictor

    model = load_predictor(tmp_path / "h1").model
    data = load_data(sample, k=5, horizon=2)
    expected = per_window(predict(Rollout(model, 2), data, "test"), data, "test")["cosine"].mean().item()
    assert rolled["scores"]["model"]["cosine"] == pytest.approx(expected, abs=1e-6)

    out_file = tmp_path / "p.npz"
    code, out, err = cli("predict", tmp_path / "h2", "--out", out_file, "--last", "--json")
    assert code == 0, err
    with np.load(out_file) as z:
        meta = json.loads(str(z["meta_json"]))
        rows, positions = z["rows"], z["positions"]
    assert meta["data"]["horizon"] == 2 and meta["predictor"]["horizon"] == 2
    # window predictions: targets at least min_context + 1 into their document; ends: one past the end + 1
    assert positions[rows >= 0].min() == 5 + 1
    with np.load(sample) as z:
        lengths = np.unique(z["doc_ids"], return_counts=True)[1]
    ends = positions[rows < 0]
    assert sorted(ends.tolist()) == sorted((lengths[lengths >= 5] + 1).tolist())


def test_search_and_ensemble_at_a_horizon(tmp_path, cli):
    """A real one-trial search at h = 2: its run, its checkpoint and the ensemble built from it all
    record the horizon; a resume at another horizon is refused; a report names it."""
    import yaml

    space = tmp_path / "amn.yaml"
    space.write_text(yaml.safe_dump(one_trial_space(data={"horizon": 2})))
    storage = tmp_path / "runs"
    code, out, err = cli("run", space, "--storage", storage, "-q")
    assert code == 0, err
    run_info = json.loads((storage / "amn" / "run.json").read_text())
    assert run_info["data"]["horizon"] == 2 and run_info["space"]["data"]["horizon"] == 2

    code, _, err = cli("run", space, "--storage", storage, "--horizon", "3", "--samples", "2")
    assert code == 2 and "fingerprint" in one_error(err)

    code, out, err = cli("ensemble", "--storage", storage, "--json")
    assert code == 0, err
    record = json.loads((storage / "ensembles" / "default" / "ensemble.json").read_text())
    assert record["data"]["horizon"] == 2
    code, out, err = cli("eval", storage / "ensembles" / "default", "--json")
    assert code == 0, err
    assert json.loads(out)["horizon"] == 2


@pytest.mark.hostile(LEAKAGE)
def test_extra_train_may_not_bring_in_a_test_document_that_has_no_windows_at_h(write_native):
    """At h = 3 a 4-passage document has no windows, yet it is still a test document (the split is
    h = 1's): its passages are held out all the same."""
    lengths = [12, 4] * 20
    main = write_native(lengths=lengths, dim=4, name="main.npz", doc_ids=doc_ids_for(lengths))
    short_starts = set(np.cumsum([0, *lengths[:-1]])[1::2].tolist())
    for seed in range(50):  # a split seed whose val and test have long and short documents
        at_1 = load_data(main, k=3, seed=seed)
        held = [set(at_1.splits[name].starts.tolist()) for name in ("val", "test")]
        if all(starts & short_starts and starts - short_starts for starts in held):
            break
    row = min(held[1] & short_starts)
    at_3 = load_data(main, k=3, seed=seed, horizon=3)
    assert row not in at_3.splits["test"].starts.tolist() + at_3.splits["val"].starts.tolist()
    other = np.random.default_rng(5).standard_normal((30, 4)).astype(np.float32)
    other[7] = np.load(main)["vectors"][row]
    extra = write_native([10] * 3, vectors=other, name="copy.npz")
    with pytest.raises(UserError, match="1 of its passages are validation or test passages.*first: row 7"):
        load_data(main, k=3, seed=seed, horizon=3, extra_train=(extra,))
    assert load_data(main, k=3, seed=seed, horizon=None).fingerprint == at_1.fingerprint  # None: 1
