"""Wall time and peak memory of every command against corpus size, before and after, in one run.

The corpora are synthetic but have real signal: each document is a random walk on the unit sphere,
passage t+1 = normalise(passage t + ``STEP`` * Gaussian noise), 30 passages per document, D=384,
stored in float16 like the shipped data sets. The next passage is then close to the last ones, so
the models have something to learn and the baselines are meaningful (mean of context ~0.7).

For each size (``--sizes``, in passages) and each version of the package (``--versions``: ``after``
is this checkout; a git ref such as ``ef08a8d`` is checked out into a temporary worktree and run
from there with PYTHONPATH), the script runs the product's commands as separate processes, one
after another, on the same corpus:

    lvm-search baselines --data C --json
    lvm-search run SPACE --data C --storage S        (4 trials, 2 epochs each: the space below)
    lvm-search ensemble RECIPE --storage S            (the 4 trials, weights fitted on val)
    lvm-search report --storage S --out S/report.md

and samples, every 0.2 s, the proportional set size (PSS: shared pages split between the processes
that map them, so Ray's shared object store is counted once) summed over the command's whole
process tree: the driver, Ray's servers, its workers and the object store. A command that passes
``--memory-cap-gb`` is killed and recorded as such. For the search it also records the trials'
own time (Tune's ``time_total_s``, summed) and the time at least one trial was running (the union
of their intervals), from which ``render/write_report.py`` computes the search's overhead both ways.
Results: JSON (``--out``) with every measurement, and a table; ``render/write_report.py`` adds a plot of
time and memory against passages. ``--commands`` runs some of the commands (ensemble and report
need the run); ``--merge`` keeps what ``--out`` already holds for other sizes and versions.

    python benchmarks/scale.py --sizes 100000 300000 1000000 --versions ef08a8d after \\
        --out benchmarks/results/cpu/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from _versions import checkout, environment, remove_checkouts
from search_overhead import busy_s

REPO = Path(__file__).resolve().parent.parent
DIM = 384
DOC_LENGTH = 30
STEP = 0.8  # noise per dimension is STEP / sqrt(D): consecutive passages have cosine ~0.78
SPACE = """\
arch: amn
samples: 4
seed: 0
max_concurrent: 2
scheduler: {type: none}
resources: {cpus_per_trial: 1}
fixed: {epochs: 2, depth: 1, key_dim: 64, batch_size: 1024}
space:
  width: {type: choice, values: [512, 128]}
  lr: {type: float, low: 1.0e-3, high: 3.0e-3, log: true}
"""
RECIPE = "runs: [space]\ntop_k: 4\nmethod: greedy\nname: all\n"
COMMANDS = ("baselines", "run", "ensemble", "report")


# --- corpora ------------------------------------------------------------------------------------------


def corpus(passages: int, folder: Path, seed: int = 0) -> Path:
    """A native-format .npz of ``passages`` passages in documents of DOC_LENGTH random-walk steps."""
    path = folder / f"walk-{passages}.npz"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    docs = passages // DOC_LENGTH
    vectors = np.empty((docs * DOC_LENGTH, DIM), np.float16)
    chunk = 2000  # documents at a time: float32 working memory of ~90 MB
    for lo in range(0, docs, chunk):
        n = min(chunk, docs - lo)
        walk = rng.standard_normal((n, DIM)).astype(np.float32)
        walk /= np.linalg.norm(walk, axis=1, keepdims=True)
        block = np.empty((n, DOC_LENGTH, DIM), np.float32)
        for t in range(DOC_LENGTH):
            block[:, t] = walk
            walk = walk + STEP / np.sqrt(DIM) * rng.standard_normal((n, DIM)).astype(np.float32)
            walk /= np.linalg.norm(walk, axis=1, keepdims=True)
        vectors[lo * DOC_LENGTH : (lo + n) * DOC_LENGTH] = block.reshape(-1, DIM)
    doc_ids = np.repeat(np.arange(docs, dtype=np.int32), DOC_LENGTH)
    np.savez(path, vectors=vectors, doc_ids=doc_ids)
    return path


# --- measuring a command --------------------------------------------------------------------------------


def tree_pss(root: psutil.Process) -> int:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def measure(cmd: list[str], env: dict, cwd: Path, cap_bytes: int, timeout_s: float) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    root = psutil.Process(proc.pid)
    peak, killed = 0, None
    stop = threading.Event()

    def sample():
        nonlocal peak, killed
        while not stop.is_set():
            try:
                now = tree_pss(root)
            except psutil.NoSuchProcess:
                return
            peak = max(peak, now)
            if now > cap_bytes and killed is None:
                killed = f"memory cap ({cap_bytes / 2**30:.0f} GB)"
                os.killpg(proc.pid, 9)
            if time.perf_counter() - t0 > timeout_s and killed is None:
                killed = f"time limit ({timeout_s:.0f} s)"
                os.killpg(proc.pid, 9)
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    stop.set()
    sampler.join()
    return {
        "cmd": " ".join(cmd[2:]),
        "exit": proc.returncode,
        "wall_s": time.perf_counter() - t0,
        "peak_pss_gb": peak / 2**30,
        "killed": killed,
        "stdout": out[-2000:],
        "stderr": err[-3000:],
    }


# --- versions -------------------------------------------------------------------------------------------


def run_size(passages: int, version: str, args, scratch: Path) -> dict:
    data = corpus(passages, scratch)
    env = environment(version, scratch, OMP_NUM_THREADS="1")
    work = scratch / f"{version}-{passages}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / "space.yaml").write_text(SPACE)
    (work / "recipe.yaml").write_text(RECIPE)
    cli = [sys.executable, "-m", "lvm_search.cli"]
    storage = str(work / "runs")
    commands = {
        "baselines": [*cli, "baselines", "--data", str(data), "--json"],
        "run": [*cli, "run", str(work / "space.yaml"), "--data", str(data), "--storage", storage],
        "ensemble": [*cli, "ensemble", str(work / "recipe.yaml"), "--storage", storage],
        "report": [*cli, "report", "--storage", storage, "--out", str(work / "report.md")],
    }
    results = {}
    for name, cmd in ((name, cmd) for name, cmd in commands.items() if name in args.commands):
        if name != "baselines" and results.get("run", {}).get("exit", 0) != 0:
            results[name] = {"skipped": "the search did not finish"}
            continue
        results[name] = measure(
            cmd, env, checkout(version, scratch), int(args.memory_cap_gb * 2**30), args.timeout_s
        )
        if name == "run" and results[name]["exit"] == 0:
            results[name]["trials"] = search_times(work / "runs" / "space")
        r = results[name]
        print(
            f"{version:>8s} {passages:>9,} {name:9s} exit {r['exit']} {r['wall_s']:7.1f} s "
            f"peak {r['peak_pss_gb']:5.2f} GB {r['killed'] or ''}",
            file=sys.stderr,
            flush=True,
        )
    shutil.rmtree(work, ignore_errors=True)
    return results


def search_times(run: Path) -> dict:
    """The trials' own time (Tune's time_total_s), whichever version wrote the summary, and the
    time at least one trial was running (the union of their intervals, as search_overhead.py)."""
    summary = json.loads((run / "summary.json").read_text())
    times = [t.get("time_total_s") or 0.0 for t in summary["trials"]]
    return {
        "sum_time_total_s": sum(times),
        "longest_s": max(times),
        "trials": len(times),
        "busy_s": busy_s(summary["trials"]),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[100_000, 300_000, 1_000_000])
    p.add_argument("--versions", nargs="+", default=["after"], help="'after' (this checkout) and/or git refs")
    p.add_argument(
        "--memory-cap-gb", type=float, default=20.0, help="kill a command above this (24 GB machine)"
    )
    p.add_argument("--timeout-s", type=float, default=3600)
    p.add_argument("--scratch", default=None, help="folder for corpora and runs (default: a temporary one)")
    p.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=COMMANDS)
    p.add_argument("--out", default=None)
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the results already in --out for the sizes and versions this invocation does not run",
    )
    p.add_argument("--note", action="append", default=[], help="a line for the notes (e.g. how it ran)")
    args = p.parse_args(argv)
    if {"ensemble", "report"} & set(args.commands) and "run" not in args.commands:
        p.error("ensemble and report read the runs: --commands needs run too")

    sys.path.insert(0, str(REPO))
    from lvm_search.store.provenance import collect

    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="lvm-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    ran = {(size, version) for size in args.sizes for version in args.versions}
    results = []
    if args.merge and args.out and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        results = [r for r in old["results"] if (r["passages"], r["version"]) not in ran]
        args.note = old.get("notes", []) + args.note
    try:
        for passages in args.sizes:
            for version in args.versions:
                float32_gb = passages // DOC_LENGTH * DOC_LENGTH * DIM * 4 / 2**30
                results.append(
                    {
                        "passages": passages,
                        "version": version,
                        "float32_data_gb": float32_gb,
                        "memory_target_gb": 3 * float32_gb + 2,
                        "commands": run_size(passages, version, args, scratch),
                    }
                )
                results.sort(key=lambda r: r["passages"])  # merged results in size order
                if args.out:
                    write(args, results, collect().one_line())
    finally:
        remove_checkouts(scratch)
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    print(table(results))


def write(args, results, machine: str) -> None:
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "scale",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "settings": {
            "dim": DIM,
            "doc_length": DOC_LENGTH,
            "step": STEP,
            "space": SPACE,
            "recipe": RECIPE,
            "memory_cap_gb": args.memory_cap_gb,
            "sizes": sorted({r["passages"] for r in results}),
            "versions": sorted({r["version"] for r in results}),
        },
        "results": results,
        "table": table_data(results),
        "notes": args.note,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")


def table_data(results) -> dict:
    columns = [
        "passages",
        "version",
        "command",
        "wall s",
        "peak memory GB (all processes)",
        "target GB",
        "outcome",
    ]
    rows = []
    for r in results:
        for name, c in r["commands"].items():
            if "skipped" in c:
                rows.append(
                    [
                        f"{r['passages']:,}",
                        r["version"],
                        name,
                        "–",
                        "–",
                        f"{r['memory_target_gb']:.1f}",
                        c["skipped"],
                    ]
                )
                continue
            outcome = c["killed"] or ("ok" if c["exit"] == 0 else f"exit {c['exit']}")
            rows.append(
                [
                    f"{r['passages']:,}",
                    r["version"],
                    name,
                    f"{c['wall_s']:.0f}",
                    f"{c['peak_pss_gb']:.2f}",
                    f"{r['memory_target_gb']:.1f}",
                    outcome,
                ]
            )
    return {"columns": columns, "rows": rows}


def table(results) -> str:
    t = table_data(results)
    lines = ["| " + " | ".join(t["columns"]) + " |", "|" + "---|" * len(t["columns"])]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in t["rows"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
