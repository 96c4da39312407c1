"""The ablation's section of reports/quality.md, from the ``ablation_<corpus>.json`` files that
``benchmarks/ablation.py`` writes. Every number and verdict is read or computed from those files; this
module imports neither the study nor torch nor the package.
"""

from __future__ import annotations

import json
from pathlib import Path

from _markdown import markdown_table

DEFAULT = "default"  # the name ablation.py gives the unchanged recipe in its result files


def ablation_section(folder: str | Path) -> list[str]:
    """## Ablation: one table per ``ablation_<corpus>.json`` in ``folder``; every number from the file."""
    results = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("ablation_*.json"))]
    if not results:
        return []
    first = results[0]
    recipe = first["recipe"]
    lines = [
        "## Ablation: which levers of the default recipe matter",
        "",
        f"Generated from `benchmarks/ablation.py`: each row is `lvm-search train --arch {first['arch']}` "
        f"from the default recipe (the shipped space's trial 0: k {recipe['k']}, {recipe['epochs']} epochs, "
        + ", ".join(f"{key} {value}" for key, value in recipe["sets"].items())
        + f", residual {'on' if recipe['residual'] else 'off'}, base decay {recipe['base_decay']}, "
        f"EMA {recipe['ema']}) with one change, at min_context {first['min_context']} for every k so every "
        "row scores the same windows. Each run keeps the epoch that was best on val, as the trainer does. "
        "Val is the mean over seeds (± sd); Δval is the seed-paired mean difference from the default. "
        "Test is the per-window cosine averaged over seeds; Δtest pairs seed s of the row with seed s of "
        "the default, averages the per-window differences over seeds and bootstraps over test documents "
        "(95%). Val decides; test says whether val's verdict held. Wall time: one run, mean over seeds, "
        "one torch thread.",
        "",
    ]
    for result in results:
        lines += ablation_table(result)
    return lines


def _delta(x: float) -> str:
    """A difference at 4 decimals, or in scientific notation where 4 decimals would read 0."""
    return f"{x:+.4f}" if abs(x) >= 5e-5 or x == 0 else f"{x:+.1e}"


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def ablation_table(result: dict) -> list[str]:
    comparison, plan = result["comparison"], result["plan"]
    default = comparison.get(DEFAULT)
    rows = []
    for name in plan:
        row = comparison.get(name)
        if row is None:
            rows.append([name, "not run", "", "", "", "", "", ""])
            continue
        sd = f" ± {row['val_sd']:.4f}" if row["val_sd"] is not None else ""
        if "test_delta" in row:
            d = row["test_delta"]
            verdict = "higher" if d["low"] > 0 else "lower" if d["high"] < 0 else "no difference"
            delta_test = f"{_delta(d['value'])} [{_delta(d['low'])}, {_delta(d['high'])}] ({verdict})"
            better = sum(v > 0 for v in row["val_delta_by_seed"])
            delta_val = f"{_delta(row['val_delta'])} ({better}/{len(row['val_delta_by_seed'])} seeds up)"
        else:
            delta_test = delta_val = "(the baseline)" if name == DEFAULT else "no default to pair"
        rows.append(
            [
                name,
                f"{row['val_mean']:.4f}{sd}",
                delta_val,
                f"{row['test']['value']:.4f}",
                delta_test,
                ", ".join(str(e) for e in row["best_epochs"]),
                len(row["seeds"]),
                _seconds(row["wall_s_mean"]),
            ]
        )
    missing = [
        f"{name} seed {seed}"
        for name in plan
        for seed in result["seeds"]
        if seed not in (comparison.get(name) or {}).get("seeds", [])
    ]
    lines = [
        f"### {result['corpus']} ({result['arch']})",
        "",
        f"`{Path(result['data']).name}`: {result['windows']['val']:,} val and {result['windows']['test']:,} "
        f"test windows ({result['test_documents']} test documents); seeds {result['seeds']}; "
        f"{len(result['runs'])} runs, {_seconds(sum(r['wall_s'] for r in result['runs']))} of training wall "
        f"in all; {result['machine']}; "
        f"commit {result['commit']}" + (f"; {result['note']}" if result.get("note") else "") + ".",
        "",
        markdown_table(
            [
                "variant",
                "val cosine",
                "Δval",
                "test cosine",
                "Δtest [95% CI]",
                "best epoch by seed",
                "seeds",
                "wall / run",
            ],
            rows,
        ),
        "",
    ]
    if missing:
        lines += [f"Not finished: {', '.join(missing)}.", ""]
    if default:
        lines += [longer_epochs_sentence(result), ""]
    return lines


def longer_epochs_sentence(result: dict) -> str:
    """Whether 20, 35 and 50 epochs paid on val, and what test said: computed, for the README too."""
    comparison = result["comparison"]
    default = comparison[DEFAULT]
    longer = longer_epochs(result["plan"])
    parts = []
    for more in longer:
        row = comparison.get(f"{more} epochs")
        if row is None or "test_delta" not in row:
            continue
        d = row["test_delta"]
        parts.append(
            f"{more}: val {_delta(row['val_delta'])}, "
            f"test {_delta(d['value'])} [{_delta(d['low'])}, {_delta(d['high'])}]"
        )
    if not parts:
        return "Longer training: not measured yet."
    deltas = [comparison[f"{m} epochs"]["val_delta"] for m in longer if f"{m} epochs" in comparison]
    largest, sd = max(deltas), default["val_sd"] or 0.0
    paid = largest > sd  # a gain within the seed-to-seed spread of the default is no gain
    return (
        f"Longer training against {result['recipe']['epochs']} epochs (val {default['val_mean']:.4f} "
        f"± {sd:.4f} over seeds; best epochs {', '.join(str(e) for e in default['best_epochs'])}): "
        + "; ".join(parts)
        + (
            f". Longer training paid on val: up to {_delta(largest)}, above the seeds' sd."
            if paid
            else f". Longer training did not pay on val: its best change, {_delta(largest)}, is within "
            f"the default's seed-to-seed sd of {sd:.4f}."
        )
    )


def longer_epochs(plan: dict) -> list[int]:
    """The epoch counts of the plan's longer-training variants (those named "N epochs"), in its order."""
    return [v["epochs"] for name, v in plan.items() if name != DEFAULT and name == f"{v['epochs']} epochs"]
