"""The headline, measured through the product: the four shipped spaces searched one after another.

    lvm-search run spaces/ARCH.yaml --data DATA --samples 32 --storage S --json  (amn, lstm, gru, transformer)
    lvm-search run spaces/lstm.yaml ... --max-concurrent 2  (the old setting, for the ratio)
    lvm-search ensemble --storage S --json
    lvm-search report --storage S --out S/leaderboard.md --json

Each search runs with the space's own settings (ASHA, ``max_concurrent: auto``, ``gpus_per_trial:
auto``) and ``--samples`` trials; the spaces' epoch budgets are lifted (``--budget-epochs``) so that
every search runs its trials. The script times each command and writes ``platform_search.json``:
the device, and per architecture the trials, how many ASHA stopped early, the wall time, the best
val cosine and the test cosine of that best trial (from the report, with its interval), the total,
and the wall-time ratio of the LSTM search at ``max_concurrent: 2`` to ``auto``. ``--together``
searches the four spaces in one `lvm-search run` (one Ray session, trials of every space sharing the
GPU) and writes ``platform_search_together.json``; each search's ``wall_s`` is then the time its
experiment ran beside the others, and the total is the one command's.

    python benchmarks/platform_search.py --data ../shared/data/linux-docs-minilm.npz --out-dir OUT
    python benchmarks/platform_search.py --data ../shared/data/linux-docs-minilm.npz --out-dir OUT --together
    python benchmarks/platform_search.py --smoke --out-dir /tmp/smoke     # the packaged sample, tiny
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARCHS = ("amn", "lstm", "gru", "transformer")


def command(cmd: list[str], log: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    with open(log, "w") as err:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    wall_s = time.perf_counter() - t0
    print(f"{' '.join(cmd[3:6])}: exit {done.returncode}, {wall_s:.0f} s", file=sys.stderr, flush=True)
    if done.returncode != 0:
        sys.exit(f"failed, see {log}")
    return wall_s, json.loads(done.stdout)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="default: the packaged sample")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--smoke", action="store_true", help="2 trials of 1 epoch each: tests this script only")
    p.add_argument(
        "--together", action="store_true", help="the four spaces in one `lvm-search run` (one Ray session)"
    )
    args = p.parse_args(argv)
    out = Path(args.out_dir)
    storage = out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "lvm_search.cli"]
    data = ["--data", args.data] if args.data else []
    samples = 2 if args.smoke else args.samples
    extra = ["--max-epochs", "1"] if args.smoke else []

    budget = ["--samples", str(samples), "--budget-epochs", "1000000", *extra, "--json"]
    searches, t0 = {}, time.perf_counter()
    if args.together:
        spaces = [str(REPO / "spaces" / f"{arch}.yaml") for arch in ARCHS]
        wall_s, summaries = command(
            [*cli, "run", *spaces, *data, "--storage", str(storage), *budget], out / "run-together.log"
        )
        # one session: each search's own wall time is the time its experiment ran beside the others
        searches = {s["arch"]: {"wall_s": s["wall_s"], "summary": s} for s in summaries}
    else:
        for arch in ARCHS:
            space = str(REPO / "spaces" / f"{arch}.yaml")
            wall_s, summary = command(
                [*cli, "run", space, *data, "--storage", str(storage), *budget],
                out / f"run-{arch}.log",
            )
            searches[arch] = {"wall_s": wall_s, "summary": summary}
    total_s = time.perf_counter() - t0
    lstm2 = None  # the ratio is of two separate searches: not with --together
    if not args.together:
        lstm2_s, lstm2 = command(
            [
                *cli,
                "run",
                str(REPO / "spaces" / "lstm.yaml"),
                *data,
                "--storage",
                str(storage),
                "--name",
                "lstm-2",
                "--max-concurrent",
                "2",
                *budget,
            ],
            out / "run-lstm-2.log",
        )
    ensemble_s, ensemble = command(
        [*cli, "ensemble", "--storage", str(storage), "--json"], out / "ensemble.log"
    )
    report_s, report = command(
        [*cli, "report", "--storage", str(storage), "--out", str(out / "leaderboard.md"), "--json"],
        out / "report.log",
    )

    rows = {r["run"]: r for r in report["rows"] if r["kind"] == "model"}  # by run name
    result = {
        "benchmark": "platform_search",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": searches["amn"]["summary"]["provenance"]["device"],
        "provenance": searches["amn"]["summary"]["provenance"],
        "data": report["data"],
        "samples": samples,
        "archs": {
            arch: {
                "trials": s["summary"]["counts"]["trials"],
                "stopped_early": s["summary"]["counts"]["stopped_early"],
                "wall_s": s["wall_s"],
                "concurrency": s["summary"]["resources"].get("concurrency"),
                "gpus_per_trial": s["summary"]["resources"].get("gpus_per_trial"),
                "best_val": s["summary"]["best"]["val_cosine"],
                "test": rows[arch]["test"]["cosine"],
                "test_interval": rows[arch]["test_interval"],
            }
            for arch, s in searches.items()
        },
        "wall_s": total_s,
        "together": args.together,
        "lstm_max_concurrent_2": None
        if lstm2 is None
        else {
            "wall_s": lstm2_s,
            "concurrency": lstm2["resources"].get("concurrency"),
            "trials": lstm2["counts"]["trials"],
            "ratio_to_auto": lstm2_s / searches["lstm"]["wall_s"],
        },
        "ensemble": {
            "wall_s": ensemble_s,
            "test": ensemble["metrics"]["test"]["cosine"],
            "intervals": ensemble["intervals"],
        },
        "report_s": report_s,
        "target": "all 128 trials in 10 minutes or less on one GPU",
    }
    name = "platform_search_together.json" if args.together else "platform_search.json"
    (out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("device", "wall_s", "lstm_max_concurrent_2")}, indent=2))


if __name__ == "__main__":
    main()
