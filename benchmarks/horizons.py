"""Horizons, through the product: how far ahead each architecture sees.

For each architecture and h = 1..H, ``lvm-search train --horizon h`` trains the shipped space's
trial 0 (``ablation.default_recipe``: its k, epochs and settings; min_context 5) to predict the
passage h steps after its context, and ``lvm-search eval --json`` scores it on the test documents
against the best classical baseline at that h (chosen on val, fitted on train at h: the same
windows). Beside it, the h = 1 checkpoint rolled forward on its own predictions
(``lvm-search eval --horizon h``) on exactly those windows. Every number comes from the product's
own JSON: test cosine with its 95% interval, and the gain over the best baseline with its paired
interval (bootstrap over test documents). Two runs at a time, one torch thread each; resumable.

    python benchmarks/horizons.py --data ../shared/data/python-docs-minilm.npz --corpus python-docs \\
        --arch lstm gru transformer amn --runs /tmp/horizons/python-docs \\
        --out benchmarks/results/cpu/horizons_python.json

``render/_horizons.py`` renders the result files for ``render/quality_report.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ablation import MIN_CONTEXT, default_recipe, git_commit, set_value


def train_and_eval(arch: str, data: str, recipe: dict, horizon: int, runs: Path, seed: int) -> dict:
    out = runs / f"{arch}-h{horizon}"
    score = out.parent / f"{out.name}.eval.json"
    if score.is_file():
        return json.loads(score.read_text())
    t0 = time.time()
    sets = {**recipe["sets"], "threads": 1, "seed": seed}
    command = [
        sys.executable, "-m", "lvm_search.cli", "-q", "train", "--arch", arch, "--data", data,
        "--k", str(recipe["k"]), "--min-context", str(MIN_CONTEXT), "--horizon", str(horizon),
        "--epochs", str(recipe["epochs"]), "--out", str(out),
    ]  # fmt: skip
    for key, value in sets.items():
        command += ["--set", f"{key}={set_value(value)}"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    train_s = time.time() - t0
    result = {"train_s": train_s, "direct": evaluate(out, data, None)}
    score.write_text(json.dumps(result))
    return result


def evaluate(checkpoint: Path, data: str, horizon: int | None) -> dict:
    command = [sys.executable, "-m", "lvm_search.cli", "-q", "eval", str(checkpoint), "--data", data]
    command.append("--json")
    if horizon is not None:
        command += ["--horizon", str(horizon)]
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    best = result["baselines_fitted"]["best_on_val"]
    return {
        "horizon": result["horizon"],
        "rolled_forward": result["rolled_forward"],
        "windows": result["evaluated_on"]["windows"],
        "documents": result["evaluated_on"]["documents"],
        "test": result["scores"]["model"]["cosine_interval"],
        "best_baseline": best,
        "baseline_test": result["scores"][best]["cosine_interval"],
        "gain_pct": result["gain_over_best_baseline_pct"],
        "fingerprint": result["evaluated_on"]["fingerprint"],
    }


def rolled(arch: str, data: str, horizon: int, runs: Path) -> dict:
    score = runs / f"{arch}-h1-rolled-h{horizon}.eval.json"
    if not score.is_file():
        score.write_text(json.dumps(evaluate(runs / f"{arch}-h1", data, horizon)))
    return json.loads(score.read_text())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--arch", nargs="+", default=["lstm", "gru", "transformer", "amn"])
    p.add_argument("--horizons", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    data = str(Path(args.data).resolve())
    started = time.time()
    recipes = {arch: default_recipe(arch) for arch in args.arch}
    # h = 1 first: every rolled-forward row needs it
    jobs = [(arch, h) for h in range(1, args.horizons + 1) for arch in args.arch]

    def run(job):
        arch, h = job
        return train_and_eval(arch, data, recipes[arch], h, args.runs, args.seed)

    with ThreadPoolExecutor(args.jobs) as pool:
        direct = dict(zip(jobs, pool.map(run, jobs)))
    rows = []
    for arch, h in jobs:
        row = {"arch": arch, "horizon": h, "train_s": direct[(arch, h)]["train_s"], **direct[(arch, h)]}
        if h > 1:
            row["rolled"] = rolled(arch, data, h, args.runs)
            assert row["rolled"]["fingerprint"] == row["direct"]["fingerprint"]  # the same windows
        rows.append(row)
    result = {
        "benchmark": "horizons",
        "corpus": args.corpus,
        "data": data,
        "min_context": MIN_CONTEXT,
        "seed": args.seed,
        "recipes": recipes,
        "rows": rows,
        "commit": git_commit(),
        "wall_s": time.time() - started,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
