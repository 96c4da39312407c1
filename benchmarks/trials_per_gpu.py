"""Aggregate train samples/s of 1, 2, 4, 8 trainer processes sharing one GPU.

How many search trials should share a GPU (``gpus_per_trial`` 1, 0.5, 0.25, 0.125)? Each process
runs ``lvm_search.train.train`` on the same data (batch 256, the trainer's default recipe, ``bf16:
auto``) for one untimed warm-up epoch, waits until every process of its round has finished its
warm-up, then trains ``--epochs`` timed epochs. Aggregate = all processes' timed train samples /
(last process's end - common start); the timed span includes each epoch's evaluation, as a trial's
does. The worker processes are started once (spawn) and reused by every round.

    python benchmarks/trials_per_gpu.py --data ../shared/data/linux-docs-minilm.npz \
        --out benchmarks/results/gpu/trials_per_gpu.json
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import time
import traceback

import _common as C
import torch
import torch.multiprocessing as mp

ARCHS = ("lstm", "transformer")


def worker(rank: int, data_path: str, device: str, jobs, results) -> None:
    """Serve rounds until told to stop: train, with a handshake after the warm-up epoch."""
    try:
        serve(rank, data_path, torch.device(device), jobs, results)
    except BaseException:
        results.put(("error", rank, traceback.format_exc()))


def serve(rank, data_path, device, jobs, results) -> None:
    from lvm_search.train import TrainConfig, train

    data = C.load_data(data_path).to(device)
    n_train = len(data.splits["train"])
    results.put(("loaded", rank, None))
    while (job := jobs.get()) is not None:
        timing = {"samples_per_s": []}

        def report(epoch, metrics, save):
            if epoch == 1:
                results.put(("warm", rank, None))
                jobs.get()  # "go": every process of the round is warm
                C.sync(device)
                timing["start"] = time.time()
            else:
                timing["samples_per_s"].append(metrics["train_samples_per_s"])

        cfg = TrainConfig(
            arch=job["arch"],
            epochs=1 + job["epochs"],
            batch_size=job["batch_size"],
            lr=job["lr"],
            seed=rank,
            device=str(device),
            bf16=job["bf16"],
            threads=job["threads"],
        )
        train(cfg, data, report)
        C.sync(device)
        timing["end"] = time.time()
        timing["samples"] = n_train * job["epochs"]
        results.put(("done", rank, timing))


def collect(results, kind: str, count: int, workers, timeout: float) -> list:
    """Wait for ``count`` messages of ``kind``; stop at once if a worker failed or died."""
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count:
        try:
            what, rank, payload = results.get(timeout=2)
        except queue.Empty:
            dead = [w.pid for w in workers if not w.is_alive()]
            if dead or time.monotonic() > deadline:
                sys.exit(
                    f"waiting for '{kind}': "
                    + (f"worker process(es) {dead} died" if dead else f"timed out after {timeout:.0f} s")
                )
            continue
        if what == "error":
            sys.exit(f"worker {rank} failed:\n{payload}")
        if what != kind:
            sys.exit(f"worker {rank} sent '{what}' while '{kind}' was expected")
        got.append(payload)
    return got


def save(args, device, data_desc, out, rows, quiet=False) -> None:
    columns = [
        "arch",
        "processes",
        "aggregate samples/s",
        "per-process samples/s (median)",
        "vs 1 process",
        "timed span s",
    ]
    bf16 = C.bf16_used(device, args.no_bf16)
    notes = [
        f"Data: {data_desc}.",
        f"Each process: lvm_search.train.train, batch {args.batch_size}, lr {args.lr:g}, warm-up + cosine, "
        f"{'bf16 autocast' if bf16 else 'float32'}; 1 warm-up epoch, "
        f"then {args.epochs} timed epochs "
        "(evaluation included in the timed span).",
        "Processes of a round start their timed epochs together; aggregate = total timed samples / (last "
        "end - first start).",
        f"{args.threads_per_process} torch CPU thread(s) per process.",
    ]
    if len(rows) < len(args.archs) * len(args.processes):
        notes.append("Partial: the script stopped before every round had run.")
    settings = {
        "data": data_desc,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "bf16": bf16,
        "threads_per_process": args.threads_per_process,
    }
    C.finish("trials_per_gpu", args, device, settings, out, columns, rows, notes, args.out, quiet=quiet)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(
        p, data_help=f"an .npz (default: $LVM_LINUX_DATA or ../shared/data/{C.LINUX_DATA_NAME})"
    )
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=("lstm", "gru", "transformer", "amn"))
    p.add_argument("--processes", nargs="+", type=int, default=[1, 2, 4, 8])
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per process (after 1 warm-up epoch)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--threads-per-process",
        type=int,
        default=None,
        help="torch CPU threads of each process "
        "(default: usable CPUs / max processes, as a search gives a trial)",
    )
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument(
        "--allow-cpu", action="store_true", help="run on CPU to test the script itself (numbers meaningless)"
    )
    args = p.parse_args(argv)
    device = C.pick_device(args.device)
    if device.type != "cuda" and not args.allow_cpu:
        sys.exit(
            "trials_per_gpu.py measures trainer processes sharing one CUDA GPU, and there is no CUDA device "
            "here: nothing measured (--allow-cpu runs it on CPU to test the script only)"
        )
    if args.threads_per_process is None:
        args.threads_per_process = max(1, len(os.sched_getaffinity(0)) // max(args.processes))
    path = C.linux_data_path(args.data)
    data = C.load_data(path)
    sizes = data.split_sizes()
    data_desc = f"{path.name}: D={data.dim}, k={data.k}, train {sizes['train']['windows']:,} windows"
    del data

    # On SIGTERM (a time limit), exit normally so that multiprocessing stops the daemon workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("trials_per_gpu.py: terminated"))
    ctx = mp.get_context("spawn")
    jobs = [ctx.Queue() for _ in range(max(args.processes))]
    results = ctx.Queue()
    workers = [
        ctx.Process(target=worker, args=(r, str(path), str(device), jobs[r], results), daemon=True)
        for r in range(len(jobs))
    ]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    collect(results, "loaded", len(workers), workers, timeout=300)
    print(f"{len(workers)} workers ready in {time.perf_counter() - t0:.1f} s; {data_desc}", flush=True)

    out, rows = [], []
    for arch in args.archs:
        single = None
        for n in args.processes:
            t_round = time.perf_counter()
            job = {
                "arch": arch,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "bf16": C.bf16_setting(args.no_bf16),
                "threads": args.threads_per_process,
            }
            for r in range(n):
                jobs[r].put(job)
            collect(results, "warm", n, workers, timeout=600)
            for r in range(n):
                jobs[r].put("go")
            timings = collect(results, "done", n, workers, timeout=600)
            span = max(t["end"] for t in timings) - min(t["start"] for t in timings)
            aggregate = sum(t["samples"] for t in timings) / span
            single = single or aggregate
            per_process = [t["samples"] / (t["end"] - t["start"]) for t in timings]
            out.append(
                {
                    "arch": arch,
                    "processes": n,
                    "aggregate_samples_per_s": aggregate,
                    "span_s": span,
                    "per_process_samples_per_s": per_process,
                    "trainer_train_samples_per_s": [t["samples_per_s"] for t in timings],
                    "vs_one_process": aggregate / single,
                }
            )
            rows.append(
                [
                    arch,
                    n,
                    C.fmt(aggregate),
                    C.fmt(C.median(per_process)),
                    f"{aggregate / single:.2f}x",
                    f"{span:.1f}",
                ]
            )
            print(
                f"{arch} x{n}: {aggregate:,.0f} samples/s ({aggregate / single:.2f}x of one process); "
                f"round took {time.perf_counter() - t_round:.1f} s",
                flush=True,
            )
            save(
                args, device, data_desc, out, rows, quiet=True
            )  # keep finished rounds if a time limit strikes
    for q in jobs:
        q.put(None)
    for w in workers:
        w.join(timeout=30)

    save(args, device, data_desc, out, rows)


if __name__ == "__main__":
    main()
