"""Issue 9 on one GPU: new quality levers, then a TPE search per architecture, then the ensemble.

Three phases, each time-boxed, all on one machine, judged on **val** only (test is scored once, at
the end, for the record):

1. Ablation: every architecture's residual recipe (20 epochs) with one lever changed: longer
   context (k = 8, 12, 16 with ``min_context=5``, so every variant scores the same windows), a
   recency-weighted residual base, EMA of the weights, and a learning curve (25 % and 50 % of the
   training documents). Jobs run in parallel processes sharing the GPU.
2. Search: for each architecture, Optuna TPE (multivariate, constant liar) with successive-halving
   pruning (ASHA's rule) over ``spaces/<arch>.yaml``, at the k that won phase 1 on val. Several
   worker processes per architecture share one journal-file study. This is the platform's sampler,
   space and trainer without Ray: Ray's wheel does not fit the GPU machine's transfer limit.
3. Final: the best trial of each architecture (by val) is scored on val and test, and the ensemble
   of the four is fitted on val with the platform's greedy and simplex methods.

    python benchmarks/quality_search.py --data ../shared/data/linux-docs-minilm.npz --out OUT
    python benchmarks/quality_search.py --smoke --out /tmp/qs          # tiny, CPU, packaged sample
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from lvm_search.checkpoint import load_model
from lvm_search.data import LVMData, Split, load_data, sample_path
from lvm_search.ensemble import fit_weights
from lvm_search.metrics import predict, score
from lvm_search.spaces import load_space, split_params
from lvm_search.train import TrainConfig, TrainingDiverged, train

REPO = Path(__file__).resolve().parents[1]
ARCHS = ("transformer", "gru", "lstm", "amn")  # slowest first, so the pool ends together
MIN_CONTEXT = 5
KS = (5, 8, 12, 16)
RESIDUAL = {"residual": True}

# name -> (k, train-doc fraction, model overrides, training overrides); all on the residual recipe
VARIANTS = {
    "residual (k=5)": (5, 1.0, {}, {}),
    "k=8": (8, 1.0, {}, {}),
    "k=12": (12, 1.0, {}, {}),
    "k=16": (16, 1.0, {}, {}),
    "recency base 0.75": (5, 1.0, {"base_decay": 0.75}, {}),
    "EMA 0.998": (5, 1.0, {}, {"ema": 0.998}),
    "25% of train docs": (5, 0.25, {}, {}),
    "50% of train docs": (5, 0.5, {}, {}),
}


# --- data ----------------------------------------------------------------------------------------

_DATA: dict = {}


def get_data(path: str, k: int, fraction: float = 1.0, extra: str | None = None) -> LVMData:
    """Cached per process; ``fraction`` keeps a random share of the training *documents*; ``extra``
    adds every window of another corpus to train."""
    key = (path, k, fraction, extra)
    if key not in _DATA:
        data = load_data(path, k=k, min_context=min(MIN_CONTEXT, k), extra_train=(extra,) if extra else ())
        if fraction < 1:
            with np.load(path, allow_pickle=False) as z:
                doc_ids = torch.from_numpy(z["doc_ids"].astype(np.int64))
            train = data.splits["train"]
            docs = doc_ids[train.targets].unique()
            keep_docs = docs[torch.randperm(len(docs), generator=torch.Generator().manual_seed(0))[: max(1, round(fraction * len(docs)))]]
            keep = torch.isin(doc_ids[train.targets], keep_docs)
            data = dataclasses.replace(data, splits={**data.splits, "train": Split(train.contexts[keep], train.targets[keep], len(keep_docs))})
        _DATA[key] = data
    return _DATA[key]


def scores_of(model, data: LVMData) -> dict:
    d = data.to(next(model.parameters()).device)
    return {s: score(predict(model, d, s), d, s) for s in ("val", "test")}


# --- phase 1: ablation -----------------------------------------------------------------------------


def ablation_job(job: dict) -> dict:
    torch.set_num_threads(1)
    k, fraction, model, recipe = VARIANTS[job["variant"]]
    data = get_data(job["data"], k, fraction)
    cfg = TrainConfig(arch=job["arch"], model={**RESIDUAL, **model}, epochs=job["epochs"], batch_size=256, lr=1e-3,
                      device=job["device"], **recipe)
    t0 = time.perf_counter()
    try:
        result = train(cfg, data)
    except Exception as e:  # one failed variant must not sink the rest
        return {**job, "error": f"{type(e).__name__}: {e}"}
    return {**job, "k": k, "train_fraction": fraction, "train_windows": len(data.splits["train"]),
            "best_epoch": result.best["epoch"], "train_s": time.perf_counter() - t0,
            **scores_of(result.model, data)}


# --- phase 2: search -------------------------------------------------------------------------------


def suggest(trial: optuna.Trial, name: str, dist):
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def search_worker(job: dict) -> None:
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    arch, deadline = job["arch"], job["deadline"]
    space = load_space(job["space"])
    data = get_data(job["data"], job["k"])
    study = optuna.load_study(
        study_name=arch, storage=JournalStorage(JournalFileBackend(job["journal"])),
        sampler=space.make_sampler(space.seed * 1000 + job["worker"], constant_liar=True),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=space.scheduler.grace_period,
                                                      reduction_factor=int(space.scheduler.reduction_factor)),
    )

    def objective(trial: optuna.Trial) -> float:
        params = {name: suggest(trial, name, dist) for name, dist in space.distributions().items()}
        cfg = split_params(arch, {**space.fixed, **params}, where=f"trial {trial.number}")
        cfg = dataclasses.replace(cfg, device=job["device"], seed=trial.number, epochs=min(cfg.epochs, job["max_epochs"]))
        ckpt = Path(job["ckpt_dir"]) / arch / f"trial-{trial.number}"
        best = {"val": -1.0}

        def report(epoch, metrics, save):
            if save:
                save(ckpt)
                best.update(val=metrics["val_cosine"], epoch=epoch)
                trial.set_user_attr("best_val", best["val"])
                trial.set_user_attr("best_epoch", epoch)
                trial.set_user_attr("checkpoint", str(ckpt))
            trial.set_user_attr("epochs_run", epoch)
            trial.report(metrics["val_cosine"], epoch)
            if time.time() > deadline:
                trial.set_user_attr("cut_by_deadline", True)
                raise optuna.TrialPruned()
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            train(cfg, data, report)
        except TrainingDiverged:
            trial.set_user_attr("diverged", True)
            return -1.0
        return best["val"]

    # Stop asking for trials once too little time is left for one to pass the first rung.
    study.optimize(objective, callbacks=[lambda s, t: time.time() > deadline - job["min_trial_s"] and s.stop()],
                   catch=(RuntimeError,))


# --- phase 3: final scoring and the ensemble ------------------------------------------------------------


def search_results(arch: str, journal: str, data: LVMData, device: str, top: int = 3) -> dict:
    study = optuna.load_study(study_name=arch, storage=JournalStorage(JournalFileBackend(journal)))
    trials = [
        {"number": t.number, "state": t.state.name, "params": t.params, "best_val": t.user_attrs.get("best_val"),
         "best_epoch": t.user_attrs.get("best_epoch"), "epochs_run": t.user_attrs.get("epochs_run"),
         "checkpoint": t.user_attrs.get("checkpoint"), "cut_by_deadline": t.user_attrs.get("cut_by_deadline", False),
         "seconds": (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None}
        for t in study.trials
    ]
    ranked = sorted((t for t in trials if t["checkpoint"] and t["best_val"] is not None), key=lambda t: -t["best_val"])
    best = []
    for t in ranked[:top]:
        model, meta = load_model(t["checkpoint"], device)
        d = data.to(device)
        preds = {s: predict(model, d, s).cpu() for s in ("val", "test")}
        best.append({**t, "params_count": meta["params"], "scores": {s: score(preds[s], data, s) for s in preds}, "preds": preds})
    return {"trials": trials, "best": best}


def fit_ensemble(members: list[dict], data_by_k: dict, size: int = 20) -> dict:
    """The platform's rule (``lvm_search.ensemble.fit_weights``): greedy vs simplex, whichever is better on val."""
    any_data = next(iter(data_by_k.values()))
    targets = {s: any_data.vectors[any_data.splits[s].targets] for s in ("val", "test")}
    method, weights = fit_weights(torch.stack([m["preds"]["val"] for m in members]), targets["val"], size)
    out = {"method": method, "weights": weights.tolist(), "members": [m["name"] for m in members]}
    for s in ("val", "test"):
        combined = torch.einsum("m,mnd->nd", weights, torch.stack([m["preds"][s] for m in members]))
        out[s] = score(combined, any_data, s)
    return out


# --- phase 4 (a second call): seeds, extra training data, the missing ablation rows -----------------


def confirm_job(job: dict) -> dict:
    """Retrain a searched configuration with another seed, optionally with extra training data."""
    torch.set_num_threads(1)
    data = get_data(job["data"], job["k"], extra=job["extra"])
    cfg = split_params(job["arch"], job["params"], where=job["name"])
    cfg = dataclasses.replace(cfg, device=job["device"], seed=job["seed"], epochs=min(cfg.epochs, job["max_epochs"]))
    t0 = time.perf_counter()
    try:
        result = train(cfg, data)
    except Exception as e:
        return {**job, "error": f"{type(e).__name__}: {e}"}
    d = data.to(job["device"])
    preds = {s: predict(result.model, d, s).cpu() for s in ("val", "test")}
    torch.save(preds, Path(job["preds_dir"]) / f"{job['name']}.pt")
    return {**job, "best_epoch": result.best["epoch"], "train_s": time.perf_counter() - t0,
            **{s: score(preds[s].to(d.device), d, s) for s in preds}}


def confirm(args, record: dict, out: Path) -> None:
    """Seeds 0-2 of each architecture's best searched configuration, on linux-docs alone and with
    ``--extra`` added to train; ensembles of them fitted on val; the ablation jobs the first call cut."""
    preds_dir = out / "preds"
    preds_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for arch in args.archs:
        best = record["search"][arch]["best"][0]
        for extra in (None, args.extra):
            for seed in range(3):
                name = f"{arch}-{'extra' if extra else 'linux'}-s{seed}"
                jobs.append({"name": name, "arch": arch, "params": {**load_space(REPO / "spaces" / f"{arch}.yaml").fixed, **best["params"]},
                             "k": record["chosen_k"][arch], "extra": extra, "seed": seed, "data": args.data,
                             "device": args.device, "preds_dir": str(preds_dir), "max_epochs": args.max_epochs})
    done = {(r["arch"], r["variant"]) for r in record["ablation"]}
    missing = [{"arch": a, "variant": v, "data": args.data, "epochs": args.epochs, "device": args.device}
               for a in args.archs for v in VARIANTS if (a, v) not in done]
    t0 = time.time()

    def save_partial(results):  # a call killed at its time limit still brings back what finished
        (out / "confirm_partial.json").write_text(json.dumps(results, indent=1))

    results = run_pool(_any_job, jobs + missing, args.ablation_workers, "confirm", t0 + args.ablation_s, save_partial)
    record["confirm"] = [r for r in results if "name" in r]
    record["ablation"] += [r for r in results if "variant" in r]
    record["confirm_s"] = time.time() - t0
    ok = [r for r in record["confirm"] if "error" not in r]
    for r in sorted(ok, key=lambda r: r["name"]):
        print(f"{r['name']:22s} val {r['val']['cosine']:.4f} test {r['test']['cosine']:.4f} epoch {r['best_epoch']} ({r['train_s']:.0f} s)", flush=True)
    data_by_k = {5: get_data(args.data, 5)}
    members = [{"name": r["name"], "extra": bool(r["extra"]),
                "preds": torch.load(preds_dir / f"{r['name']}.pt", weights_only=True)} for r in ok]
    record["confirm_ensembles"] = {}
    for label, chosen in (("linux-only members", [m for m in members if not m["extra"]]),
                          ("extra-data members", [m for m in members if m["extra"]]),
                          ("all members", members)):
        if len(chosen) > 1:
            e = fit_ensemble(chosen, data_by_k)
            record["confirm_ensembles"][label] = e
            print(f"ensemble of {label}: {e['method']} val {e['val']['cosine']:.4f} test {e['test']['cosine']:.4f}", flush=True)


def _any_job(job: dict) -> dict:
    return confirm_job(job) if "name" in job else ablation_job(job)


# --- the driver -----------------------------------------------------------------------------------


def run_pool(fn, jobs: list[dict], workers: int, label: str, deadline: float, on_result=None) -> list:
    """Run ``jobs`` in spawned processes; whatever has not finished by ``deadline`` is cut."""
    t0 = time.time()
    out = []
    with mp.get_context("spawn").Pool(workers) as pool:  # leaving the block terminates stragglers
        results = pool.imap_unordered(fn, jobs)
        for _ in jobs:
            try:
                r = results.next(timeout=max(1.0, deadline - time.time()))
            except mp.TimeoutError:
                print(f"[{label}] deadline: {len(jobs) - len(out)} job(s) cut", flush=True)
                break
            out.append(r)
            if on_result:
                on_result(out)
            if isinstance(r, dict) and ("variant" in r or "name" in r):
                msg = r.get("error") or f"val {r['val']['cosine']:.4f} test {r['test']['cosine']:.4f} ({r['train_s']:.0f} s)"
                print(f"[{label} {time.time() - t0:5.0f} s] {r['arch']:11s} {r.get('variant') or r['name']:20s} {msg}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/linux-docs-minilm.npz"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--epochs", type=int, default=20, help="ablation epochs per variant")
    ap.add_argument("--ablation-workers", type=int, default=12)
    ap.add_argument("--ablation-s", type=float, default=200, help="wall-time cap of the ablation phase")
    ap.add_argument("--search-workers", type=int, default=3, help="processes per architecture")
    ap.add_argument("--search-s", type=float, default=300, help="wall time of the search phase")
    ap.add_argument("--max-epochs", type=int, default=50, help="cap on a trial's epochs")
    ap.add_argument("--min-trial-s", type=float, default=40, help="no new trial starts this close to the deadline")
    ap.add_argument("--smoke", action="store_true", help="tiny settings on the packaged sample, CPU")
    ap.add_argument("--confirm", metavar="JSON", help="phase 4 only, on the record of an earlier call (see confirm)")
    ap.add_argument("--extra", default=str(REPO.parent / "shared/data/python-docs-minilm.npz"),
                    help="extra training corpus for phase 4")
    args = ap.parse_args()
    if args.smoke:
        args.data, args.device, args.epochs, args.ablation_workers, args.ablation_s = str(sample_path()), "cpu", 1, 2, 60
        args.search_workers, args.search_s, args.max_epochs, args.min_trial_s = 1, 20, 2, 5
    out = Path(args.out)
    (out / "ckpt").mkdir(parents=True, exist_ok=True)
    if args.confirm:
        record = json.loads(Path(args.confirm).read_text())
        record["confirm_args"] = vars(args)
        confirm(args, record, out)
        (out / "quality_search.json").write_text(json.dumps(record, indent=1))
        return
    t_start = time.time()
    record = {"args": vars(args), "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
              "torch": torch.__version__, "optuna": optuna.__version__}
    base_data = get_data(args.data, 5)
    record["data"], record["splits"] = base_data.summary(), base_data.split_sizes()

    def save():
        (out / "quality_search.json").write_text(json.dumps(record, indent=1))

    save()
    # phase 1
    jobs = [{"arch": a, "variant": v, "data": args.data, "epochs": args.epochs, "device": args.device}
            for a in args.archs for v in VARIANTS]
    record["ablation"] = run_pool(ablation_job, jobs, args.ablation_workers, "ablation", time.time() + args.ablation_s)
    record["ablation_s"] = time.time() - t_start
    save()

    # phase 2: k per architecture from phase 1, on val
    record["chosen_k"] = {}
    for arch in args.archs:
        rows = [r for r in record["ablation"] if r["arch"] == arch and "error" not in r and r["train_fraction"] == 1
                and r["variant"] in ("residual (k=5)", "k=8", "k=12", "k=16")]
        record["chosen_k"][arch] = max(rows, key=lambda r: r["val"]["cosine"])["k"] if rows else 5
    print("chosen k (on val):", record["chosen_k"], flush=True)
    deadline = time.time() + args.search_s
    jobs = []
    for arch in args.archs:
        space = load_space(REPO / "spaces" / f"{arch}.yaml")
        journal = str(out / f"{arch}.journal")
        study = optuna.create_study(study_name=arch, direction="maximize",
                                    storage=JournalStorage(JournalFileBackend(journal)), load_if_exists=True)
        study.enqueue_trial(space.reference_point())  # trial 0 is the reference, as in the platform
        jobs += [{"arch": arch, "worker": w, "space": str(REPO / "spaces" / f"{arch}.yaml"), "data": args.data,
                  "k": record["chosen_k"][arch], "journal": journal, "ckpt_dir": str(out / "ckpt"),
                  "device": args.device, "deadline": deadline, "max_epochs": args.max_epochs,
                  "min_trial_s": args.min_trial_s} for w in range(args.search_workers)]
    t0 = time.time()
    run_pool(search_worker, jobs, len(jobs), "search", deadline + 60)  # a trial stops at its next epoch end
    record["search_s"] = time.time() - t0

    # phase 3
    finals, members = {}, []
    data_by_k = {k: get_data(args.data, k) for k in set(record["chosen_k"].values())}
    for arch in args.archs:
        res = search_results(arch, str(out / f"{arch}.journal"), data_by_k[record["chosen_k"][arch]], args.device)
        for rank, b in enumerate(res["best"]):
            members.append({"name": f"{arch}#{b['number']}", "arch": arch, "rank": rank, "preds": b.pop("preds")})
        finals[arch] = res
        if res["best"]:
            b = res["best"][0]
            print(f"search {arch:11s} {len(res['trials'])} trials; best #{b['number']} val {b['scores']['val']['cosine']:.4f} "
                  f"test {b['scores']['test']['cosine']:.4f} {b['params']}", flush=True)
    record["search"] = finals
    best_members = [m for m in members if m["rank"] == 0]
    if len(best_members) > 1:
        record["ensemble"] = fit_ensemble(best_members, data_by_k)
        record["ensemble_top3"] = fit_ensemble(members, data_by_k)
        for name in ("ensemble", "ensemble_top3"):
            e = record[name]
            print(f"{name}: {e['method']} val {e['val']['cosine']:.4f} test {e['test']['cosine']:.4f} "
                  f"weights {dict(zip(e['members'], [round(w, 3) for w in e['weights']]))}", flush=True)
    record["total_s"] = time.time() - t_start
    save()


if __name__ == "__main__":
    main()
