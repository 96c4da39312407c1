"""Numbers you can trust and reuse: bootstrap intervals over documents, eval and predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import CONFINED, one_error

from lvm_search.data.windows import load_data
from lvm_search.models.checkpoint import save_checkpoint
from lvm_search.scoring.intervals import DocumentBootstrap, verdict
from lvm_search.scoring.metrics import predict
from lvm_search.train import TrainConfig, train

# --- the bootstrap, by hand --------------------------------------------------------------------------


def test_the_interval_of_two_documents_is_what_a_hand_count_gives():
    # Document A has windows scoring 0.2 and 0.4 (sum 0.6 over 2), document B one window of 0.8.
    # Drawing two documents with replacement gives AA (mean 0.3, p 1/4), AB or BA (1.4/3, p 1/2) or
    # BB (0.8, p 1/4): with 1000 resamples the 2.5% and 97.5% points are the extremes, 0.3 and 0.8.
    boot = DocumentBootstrap(np.array([0, 0, 1]), resamples=1000, seed=0)
    scores = np.array([0.2, 0.4, 0.8])
    means = boot.resampled_means(scores)
    assert set(np.round(means, 6)) == {0.3, round(1.4 / 3, 6), 0.8}  # windows of a document move together
    assert np.mean(np.isclose(means, 1.4 / 3)) == pytest.approx(0.5, abs=0.05)
    interval = boot.mean(scores)
    assert (interval.value, interval.low, interval.high) == pytest.approx((1.4 / 3, 0.3, 0.8))


def test_a_paired_gain_cancels_what_two_rows_share():
    # B scores 0.01 above A on every window: unpaired intervals overlap, the paired one is exact.
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(20), 5)
    a = rng.uniform(0.3, 0.7, size=100)
    b = a + 0.01
    boot = DocumentBootstrap(groups)
    diff = boot.difference(b, a)
    assert (diff.value, diff.low, diff.high) == pytest.approx((0.01, 0.01, 0.01))
    assert boot.mean(a).high > boot.mean(b).low  # the rows alone cannot be told apart
    assert verdict(diff) == "beats" and verdict(boot.difference(a, a)) == "is not distinguishable from"
    gain = boot.gain_pct(b, a)
    assert gain.low > 0 and gain.value == pytest.approx(100 * (b.mean() / a.mean() - 1))


def test_resampling_is_seeded_and_uses_at_least_a_thousand_resamples():
    groups = np.repeat(np.arange(8), 3)
    scores = np.random.default_rng(2).uniform(size=24)
    assert DocumentBootstrap(groups).mean(scores) == DocumentBootstrap(groups).mean(scores)
    assert len(DocumentBootstrap(groups).counts) >= 1000


# --- eval and predict ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small AMN trained on the packaged sample at k=7 (min_context 5)."""
    data = load_data(k=7, min_context=5)
    result = train(TrainConfig(arch="amn", model={"width": 32, "key_dim": 16}, epochs=2), data)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "amn", result.model, result.meta), data


@pytest.fixture(scope="module")
def other_corpus(tmp_path_factory):
    """Another corpus: the sample's documents in reverse order (other content, another split)."""
    z = np.load(load_data().source)
    order = np.argsort(-z["doc_ids"], kind="stable")
    path = tmp_path_factory.mktemp("other") / "other.npz"
    np.savez(path, vectors=z["vectors"][order], doc_ids=z["doc_ids"][order])
    return path


def test_eval_on_the_training_data_reproduces_the_test_scores(checkpoint, cli):
    path, data = checkpoint
    code, out, err = cli("eval", path, "--json")
    assert code == 0, err
    result = json.loads(out)
    model_cos = result["scores"]["model"]["cosine"]
    from lvm_search.models.checkpoint import load_model

    model, _ = load_model(path)
    expected = (predict(model, data, "test") * data.targets("test")).sum(-1).mean().item()
    assert model_cos == pytest.approx(expected, abs=1e-6)
    assert result["relation"] == "the test split of the data it was trained on"
    i = result["scores"]["model"]["cosine_interval"]
    assert i["low"] <= model_cos <= i["high"] and result["intervals"]["resamples"] >= 1000
    assert set(result["scores"]) == {"model", "mean", "last", "recency", "ridge", "reference mean"}
    assert result["baselines_fitted"]["best_on_val"] in {"mean", "last", "recency", "ridge"}


def test_eval_on_another_corpus_says_so_and_scores_baselines_on_the_same_windows(
    checkpoint, other_corpus, cli
):
    path, _ = checkpoint
    code, out, err = cli("eval", path, "--data", other_corpus, "--split", "all", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["relation"] == "other data than it was trained on (all windows)"
    other = load_data(other_corpus, k=7, min_context=5)
    assert result["evaluated_on"]["windows"] == sum(len(s) for s in other.splits.values())
    assert result["evaluated_on"]["split"] == "all" and "include it" in result["baselines_note"]
    g = result["gain_over_best_baseline_pct"]
    assert g["low"] <= g["value"] <= g["high"]
    code, out, _ = cli("eval", path, "--data", other_corpus)
    assert code == 0 and "95% CI" in out and "the checkpoint" in out


def test_eval_json_analyses_the_errors_against_the_best_baseline_with_the_files_texts(checkpoint, cli):
    path, data = checkpoint
    code, out, err = cli("eval", path, "--json")
    assert code == 0, err
    result = json.loads(out)
    analysis, test = result["error_analysis"], data.splits["test"]
    baseline = analysis["baseline"]
    assert baseline == result["baselines_fitted"]["best_on_val"]
    for part in ("per_document", "by_position", "by_context"):  # every test window once, paired
        groups = analysis[part]
        assert sum(g["windows"] for g in groups) == len(test)
        for key, row in (("cosine", "model"), ("baseline", baseline)):
            mean = sum(g[key] * g["windows"] for g in groups) / len(test)
            assert mean == pytest.approx(result["scores"][row]["cosine"], abs=1e-6)
    from lvm_search.models.checkpoint import load_model

    model, _ = load_model(path)
    cosine = (predict(model, data, "test") * data.targets("test")).sum(-1)
    worst = analysis["worst_windows"]
    assert [w["window"] for w in worst] == torch.argsort(cosine)[: len(worst)].tolist()
    z = np.load(data.source)
    file_text = lambda r: z["text_bytes"][z["text_offsets"][r] : z["text_offsets"][r + 1]].tobytes().decode()  # noqa: E731
    titles = z["doc_titles_bytes"].tobytes()
    for w in worst:
        for passage in (w["last_context"], w["next"], w["nearest_training"]):
            assert passage["text"] == file_text(passage["row"])
        doc = int(z["doc_ids"][w["next"]["row"]])
        assert w["document"] == titles[z["doc_title_offsets"][doc] : z["doc_title_offsets"][doc + 1]].decode()
        assert int(np.flatnonzero(z["doc_ids"] == doc)[w["position"]]) == w["next"]["row"]
    assert analysis["texts"] and analysis["texts_note"] == ""


def test_eval_json_on_a_file_without_texts_says_so_plainly_and_still_analyses(checkpoint, other_corpus, cli):
    path, _ = checkpoint
    code, out, err = cli("eval", path, "--data", other_corpus, "--json")
    assert code == 0, err
    analysis = json.loads(out)["error_analysis"]
    assert not analysis["texts"] and "has no passage texts" in analysis["texts_note"]
    assert all(
        w["next"]["text"] is None and w["nearest_training"]["text"] is None for w in analysis["worst_windows"]
    )
    assert analysis["per_document"][0]["document"].startswith("document ")


def test_eval_of_a_run_folder_uses_its_best_trial_and_an_unknown_folder_is_one_line(tmp_path, cli):
    code, _, err = cli("eval", tmp_path)
    assert code == 2 and "not a checkpoint, run or ensemble folder" in one_error(err)


def test_predict_writes_every_window_in_file_order_with_ids_and_positions(checkpoint, tmp_path, cli):
    path, data = checkpoint
    out = tmp_path / "preds.npz"
    code, _, err = cli("predict", path, "--out", out, "--last")
    assert code == 0, err
    z = np.load(out)
    file_ids = np.load(data.source)["doc_ids"]
    every = load_data(k=7, min_context=5, split=False)
    n = len(every.splits["all"])
    assert z["predictions"].shape == (n + len(np.unique(file_ids)), data.dim)
    assert np.array_equal(z["rows"][:n], every.splits["all"].targets.numpy())
    assert (z["rows"][n:] == -1).all()
    assert np.array_equal(z["doc_ids"][:n], file_ids[z["rows"][:n]])
    starts = {d: int(np.flatnonzero(file_ids == d)[0]) for d in np.unique(file_ids)}
    assert all(z["positions"][i] == z["rows"][i] - starts[z["doc_ids"][i]] for i in range(0, n, 97))
    lengths = {d: int((file_ids == d).sum()) for d in np.unique(file_ids)}
    assert all(z["positions"][n + i] == lengths[d] for i, d in enumerate(z["doc_ids"][n:]))
    from lvm_search import load_predictor

    model = load_predictor(path)
    torch.testing.assert_close(torch.from_numpy(z["predictions"][:n]), predict(model.model, every, "all"))
    assert json.loads(str(z["meta_json"]))["lvm_search_predictions"] is True
    code, _, err = cli("predict", path, "--out", out)  # replacing its own file is fine
    assert code == 0, err


@pytest.mark.hostile(CONFINED)
@pytest.mark.parametrize(
    "out, message",
    [
        ("data.npz", "data.npz: already exists and is not a predictions file that lvm-search wrote"),
        ("emb.npz", "emb.npz: already exists and is not a predictions file that lvm-search wrote"),
        ("notes.txt", "notes.txt: --out must name a .npz file"),
        ("x.npz", "x.npz: is a folder, expected a .npz file path"),
        ("notes.txt/p.npz", "notes.txt/p.npz: cannot write here"),
    ],
    ids=["a data file", "an embed output", "a text file", "a folder named .npz", "a path under a file"],
)
def test_an_out_path_predict_did_not_write_is_refused_and_left_as_it_was(
    checkpoint, tmp_path, cli, write_native, out, message
):
    path, _ = checkpoint
    write_native(name="data.npz")
    write_native(
        name="emb.npz", meta_json=json.dumps({"encoder": {}, "passage_rules": {}})
    )  # not predictions
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "x.npz").mkdir()
    before = {p.name: p.read_bytes() if p.is_file() else "folder" for p in tmp_path.iterdir()}
    code, _, err = cli("predict", path, "--out", tmp_path / out)
    assert code == 2 and str(tmp_path / message) in one_error(err)
    assert {p.name: p.read_bytes() if p.is_file() else "folder" for p in tmp_path.iterdir()} == before


def test_the_public_api_predicts_in_three_lines(checkpoint):
    path, _ = checkpoint
    import lvm_search

    model = lvm_search.load_predictor(path)  # a checkpoint, run or ensemble folder
    data = lvm_search.load_data(k=model.k, min_context=model.min_context, split=False)
    preds = lvm_search.predict(model.model, data, "all")
    assert preds.shape == (len(data.splits["all"]), data.dim)


@pytest.mark.parametrize("what", ["run", "ensemble"])
def test_eval_of_a_run_folder_or_an_ensemble_scores_what_it_chose(tiny_storage, cli, what):
    folder = tiny_storage / ("amn" if what == "run" else "ensembles/default")
    code, out, err = cli("eval", folder, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["predictor"]["kind"] == what
    assert result["relation"] == "the test split of the data it was trained on"
    if what == "ensemble":
        record = json.loads((folder / "ensemble.json").read_text())
        assert result["scores"]["model"]["cosine"] == pytest.approx(
            record["metrics"]["test"]["cosine"], abs=1e-5
        )
    else:
        summary = json.loads((folder / "summary.json").read_text())
        assert result["predictor"]["path"] == str(folder) and summary["best"]


def test_version_flag(cli):
    import lvm_search

    code, out, _ = cli("--version")  # argparse exits; the fixture returns its code, as the shell sees it
    assert code == 0 and out.strip() == f"lvm-search {lvm_search.__version__}"
