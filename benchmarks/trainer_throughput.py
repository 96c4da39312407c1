"""Train samples/s: the project's trainer against the reference recipe, same data, same device.

For each architecture at its seed defaults (the reference architectures), measured back to back in
one process, interleaved (ref, ours, ref, ours, ...), median of ``--repeats``:

* ref: the reference recipe (``_reference.py``), batch 32, timed over ``--ref-batches`` batches after
  ``--ref-warmup`` untimed ones;
* ours: ``lvm_search.train.train`` with its default recipe (warm-up + cosine, AdamW, grad clip 1)
  at ``--batch-size`` 1024 and lr 2e-3, ``bf16: auto`` (autocast where the device computes in
  bf16: CUDA from Ampere, a CPU with AVX-512 BF16 or AMX); one untimed warm-up epoch, then
  ``--epochs`` timed epochs, read from the trainer's own ``train_samples_per_s`` (evaluation excluded).

Data: by default random unit vectors at D=768 cut into 80,629 sliding windows of k=5, like the
reference benchmark; ``--data PATH`` uses the train split of a real file instead.

    python benchmarks/trainer_throughput.py --device cuda --out benchmarks/results/gpu/trainer_throughput.json
    python benchmarks/trainer_throughput.py --device cpu --synthetic-windows 8000 --repeats 3 \
        --ref-batches 100
"""

from __future__ import annotations

import argparse
import contextlib
import time

import _common as C
import torch
from _reference import (
    endless_batches,
    pytorch_defaults,
    reference_loader,
    reference_optimizer,
    reference_step,
)

import lvm_search.train as trainer
from lvm_search.models import build_model

ARCHS = ("lstm", "gru", "transformer", "amn")


@pytorch_defaults()
def measure_reference(arch, data, contexts, targets, device, args, repeat) -> float:
    torch.manual_seed(repeat)
    model = build_model(arch, data.dim, data.k).to(device).train()
    optimizer, _ = reference_optimizer(model)  # ReduceLROnPlateau steps once per epoch: no cost here
    batches = endless_batches(reference_loader(contexts, targets, seed=repeat))
    for _ in range(args.ref_warmup):
        reference_step(model, optimizer, *next(batches), device)
    C.sync(device)
    samples, t0 = 0, time.perf_counter()
    for _ in range(args.ref_batches):
        x, y = next(batches)
        reference_step(model, optimizer, x, y, device)
        samples += len(x)
    C.sync(device)
    return samples / (time.perf_counter() - t0)


@contextlib.contextmanager
def compiled_models():
    """Benchmark-only: make the trainer build ``torch.compile``d models (the trainer has no flag)."""
    original = trainer.build_model
    trainer.build_model = lambda *a, **kw: torch.compile(original(*a, **kw))
    try:
        yield
    finally:
        trainer.build_model = original


def measure_ours(arch, data, device, args, repeat, compile_model=False) -> float:
    cfg = trainer.TrainConfig(
        arch=arch,
        epochs=1 + args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=repeat,
        device=str(device),
        bf16=C.bf16_setting(args.no_bf16),
        threads=args.threads,
    )
    timed = []  # (samples, seconds) of the epochs after the first

    def report(epoch, metrics, save):
        if epoch > 1:
            n = len(data.splits["train"])
            timed.append((n, n / metrics["train_samples_per_s"]))

    with compiled_models() if compile_model else contextlib.nullcontext():
        trainer.train(cfg, data, report)
    return sum(n for n, _ in timed) / sum(s for _, s in timed)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, data_help="a real .npz (its train split) instead of synthetic windows")
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    p.add_argument("--synthetic-windows", type=int, default=80629, help="train windows of the synthetic data")
    p.add_argument("--dim", type=int, default=768, help="D of the synthetic data")
    p.add_argument("--repeats", type=int, default=3, help="interleaved ref/ours pairs per architecture")
    p.add_argument("--ref-batches", type=int, default=300, help="timed reference batches of 32")
    p.add_argument("--ref-warmup", type=int, default=20, help="untimed reference batches first")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs of ours (after one warm-up epoch)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--no-bf16", action="store_true", help="ours in float32 on bf16 hardware too")
    p.add_argument("--compile", action="store_true", help="also measure ours with torch.compile")
    args = p.parse_args(argv)

    device = C.pick_device(args.device, args.threads)
    if args.data:
        data = C.load_data(args.data)
        data_desc = (
            f"{args.data} (train split: {len(data.splits['train']):,} windows, D={data.dim}, k={data.k})"
        )
    else:
        data = C.synthetic_data(args.synthetic_windows, args.dim)
        data_desc = f"synthetic random unit vectors: {args.synthetic_windows:,} windows, D={args.dim}, k=5"
    contexts, targets = C.materialise(data, "train")  # the reference's CPU tensors
    print(f"device {device}; data {data_desc}", flush=True)

    contenders = ["ref", "ours"] + (["ours_compiled"] if args.compile else [])
    results, rows = [], []
    for arch in args.archs:
        runs = {name: [] for name in contenders}
        t_arch = time.perf_counter()
        for repeat in range(args.repeats):
            runs["ref"].append(measure_reference(arch, data, contexts, targets, device, args, repeat))
            runs["ours"].append(measure_ours(arch, data, device, args, repeat))
            if args.compile:
                runs["ours_compiled"].append(
                    measure_ours(arch, data, device, args, repeat, compile_model=True)
                )
            print(
                f"{arch} repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in runs.items()),
                flush=True,
            )
        med = {name: C.median(v) for name, v in runs.items()}
        params = sum(t.numel() for t in build_model(arch, data.dim, data.k).parameters())
        result = {
            "arch": arch,
            "params": params,
            "samples_per_s": runs,
            "median_samples_per_s": med,
            "ratio": med["ours"] / med["ref"],
            "wall_s": time.perf_counter() - t_arch,
        }
        row = [arch, f"{params:,}", C.fmt(med["ref"]), C.fmt(med["ours"]), f"{result['ratio']:.1f}x"]
        if args.compile:
            result["compiled_vs_ours"] = med["ours_compiled"] / med["ours"]
            row += [C.fmt(med["ours_compiled"]), f"{result['compiled_vs_ours']:.2f}x"]
        results.append(result)
        rows.append(row)

    columns = ["arch", "params", "ref samples/s", "ours samples/s", "ours / ref"]
    if args.compile:
        columns += ["ours+compile samples/s", "compile / ours"]
    bf16 = C.bf16_used(device, args.no_bf16)
    notes = [
        f"Data: {data_desc}.",
        "ref: reference recipe, batch 32, lr 5e-4, float32 (TF32 off, PyTorch's default), loss.item() "
        f"every batch; {args.ref_batches} timed batches "
        f"after {args.ref_warmup} warm-up batches.",
        f"ours: lvm_search.train.train, batch {args.batch_size}, lr {args.lr:g}, warm-up + cosine, grad "
        "clip 1, "
        f"{'bf16 autocast, TF32 on (the trainer sets it on CUDA)' if bf16 else 'float32'}; {args.epochs} "
        "timed epochs after 1 warm-up epoch "
        "(the trainer's train_samples_per_s, evaluation excluded).",
        f"Median of {args.repeats} interleaved repeats (ref, "
        f"ours{', ours+compile' if args.compile else ''}, ...) in one process.",
    ]
    settings = {
        "data": data_desc,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "bf16": bf16,
        "ref_batch_size": 32,
        "ref_lr": 5e-4,
    }
    C.finish("trainer_throughput", args, device, settings, results, columns, rows, notes, args.out)


if __name__ == "__main__":
    main()
