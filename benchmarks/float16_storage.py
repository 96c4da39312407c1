"""Does storing the vectors in float16 (the GPU default) change what the models learn?

On a GPU the trainer keeps the data in float16 (``data_dtype: auto``), half the memory, and computes
in float32. The arithmetic is the same on any device, so this measures it on the CPU: the same
configurations, the same seeds, trained once with ``data_dtype: float32`` and once with ``float16``,
and the difference of their best val cosine (and test cosine of that epoch's model).

    python benchmarks/float16_storage.py --data ../shared/data/python-docs-minilm.npz \\
        --out benchmarks/results/cpu/float16_storage.json
"""

from __future__ import annotations

import argparse
import statistics

import _common as C

from lvm_search.scoring.metrics import predict
from lvm_search.train import TrainConfig, train

CONFIGS = {  # the shipped spaces' reference trials, at k=8
    "amn": {"depth": 3},
    "lstm": {"width": 256, "depth": 1},
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, data_help="an .npz (default: the packaged sample)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=6)
    args = p.parse_args(argv)
    device = C.pick_device("cpu", args.threads)
    data = C.load_data(args.data, k=8, min_context=5)
    results, rows = [], []
    for arch, model in CONFIGS.items():
        diffs = []
        for seed in args.seeds:
            scores = {}
            for dtype in ("float32", "float16"):
                cfg = TrainConfig(
                    arch=arch, model=model, epochs=args.epochs, seed=seed, device="cpu", data_dtype=dtype
                )
                result = train(cfg, data)
                test = (predict(result.model, data, "test") * data.targets("test")).sum(-1).mean().item()
                scores[dtype] = {"val": result.best["val_cosine"], "test": test}
            diffs.append(scores["float16"]["val"] - scores["float32"]["val"])
            results.append({"arch": arch, "seed": seed, **scores})
        rows.append([arch, len(args.seeds), f"{statistics.mean(diffs):+.1e}", f"{max(map(abs, diffs)):.1e}"])
    columns = ["arch", "seeds", "val cosine: float16 - float32 (mean)", "largest |difference|"]
    notes = [f"{args.epochs} epochs, the default recipe, k=8 with min_context 5; the same seed trains both."]
    C.finish(
        "float16_storage",
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
