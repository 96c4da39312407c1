"""Best val cosine for the same number of trials: TPE + ASHA (the default) against random search.

Each arm runs ``lvm_search.search.run_search`` on the project's space file for ``--arch``
(``spaces/<arch>.yaml``) with the same overrides (``--trials`` samples, epochs capped at
``--max-epochs``, ``max_concurrent`` 1), once per seed (the seed drives the sampler and the trials'
training), and records the best val cosine, the epochs actually trained and the wall time:

* ``tpe_asha``: Optuna TPE with ASHA early stopping, the project's default;
* ``random_none``: Optuna's RandomSampler (the space's ``sampler: random``), every trial trained to the end;
* ``tpe_none``: TPE without early stopping (isolates what ASHA does).

Equal budget = equal number of trials. Trial 0 of every arm is the reference configuration.
The project's TPE samples its first ``max(2, min(10, samples // 4))`` trials at random, then models.

    python benchmarks/search_efficiency.py --trials 6 --max-epochs 10 --seeds 0 1 2 --out benchmarks/results/cpu/search_efficiency.json
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import _common as C

ARMS = {
    "tpe_asha": ("tpe", "asha"),
    "random_none": ("random", "none"),
    "tpe_none": ("tpe", "none"),
}


def arm_space(base, arm: str, args, seed: int):
    sampler, scheduler = ARMS[arm]
    space = base.with_overrides(samples=args.trials, seed=seed, max_concurrent=1, max_epochs=args.max_epochs,
                                cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial)
    scheduler = dataclasses.replace(base.scheduler, type=scheduler)
    return dataclasses.replace(space, scheduler=scheduler, sampler=sampler)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, data_help="an .npz (default: the packaged sample)")
    p.add_argument("--arch", default="amn", choices=("lstm", "gru", "transformer", "amn"))
    p.add_argument("--arms", nargs="+", default=["tpe_asha", "random_none"], choices=list(ARMS))
    p.add_argument("--trials", type=int, default=6, help="trials per search (the equal budget)")
    p.add_argument("--max-epochs", type=int, default=10, help="cap on the space's epochs")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--cpus-per-trial", type=float, default=1)
    p.add_argument("--gpus-per-trial", type=float, default=None, help="default: 1 on CUDA, else 0")
    args = p.parse_args(argv)

    from lvm_search.search import (  # Ray and Optuna: only the search scripts need them
        SearchOptions,
        run_search,
    )
    from lvm_search.spaces import load_space

    device = C.pick_device(args.device, args.threads)
    if args.gpus_per_trial is None:
        args.gpus_per_trial = 1.0 if device.type == "cuda" else 0.0
    base = load_space(C.REPO / "spaces" / f"{args.arch}.yaml")
    spaces = {(arm, seed): arm_space(base, arm, args, seed) for seed in args.seeds for arm in args.arms}
    runs = []
    with tempfile.TemporaryDirectory(prefix="lvm-efficiency-") as tmp:
        for seed in args.seeds:
            for arm in args.arms:  # the arms alternate, so a slow spell of a shared machine hits both
                space = spaces[arm, seed]
                t0 = time.perf_counter()
                summary = run_search(space, SearchOptions(data=args.data, storage=tmp, name=f"{arm}-{seed}", verbose=0))
                wall = time.perf_counter() - t0
                trials = summary["trials"]
                runs.append({
                    "arm": arm, "seed": seed, "best_val_cosine": summary["best"]["val_cosine"] if summary["best"] else None,
                    "reference_val_cosine": trials[0]["val_cosine"], "trials": len(trials),
                    "stopped_early": summary["counts"]["stopped_early"], "epochs": sum(t["epochs_run"] for t in trials),
                    "wall_s": wall, "baseline_mean_val_cosine": summary["baseline_val"]["mean"]["cosine"],
                    "best_config": summary["best"] and summary["best"]["config"],
                })
                r = runs[-1]
                print(f"{arm} seed {seed}: best {r['best_val_cosine']:.4f}, {r['epochs']} epochs, {wall:.0f} s", flush=True)

    results, rows = [], []
    for arm in args.arms:
        mine = [r for r in runs if r["arm"] == arm]
        best = [r["best_val_cosine"] for r in mine]
        agg = {
            "arm": arm, "seeds": [r["seed"] for r in mine], "best_val_cosine": best,
            "best_val_cosine_mean": statistics.mean(best), "best_val_cosine_sd": statistics.stdev(best) if len(best) > 1 else 0.0,
            "epochs_mean": statistics.mean(r["epochs"] for r in mine), "wall_s_mean": statistics.mean(r["wall_s"] for r in mine),
            "stopped_early_mean": statistics.mean(r["stopped_early"] for r in mine),
        }
        results.append(agg)
        rows.append([arm, f"{agg['best_val_cosine_mean']:.4f} ± {agg['best_val_cosine_sd']:.4f}",
                     " / ".join(f"{b:.4f}" for b in best), f"{agg['epochs_mean']:.1f}",
                     f"{agg['stopped_early_mean']:.1f}", f"{agg['wall_s_mean']:.0f}"])
    columns = ["arm", "best val cos (mean ± sd)", "per seed", "epochs trained (mean)", "trials stopped early (mean)", "wall s (mean)"]
    data_desc = f"{Path(args.data).name if args.data else 'packaged sample (python-docs-sample.npz)'}"
    reference = ", ".join(f"{r['reference_val_cosine']:.4f}" for r in runs if r["arm"] == args.arms[0])
    notes = [
        f"Data: {data_desc}. Space: spaces/{args.arch}.yaml with {args.trials} trials, epochs capped at {args.max_epochs}, "
        f"max_concurrent 1, {args.cpus_per_trial:g} CPU / {args.gpus_per_trial:g} GPU per trial; seeds {args.seeds}.",
        "Equal budget = equal number of trials; trial 0 of every search is the reference configuration.",
        f"TPE samples its first {max(2, min(10, args.trials // 4))} trials at random (n_startup_trials), then models.",
        f"Reference trial's val cosine per seed ({args.arms[0]}): {reference}; "
        f"mean-of-context baseline {runs[0]['baseline_mean_val_cosine']:.4f}.",
    ]
    settings = {"data": data_desc, "arch": args.arch, "trials": args.trials, "max_epochs": args.max_epochs,
                "seeds": args.seeds, "arms": {a: dict(zip(("sampler", "scheduler"), ARMS[a])) for a in args.arms}}
    C.finish("search_efficiency", args, device, settings, results, columns, rows, notes, args.out, extra={"runs": runs})


if __name__ == "__main__":
    main()
