"""Quality levers, one at a time: val and test cosine, Hit@5 and backward margin per variant.

Each variant is the reference architecture trained with the project's trainer and one lever changed
from a base recipe; the winner of each lever is decided on **val** (test is reported, never used).
Writes a JSON result and a markdown table (reports/quality.md when run on the full data).

    python benchmarks/quality.py --data ../shared/data/linux-docs-minilm.npz --archs amn lstm \
        --epochs 20 --out benchmarks/results/gpu/quality.json --markdown reports/quality.md
    python benchmarks/quality.py --render A.json B.json --markdown reports/quality.md   # merge runs
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
    ap.add_argument("--out", help="the JSON result (written after every variant)")
    ap.add_argument("--markdown")
    ap.add_argument("--render", nargs="+", metavar="JSON", help="only merge earlier JSON results into --markdown")
    args = ap.parse_args()
    if args.render:
        results = [json.loads(Path(f).read_text()) for f in args.render]
        merged = dict(results[0], rows=[row for r in results for row in r["rows"]])
        Path(args.markdown).write_text(to_markdown(merged))
        return

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
    if args.markdown:
        Path(args.markdown).write_text(to_markdown(result))


def to_markdown(result: dict) -> str:
    mean_test = result["baselines"]["mean"]["test"]["cosine"]
    lines = [
        "# Quality levers",
        "",
        f"Data `{Path(result['data']['source']).name}` (fingerprint `{result['data']['fingerprint']}`), "
        f"{result['splits']['train']['windows']} / {result['splits']['val']['windows']} / {result['splits']['test']['windows']} "
        f"train/val/test windows, split by document. {result['epochs']} epochs per variant on {result['machine']['device']}. "
        "Levers are judged on val; test is shown, never used to choose.",
        "",
        "| model | variant | val cos | test cos | test gain vs mean | Hit@5 | backward margin |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, b in result["baselines"].items():
        lines.append(f"| baseline | {name} | {b['val']['cosine']:.4f} | {b['test']['cosine']:.4f} | "
                     f"{100 * (b['test']['cosine'] / mean_test - 1):+.2f}% | {b['test']['hit5']:.3f} | {b['test']['backward_margin']:+.4f} |")
    for r in result["rows"]:
        lines.append(f"| {r['arch']} | {r['variant']} | {r['val']['cosine']:.4f} | {r['test']['cosine']:.4f} | "
                     f"{100 * (r['test']['cosine'] / mean_test - 1):+.2f}% | {r['test']['hit5']:.3f} | {r['test']['backward_margin']:+.4f} |")
    classical = max(("recency", "ridge"), key=lambda n: result["baselines"][n]["val"]["cosine"])
    classical_test = result["baselines"][classical]["test"]["cosine"]
    lines += ["", f"Best variant per architecture, chosen on val, against the best classical baseline on val ({classical}, test {classical_test:.4f}):", ""]
    for arch in dict.fromkeys(r["arch"] for r in result["rows"]):
        best = max((r for r in result["rows"] if r["arch"] == arch), key=lambda r: r["val"]["cosine"])
        verdict = "beats" if best["test"]["cosine"] > classical_test else "does not beat"
        lines.append(f"- {arch}: {best['variant']} (val {best['val']['cosine']:.4f}, test {best['test']['cosine']:.4f}, "
                     f"{100 * (best['test']['cosine'] / mean_test - 1):+.2f}% over the mean): {verdict} {classical}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
