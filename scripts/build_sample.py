"""Build the packaged sample, lvm_search/samples/python-docs-sample.npz, from the shared Python-docs set.

usage: python scripts/build_sample.py [--source ../shared/data/python-docs-minilm.npz] [--docs 64] [--seed 0]

Keeps whole documents (a random, seeded choice), in their original order, with their texts and titles,
in the same native format as the source, so the sample behaves like the real thing, only smaller.
"""

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def ragged(blob, offsets, keep):
    """Select items `keep` of a ragged byte array (blob + offsets)."""
    parts = [blob[offsets[i] : offsets[i + 1]] for i in keep]
    new_offsets = np.r_[0, np.cumsum([len(p) for p in parts])].astype(np.int64)
    return np.concatenate(parts), new_offsets


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(ROOT.parent / "shared/data/python-docs-minilm.npz"))
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "lvm_search/samples/python-docs-sample.npz"))
    args = ap.parse_args()

    z = np.load(args.source, allow_pickle=False)
    doc_ids = z["doc_ids"]
    n_docs = int(doc_ids.max()) + 1
    docs = np.sort(np.random.default_rng(args.seed).choice(n_docs, size=args.docs, replace=False))
    rows = np.flatnonzero(np.isin(doc_ids, docs))
    new_doc_ids = np.searchsorted(docs, doc_ids[rows]).astype(np.int32)

    text_bytes, text_offsets = ragged(z["text_bytes"], z["text_offsets"], rows)
    title_bytes, title_offsets = ragged(z["doc_titles_bytes"], z["doc_title_offsets"], docs)
    meta = json.loads(str(z["meta_json"]))
    meta["sample_of"] = {
        "file": Path(args.source).name,
        "documents": [int(d) for d in docs],
        "seed": args.seed,
        "script": "scripts/build_sample.py",
    }
    meta["counts"] = {"passages": len(rows), "documents": len(docs), "text_bytes": len(text_bytes)}
    meta.pop("baselines", None)  # those were over the whole corpus; `lvm-search baselines` recomputes
    np.savez_compressed(
        args.out,
        vectors=z["vectors"][rows],
        doc_ids=new_doc_ids,
        text_bytes=text_bytes,
        text_offsets=text_offsets,
        doc_titles_bytes=title_bytes,
        doc_title_offsets=title_offsets,
        meta_json=np.array(json.dumps(meta)),
    )
    print(f"{args.out}: {len(rows)} passages in {len(docs)} documents, {Path(args.out).stat().st_size} bytes")


if __name__ == "__main__":
    main()
