"""Distillation as a user runs it: the shipped spaces searched again with an ensemble as teacher.

    lvm-search ensemble ensembles/wide.yaml --storage S            (the teacher; skipped with --teacher)
    lvm-search run spaces/ARCH.yaml --teacher T --data C --storage S2   (for each --archs)
    lvm-search eval S/ARCH --data C --json      (the search without a teacher, from the same storage)
    lvm-search eval S2/ARCH --data C --json     (the student)
    lvm-search eval T --data C --json           (the teacher)

S is the storage of a finished ``quality_pipeline.py`` run on corpus C. Every step is the product's
own command in its own process; validation chooses everything (each run's best trial, the teacher's
weights), the test split only scores. ``render/quality_report.py`` renders the result into
``reports/quality.md``.

    python benchmarks/distill_study.py --data ../shared/data/linux-docs-minilm.npz \\
        --storage /tmp/q-linux --students /tmp/q-linux-students \\
        --out benchmarks/results/cpu/distill_linux.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from quality_pipeline import REPO, step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--storage", required=True, help="the storage of a finished quality_pipeline.py run")
    p.add_argument("--students", required=True, help="a new folder for the students' runs")
    p.add_argument("--teacher", help="an ensemble folder (default: build ensembles/wide.yaml in --storage)")
    p.add_argument("--archs", nargs="+", default=["gru"])
    p.add_argument("--note", default=None, help="what else ran on the machine")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    cli = [sys.executable, "-m", "lvm_search.cli"]
    storage, students = Path(args.storage), Path(args.students)

    steps = {}
    teacher = args.teacher
    if teacher is None:
        recipe = str(REPO / "ensembles" / "wide.yaml")
        steps["teacher"] = step("teacher", [*cli, "ensemble", recipe, "--storage", str(storage), "--json"])
        teacher = json.loads(steps["teacher"].pop("stdout"))["path"]

    def evaluate(name: str, path) -> dict:
        steps[name] = step(name, [*cli, "eval", str(path), "--data", args.data, "--json"])
        result = json.loads(steps[name].pop("stdout"))
        return {
            key: result[key]
            for key in (
                "predictor",
                "scores",
                "gain_over_mean_pct",
                "gain_over_best_baseline_pct",
                "baselines_fitted",
            )
        }

    models = {"teacher": {"eval": evaluate("eval teacher", teacher)}}
    for arch in args.archs:
        space = str(REPO / "spaces" / f"{arch}.yaml")
        name = f"run {arch} with teacher"
        steps[name] = step(
            name,
            [
                *cli,
                "run",
                space,
                "--teacher",
                teacher,
                "--data",
                args.data,
                "--storage",
                str(students),
                "--json",
            ],
        )
        summary = json.loads(steps[name].pop("stdout"))
        plain = json.loads((storage / arch / "summary.json").read_text())
        models[f"{arch} without teacher"] = {
            "best": plain["best"],
            "eval": evaluate(f"eval {arch} without teacher", storage / arch),
        }
        models[f"{arch} with teacher"] = {
            "best": summary["best"],
            "counts": summary["counts"],
            "eval": evaluate(f"eval {arch} with teacher", students / arch),
        }

    sys.path.insert(0, str(REPO))
    from lvm_search.store.provenance import collect

    record = {
        "benchmark": "distill_study",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": collect().one_line(),
        "note": args.note,
        "data": args.data,
        "teacher": str(teacher),
        "steps": steps,
        "models": models,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
