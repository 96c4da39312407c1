"""What bf16 autocast does on this machine's CPU: speed and val cosine against float32 (issue 31.4).

Each architecture's reference trial (the shipped spaces' trial 0, at k=8) is trained by
``lvm_search.train.train`` (the trainer behind ``lvm-search train`` and every trial) once in float32
and once with ``bf16: true``, the same seed, one torch thread, and the seconds per epoch and best val
cosine are recorded. On a CPU without bf16 units (no AVX-512 BF16 or AMX) bf16 is emulated, and the
trainer refuses LSTM there (oneDNN has no bf16 LSTM kernel for it): the row says so. ``bf16: auto``
is off on such a CPU; the result says what forcing it would cost.

    python benchmarks/bf16_autocast.py --data ../shared/data/python-docs-minilm.npz --epochs 2 \\
        --threads 1 --out benchmarks/results/cpu/bf16_autocast.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common as C

from lvm_search.devices import computes_bf16
from lvm_search.errors import UserError
from lvm_search.train import TrainConfig, train

CONFIGS = {  # the shipped spaces' reference trials
    "amn": {"depth": 3},
    "gru": {"width": 128, "depth": 2},
    "lstm": {"width": 256, "depth": 1},
    "transformer": {"width": 128, "depth": 2, "ff": 512, "heads": 8},
}


def one(arch: str, seed: int, bf16: bool, args, data) -> dict:
    cfg = TrainConfig(
        arch=arch,
        model=CONFIGS[arch],
        epochs=args.epochs,
        seed=seed,
        device="cpu",
        threads=args.threads,
        bf16=bf16,
    )
    t0 = time.perf_counter()
    try:
        result = train(cfg, data)
    except UserError as e:
        return {"refused": str(e)}
    return {
        "s_per_epoch": (time.perf_counter() - t0) / args.epochs,
        "val": result.best["val_cosine"],
        "bf16_autocast": result.meta["bf16_autocast"],
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, data_help="an .npz (default: the packaged sample)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--archs", nargs="+", default=list(CONFIGS))
    args = p.parse_args(argv)
    device = C.pick_device("cpu", args.threads)
    data = C.load_data(args.data, k=8, min_context=5)
    results, rows = [], []
    for arch in args.archs:
        runs = []
        for seed in args.seeds:
            runs.append(
                {
                    "arch": arch,
                    "seed": seed,
                    **{m: one(arch, seed, m == "bf16", args, data) for m in ("float32", "bf16")},
                }
            )
            print(runs[-1], flush=True)
        results += runs
        if any("refused" in r["bf16"] for r in runs):
            rows.append([arch, len(runs), "refused", "", runs[0]["bf16"]["refused"][:60] + "..."])
            continue
        slower = statistics.mean(r["bf16"]["s_per_epoch"] / r["float32"]["s_per_epoch"] for r in runs)
        diffs = [r["bf16"]["val"] - r["float32"]["val"] for r in runs]
        rows.append([arch, len(runs), f"{slower:.1f}x", f"{statistics.mean(diffs):+.1e}", ""])
    columns = ["arch", "seeds", "bf16 time / float32 time", "val cosine: bf16 - float32", "note"]
    notes = [
        f"{args.epochs} epochs of each reference trial, k=8, min_context 5, "
        f"{args.threads or 'all'} torch thread(s); bf16 units on this CPU: {computes_bf16(device)} "
        f"(so bf16: auto is {'on' if computes_bf16(device) else 'off'} here)."
    ]
    C.finish(
        "bf16_autocast",
        args,
        device,
        {"epochs": args.epochs, "configs": CONFIGS},
        results,
        columns,
        rows,
        notes,
        args.out,
    )


if __name__ == "__main__":
    main()
