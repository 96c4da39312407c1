"""Warm starts against training from scratch (issue 32), scored paired on one corpus's documents.

Each arm is a run of ``quality_pipeline.py`` on the same corpus and split (the four shipped searches,
``lvm-search ensemble``, ``lvm-search report``), differing only in what the searches were given:

    scratch   nothing: the default pipeline
    warm      --init INITS      every trial starts from the pretrained model of its architecture
    mixed     --extra-train ... the pretraining corpora's windows join each trial's train split

This script reads what the arms wrote and scores, on the corpus's val and test windows (the same
windows for every arm: the split depends on the main file, its seed and min_context only):
- each arm's best single model: the best trial of the search whose best val cosine is highest
  (decided on val; test only scores);
- each arm's ensemble (the one ``lvm-search ensemble`` built);
- with ``--zero-shot INITS``, the pretrained models themselves, not fitted to the corpus at all.
Differences against the first arm are paired over the same resampled documents (95 % bootstrap).

    python benchmarks/warm_start.py --data ../shared/data/python-docs-minilm.npz \\
        --arm scratch=R/scratch.json --arm warm=R/warm.json --zero-shot INITS \\
        --out benchmarks/results/cpu/warm_start_python.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lvm_search.data.windows import load_data  # noqa: E402
from lvm_search.models.checkpoint import load_model  # noqa: E402
from lvm_search.report.evaluate import load_predictor  # noqa: E402
from lvm_search.scoring.intervals import DocumentBootstrap  # noqa: E402
from lvm_search.scoring.metrics import per_window, predict  # noqa: E402
from lvm_search.store.provenance import collect  # noqa: E402
from lvm_search.store.runs import find_ensembles, find_runs  # noqa: E402

SPLITS = ("val", "test")


def cosines(model, data, k: int) -> dict[str, np.ndarray]:
    view = data.with_k(k)
    with torch.no_grad():
        return {s: per_window(predict(model, view, s), view, s)["cosine"].numpy() for s in SPLITS}


def score_arm(name: str, record: dict, data) -> dict:
    """The arm's runs, its best single model (on val) and its ensemble, each with per-window cosines."""
    storage = Path(record["storage"])
    runs = []
    for folder, summary in find_runs(storage):
        d = summary.data
        same_file = data.digests[0].startswith(d.content_digest)  # a run records the digest's first digits
        if not same_file or (d.split_seed, d.min_context, d.horizon) != (
            data.split_seed,
            data.min_context,
            data.horizon,
        ):  # another file or split: some of the documents scored here would be ones it trained on
            sys.exit(f"{folder}: trained on another file or split than {data.source} as scored here")
        k = summary.trial_k(summary.trial(summary.best.trial_id))
        model, _ = load_model(folder / summary.best.checkpoint)
        runs.append(
            {
                "arch": summary.arch,
                "k": k,
                "search_val": summary.best.val_cosine,
                "trials": summary.counts.trials,
                "config": summary.best.config,
                "init": summary.init,
                "cos": cosines(model, data, k),
            }
        )
    best = dict(max(runs, key=lambda r: r["search_val"]))  # a copy: its scores replace "cos" apart
    ensembles = find_ensembles(storage)
    if len(ensembles) != 1:  # the pipeline builds one; which of several it was is not recorded
        sys.exit(f"{storage}: {len(ensembles)} ensembles, not the one quality_pipeline.py builds")
    folder, ensemble = ensembles[0]
    predictor = load_predictor(folder)
    return {
        "name": name,
        "storage": str(storage),
        "init": record.get("init"),
        "extra_train": record.get("extra_train", []),
        "wall_s": {step: s["wall_s"] for step, s in record["steps"].items()} | {"total": record["total_s"]},
        "note": record.get("note"),  # what else ran on the machine: its wall times are not clean then
        "runs": runs,
        "best_single": best,
        "ensemble": {
            "folder": str(folder),
            "method": ensemble.method,
            "members": len(ensemble.members),
            "cos": cosines(predictor.model, data, predictor.k),
        },
    }


def _checkpoints(inits: Path) -> list[Path]:
    """The checkpoint folders in a folder of inits, one per architecture."""
    return sorted(p for p in inits.iterdir() if (p / "config.json").is_file())


def zero_shot(inits: Path, data) -> list[dict]:
    rows = []
    for checkpoint in _checkpoints(inits):
        model, meta = load_model(checkpoint)
        rows.append({"arch": meta["arch"], "k": meta["k"], "cos": cosines(model, data, meta["k"])})
    return rows


def inits_trained(inits: Path) -> dict:
    """What each pretrained model was trained on and how it did there, from its checkpoint."""
    out = {}
    for checkpoint in _checkpoints(inits):
        meta = json.loads((checkpoint / "config.json").read_text())
        out[meta["arch"]] = {
            key: meta.get(key) for key in ("data", "model_config", "params", "best", "train")
        }
    return out


def _texts(path: str | Path, rows: np.ndarray | None = None) -> set[str]:
    """The passages' texts of a native file (of ``rows`` only, if given), whitespace normalised."""
    z = np.load(path, allow_pickle=False)
    raw, offsets = z["text_bytes"].tobytes(), z["text_offsets"]
    rows = range(len(offsets) - 1) if rows is None else rows
    return {" ".join(raw[offsets[i] : offsets[i + 1]].decode().split()) for i in rows}


def shared_texts(data, pretraining: list[str]) -> dict[str, int]:
    """Per pretraining file, how many of its passage texts are also a val or test passage of the
    corpus. ``load_data`` compares vectors bit for bit; this catches the same text embedded twice in
    different batches, whose vectors may differ in the last bits."""
    scored = _texts(data.source, data.held_out_rows())
    return {str(path): len(_texts(path) & scored) for path in pretraining}


def inits_wall(inits: Path) -> dict | None:
    """Each pretrained model's training wall time, as ``scripts/pretrain_inits.sh`` logged it."""
    log = inits / "wall_s.jsonl"
    if not log.is_file():
        return None
    return {row["arch"]: row for row in map(json.loads, log.read_text().splitlines())}


def summarise(cos: dict, boots: dict, reference: dict | None) -> dict:
    out = {s: boots[s].mean(cos[s]).as_dict() for s in SPLITS}
    if reference is not None:
        out["minus_first_arm"] = {s: boots[s].difference(cos[s], reference[s]).as_dict() for s in SPLITS}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument(
        "--arm", action="append", required=True, help="NAME=quality_pipeline JSON (the first: reference)"
    )
    p.add_argument("--zero-shot", type=Path, help="a folder of pretrained checkpoints, one per arch")
    p.add_argument(
        "--pretraining",
        nargs="+",
        default=[],
        help="the .npz files the inits were pretrained on: checked to share no passage with this corpus's "
        "val and test documents; the first one's .provenance.json is recorded",
    )
    p.add_argument("--inits-note", help="what else ran on the machine while the inits were trained")
    p.add_argument("--corpus", help="its name in the report (default: the file's stem)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    arms = []
    for spec in args.arm:
        name, _, path = spec.partition("=")
        arms.append((name, json.loads(Path(path).read_text())))
    first = find_runs(Path(arms[0][1]["storage"]))[0][1].data
    data = load_data(args.data, k=first.k, min_context=first.min_context, seed=first.split_seed)
    boots = {s: DocumentBootstrap(data.splits[s].groups()) for s in SPLITS}
    if args.pretraining:  # load_data refuses extra training files that share a passage with val or test
        load_data(
            args.data,
            k=first.k,
            min_context=first.min_context,
            seed=first.split_seed,
            extra_train=tuple(args.pretraining),
        )
    pretraining = None
    if args.pretraining:
        path = Path(args.pretraining[0])
        pretraining = json.loads(path.with_name(path.stem + ".provenance.json").read_text())
        pretraining["same_text_as_val_or_test"] = shared_texts(data, args.pretraining)

    scored = [score_arm(name, record, data) for name, record in arms]
    reference = {"best_single": scored[0]["best_single"]["cos"], "ensemble": scored[0]["ensemble"]["cos"]}
    results = []
    same_arch = {run["arch"]: run["cos"] for run in scored[0]["runs"]}
    for i, arm in enumerate(scored):
        for what in ("best_single", "ensemble"):
            arm[what]["scores"] = summarise(arm[what].pop("cos"), boots, reference[what] if i else None)
        for run in arm["runs"]:  # each search against the first arm's search of its architecture
            run["scores"] = summarise(run.pop("cos"), boots, same_arch.get(run["arch"]) if i else None)
        results.append(arm)
    shots = zero_shot(args.zero_shot, data) if args.zero_shot else []
    for row in shots:
        row["scores"] = summarise(row.pop("cos"), boots, reference["best_single"])

    record = {
        "benchmark": "warm_start",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": collect().one_line(),
        "corpus": args.corpus or Path(args.data).stem,
        "data": args.data,
        "windows": {s: len(data.splits[s]) for s in SPLITS},
        "documents": {s: int(data.splits[s].groups().max()) + 1 for s in SPLITS},
        "intervals": {"level": 0.95, "resamples": len(boots["test"].counts), "unit": "documents"},
        "arms": results,
        "zero_shot": shots,
        "zero_shot_from": str(args.zero_shot) if args.zero_shot else None,
        "pretraining_files": args.pretraining,
        "pretraining": pretraining,
        "inits": inits_trained(args.zero_shot) if args.zero_shot else None,
        "inits_wall_s": inits_wall(args.zero_shot) if args.zero_shot else None,
        "inits_note": args.inits_note,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2, default=float) + "\n")
    for arm in results:
        b, e = arm["best_single"], arm["ensemble"]
        diff = b["scores"].get("minus_first_arm", {}).get("test")
        print(
            f"{arm['name']}: best single {b['arch']} val {b['scores']['val']['value']:.4f} "
            f"test {b['scores']['test']['value']:.4f}"
            + (f" ({diff['value']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}])" if diff else "")
            + f"; ensemble test {e['scores']['test']['value']:.4f}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
