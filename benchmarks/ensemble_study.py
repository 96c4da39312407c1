"""Ensemble recipes compared on one storage folder: what makes an ensemble earn its place.

Runs ``lvm-search ensemble RECIPE --storage S --json`` (the product's command) for each recipe below
on the same runs, and keeps each record: the method chosen (by 2-fold cross-fitting over validation
documents), the members, the test cosine and the gain over the best single candidate with their
paired bootstrap intervals, and how alike the candidates' errors are.

* ``best of each``: the shipped default, the best trial of each search;
* ``all trials``: every finished trial of every search (diverse in k, base decay and size);
* ``all trials + baselines``: and the four classical baselines as candidates;
* ``bagged``: the same candidates, bagged ensemble selection only (Caruana et al. 2006).

    python benchmarks/ensemble_study.py --storage STORAGE --corpus linux-docs \
        --out benchmarks/results/cpu/ensembles_linux.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPES = {
    "best of each": ("top_k: 1\nbaselines: false\nmethod: auto\n", "the best trial of each search"),
    "all trials": ("top_k: all\nbaselines: false\nmethod: auto\n", "every finished trial of every search"),
    "all trials + baselines": (
        "top_k: all\nbaselines: true\nmethod: auto\n",
        "every finished trial and the four classical baselines",
    ),
    "bagged": ("top_k: all\nbaselines: true\nmethod: bagged\n", "the same candidates, bagged selection only"),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", required=True)
    p.add_argument("--corpus", required=True, help="its name in the report")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    recipes = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (text, description)) in enumerate(RECIPES.items()):
            path = Path(tmp) / f"study-{i}.yaml"
            path.write_text(text + f"name: study-{i}\n")
            t0 = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "lvm_search.cli",
                    "ensemble",
                    str(path),
                    "--storage",
                    args.storage,
                    "--json",
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                sys.exit(f"{name}: {done.stderr[-2000:]}")
            record = json.loads(done.stdout)
            print(
                f"{name}: {record['method']}, {len(record['members'])} members, test "
                f"{record['metrics']['test']['cosine']:.4f}, {time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
            )
            recipes.append(
                {
                    "name": name,
                    "description": description,
                    "recipe": text,
                    "wall_s": time.perf_counter() - t0,
                    "record": {
                        k: record[k]
                        for k in (
                            "method",
                            "members",
                            "candidates",
                            "metrics",
                            "intervals",
                            "val_crossfit",
                            "best_single",
                        )
                    },
                }
            )
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "ensemble_study",
                "corpus": args.corpus,
                "command": f"python benchmarks/ensemble_study.py --storage ... --corpus {args.corpus}",
                "recipes": recipes,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
