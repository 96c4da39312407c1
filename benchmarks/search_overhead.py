"""What a search costs beyond the trials it runs: the README's main job, before and after.

Runs the README's main job, ``lvm-search run spaces/lstm.yaml`` on the packaged sample, as a user
does (its own process, a fresh storage folder), with each version of the package (``--versions``:
``after`` is this checkout with its spaces; a git ref is checked out into a temporary worktree and
run with that version's code and spaces). From the run's summary it takes each trial's interval
(it ended at its last report and ran for Tune's ``time_total_s``) and computes:

* wall: the command, from start to exit (Ray's start and stop, data loading, trials, summary);
* trial time: the union of the trials' intervals, the time at least one trial was running;
* overhead = wall - trial time: the time no trial was running (start-up, the gaps between one
  trial ending and the next starting, the summary, shut-down), in seconds and as % of wall;
* packing: the trials' summed time / (trials at once x trial time): how full the trial slots were.

It also measures the floor under any search driven by Ray Tune here: a process that starts the
product's private cluster, runs two no-op trials at once through ``Tuner.fit`` (actors reused) and
stops it (median of three), and a process that only imports torch, Optuna and Ray Tune. Against the
main job's trial time this gives the least overhead a Ray Tune search of that size can have here.

    python benchmarks/search_overhead.py --versions ef08a8d after \\
        --out benchmarks/results/cpu/search_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _versions import checkout, remove_checkouts

REPO = Path(__file__).resolve().parent.parent


def union_s(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, -float("inf")
    for lo, hi in sorted(intervals):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def timed(trials: list[dict]) -> list[dict]:
    """The trials of a summary that recorded when they ended and how long they ran (a trial that
    errored before its first report did not), whichever version wrote it."""
    return [t for t in trials if t.get("finished_at") and t.get("time_total_s")]


def busy_s(trials: list[dict]) -> float:
    """The time at least one trial was running: each ended at its last report and ran for Tune's
    time_total_s."""
    return union_s([(t["finished_at"] - t["time_total_s"], t["finished_at"]) for t in timed(trials)])


FLOOR = """
from ray import tune
from lvm_search.search.cluster import private_cluster

def noop(config):
    tune.report({"x": 1.0})

with private_cluster():
    tune.Tuner(
        noop,
        tune_config=tune.TuneConfig(num_samples=2, max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=STORAGE, verbose=0),
    ).fit()
"""


def process_s(code: str, repeats: int = 3) -> list[float]:
    """Wall seconds of ``python -c code``, ``repeats`` times."""
    times, env = [], {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def measure(version: str, scratch: Path, args) -> dict:
    tree = checkout(version, scratch)
    storage = scratch / f"runs-{version}"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [
        sys.executable,
        "-m",
        "lvm_search.cli",
        "run",
        str(tree / "spaces" / "lstm.yaml"),
        "--storage",
        str(storage),
        *(["--data", str(Path(args.data).resolve())] if args.data else []),
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
    wall_s = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{version}: {done.stderr[-2000:]}")
    summary = json.loads((storage / "lstm" / "summary.json").read_text())
    trials = timed(summary["trials"])
    busy = busy_s(summary["trials"])
    concurrency = (summary.get("resources") or {}).get("concurrency") or 2  # ef08a8d's spaces: 2 at a time
    shutil.rmtree(storage, ignore_errors=True)
    return {
        "version": version,
        "wall_s": wall_s,
        "trial_time_s": busy,
        "overhead_s": wall_s - busy,
        "overhead_pct": 100 * (wall_s - busy) / wall_s,
        "trials": len(summary["trials"]),
        "stopped_early": summary["counts"]["stopped_early"],
        "sum_time_total_s": sum(t["time_total_s"] for t in trials),
        "concurrency": concurrency,
        "packing": sum(t["time_total_s"] for t in trials) / (concurrency * busy),
        "best_val": (summary.get("best") or {}).get("val_cosine"),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--versions", nargs="+", default=["after"])
    p.add_argument(
        "--data", default=None, help="another corpus (default: the packaged sample, as the README)"
    )
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="lvm-overhead-"))
    try:
        results = [measure(v, scratch, args) for v in args.versions]
        # the least a search here can spend without a trial running: Ray Tune's start and stop,
        # and before it, importing what the trials train with
        floors = process_s(FLOOR.replace("STORAGE", repr(str(scratch / "floor"))))
        imports = process_s("import torch, optuna, ray.tune")
    finally:
        remove_checkouts(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
    columns = [
        "version",
        "trials (stopped early)",
        "wall s",
        "trial time s",
        "overhead s",
        "overhead % of wall",
        "packing",
        "best val",
    ]
    rows = [
        [
            r["version"],
            f"{r['trials']} ({r['stopped_early']})",
            f"{r['wall_s']:.0f}",
            f"{r['trial_time_s']:.0f}",
            f"{r['overhead_s']:.0f}",
            f"{r['overhead_pct']:.1f}%",
            f"{r['packing']:.2f}",
            f"{r['best_val']:.4f}" if r["best_val"] else "-",
        ]
        for r in results
    ]
    sys.path.insert(0, str(REPO))
    from lvm_search.store.provenance import collect

    record = {
        "benchmark": "search_overhead",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": collect().one_line(),
        "load_avg": os.getloadavg(),
        "data": Path(args.data).name if args.data else None,
        "results": results,
        "ray_tune_floor_s": statistics.median(floors),
        "ray_tune_floor_runs_s": floors,
        "imports_s": statistics.median(imports),
        "imports_runs_s": imports,
        "table": {"columns": columns, "rows": rows},
        "notes": [
            f"The README's main job: `lvm-search run spaces/lstm.yaml` on "
            f"{Path(args.data).name if args.data else 'the packaged sample'}, each version with its own "
            "spaces. Overhead = wall - the time at least one trial was running."
        ],
    }
    print("\n".join(" | ".join(r) for r in rows))
    print(f"Ray Tune alone (start, two no-op trials, stop): {floors} s; imports alone: {imports} s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
