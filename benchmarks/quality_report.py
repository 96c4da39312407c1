"""Render reports/quality.md (issue 9) from the GPU result files, with the baselines recomputed here.

Inputs: ``benchmarks/results/gpu/quality_*.json`` from ``quality.py`` (first ablation) and
``benchmarks/results/gpu/quality_search.json`` from ``quality_search.py`` (new levers, search,
seeds, extra data, ensembles). The classical baselines are fitted again on this machine (CPU, about
a minute) at k = 5, 8, 12 and 16 with ``min_context=5``, so every row scores the same windows.

    python benchmarks/quality_report.py --data ../shared/data/linux-docs-minilm.npz --out reports/quality.md
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from lvm_search.data import load_data
from lvm_search.metrics import baselines

RESULTS = Path(__file__).resolve().parent / "results" / "gpu"
KS = (5, 8, 12, 16)
TARGET_SINGLE, TARGET_ENSEMBLE = 6.5, 1.0  # % over the k=5 mean of context; % over the best single model


def pct(x: float, base: float) -> str:
    return f"{100 * (x / base - 1):+.2f}%"


def table(header: list[str], rows: list[list]) -> list[str]:
    aligns = ["---" if i < 2 else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |",
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows]]


def metric_cells(m: dict, mean_test: float) -> list:
    return [f"{m['val']['cosine']:.4f}", f"{m['test']['cosine']:.4f}", pct(m["test"]["cosine"], mean_test),
            f"{m['test']['hit5']:.3f}", f"{m['test']['backward_margin']:+.4f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/linux-docs-minilm.npz"))
    ap.add_argument("--extra", default=str(Path(__file__).resolve().parents[2] / "shared/data/python-docs-minilm.npz"),
                    help="the extra training corpus of the second call")
    ap.add_argument("--out", default="reports/quality.md")
    args = ap.parse_args()

    rec = json.loads((RESULTS / "quality_search.json").read_text())
    first = [json.loads((RESULTS / f"quality_{n}.json").read_text()) for n in ("amn_lstm", "gru_transformer", "transformer_residual")]
    datas = {k: load_data(args.data, k=k, min_context=5) for k in KS}
    if datas[5].fingerprint != rec["data"]["fingerprint"]:
        raise SystemExit(f"{args.data}: fingerprint {datas[5].fingerprint} is not the GPU run's {rec['data']['fingerprint']}")
    base = {k: baselines(d) for k, d in datas.items()}
    extra_windows = len(load_data(args.data, k=5, extra_train=(args.extra,)).splits["train"]) - len(datas[5].splits["train"])
    mean_test = base[5]["mean"]["test"]["cosine"]
    # The bar "best classical baseline" is picked on val among recency and ridge at every k.
    classical = max(((k, n) for k in KS for n in ("recency", "ridge")), key=lambda kn: base[kn[0]][kn[1]]["val"]["cosine"])
    bar = base[classical[0]][classical[1]]
    ablation = {(r["arch"], r["variant"]): r for r in rec["ablation"] if "error" not in r}
    archs = list(rec["search"])
    best = {a: rec["search"][a]["best"][0] for a in archs}
    single_arch = max(archs, key=lambda a: best[a]["scores"]["val"]["cosine"])  # chosen on val
    single = best[single_arch]["scores"]
    ens = rec["ensemble"]
    k_rows = {5: "residual (k=5)", 8: "k=8", 12: "k=12", 16: "k=16"}
    best_k = {a: max(KS, key=lambda k: ablation[(a, k_rows[k])]["val"]["cosine"]) for a in archs}
    sizes = ", ".join(f"{a} {b['params_count']:,}" for a, b in best.items())
    peaks = ", ".join(f"{a} epoch {b['best_epoch']} of {b['params']['epochs']}" for a, b in best.items())
    seeds = rec["confirm_ensembles"]["linux-only members"]

    out = [
        "# Model quality on held-out documents (issue 9)",
        "",
        f"Data `{Path(rec['data']['source']).name}` (fingerprint `{rec['data']['fingerprint']}` at k=5), split 80/10/10 by document: "
        f"{rec['splits']['train']['windows']:,} / {rec['splits']['val']['windows']:,} / {rec['splits']['test']['windows']:,} "
        "train/val/test windows. Every number below scores exactly these val/test windows: longer contexts use "
        "`min_context=5` (positions before a document's start are zero pads), so k=8/12/16 predict the same targets as k=5. "
        "Everything was chosen on **val**; test was scored once, at the end, and chose nothing.",
        "",
        f"GPU runs: {rec['device']}, torch {rec['torch']}, optuna {rec['optuna']} "
        f"(`benchmarks/quality_search.py`, two calls: {rec['total_s']:.0f} s and {rec['confirm_s']:.0f} s). "
        "Baselines: fitted on train (ridge's lambda and recency's decay on val) on this machine by "
        "`python benchmarks/quality_report.py`, which writes this file.",
        "",
        "## Targets",
        "",
        *table(["target", "result", "verdict"], [
            [f"best searched single model ≥ +{TARGET_SINGLE}% test cosine over the mean of context (k=5, test {mean_test:.4f})",
             f"{single_arch} (best on val): test {single['test']['cosine']:.4f}, {pct(single['test']['cosine'], mean_test)}",
             "**not met**" if 100 * (single["test"]["cosine"] / mean_test - 1) < TARGET_SINGLE else "met"],
            [f"every architecture's best ≥ the best classical baseline (chosen on val: {classical[1]} at k={classical[0]}, test {bar['test']['cosine']:.4f})",
             ", ".join(f"{a} {best[a]['scores']['test']['cosine']:.4f}" for a in archs),
             "met" if all(best[a]["scores"]["test"]["cosine"] >= bar["test"]["cosine"] for a in archs) else "**not met**"],
            [f"ensemble ≥ +{TARGET_ENSEMBLE}% over the best single model",
             f"{ens['test']['cosine']:.4f}, {pct(ens['test']['cosine'], single['test']['cosine'])} "
             f"(12 members, 3 seeds × 4: {seeds['test']['cosine']:.4f}, {pct(seeds['test']['cosine'], single['test']['cosine'])})",
             "**not met**" if 100 * (ens["test"]["cosine"] / single["test"]["cosine"] - 1) < TARGET_ENSEMBLE else "met"],
        ]),
        "",
        "## Classical baselines by context length",
        "",
        *table(["baseline", "k", "val cos", "test cos", "test gain vs mean (k=5)", "Hit@5", "backward margin", "fitted"], [
            [n, k, *metric_cells(base[k][n], mean_test)[:2], pct(base[k][n]["test"]["cosine"], mean_test),
             f"{base[k][n]['test']['hit5']:.3f}", f"{base[k][n]['test']['backward_margin']:+.4f}",
             f"decay {base[k][n]['decay']:.2f}" if n == "recency" else f"lambda {base[k][n]['lambda']:g}" if n == "ridge" else "–"]
            for k in KS for n in (("mean", "last", "recency", "ridge") if k == 5 else ("recency", "ridge"))
        ]),
        "",
        "## Ablation 1: regularisation and loss levers (k=5, 20 epochs, batch 256, lr 1e-3)",
        "",
        "From the first GPU session (`benchmarks/quality.py`). Residual over the mean helps every architecture; "
        "the rest are within ±0.003 of it or worse, so they stay off and out of the spaces (dropout and weight "
        "decay stay searched ranges).",
        "",
        *table(["model", "variant", "val cos", "test cos", "test gain vs mean", "Hit@5", "backward margin"],
               [[r["arch"], r["variant"], *metric_cells(r, mean_test)] for f in first for r in f["rows"]]),
        "",
        "## Ablation 2: context length, recency-weighted residual base, EMA (residual on, 20 epochs)",
        "",
        "Δ val is against the same architecture's residual k=5 row; a lever is kept when it helps on val.",
        "",
        *table(["model", "variant", "val cos", "Δ val", "test cos", "test gain vs mean", "Hit@5", "backward margin", "best epoch"], [
            [a, v, f"{r['val']['cosine']:.4f}", f"{r['val']['cosine'] - ablation[(a, 'residual (k=5)')]['val']['cosine']:+.4f}",
             *metric_cells(r, mean_test)[1:], r["best_epoch"]]
            for a in archs for v in ("residual (k=5)", "k=8", "k=12", "k=16", "recency base 0.75", "EMA 0.998")
            if (r := ablation.get((a, v)))
        ]),
        "",
        "Kept: the recency-weighted base helps all four (searched as `base_decay` in [0.5, 1]); EMA helps three of four "
        "and ties the Transformer (searched as `ema` in {0, 0.99, 0.998}); the best k on val becomes each space's "
        f"`data.k`: {', '.join(f'{a} {k}' for a, k in best_k.items())}. "
        f"The search ran with the k chosen from the first call's ablation ({', '.join(f'{a} {k}' for a, k in rec['chosen_k'].items())}); "
        "the Transformer's k rows were cut by that call's time box and finished in the second call.",
        "",
        "## Learning curve (residual k=5 recipe, share of the training documents)",
        "",
        *table(["model", "25% val", "50% val", "100% val", "gain 25→50%", "gain 50→100%"], [
            [a, *(f"{ablation[(a, v)]['val']['cosine']:.4f}" for v in ("25% of train docs", "50% of train docs", "residual (k=5)")),
             f"{ablation[(a, '50% of train docs')]['val']['cosine'] - ablation[(a, '25% of train docs')]['val']['cosine']:+.4f}",
             f"{ablation[(a, 'residual (k=5)')]['val']['cosine'] - ablation[(a, '50% of train docs')]['val']['cosine']:+.4f}"]
            for a in archs if all((a, v) in ablation for v in ("25% of train docs", "50% of train docs"))
        ]),
        "",
        "## Search: Optuna TPE + successive halving over `spaces/<arch>.yaml`",
        "",
        f"{rec['args']['search_workers']} worker processes per architecture shared one journal study and the GPU for "
        f"{rec['search_s']:.0f} s (all four searches at once). Same sampler settings as `lvm-search run` (multivariate TPE, "
        "reference configuration enqueued as trial 0) and ASHA's rule as Optuna's `SuccessiveHalvingPruner` "
        "(grace 3 epochs, factor 3); Ray itself does not fit the GPU machine's 64 MiB transfer limit, so it was left out there. "
        "The spaces then still searched `residual`; the shipped spaces fix it on (every best trial chose it).",
        "",
        *table(["model", "k", "trials (complete / pruned)", "best trial", "val cos", "test cos", "test gain vs mean", "Hit@5", "backward margin", "configuration"], [
            [a, rec["chosen_k"][a],
             f"{len(s['trials'])} ({sum(t['state'] == 'COMPLETE' for t in s['trials'])} / {sum(t['state'] == 'PRUNED' for t in s['trials'])})",
             f"#{s['best'][0]['number']}", *metric_cells(s["best"][0]["scores"], mean_test),
             ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in s["best"][0]["params"].items())]
            for a, s in rec["search"].items()
        ]),
        "",
        "## Seeds and more data (second call)",
        "",
        "Each architecture's best configuration retrained with seeds 0, 1, 2, on linux-docs alone and with every window "
        f"of `python-docs-minilm.npz` added to train (`--extra-train`, +{extra_windows:,} windows, "
        f"+{100 * extra_windows / rec['splits']['train']['windows']:.0f}%). "
        "Mean ± sd over the three seeds:",
        "",
        *table(["model", "val (linux)", "test (linux)", "val (+python docs)", "test (+python docs)", "Δ val"], [
            [a, *[f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}" for v in (
                [r[s]["cosine"] for r in rec["confirm"] if r["arch"] == a and not r["extra"] and "error" not in r] for s in ("val", "test"))],
             *[f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}" for v in (
                 [r[s]["cosine"] for r in rec["confirm"] if r["arch"] == a and r["extra"] and "error" not in r] for s in ("val", "test"))],
             f"{statistics.mean(r['val']['cosine'] for r in rec['confirm'] if r['arch'] == a and r['extra']) - statistics.mean(r['val']['cosine'] for r in rec['confirm'] if r['arch'] == a and not r['extra']):+.4f}"]
            for a in archs
        ]),
        "",
        "The extra corpus lowers val for every architecture, so it is not used; `--extra-train` stays as a data option.",
        "",
        "## Ensembles (weights fitted on val: greedy vs simplex, whichever is better on val)",
        "",
        *table(["ensemble", "members", "method", "val cos", "test cos", "test gain vs best single", "Hit@5"], [
            [name, len(e["members"]), e["method"], f"{e['val']['cosine']:.4f}", f"{e['test']['cosine']:.4f}",
             pct(e["test"]["cosine"], single["test"]["cosine"]), f"{e['test']['hit5']:.3f}"]
            for name, e in (("best trial of each architecture (the default recipe)", rec["ensemble"]),
                            ("top 3 trials of each architecture", rec["ensemble_top3"]),
                            *((f"3 seeds × 4 architectures, {k}", v) for k, v in rec["confirm_ensembles"].items()))
        ]),
        "",
        "## Final leaderboard on linux-docs (test; models and ensemble chosen on val)",
        "",
    ]
    rows = [(f"ensemble of the four best trials ({ens['method']})", ens)] + \
           [(f"{a} (best of {len(rec['search'][a]['trials'])} trials, k={rec['chosen_k'][a]})", best[a]["scores"]) for a in archs] + \
           [(f"{n} (k={k})", base[k][n]) for k in KS for n in (("mean", "last", "recency", "ridge") if k == 5 else ("recency", "ridge"))]
    rows.sort(key=lambda r: -r[1]["test"]["cosine"])
    out += table(["rank", "model", "test cos", "val cos", "test gain vs mean (k=5)", "Hit@1", "Hit@5", "MRR", "backward margin"], [
        [i, name, f"{m['test']['cosine']:.4f}", f"{m['val']['cosine']:.4f}", pct(m["test"]["cosine"], mean_test),
         f"{m['test']['hit1']:.3f}", f"{m['test']['hit5']:.3f}", f"{m['test']['mrr']:.3f}", f"{m['test']['backward_margin']:+.4f}"]
        for i, (name, m) in enumerate(rows, 1)
    ])
    lc = {a: [ablation[(a, v)]["val"]["cosine"] for v in ("25% of train docs", "50% of train docs", "residual (k=5)")] for a in archs}
    band = (min(b["scores"]["val"]["cosine"] for b in best.values()), max(b["scores"]["val"]["cosine"] for b in best.values()))
    spread = max(s["best"][0]["scores"]["val"]["cosine"] - s["best"][-1]["scores"]["val"]["cosine"] for s in rec["search"].values())
    sd = max(statistics.stdev(r["val"]["cosine"] for r in rec["confirm"] if r["arch"] == a and not r["extra"]) for a in archs)
    out += [
        "",
        "## What bounds it",
        "",
        f"- **The models are data-bound, not capacity- or search-bound.** Doubling the training documents from 50% to "
        f"100% gains {', '.join(f'{a} {lc[a][2] - lc[a][1]:+.4f}' for a in archs)} val (the Transformer's reference recipe "
        f"scores the same at every size, so its curve says nothing); the GRU's curve still rises steeply "
        f"({lc['gru'][0]:.4f} → {lc['gru'][1]:.4f} → {lc['gru'][2]:.4f}). TPE preferred small models "
        f"({sizes} parameters, from spaces reaching several million) that peak early or only at a small learning rate "
        f"({peaks}): on {rec['splits']['train']['windows']:,} training windows, more capacity did not pay.",
        f"- **The searches plateaued:** the three best trials of each architecture lie within {spread:.4f} val of each "
        f"other, and the four architectures' best lie within {band[1] - band[0]:.4f} ({band[0]:.4f}-{band[1]:.4f} val).",
        "- **More data of another kind does not help:** 10,433 Python-docs windows added to train lower val for all four.",
        f"- **The result is stable:** the val standard deviation over three seeds of each best configuration is at most {sd:.4f}, "
        "so the gap to the target is not noise that more trials would close.",
        f"- **The architectures make the same errors:** the best trials of four different architectures, and 12 models over "
        f"3 seeds, ensemble to only {pct(ens['test']['cosine'], single['test']['cosine'])} and "
        f"{pct(seeds['test']['cosine'], single['test']['cosine'])} over the best single model.",
        f"- **What was gained is real:** +{100 * (single['test']['cosine'] / mean_test - 1):.2f}% over the mean of context and "
        f"{pct(single['test']['cosine'], bar['test']['cosine'])} over the best classical baseline on test, on documents no "
        f"choice ever saw (the reference work's +6.5% was on a leaked random split). The +{TARGET_SINGLE}% target would need "
        f"test {mean_test * (1 + TARGET_SINGLE / 100):.4f}: {mean_test * (1 + TARGET_SINGLE / 100) - single['test']['cosine']:.4f} more "
        "than reached. The remaining levers are in-domain data (more Linux-like documents) and a larger encoder's vectors.",
        "",
    ]
    Path(args.out).write_text("\n".join(out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
