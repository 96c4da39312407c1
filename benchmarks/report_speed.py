"""How long `lvm-search report` or `ensemble` takes, before and after (packaged sample, runs at k=5, 8, 16).

For each version (``--versions``: ``after`` is this checkout, a git ref is checked out into a
temporary worktree and run from there with PYTHONPATH), three one-trial searches with that version's
own CLI (AMN at k=5, GRU at k=8, LSTM at k=16, all with min_context 5, the same small sizes in both
versions, one epoch: the report needs runs, not good ones), then ``lvm-search report`` timed
``--repeats`` times, alternating versions so that both see the same machine. The searches are not timed.

    python benchmarks/report_speed.py --versions ef08a8d after --out benchmarks/results/cpu/report_speed.json

``--storage DIR`` times both versions' reports of one existing storage instead (no searches), e.g. a
small real search on python-docs:

    python benchmarks/report_speed.py --versions dd3f07b after --storage /tmp/r29 \
        --out benchmarks/results/cpu/report_speed_python.json

``--command ensemble`` times `lvm-search ensemble` instead, with this checkout's default recipe for
every version (the same work for each), renamed ``speed-VERSION``: the storage's own ensembles are
left as they are, and the ones the benchmark wrote are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _versions import checkout, environment, remove_checkouts

REPO = Path(__file__).resolve().parent.parent
# arch: (k, fixed sizes). The same small models in either version (the sizes the shipped spaces start
# from), so the two reports do the same model work and differ in what the report itself does.
RUNS = {
    "amn": (5, "width: 128, depth: 1"),
    "gru": (8, "width: 128, depth: 2"),
    "lstm": (16, "width: 256, depth: 1"),
}


def prepare(version: str, scratch: Path) -> tuple[dict, Path]:
    env, storage = environment(version, scratch), scratch / f"runs-{version}"
    for arch, (k, sizes) in RUNS.items():
        space = scratch / f"{arch}.yaml"
        space.write_text(
            f"arch: {arch}\nsamples: 1\nmax_concurrent: 1\nfixed: {{epochs: 1, {sizes}}}\n"
            f"data: {{k: {k}, min_context: 5}}\nspace:\n  lr: {{type: float, low: 1.0e-3, high: 2.0e-3}}\n"
        )
        subprocess.run(
            [sys.executable, "-m", "lvm_search.cli", "run", str(space), "--storage", str(storage)],
            env=env,
            cwd=checkout(version, scratch),
            check=True,
            capture_output=True,
        )
    return env, storage


def speed_name(version: str) -> str:
    """The ensemble name for a version: git refs such as HEAD~1 or origin/main are no run names."""
    return "speed-" + re.sub(r"[^A-Za-z0-9._-]", "-", version)


def timed(command: str, version: str, env: dict, storage: Path, scratch: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of the command's process) of one report or
    ensemble. On a shared machine the CPU seconds move less with other people's load than the wall
    seconds do."""
    if command == "report":
        out = scratch / f"report-{version}.md"
        if out.exists():
            out.unlink()  # the old version would overwrite it; the new one replaces only its own
        argv = ["report", "--storage", str(storage), "--out", str(out)]
    else:
        recipe = scratch / f"{speed_name(version)}.yaml"
        default = (REPO / "ensembles" / "default.yaml").read_text()
        recipe.write_text(default.replace("name: default", f"name: {speed_name(version)}"))
        argv = ["ensemble", str(recipe), "--storage", str(storage)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "lvm_search.cli", *argv],
        env=env,
        cwd=checkout(version, scratch),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{version}: lvm-search {command} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--versions", nargs="+", default=["after"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None)
    p.add_argument("--storage", default=None, help="report this storage with every version (no searches)")
    p.add_argument("--command", choices=("report", "ensemble"), default="report")
    args = p.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="lvm-report-speed-"))
    prepared = {}
    try:
        if args.storage:
            storage = Path(args.storage).resolve()
            prepared = {v: (environment(v, scratch), storage) for v in args.versions}
        else:
            prepared = {v: prepare(v, scratch) for v in args.versions}
        times, cpu = {v: [] for v in args.versions}, {v: [] for v in args.versions}
        for _ in range(args.repeats):
            for version, (env, storage) in prepared.items():
                wall, cpu_s = timed(args.command, version, env, storage, scratch)
                times[version].append(wall)
                cpu[version].append(cpu_s)
                print(f"{version}: {wall:.1f} s ({cpu_s:.1f} s CPU)", file=sys.stderr, flush=True)
    finally:
        if args.command == "ensemble":
            for version, (_, storage) in prepared.items():
                shutil.rmtree(storage / "ensembles" / speed_name(version), ignore_errors=True)
        remove_checkouts(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
    sys.path.insert(0, str(REPO))
    from lvm_search.store.provenance import collect

    rows = [
        [
            v,
            f"{statistics.median(t):.1f}",
            ", ".join(f"{x:.1f}" for x in t),
            f"{statistics.median(cpu[v]):.1f}",
            ", ".join(f"{x:.1f}" for x in cpu[v]),
        ]
        for v, t in times.items()
    ]
    record = {
        "benchmark": "report_speed",
        "command": args.command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": collect().one_line(),
        "load_avg": os.getloadavg(),
        "settings": {
            "runs": args.storage or {a: k for a, (k, _) in RUNS.items()},
            "repeats": args.repeats,
        },
        "results": {
            v: {
                "seconds": t,
                "median_s": statistics.median(t),
                "cpu_seconds": cpu[v],
                "median_cpu_s": statistics.median(cpu[v]),
            }
            for v, t in times.items()
        },
        "table": {
            "columns": ["version", "median s", "each run s", "median CPU s", "each run CPU s"],
            "rows": rows,
        },
    }
    if len(times) == 2:
        (a, ta), (b, tb) = times.items()
        record["ratio"] = statistics.median(ta) / statistics.median(tb)
        record["cpu_ratio"] = statistics.median(cpu[a]) / statistics.median(cpu[b])
    print("\n".join(" | ".join(r) for r in rows))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
