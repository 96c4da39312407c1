"""Does the search earn its keep? Samplers and schedulers at an equal budget of training epochs.

Every arm is the product's own search, ``lvm-search run`` on the shipped space file of ``--arch``,
with its sampler and scheduler set by the arm, its trials' epochs capped at ``--max-epochs`` and the
search ended by ``--budget-epochs`` (the epochs trained by all trials together), once per seed (the
seed drives the sampler and the trials' training). Trial 0 of every arm is the reference
configuration. Arms:

* ``random``: random search, every trial trained to the end (no early stopping);
* ``random_asha``: random search with ASHA;
* ``tpe_asha``: multivariate TPE with ASHA (stopped trials reach Optuna as PRUNED);
* ``gp_asha``: Optuna's GPSampler with ASHA (GP models only the trials that finished);
* ``auto_asha``: ``sampler: auto`` with ASHA (multivariate TPE: GP only without early stopping).

From each run's trial log (every epoch's val cosine with the time it was reported) it builds the
anytime curve: best val cosine so far against epochs spent and against wall time. It reports the
final best val cosine (mean and sd over seeds), how many epochs each arm needed to reach random
search's final best on the same seed, and the number of seeds on which each arm ends at least as
good as random search. The runs write to a temporary folder; nothing else is kept.

    python benchmarks/search_efficiency.py --data ../shared/data/linux-docs-minilm.npz --seeds 0 1 2 3 4 \\
        --out benchmarks/results/cpu/search_efficiency.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C
import yaml

from lvm_search.store.runs import read_summary

ARMS = {
    "random": ("random", "none"),
    "random_asha": ("random", "asha"),
    "tpe_asha": ("tpe", "asha"),
    "gp_asha": ("gp", "asha"),
    "auto_asha": ("auto", "asha"),
}


def write_arm_space(base: str, arm: str, folder: Path) -> Path:
    raw = yaml.safe_load(base)
    raw["sampler"], scheduler = ARMS[arm]
    raw["scheduler"] = {**raw.get("scheduler", {}), "type": scheduler}
    path = folder / f"{arm}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_arm(space: Path, args, seed: int, storage: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "lvm_search.cli",
        "run",
        str(space),
        "--storage",
        str(storage),
        "--name",
        f"{space.stem}-s{seed}",
        "--seed",
        str(seed),
        "--samples",
        "1000",
        "--budget-epochs",
        str(args.budget_epochs),
        "--max-epochs",
        str(args.max_epochs),
    ]
    if args.data:
        cmd += ["--data", args.data]
    if args.max_concurrent:
        cmd += ["--max-concurrent", str(args.max_concurrent)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall_s = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    summary = read_summary(storage / f"{space.stem}-s{seed}")
    return {"wall_s": wall_s, **anytime(summary)}


def anytime(summary) -> dict:
    """Every reported epoch in the order it happened: epochs spent, seconds since the first report,
    and the best val cosine so far."""
    events = sorted((h.at, h.val_cosine) for t in summary.trials for h in t.history)
    start = events[0][0]
    best, curve = -math.inf, []
    for spent, (at, value) in enumerate(events, 1):
        best = max(best, value)
        curve.append((spent, round(at - start, 2), best))
    return {
        "curve": curve,
        "best": best,
        "epochs": len(events),
        "trials": len(summary.trials),
        "stopped_early": summary.counts.stopped_early,
        "concurrency": summary.resources.get("concurrency"),
    }


def previous_runs(args) -> dict:
    """The per-seed results of earlier runs of this script, each refused unless its settings match."""
    mine = {"data": Path(args.data).name if args.data else "the packaged sample", "arch": args.arch}
    mine |= {"budget_epochs": args.budget_epochs, "max_epochs": args.max_epochs}
    runs = {arm: {} for arm in args.arms}
    for path in args.previous:
        old = json.loads(Path(path).read_text())
        settings = old["settings"]
        if any(settings[key] != value for key, value in mine.items()):
            sys.exit(f"{path}: other settings ({settings}); cannot combine with {mine}")
        for row in old["results"]:
            if row["arm"] in runs:
                runs[row["arm"]] |= {int(s): r for s, r in row["per_seed"].items()}
    return runs


def epochs_to_reach(curve, target: float) -> float:
    return next((spent for spent, _, best in curve if best >= target - 1e-12), math.inf)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, data_help="an .npz (the issue asks for linux-docs; default: the packaged sample)")
    p.add_argument("--arch", default="amn", choices=("lstm", "gru", "transformer", "amn"))
    p.add_argument(
        "--arms", nargs="+", default=["random", "random_asha", "tpe_asha", "gp_asha"], choices=list(ARMS)
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--budget-epochs", type=int, default=96, help="epochs trained by all trials of an arm")
    p.add_argument("--max-epochs", type=int, default=12, help="cap on each trial's epochs")
    p.add_argument("--max-concurrent", default=None, help="default: the space's (auto)")
    p.add_argument(
        "--previous",
        nargs="+",
        default=[],
        help="earlier results of this script with the same settings: their seeds are kept, not rerun",
    )
    p.add_argument("--note", action="append", default=[], help="a line for the notes (e.g. how seeds ran)")
    args = p.parse_args(argv)
    base = (
        C.REPO / "spaces" / f"{args.arch}.yaml"
    ).read_text()  # read once: every run searches the same space

    runs = previous_runs(args)
    with tempfile.TemporaryDirectory(prefix="lvm-efficiency-") as tmp:
        for seed in args.seeds:  # seeds outermost: a run cut short still compares every arm
            for arm in (arm for arm in args.arms if seed not in runs[arm]):
                runs[arm][seed] = run_arm(
                    write_arm_space(base, arm, Path(tmp)), args, seed, Path(tmp) / "runs"
                )
                r = runs[arm][seed]
                print(
                    f"seed {seed} {arm:12s} best {r['best']:.4f} in {r['epochs']} epochs, {r['trials']} "
                    "trials "
                    f"({r['stopped_early']} stopped early), {r['wall_s']:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
            report(runs, args, quiet=seed != args.seeds[-1])  # the seeds so far, kept as they come


def report(runs: dict, args, quiet: bool) -> None:
    # Each arm over the seeds it has; comparisons with random search only on seeds both have.
    reference = {s: r["best"] for s, r in runs["random"].items()} if "random" in runs else None
    results, rows = [], []
    for arm in args.arms:
        seeds = sorted(s for s in runs[arm] if reference is None or s in reference)
        if not seeds:
            continue
        bests = [runs[arm][s]["best"] for s in seeds]
        row = {
            "arm": arm,
            "sampler": ARMS[arm][0],
            "scheduler": ARMS[arm][1],
            "seeds": seeds,
            "best_mean": statistics.mean(bests),
            "best_sd": statistics.stdev(bests) if len(bests) > 1 else 0.0,
            "trials_mean": statistics.mean(runs[arm][s]["trials"] for s in seeds),
            "wall_s_mean": statistics.mean(runs[arm][s]["wall_s"] for s in seeds),
            "per_seed": {s: runs[arm][s] for s in seeds},
        }
        if reference:
            reach = [epochs_to_reach(runs[arm][s]["curve"], reference[s]) for s in seeds]
            row["epochs_to_random_best"] = reach
            row["epochs_to_random_best_mean"] = (
                statistics.mean(reach) if all(map(math.isfinite, reach)) else math.inf
            )
            row["reached_random_best"] = sum(map(math.isfinite, reach))
            row["at_least_random"] = sum(runs[arm][s]["best"] >= reference[s] - 1e-12 for s in seeds)
        results.append(row)
        rows.append(
            [
                arm,
                str(len(seeds)),
                f"{row['best_mean']:.4f} ± {row['best_sd']:.4f}",
                f"{row['trials_mean']:.1f}",
                f"{row['wall_s_mean']:.0f}",
                *([_epochs(row), f"{row['at_least_random']}/{len(seeds)}"] if reference else []),
            ]
        )
    columns = [
        "arm",
        "seeds",
        f"best val cosine at {args.budget_epochs} epochs (mean ± sd)",
        "trials (mean)",
        "wall s (mean)",
    ]
    if reference:
        columns += ["epochs to random's best (mean; reached on)", "seeds at least as good as random"]
    seeds = sorted({s for row in results for s in row["seeds"]})
    data_name = Path(args.data).name if args.data else "the packaged sample"
    notes = [
        f"{data_name}; space `spaces/{args.arch}.yaml` with each trial's epochs capped at {args.max_epochs}; "
        f"every arm stops at {args.budget_epochs} training epochs in all (trials in flight stop at their "
        "next "
        f"epoch, so an arm may overshoot by up to one epoch per concurrent trial); seeds {seeds}.",
        "Epochs to random's best: the epochs an arm had spent when its best val cosine so far first "
        "reached the "
        "final best of random search (no early stopping) on the same seed; 'inf' where it never did.",
        *args.note,
    ]
    settings = {
        "data": data_name,
        "arch": args.arch,
        "budget_epochs": args.budget_epochs,
        "max_epochs": args.max_epochs,
        "seeds": seeds,
        "arms": {a: ARMS[a] for a in args.arms},
    }
    C.finish(
        "search_efficiency",
        args,
        C.pick_device("cpu"),
        settings,
        results,
        columns,
        rows,
        notes,
        args.out,
        quiet=quiet,
    )


def _epochs(row) -> str:
    reach = [r for r in row["epochs_to_random_best"] if math.isfinite(r)]
    mean = statistics.mean(reach) if reach else math.inf
    return f"{mean:.1f} ({row['reached_random_best']}/{len(row['epochs_to_random_best'])})"


if __name__ == "__main__":
    main()
