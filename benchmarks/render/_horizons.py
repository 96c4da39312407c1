"""The horizons' section of reports/quality.md, from the ``horizons_<corpus>.json`` files that
``benchmarks/horizons.py`` writes; every number from the files. Imports neither the study nor torch.
"""

from __future__ import annotations

import json
from pathlib import Path


def _ci(i: dict, spec: str = ".4f", suffix: str = "") -> str:
    return f"{i['value']:{spec}}{suffix} [{i['low']:{spec}}, {i['high']:{spec}}]"


def _horizon_findings(rows: list[dict]) -> list[str]:
    """Sentences computed from one corpus's rows: what the table says, nothing it does not."""
    longest = max(row["horizon"] for row in rows)
    far = [row for row in rows if row["horizon"] == longest]
    above = sorted(row["arch"] for row in far if row["direct"]["gain_pct"]["low"] > 0)
    rolled = [row for row in rows if row.get("rolled")]
    trained_wins = sum(row["direct"]["test"]["value"] > row["rolled"]["test"]["value"] for row in rolled)
    rolled_below = sorted(
        f"{row['arch']} h={row['horizon']}" for row in rolled if row["rolled"]["gain_pct"]["high"] < 0
    )
    return [
        f"At h = {longest}, {len(above)} of {len(far)} architectures trained at that horizon stay above "
        f"the best baseline with the gain's interval excluding 0 ({', '.join(above) or 'none'}). "
        f"Trained at h beats the rolled h = 1 model in {trained_wins} of {len(rolled)} (architecture, "
        "h > 1) pairs on the point estimate (their difference has no paired interval here); the rolled "
        f"model falls below the baseline, interval excluding 0, in: {', '.join(rolled_below) or 'none'}.",
        "",
    ]


def horizons_section(folder: str | Path) -> list[str]:
    """## Horizons: one table per ``horizons_<corpus>.json`` in ``folder``; every number from the file."""
    results = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("horizons_*.json"))]
    if not results:
        return []
    lines = [
        "## Horizons: predicting the passage h steps ahead",
        "",
        "Generated from `benchmarks/horizons.py`. Each architecture's shipped trial 0 (its space's k, "
        "epochs and settings, min_context 5, seed 0) trained with `lvm-search train --horizon h`, scored "
        "with `lvm-search eval --json` on the test documents; *rolled* is the h = 1 checkpoint predicting "
        "h steps ahead from its own predictions (`lvm-search eval --horizon h`), on the same windows. The "
        "best baseline is chosen on val among mean, last vector, recency-weighted mean and ridge, fitted at "
        "that h. Intervals: 95%, bootstrap over test documents; the gain's is paired.",
        "",
    ]
    for result in results:
        lines += [
            f"**{result['corpus']}** (commit `{(result['commit'] or '?')[:10]}`)",
            "",
            "| h | model | test cosine [95% CI] | gain over best baseline [95% CI] | rolled h=1 model: test "
            "[95% CI] | rolled: gain [95% CI] | best baseline (on val): test |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in sorted(result["rows"], key=lambda r: (r["horizon"], r["arch"])):
            d, r = row["direct"], row.get("rolled")
            gain = _ci(d["gain_pct"], "+.2f", "%")
            rolled_cells = (
                f"{_ci(r['test'])} | {_ci(r['gain_pct'], '+.2f', '%')}" if r else "(the same model) | –"
            )
            lines.append(
                f"| {row['horizon']} | {row['arch']} | {_ci(d['test'])} | {gain} | {rolled_cells} | "
                f"{d['best_baseline']} {d['baseline_test']['value']:.4f} |"
            )
        windows = {row["horizon"]: row["direct"]["windows"] for row in result["rows"]}
        lines += ["", *_horizon_findings(result["rows"])]
        lines += [
            "Test windows by h: "
            + ", ".join(f"{h}: {n:,}" for h, n in sorted(windows.items()))
            + f". Wall time {result['wall_s'] / 60:.1f} min (two runs at a time).",
            "",
        ]
    return lines
