"""Loading data: windows inside documents, the document split, the fingerprint, the windows format."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DEGENERATE, FALSE_REFUSALS, LEAKAGE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvm_search.data.windows import SPLITS, load_data
from lvm_search.errors import UserError


def doc_ids_for(lengths, ids=None):
    """Contiguous document ids, as the write_native fixture writes them by default."""
    ids = np.arange(len(lengths)) if ids is None else np.asarray(ids)
    return np.repeat(ids, lengths).astype(np.int32)


def split_docs(data, doc_ids, name):
    """The set of document ids whose windows are in split ``name``."""
    return set(doc_ids[data.splits[name].targets.numpy()].tolist())


# --- windows inside documents ----------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lengths=st.lists(st.integers(1, 12), min_size=3, max_size=14),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    id_seed=st.integers(0, 1000),
)
def test_no_window_crosses_a_document_border(write_native, lengths, k, seed, id_seed):
    # Document ids need not be 0..n-1 nor sorted; only contiguous.
    ids = np.random.default_rng(id_seed).choice(10_000, size=len(lengths), replace=False)
    doc_ids = doc_ids_for(lengths, ids)
    path = write_native(lengths, dim=4, doc_ids=doc_ids)
    with_windows = sum(length > k for length in lengths)
    if with_windows < 3:
        with pytest.raises(UserError):
            load_data(path, k=k, seed=seed)
        return
    data = load_data(path, k=k, seed=seed)

    for name in SPLITS:
        contexts, targets = data.contexts(name).numpy(), data.splits[name].targets.numpy()
        assert contexts.shape == (len(targets), k)
        # contexts are the k rows just before the target, oldest first
        np.testing.assert_array_equal(contexts, targets[:, None] + np.arange(-k, 0))
        # ... and all of them in the target's document
        assert (doc_ids[contexts] == doc_ids[targets][:, None]).all()

    # Every window of every document with more than k passages is in exactly one split.
    all_targets = np.concatenate([data.splits[n].targets.numpy() for n in SPLITS])
    assert len(all_targets) == len(set(all_targets.tolist())) == sum(max(0, n - k) for n in lengths)


def test_windows_are_the_k_rows_before_each_target_on_a_hand_made_file(write_native):
    # Documents of 3, 6, 4, 5 and 7 passages, k=3: windows only at positions >= 3 in a document.
    lengths = [3, 6, 4, 5, 7]
    path = write_native(lengths, dim=4)
    data = load_data(path, k=3)
    targets = sorted(torch.cat([data.splits[n].targets for n in SPLITS]).tolist())
    starts = np.cumsum([0] + lengths[:-1])
    expected = [int(s + i) for s, n in zip(starts, lengths) for i in range(3, n)]
    assert targets == expected
    file_vectors = torch.from_numpy(np.load(path)["vectors"])
    for name in SPLITS:
        x, y = data.batch(name, slice(None))
        s = data.splits[name]
        torch.testing.assert_close(x, file_vectors[s.targets[:, None] + torch.arange(-3, 0)])
        torch.testing.assert_close(y, file_vectors[s.targets])


# --- the document split ----------------------------------------------------------------------


def test_no_document_is_in_two_splits(write_native):
    lengths = [12] * 30
    path = write_native(lengths)
    doc_ids = doc_ids_for(lengths)
    data = load_data(path)
    docs = {name: split_docs(data, doc_ids, name) for name in SPLITS}
    assert not docs["train"] & docs["val"]
    assert not docs["train"] & docs["test"]
    assert not docs["val"] & docs["test"]
    assert docs["train"] | docs["val"] | docs["test"] == set(range(30))
    for name in SPLITS:
        assert data.splits[name].docs == len(docs[name])


@pytest.mark.parametrize(
    "n_docs,expected", [(10, (8, 1, 1)), (30, (24, 3, 3)), (64, (52, 6, 6)), (3, (1, 1, 1))]
)
def test_split_sizes_follow_80_10_10_of_documents(write_native, n_docs, expected):
    data = load_data(write_native([8] * n_docs, dim=4))
    assert tuple(data.splits[n].docs for n in SPLITS) == expected
    assert tuple(len(data.splits[n]) for n in SPLITS) == tuple(
        3 * d for d in expected
    )  # 8 - k windows per doc


def test_documents_without_a_window_are_left_out_of_the_split(write_native):
    # 20 documents with windows, 5 of exactly k=5 passages (no window): the split is of the 20.
    lengths = [9] * 20 + [5] * 5
    data = load_data(write_native(lengths, dim=4))
    assert tuple(data.splits[n].docs for n in SPLITS) == (16, 2, 2)
    assert data.split_sizes() == {
        "train": {"docs": 16, "windows": 64},
        "val": {"docs": 2, "windows": 8},
        "test": {"docs": 2, "windows": 8},
    }


def test_sample_split_sizes(sample):
    data = load_data(sample)
    assert data.summary()["passages"] == 3554 and data.dim == 384 and data.k == 5
    assert {n: data.splits[n].docs for n in SPLITS} == {"train": 52, "val": 6, "test": 6}
    doc_ids = np.load(sample)["doc_ids"]
    _, lengths = np.unique(doc_ids, return_counts=True)
    assert sum(len(data.splits[n]) for n in SPLITS) == int(np.maximum(lengths - 5, 0).sum())


def test_split_is_seeded(write_native):
    lengths = [10] * 30
    path = write_native(lengths, dim=4)
    doc_ids = doc_ids_for(lengths)
    a, b, other = load_data(path, seed=7), load_data(path, seed=7), load_data(path, seed=8)
    for name in SPLITS:
        assert torch.equal(a.contexts(name), b.contexts(name))
        assert torch.equal(a.splits[name].targets, b.splits[name].targets)
    assert split_docs(a, doc_ids, "test") != split_docs(other, doc_ids, "test")


def test_vectors_are_float32_unit_rows_of_a_float16_file(write_native):
    path = write_native([10] * 5, dim=6, dtype=np.float16)
    data = load_data(path)
    assert data.vectors.dtype == torch.float32
    stored = torch.from_numpy(np.load(path)["vectors"].astype(np.float32))
    assert torch.allclose(data.vectors, stored, atol=1e-3)
    assert torch.allclose(data.vectors.norm(dim=1), torch.ones(len(stored)), atol=1e-6)
    assert data.format == "native" and data.dim == 6


def test_extra_arrays_in_the_file_are_ignored(write_native):
    plain = load_data(write_native([10] * 5, name="plain.npz"))
    extra = load_data(write_native([10] * 5, name="extra.npz", text_bytes=np.zeros(7, np.uint8)))
    assert plain.fingerprint == extra.fingerprint


def test_non_contiguous_document_ids_are_refused(write_native):
    doc_ids = doc_ids_for([6, 6, 6, 6])
    doc_ids[[0, -1]] = doc_ids[[-1, 0]]  # one passage of document 3 first, one of document 0 last
    with pytest.raises(UserError, match="contiguous"):
        load_data(write_native([6, 6, 6, 6], doc_ids=doc_ids))


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.2, 0.0), (0.7, 0.2, 0.2)])
def test_bad_split_fractions_are_refused(write_native, fractions):
    with pytest.raises(UserError, match="fractions"):
        load_data(write_native(), fractions=fractions)


# --- the fingerprint -------------------------------------------------------------------------


def test_fingerprint_is_stable_across_reloads(write_native):
    path = write_native()
    assert load_data(path).fingerprint == load_data(path).fingerprint
    assert load_data(path, seed=3).fingerprint == load_data(path, seed=3).fingerprint


def test_fingerprint_changes_when_the_split_seed_changes(write_native):
    path = write_native([10] * 30)
    assert load_data(path, seed=0).fingerprint != load_data(path, seed=1).fingerprint


def test_fingerprint_changes_when_one_test_vector_changes(write_native):
    lengths = [10] * 20
    path = write_native(lengths, name="a.npz")
    vectors = np.load(path)["vectors"].copy()
    target = int(load_data(path).splits["test"].targets[0])
    vectors[target] = -vectors[target]
    changed = write_native(lengths, vectors=vectors, name="b.npz")
    a, b = load_data(path), load_data(changed)
    assert torch.equal(a.splits["test"].targets, b.splits["test"].targets)  # same split ...
    assert a.fingerprint != b.fingerprint  # ... other data


def test_fingerprint_changes_with_k(write_native):
    path = write_native([10] * 10)
    assert load_data(path, k=4).fingerprint != load_data(path, k=5).fingerprint


def test_sample_fingerprint_is_stable(sample):
    assert load_data().fingerprint == load_data(sample).fingerprint


# --- the windows format ----------------------------------------------------------------------


def test_windows_format_loads_with_a_warning_about_leakage(write_windows, caplog):
    path, ctx, tgt = write_windows(m=100, k=3, dim=8)
    with caplog.at_level(logging.WARNING, logger="lvm_search"):
        data = load_data(path)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "no document ids" in caplog.records[0].getMessage()
    assert data.format == "windows"
    assert data.k == 3 and data.dim == 8
    assert sum(len(data.splits[n]) for n in SPLITS) == 100 - 2 * 3  # two gaps of k windows
    assert [len(data.splits[n]) for n in SPLITS] == [74, 10, 10]


def test_windows_format_splits_are_contiguous_blocks_in_file_order(write_windows):
    path, ctx, tgt = write_windows(m=100, k=3, dim=8)
    data = load_data(path)
    blocks = {"train": (0, 74), "val": (77, 87), "test": (90, 100)}
    for name, (lo, hi) in blocks.items():
        x, y = data.batch(name, slice(None))
        torch.testing.assert_close(x, torch.from_numpy(ctx[lo:hi]))
        torch.testing.assert_close(y, torch.from_numpy(tgt[lo:hi]))


def test_windows_format_splits_share_no_vector(write_windows):
    # Sliding windows share vectors with their neighbours; the gaps keep the splits apart.
    path, _, _ = write_windows(m=120, k=4, dim=8)
    data = load_data(path)
    used = {}
    for name in SPLITS:
        x, y = data.batch(name, slice(None))
        rows = torch.cat([x.reshape(-1, data.dim), y]).numpy()
        used[name] = {row.tobytes() for row in rows}
    assert not used["train"] & used["val"]
    assert not used["train"] & used["test"]
    assert not used["val"] & used["test"]


def test_windows_format_fingerprint_is_stable_and_tracks_the_vectors(write_windows):
    path, ctx, tgt = write_windows(m=60, k=3)
    other, _, _ = write_windows(m=60, k=3, seed=1, name="other.npz")
    assert load_data(path).fingerprint == load_data(path).fingerprint
    assert load_data(path).fingerprint != load_data(other).fingerprint


def test_windows_format_refuses_another_k(write_windows):
    path, _, _ = write_windows(m=60, k=3)
    with pytest.raises(UserError, match="k=3"):
        load_data(path, k=5)


def test_windows_format_with_too_few_windows_is_refused(write_windows):
    path, _, _ = write_windows(m=8, k=3)
    with pytest.raises(UserError, match="too few"):
        load_data(path)


# --- longer contexts: min_context and the zero pad row ---------------------------------------------


def test_min_context_keeps_the_windows_and_split_of_k_equal_min_context(write_native):
    lengths = [6, 9, 7, 12, 8, 10, 6, 11]
    path = write_native(lengths, dim=4)
    short, long = load_data(path, k=3), load_data(path, k=7, min_context=3)
    for name in SPLITS:
        assert torch.equal(short.splits[name].targets, long.splits[name].targets)
    assert long.k == 7 and long.min_context == 3 and long.padded
    assert long.fingerprint != short.fingerprint
    assert (
        load_data(path, k=3, min_context=3).fingerprint == short.fingerprint
    )  # min_context=k is the default


def test_positions_before_the_document_start_are_the_zero_pad_row(write_native):
    lengths = [4, 9, 6, 5, 8]
    path = write_native(lengths, dim=4)
    data = load_data(path, k=6, min_context=2)
    file_vectors = torch.nn.functional.normalize(torch.from_numpy(np.load(path)["vectors"]).float(), dim=-1)
    starts = np.cumsum([0] + lengths[:-1])
    doc_of = np.repeat(np.arange(len(lengths)), lengths)
    assert torch.equal(data.vectors[-1], torch.zeros(4))
    assert data.summary()["passages"] == sum(lengths)
    for name in SPLITS:
        x, _ = data.batch(name, slice(None))
        for window, target in zip(x, data.splits[name].targets.tolist()):
            available = target - starts[doc_of[target]]
            assert available >= 2
            real = min(6, available)
            assert torch.equal(window[: 6 - real], torch.zeros(6 - real, 4))
            torch.testing.assert_close(window[6 - real :], file_vectors[target - real : target])


def test_context_mean_ignores_pad_rows_and_weights_by_recency():
    from lvm_search.models import context_mean

    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    padded = torch.stack([torch.zeros(2), torch.zeros(2), a, b])[None]
    torch.testing.assert_close(context_mean(padded), ((a + b) / 2)[None])
    torch.testing.assert_close(context_mean(padded, decay=0.5), ((0.5 * a + b) / 1.5)[None])
    torch.testing.assert_close(context_mean(padded, decay=0.0), b[None])  # 0 = the last vector


@pytest.mark.parametrize("min_context", [0, 6])
def test_min_context_outside_1_to_k_is_refused(write_native, min_context):
    with pytest.raises(UserError, match="min_context"):
        load_data(write_native([8] * 5, dim=4), k=5, min_context=min_context)


def test_min_context_is_refused_for_windows_format(write_windows):
    with pytest.raises(UserError, match="min_context"):
        load_data(write_windows()[0], min_context=2)


# --- extra training data ------------------------------------------------------------------------


@pytest.mark.hostile(LEAKAGE)
def test_extra_train_adds_every_window_of_the_other_file_to_train_only(write_native):
    main_path = write_native([9, 14, 7, 11, 16, 8, 10, 12], dim=4)
    extra_path = write_native([6, 9, 4, 7], dim=4, seed=1, name="extra.npz")
    plain = load_data(main_path, k=3)
    more = load_data(main_path, k=3, extra_train=(extra_path,))
    for name in ("val", "test"):
        assert torch.equal(more.batch(name, slice(None))[1], plain.batch(name, slice(None))[1])
    extra_vectors = torch.nn.functional.normalize(torch.from_numpy(np.load(extra_path)["vectors"]), dim=-1)
    n_plain = len(plain.splits["train"])
    x, y = more.batch("train", slice(n_plain, None))
    assert len(y) == (6 - 3) + (9 - 3) + (4 - 3) + (7 - 3)
    assert more.splits["train"].docs == plain.splits["train"].docs + 4
    starts = np.cumsum([0, 6, 9, 4])
    expected = [t for s, n in zip(starts, [6, 9, 4, 7]) for t in range(s + 3, s + n)]
    torch.testing.assert_close(y, extra_vectors[expected])
    torch.testing.assert_close(x, extra_vectors[torch.tensor(expected)[:, None] + torch.arange(-3, 0)])
    assert more.fingerprint != plain.fingerprint and more.summary()["extra_train"] == [str(extra_path)]


def test_extra_train_windows_are_padded_like_the_main_file(write_native):
    main_path = write_native([9, 14, 7, 11, 16, 8, 10, 12], dim=4)
    extra_path = write_native([6, 9], dim=4, seed=1, name="extra.npz")
    data = load_data(main_path, k=6, min_context=2, extra_train=(extra_path,))
    x, _ = data.batch("train", slice(None))
    real_rows = (x.abs().sum(-1) > 0).sum(1)
    assert real_rows.min() == 2 and real_rows.max() == 6
    assert torch.equal(data.vectors[-1 - 15], torch.zeros(4))  # the one pad row, before the 15 extra rows


def test_extra_train_with_another_dimension_is_refused(write_native):
    main_path = write_native([9] * 6, dim=4)
    extra_path = write_native([9] * 3, dim=8, name="extra.npz")
    with pytest.raises(UserError, match="extra.npz.*D=8"):
        load_data(main_path, extra_train=(extra_path,))


def test_memory_per_window_does_not_grow_with_k(write_native):
    # A split holds two integers per window (target row, document start), whatever the context length.
    path = write_native([40] * 10, dim=4)
    short, long = load_data(path, k=2, min_context=2), load_data(path, k=30, min_context=2)
    for name in SPLITS:
        for data in (short, long):
            s = data.splits[name]
            assert s.targets.shape == s.starts.shape == (len(s),)


def test_with_k_is_the_data_loaded_at_that_k(write_native):
    path = write_native([6, 9, 7, 12, 8, 10, 6, 11], dim=4)
    loaded_long = load_data(path, k=8, min_context=3)
    for k in (3, 5, 8):
        direct = load_data(path, k=k, min_context=3)
        view = loaded_long.with_k(k)
        assert view.fingerprint == direct.fingerprint and view.k == k
        for name in SPLITS:
            torch.testing.assert_close(view.batch(name, slice(None)), direct.batch(name, slice(None)))
    with pytest.raises(UserError, match="k=2"):
        loaded_long.with_k(2)
    # and further back than it was loaded (a teacher reading more passages than its student),
    # from data with a zero pad row and from data without one
    for loaded in (load_data(path, k=5, min_context=3), load_data(path, k=3, min_context=3)):
        view, direct = loaded.with_k(8), load_data(path, k=8, min_context=3)
        assert view.fingerprint == direct.fingerprint and view.k == 8
        for name in SPLITS:
            torch.testing.assert_close(view.batch(name, slice(None)), direct.batch(name, slice(None)))


def test_data_pickles_to_numpy_and_back_without_change(write_native):
    # Ray hands the data to trials through its object store as numpy arrays (one shared copy).
    import pickle

    data = load_data(write_native([9] * 12, dim=4), k=6, min_context=3)
    back = pickle.loads(pickle.dumps(data))
    assert back.fingerprint == data.fingerprint and back.summary() == data.summary()
    for name in SPLITS:
        torch.testing.assert_close(back.batch(name, slice(None)), data.batch(name, slice(None)))


@pytest.mark.hostile(DEGENERATE)
@pytest.mark.parametrize("rows", [[3], [0, 7]])
def test_all_zero_vectors_are_refused(write_native, rows):
    vectors = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    vectors[rows] = 0
    with pytest.raises(UserError, match=f"row {rows[0]} is an all-zero vector"):
        load_data(write_native([10] * 5, vectors=vectors))


@pytest.mark.hostile(LEAKAGE)
def test_extra_train_that_is_the_data_file_itself_is_refused(write_native):
    path = write_native([9] * 12, dim=4)
    with pytest.raises(UserError, match="is the --data file itself"):
        load_data(path, extra_train=(path,))


@pytest.mark.hostile(LEAKAGE)
def test_extra_train_sharing_a_held_out_passage_is_refused(write_native):
    main = write_native([9] * 12, dim=4, name="main.npz")
    data = load_data(main)
    held_out_row = int(data.splits["test"].targets[0])
    other = np.random.default_rng(5).standard_normal((30, 4)).astype(np.float32)
    other[17] = np.load(main)["vectors"][held_out_row]  # one test passage, stored again in another file
    extra = write_native([10] * 3, vectors=other, name="copy.npz")
    with pytest.raises(UserError, match="1 of its passages are validation or test passages.*first: row 17"):
        load_data(main, extra_train=(extra,))
    # The same file without that row is accepted.
    other[17] = np.random.default_rng(6).standard_normal(4)
    load_data(main, extra_train=(write_native([10] * 3, vectors=other, name="clean.npz"),))


@pytest.mark.hostile(LEAKAGE)
@pytest.mark.parametrize(
    "how", ["an absolute path", "a path through sub/..", "a symbolic link", "a hard link"]
)
def test_the_data_file_under_another_name_is_still_the_data_file_itself(
    write_native, tmp_path, monkeypatch, how
):
    write_native([9] * 12, dim=4, name="main.npz")
    monkeypatch.chdir(tmp_path)  # the --data file is given as "main.npz", relative
    (tmp_path / "sub").mkdir()
    if how == "a symbolic link":
        Path("other.npz").symlink_to("main.npz")
    elif how == "a hard link":
        os.link("main.npz", "other.npz")
    extra = {"an absolute path": tmp_path / "main.npz", "a path through sub/..": "sub/../main.npz"}.get(
        how, "other.npz"
    )
    with pytest.raises(UserError, match="is the --data file itself"):
        load_data("main.npz", extra_train=(extra,))


@pytest.mark.hostile(LEAKAGE)
def test_the_data_file_saved_again_as_float16_is_refused_as_sharing_its_held_out_passages(write_native):
    main = write_native([9] * 12, dim=4, name="main.npz")
    half = write_native([9] * 12, dim=4, dtype=np.float16, name="half.npz")  # the same rows, rounded
    with pytest.raises(UserError, match=r"half.npz: \d+ of its passages are validation or test passages"):
        load_data(main, extra_train=(half,))


@pytest.mark.hostile(LEAKAGE)
@pytest.mark.parametrize("split, role", [("val", "target"), ("val", "context"), ("test", "context")])
def test_extra_train_sharing_any_passage_of_a_held_out_document_is_refused(write_native, split, role):
    main = write_native([9] * 12, dim=4, name="main.npz")
    held = load_data(main).splits[split]
    # a target, or the first passage of a held-out document: only ever read as context, never scored
    row = int(held.targets[0] if role == "target" else held.starts[0])
    other = np.random.default_rng(5).standard_normal((30, 4)).astype(np.float32)
    other[11] = np.load(main)["vectors"][row]
    extra = write_native([10] * 3, vectors=other, name="copy.npz")
    with pytest.raises(UserError, match="1 of its passages are validation or test passages.*first: row 11"):
        load_data(main, extra_train=(extra,))


@pytest.mark.hostile(LEAKAGE)
def test_held_out_rows_are_every_passage_of_the_val_and_test_documents_and_not_the_pad_row(write_native):
    data = load_data(write_native([9] * 12, dim=4), k=4, min_context=1)
    assert data.padded
    docs = {
        name: {(int(s), int(e)) for s, e in zip(data.splits[name].starts, data.splits[name].targets)}
        for name in data.splits
    }
    # a document's rows run from its start to its last target; context reaches back to the start
    expected = sorted(
        row
        for name in ("val", "test")
        for start in {s for s, _ in docs[name]}
        for row in range(start, max(e for s, e in docs[name] if s == start) + 1)
    )
    assert data.held_out_rows().tolist() == expected


@pytest.mark.hostile(FALSE_REFUSALS)
def test_extra_train_sharing_only_training_passages_is_accepted(write_native):
    main = write_native([9] * 12, dim=4, name="main.npz")
    plain = load_data(main)
    other = np.random.default_rng(5).standard_normal((30, 4)).astype(np.float32)
    other[[0, 11, 29]] = np.load(main)["vectors"][plain.splits["train"].targets[:3].numpy()]
    more = load_data(main, extra_train=(write_native([10] * 3, vectors=other, name="shared.npz"),))
    assert len(more.splits["train"]) == len(plain.splits["train"]) + 3 * (10 - 5)


@pytest.mark.hostile(LEAKAGE)
def test_every_extra_train_file_is_checked_not_only_the_first(write_native):
    main = write_native([9] * 12, dim=4, name="main.npz")
    clean = write_native([10] * 3, seed=7, dim=4, name="clean.npz")
    copy = write_native([9] * 12, dim=4, name="copy.npz")  # main.npz again, under another name
    with pytest.raises(UserError, match="copy.npz: .* validation or test passages"):
        load_data(main, extra_train=(clean, copy))


@pytest.mark.hostile(DEGENERATE)
def test_an_extra_train_file_with_an_all_zero_row_is_refused_naming_it(write_native):
    main = write_native([9] * 12, dim=4, name="main.npz")
    other = np.random.default_rng(5).standard_normal((30, 4)).astype(np.float32)
    other[5] = 0
    extra = write_native([10] * 3, vectors=other, name="extra.npz")
    with pytest.raises(UserError, match="extra.npz: 'vectors' row 5 is an all-zero vector"):
        load_data(main, extra_train=(extra,))


@pytest.mark.hostile(DEGENERATE)
def test_a_huge_but_finite_row_keeps_its_direction(write_native):
    vectors = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    direction = vectors[7] / np.linalg.norm(vectors[7])
    vectors[7] *= 1e20  # its squared norm overflows float32
    data = load_data(write_native([10] * 5, vectors=vectors))
    assert np.allclose(data.vectors[7].numpy(), direction, atol=1e-6)
