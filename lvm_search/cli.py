"""The ``lvm-search`` command line. A user's mistake becomes one line on stderr and exit code 2.

Each command imports what it needs when it runs, so ``lvm-search baselines`` does not pay for Ray.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from .errors import UserError


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="an .npz data set (default: the packaged sample)")
    p.add_argument("--k", type=int, default=None, help="context length (default 5; windows-format files set their own)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the document split")


def _load(args):
    from .data import load_data

    return load_data(args.data, k=args.k, seed=args.split_seed)


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


# --- baselines --------------------------------------------------------------------------------


def cmd_baselines(args) -> int:
    from .metrics import baselines

    data = _load(args)
    scores = baselines(data)
    out = {
        "data": data.summary(),
        "splits": data.split_sizes(),
        "baselines": {
            name: {
                "val": s["val"]["cosine"],
                "test": s["test"]["cosine"],
                **{key: value for key, value in s.items() if key not in ("val", "test")},
                "metrics": {"val": s["val"], "test": s["test"]},
            }
            for name, s in scores.items()
        },
    }
    if args.json:
        _print_json(out)
        return 0
    d = out["data"]
    print(f"data {d['source']}  D={d['D']} k={d['k']} fingerprint={d['fingerprint']}")
    for name, s in out["splits"].items():
        print(f"  {name:5s} {s['docs']:5d} docs {s['windows']:7d} windows")
    print(f"{'baseline':10s} {'val cos':>8s} {'test cos':>8s} {'test hit@5':>10s}")
    for name, s in out["baselines"].items():
        print(f"{name:10s} {s['val']:8.4f} {s['test']:8.4f} {s['metrics']['test']['hit5']:10.4f}")
    return 0


# --- train ------------------------------------------------------------------------------------


def parse_sets(pairs: list[str]) -> dict:
    """``["width=256", "residual=true"]`` -> ``{"width": 256, "residual": True}`` (YAML scalars)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def cmd_train(args) -> int:
    from .checkpoint import save_checkpoint
    from .metrics import context_mean_baseline, score
    from .train import TrainConfig, train
    from .spaces import split_params

    data = _load(args)
    settings = parse_sets(args.set or [])
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.device:
        settings["device"] = args.device
    cfg = split_params(args.arch, settings, where="--set")

    def report(epoch, m, save):
        print(
            f"epoch {epoch:3d}  train_loss {m['train_loss']:.5f}  val_cos {m['val_cosine']:.4f}  "
            f"lr {m['lr']:.2e}  {m['epoch_s']:.2f} s  {m['train_samples_per_s']:.0f} samples/s",
            flush=True,
        )

    result = train(cfg, data, report)
    out = Path(args.out or f"runs/train/{args.arch}")
    save_checkpoint(out, result.model, result.meta)
    x, _ = data.batch("val", slice(None))
    baseline = score(context_mean_baseline(x), data, "val")["cosine"]
    best = result.best
    print(
        f"best epoch {best['epoch']}: val cosine {best['val_cosine']:.4f} "
        f"(mean-of-context baseline {baseline:.4f}, {100 * (best['val_cosine'] / baseline - 1):+.2f}%); "
        f"{result.meta['params']:,} parameters; checkpoint {out}"
    )
    return 0


# --- embed ------------------------------------------------------------------------------------


def cmd_embed(args) -> int:
    from .embed import embed_command

    return embed_command(args)


# --- main -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvm-search", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("baselines", help="split sizes and the classical baselines on val and test")
    _data_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_baselines)

    p = sub.add_parser("train", help="train one configuration and write its best checkpoint")
    p.add_argument("--arch", required=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a model or training setting (repeatable)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda or mps")
    p.add_argument("--out", help="checkpoint folder (default runs/train/ARCH)")
    _data_args(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("embed", help="turn a folder of documents (or a JSONL file) into a training set")
    p.add_argument("source", help="a folder of .txt/.md/.rst files, or a .jsonl file of {id, text}")
    p.add_argument("--out", required=True, help="the .npz to write")
    p.add_argument("--model", help="sentence-transformers model name or local path")
    p.add_argument("--min-chars", type=int, default=150)
    p.add_argument("--max-chars", type=int, default=400)
    p.add_argument("--k", type=int, default=5, help="documents with fewer than k+1 passages are dropped")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(fn=cmd_embed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except UserError as e:
        print(f"lvm-search: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lvm-search: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
