"""The default pipeline as a user runs it, on one corpus, timed step by step.

    lvm-search run spaces/amn.yaml --data C --storage S      (and gru, lstm, transformer)
    lvm-search run spaces/ --data C --storage S              (--together: the four in one Ray session)
    lvm-search ensemble [RECIPE] --storage S
    lvm-search report --storage S --out S/leaderboard.md --json

Every step is the product's own command in its own process; the script only times them and keeps
what they wrote: each search's summary (trials, best trial, val cosine), the ensemble record and the
report's rows with their bootstrap intervals. ``--spaces`` points at another folder of space files
(for example the spaces of an earlier commit, to compare defaults), ``--recipe`` at another ensemble
recipe; ``--init`` and ``--extra-train`` are passed to every search (the arms of
``warm_start.py``); the rest of the pipeline stays as shipped. ``render/quality_report.py`` turns the
JSON results into ``reports/quality.md``.

    python benchmarks/quality_pipeline.py --data ../shared/data/python-docs-minilm.npz \\
        --storage /tmp/q-python --out benchmarks/results/cpu/quality_python.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARCHS = ("amn", "gru", "lstm", "transformer")


def step(name: str, cmd: list[str]) -> dict:
    print(f"{name}: {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall_s = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    print(f"{name}: {wall_s:.0f} s", file=sys.stderr, flush=True)
    return {"wall_s": wall_s, "stdout": done.stdout}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--storage", required=True, help="a new folder for the runs (kept for inspection)")
    p.add_argument("--spaces", default=str(REPO / "spaces"))
    p.add_argument("--recipe", default=None, help="an ensemble recipe (default: the shipped default)")
    p.add_argument("--archs", nargs="+", default=list(ARCHS))
    p.add_argument(
        "--together", action="store_true", help="one `lvm-search run` of every space (one Ray session)"
    )
    p.add_argument("--init", default=None, help="passed to every `lvm-search run` (warm starts)")
    p.add_argument(
        "--extra-train", action="append", default=[], help="passed to every `lvm-search run` (repeatable)"
    )
    p.add_argument("--label", default="shipped defaults")
    p.add_argument("--note", default=None, help="what else ran on the machine, for the time table")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    cli = [sys.executable, "-m", "lvm_search.cli"]
    storage = Path(args.storage)

    steps, searches = {}, {}
    t0 = time.perf_counter()
    spaces = [str(Path(args.spaces) / f"{arch}.yaml") for arch in args.archs]
    search = [*cli, "run", "--data", args.data, "--storage", str(storage), "--json"]
    search += ["--init", args.init] if args.init else []
    search += [arg for extra in args.extra_train for arg in ("--extra-train", extra)]
    if args.together:
        steps["run"] = step("run", [*search, *spaces])
        printed = json.loads(steps["run"].pop("stdout"))  # one summary for one space, else a list
        searches = {s["arch"]: s for s in (printed if isinstance(printed, list) else [printed])}
    for arch, space in zip(args.archs, spaces) if not args.together else ():
        steps[f"run {arch}"] = step(f"run {arch}", [*search, space])
        searches[arch] = json.loads(steps[f"run {arch}"].pop("stdout"))
    recipe = [args.recipe] if args.recipe else [str(REPO / "ensembles" / "default.yaml")]
    steps["ensemble"] = step("ensemble", [*cli, "ensemble", *recipe, "--storage", str(storage), "--json"])
    ensemble = json.loads(steps["ensemble"].pop("stdout"))
    steps["report"] = step(
        "report",
        [*cli, "report", "--storage", str(storage), "--out", str(storage / "leaderboard.md"), "--json"],
    )
    report = json.loads(steps["report"].pop("stdout"))
    total_s = time.perf_counter() - t0

    sys.path.insert(0, str(REPO))
    from lvm_search.store.provenance import collect

    record = {
        "benchmark": "quality_pipeline",
        "label": args.label,
        "together": args.together,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": collect().one_line(),
        "note": args.note,
        "data": args.data,
        "init": args.init,
        "extra_train": args.extra_train,
        "storage": str(storage.resolve()),
        "spaces": {arch: (Path(args.spaces) / f"{arch}.yaml").read_text() for arch in args.archs},
        "steps": steps,
        "total_s": total_s,
        "searches": {
            arch: {k: s[k] for k in ("counts", "best", "wall_s", "resources", "data")}
            for arch, s in searches.items()
        },
        "ensemble": {
            k: ensemble[k] for k in ("method", "members", "metrics", "gain_pct", "intervals", "best_single")
        },
        "report": report,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{args.label} on {Path(args.data).name}: {total_s / 60:.1f} min; wrote {args.out}", file=sys.stderr
    )


if __name__ == "__main__":
    main()
