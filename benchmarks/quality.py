"""Quality levers, one at a time: val and test cosine, Hit@5 and backward margin per variant.

Each variant is the reference architecture trained with the project's trainer and one lever changed
from a base recipe; the winner of each lever is decided on **val** (test is reported, never used).
Writes a JSON result; ``quality_report.py`` renders it into reports/quality.md (the first ablation).

    python benchmarks/quality.py --data ../shared/data/linux-docs-minilm.npz --archs amn lstm \
        --epochs 20 --out benchmarks/results/gpu/quality_amn_lstm.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lvm_search.data import load_data
from lvm_search.metrics import baselines, predict, score
from lvm_search.train import TrainConfig, train

# name -> (model overrides, training overrides), applied on top of the base recipe
VARIANTS = {
    "reference (no levers)": ({}, {}),
    "residual over the mean": ({"residual": True}, {}),
    "residual + context dropout 0.1": ({"residual": True}, {"context_dropout": 0.1}),
    "residual + input noise 0.02": ({"residual": True}, {"input_noise": 0.02}),
    "residual + InfoNCE 0.1": ({"residual": True}, {"infonce_weight": 0.1}),
    "residual + weight decay 0.1": ({"residual": True}, {"weight_decay": 0.1}),
    "residual + dropout 0.3": ({"residual": True, "dropout": 0.3}, {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/linux-docs-minilm.npz"))
    ap.add_argument("--archs", nargs="+", default=["amn", "lstm"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--variants", nargs="*", help="a subset of the variant names")
    ap.add_argument("--out", required=True, help="the JSON result (written after every variant)")
    args = ap.parse_args()

    data = load_data(args.data)
    base = baselines(data)
    rows = []
    machine = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
               "torch": torch.__version__}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for arch in args.archs:
        for name, (model, recipe) in VARIANTS.items():
            if args.variants and name not in args.variants:
                continue
            cfg = TrainConfig(arch=arch, model=model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              device=args.device, **recipe)
            t0 = time.perf_counter()
            result = train(cfg, data)
            d = data.to(next(result.model.parameters()).device)
            val, test = (score(predict(result.model, d, s), d, s) for s in ("val", "test"))
            rows.append({"arch": arch, "variant": name, "val": val, "test": test, "best_epoch": result.best["epoch"],
                         "train_s": time.perf_counter() - t0})
            print(f"{arch:12s} {name:34s} val {val['cosine']:.4f} test {test['cosine']:.4f} "
                  f"hit@5 {test['hit5']:.3f} margin {test['backward_margin']:+.4f} ({rows[-1]['train_s']:.0f} s)", flush=True)
            result = {"data": data.summary(), "splits": data.split_sizes(), "epochs": args.epochs, "machine": machine,
                      "baselines": base, "rows": rows}
            Path(args.out).write_text(json.dumps(result, indent=2))  # after every variant: a time cap loses one


if __name__ == "__main__":
    main()
