"""What a search through Ray costs beyond the training it runs.

Runs ``lvm_search.search.run_search`` on a small space written to a temporary folder (one
architecture, fixed epochs, only lr searched, ``max_concurrent`` 1, no early stopping, storage in
the temporary folder) and compares:

* wall: the whole ``run_search`` call (loading the data, starting and stopping the local Ray
  cluster, the trials, the summary and the Optuna study);
* in trials: the sum over trials of Tune's ``time_total_s`` (the trainable's own time, including
  its per-epoch reports and checkpoints);
* training: the sum over trials of the trainer's ``epoch_s`` (train + evaluation of every epoch).

overhead % = (wall - sum) / sum, against either sum. Needs Ray and Optuna (the package's full install).

    python benchmarks/search_overhead.py --out benchmarks/results/cpu/search_overhead.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import _common as C

SPACE = """\
# written by benchmarks/search_overhead.py
arch: {arch}
samples: {samples}
seed: 0
max_concurrent: 1
scheduler: {{type: none}}
resources: {{cpus_per_trial: {cpus}, gpus_per_trial: {gpus}}}
fixed: {{epochs: {epochs}, batch_size: {batch_size}}}
space:
  lr: {{type: float, low: 1.0e-3, high: 2.0e-3, log: true}}
"""


def epoch_seconds(trial_dir: Path) -> list[float]:
    """The trainer's epoch_s of every epoch a trial reported (Tune's result.json, one JSON per line)."""
    rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]
    return [r["epoch_s"] for r in rows if "epoch_s" in r]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, data_help="an .npz (default: the packaged sample)")
    p.add_argument("--arch", default="amn", choices=("lstm", "gru", "transformer", "amn"))
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--epochs", type=int, default=100, help="epochs per trial (100 on the sample: about 20 s of amn on one core)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--cpus-per-trial", type=float, default=1)
    args = p.parse_args(argv)

    from lvm_search.search import SearchOptions, run_search  # Ray and Optuna: only this script needs them
    from lvm_search.spaces import load_space

    device = C.pick_device(args.device, args.threads)
    gpus = 1 if device.type == "cuda" else 0
    with tempfile.TemporaryDirectory(prefix="lvm-overhead-") as tmp:
        space_file = Path(tmp) / "overhead.yaml"
        space_file.write_text(SPACE.format(arch=args.arch, samples=args.trials, cpus=args.cpus_per_trial, gpus=gpus,
                                           epochs=args.epochs, batch_size=args.batch_size))
        space = load_space(space_file)
        t0 = time.perf_counter()
        summary = run_search(space, SearchOptions(data=args.data, storage=str(Path(tmp) / "runs"), verbose=0))
        wall = time.perf_counter() - t0
        run_dir = Path(tmp) / "runs" / "overhead"
        epochs = {d.name.split("_")[-1]: epoch_seconds(d) for d in run_dir.glob("attempt-*/trial_*")}

    trials = summary["trials"]
    in_trials = sum(t["time_total_s"] for t in trials)
    training = sum(sum(epochs[t["trial_id"]]) for t in trials)
    n_epochs = sum(len(epochs[t["trial_id"]]) for t in trials)
    result = {
        "trials": len(trials), "ok": summary["counts"]["ok"], "epochs": n_epochs,
        "wall_s": wall, "summary_wall_s": summary["wall_s"], "sum_time_total_s": in_trials, "sum_epoch_s": training,
        "overhead_vs_trials_pct": 100 * (wall - in_trials) / in_trials,
        "overhead_vs_training_pct": 100 * (wall - training) / training,
        "outside_trials_s": wall - in_trials,
        "inside_trials_not_training_s_per_epoch": (in_trials - training) / n_epochs,
        "per_trial": [{"trial_id": t["trial_id"], "time_total_s": t["time_total_s"], "epochs": len(epochs[t["trial_id"]]),
                       "sum_epoch_s": sum(epochs[t["trial_id"]]), "val_cosine": t["val_cosine"]} for t in trials],
    }
    columns = ["trials x epochs", "search wall s", "sum of trials' time_total_s", "sum of epoch_s",
               "overhead vs trials", "overhead vs training", "outside trials s", "reporting per epoch ms"]
    rows = [[f"{len(trials)} x {args.epochs}", f"{wall:.1f}", f"{in_trials:.1f}", f"{training:.1f}",
             f"{result['overhead_vs_trials_pct']:.0f}%", f"{result['overhead_vs_training_pct']:.0f}%",
             f"{result['outside_trials_s']:.1f}", f"{1000 * result['inside_trials_not_training_s_per_epoch']:.0f}"]]
    data_desc = f"{Path(summary['data']['source']).name}: train {summary['splits']['train']['windows']:,} windows, D={summary['data']['D']}"
    notes = [
        f"Data: {data_desc}. Space: {args.arch}, only lr searched, {args.epochs} epochs per trial, batch {args.batch_size}, "
        f"max_concurrent 1, no early stopping, {args.cpus_per_trial:g} CPU and {gpus} GPU per trial.",
        "wall = the whole run_search call (data loading, local Ray cluster start/stop, trials, summary, Optuna study).",
        "outside trials = wall - sum of time_total_s (cluster start/stop, trial scheduling, summary); reporting per epoch = "
        "(sum of time_total_s - sum of epoch_s) / epochs: Tune's per-epoch report and the checkpoint written on each "
        "improvement, plus each trial's setup.",
    ]
    settings = {"data": data_desc, "arch": args.arch, "trials": args.trials, "epochs": args.epochs,
                "batch_size": args.batch_size, "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": gpus}
    C.finish("search_overhead", args, device, settings, [result], columns, rows, notes, args.out)


if __name__ == "__main__":
    main()
