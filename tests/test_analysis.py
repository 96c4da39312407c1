"""Error analysis: texts and titles read from the data file, training passages, nearest passages, and
scores by document, position and context, on tiny data written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvm_search.data.texts import PassageTexts
from lvm_search.data.windows import load_data
from lvm_search.models import build_model
from lvm_search.report import analysis
from lvm_search.scoring.intervals import DocumentBootstrap

LENGTHS = (9, 12, 7, 10, 8, 11, 9, 10, 12, 8)


def ragged(pieces: list[str]) -> tuple[np.ndarray, np.ndarray]:
    raw = [p.encode() for p in pieces]
    return np.frombuffer(b"".join(raw), np.uint8), np.r_[0, np.cumsum([len(r) for r in raw])].astype(np.int64)


def passage_text(doc: int, position: int) -> str:
    return f"document {doc}, passage {position}: ünïcode"


@pytest.fixture
def with_texts(write_native):
    """A native file whose every passage and document has a text and a title."""
    texts = [passage_text(d, p) for d, n in enumerate(LENGTHS) for p in range(n)]
    text_bytes, text_offsets = ragged(texts)
    title_bytes, title_offsets = ragged([f"docs/title-{d}.rst" for d in range(len(LENGTHS))])
    return write_native(
        lengths=LENGTHS,
        text_bytes=text_bytes,
        text_offsets=text_offsets,
        doc_titles_bytes=title_bytes,
        doc_title_offsets=title_offsets,
    )


def test_texts_titles_and_positions_are_those_of_the_rows_asked(with_texts):
    data = load_data(with_texts, k=4, min_context=3)
    texts = PassageTexts(data)
    rows = data.splits["test"].targets.tolist()
    read = texts.texts(rows)
    starts = np.r_[0, np.cumsum(LENGTHS)]
    for row in rows:
        doc = int(np.searchsorted(starts, row, side="right")) - 1
        assert read[row] == passage_text(doc, row - starts[doc])
        assert texts.locate(row) == (f"docs/title-{doc}.rst", row - starts[doc])
    assert texts.has_texts and texts.note == ""


def test_a_file_without_texts_gives_none_and_says_so_plainly(write_native):
    data = load_data(write_native(lengths=LENGTHS), k=4)
    texts = PassageTexts(data)
    assert texts.texts([0, 5]) == {0: None, 5: None} and not texts.has_texts
    assert "has no passage texts" in texts.note
    assert texts.locate(10) == ("document 1", 1)  # no titles: the file's document id


def test_text_offsets_that_do_not_fit_the_file_count_as_absent(write_native):
    text_bytes, offsets = ragged([f"p{i}" for i in range(sum(LENGTHS))])
    offsets[3], offsets[4] = offsets[4], offsets[3]  # out of order
    path = write_native(lengths=LENGTHS, text_bytes=text_bytes, text_offsets=offsets)
    texts = PassageTexts(load_data(path, k=4))
    assert texts.texts([0]) == {0: None} and "out of order" in texts.note
    path = write_native(lengths=LENGTHS, text_bytes=text_bytes, text_offsets=offsets[:-1], name="short.npz")
    assert "not the (" in PassageTexts(load_data(path, k=4)).note


def test_training_passages_are_every_passage_of_the_train_documents_and_nothing_else(write_native):
    data = load_data(write_native(lengths=LENGTHS), k=4, min_context=3)
    rows = set(analysis.training_passage_rows(data).tolist())
    starts = np.r_[0, np.cumsum(LENGTHS)]
    train_docs = {int(np.searchsorted(starts, s, side="right")) - 1 for s in data.splits["train"].starts}
    expected = {r for d in train_docs for r in range(starts[d], starts[d + 1])}
    assert rows == expected
    for name in ("val", "test"):
        held_out = set(data.splits[name].targets.tolist()) | set(data.contexts(name).flatten().tolist())
        assert not rows & held_out


def test_the_nearest_row_is_the_brute_force_nearest_whatever_the_chunk(write_native, monkeypatch):
    data = load_data(write_native(lengths=LENGTHS, dim=16), k=4)
    rows = analysis.training_passage_rows(data)
    predictions = torch.randn(6, 16)
    sims = torch.nn.functional.normalize(predictions, dim=-1) @ data.vectors[rows].T
    monkeypatch.setattr(analysis, "SIMILARITY_BYTES", 4 * 16 * 7)  # 7 rows a chunk
    nearest, cosine = analysis.nearest_rows(predictions, data.vectors, rows)
    assert nearest.tolist() == rows[sims.argmax(1)].tolist()
    torch.testing.assert_close(cosine, sims.max(1).values)


def test_scores_by_position_are_the_means_and_paired_intervals_of_their_windows(write_native):
    data = load_data(write_native(lengths=LENGTHS), k=6, min_context=3)
    s = data.splits["train"]  # the largest split, for more than one document per bin
    rng = np.random.default_rng(0)
    model, base = rng.uniform(size=len(s)), rng.uniform(size=len(s))
    positions = analysis.positions(s)
    rows = analysis.by_bins(positions, [3, 5, 8, float("inf")], model, base, s)
    assert [r["label"] for r in rows] == ["3–4", "5–7", "8+"]
    assert sum(r["windows"] for r in rows) == len(s)
    for r, (lo, hi) in zip(rows, [(3, 5), (5, 8), (8, 99)]):
        inside = (positions >= lo) & (positions < hi)
        assert r["cosine"] == pytest.approx(model[inside].mean())
        assert r["baseline"] == pytest.approx(base[inside].mean())
        groups = np.unique(s.groups()[inside], return_inverse=True)[1]
        assert r["difference"] == DocumentBootstrap(groups).difference(model[inside], base[inside]).as_dict()
    context = analysis.context_passages(s, 6)
    assert context.min() == 3 and context.max() == 6 and (context[positions >= 6] == 6).all()


def test_the_worst_windows_are_the_lowest_scores_with_their_passages_and_nearest_training_passage(with_texts):
    data = load_data(with_texts, k=4, min_context=3)
    model = build_model("amn", data.dim, data.k, width=8, key_dim=4).eval()
    cosine = np.random.default_rng(1).uniform(size=len(data.splits["test"]))
    texts = PassageTexts(data)
    worst = analysis.worst_windows(model, data, "test", cosine, cosine * 0, texts, n=3)
    assert [w["window"] for w in worst] == np.argsort(cosine)[:3].tolist()
    train_rows = analysis.training_passage_rows(data)
    for w in worst:
        target = int(data.splits["test"].targets[w["window"]])
        assert (w["next"]["row"], w["last_context"]["row"]) == (target, target - 1)
        assert w["next"]["text"] == texts.texts([target])[target] and w["cosine"] == cosine[w["window"]]
        with torch.no_grad():
            prediction = model(data.batch("test", torch.tensor([w["window"]]))[0])
        sims = torch.nn.functional.normalize(prediction, dim=-1) @ data.vectors[train_rows].T
        near = w["nearest_training"]
        assert near["row"] == int(train_rows[sims.argmax()])
        assert near["cosine_to_prediction"] == pytest.approx(float(sims.max()), abs=1e-6)
        assert near["text"].startswith("document ") and near["document"].startswith("docs/title-")


def test_the_attention_profile_is_the_mean_of_the_amns_weights_and_how_far_they_are_from_uniform(
    write_native,
):
    data = load_data(write_native(lengths=LENGTHS, dim=16), k=6, min_context=3)
    model = build_model("amn", 16, 6, width=8, key_dim=4, base_decay=0.5).eval()
    with torch.no_grad():
        model.query.weight.mul_(50)  # far from uniform
        x, _ = data.batch("test", slice(None))
        weights = model.attention(x).double()
    real = x.abs().sum(-1) > 0
    full = real.all(-1)
    profile = analysis.attention_profile(model, data, "test")
    assert profile["mean_weight"] == pytest.approx(weights.mean(0).tolist())
    assert profile["mean_weight_full"] == pytest.approx(weights[full].mean(0).tolist())
    assert profile["full_windows"] == int(full.sum()) < profile["windows"] == len(x)
    uniform = real.double() / real.sum(-1, keepdim=True)
    assert profile["max_deviation_from_uniform"] == pytest.approx(float((weights - uniform).abs().max()))
    assert profile["max_deviation_from_uniform"] > 0.1
    assert profile["base_weight"] == pytest.approx(
        [0.5**a / sum(0.5**b for b in range(6)) for a in range(5, -1, -1)]
    )
    with torch.no_grad():
        model.query.weight.zero_()
        model.query.bias.zero_()
    assert analysis.attention_profile(model, data, "test")["max_deviation_from_uniform"] < 1e-6
