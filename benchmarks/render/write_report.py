"""Turn the benchmark JSON results into reports/benchmarks.md, with plots, each table with its machine.

Reads every ``*.json`` below ``--results`` (default ``benchmarks/results``) that a benchmark script
wrote and renders one section per benchmark. Where an issue set a target, the section states it and
whether the result meets it, computed here from the numbers in the file; plots go to
``reports/benchmarks_plots/``.

    python benchmarks/render/write_report.py
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import sys
from pathlib import Path

from _markdown import machine_line, markdown_table
from matplotlib.figure import Figure

REPO = Path(__file__).resolve().parents[2]
ORDER = [
    "search_efficiency",
    "search_overhead",
    "scale",
    "report_speed",
    "platform_search",
    "trainer_throughput",
    "time_to_quality",
    "trials_per_gpu",
]
TITLES = {
    "trainer_throughput": "Trainer throughput: ours against the reference recipe",
    "time_to_quality": "Wall time to the reference's best val cosine",
    "trials_per_gpu": "Concurrent trainer processes on one GPU",
    "search_overhead": "Search overhead: the README's main job, before and after",
    "search_efficiency": "Search efficiency: samplers and schedulers at an equal budget of epochs",
    "scale": "Scale: time and memory against corpus size, before and after",
    "report_speed": "`lvm-search report` on the packaged sample, before and after",
    "platform_search": "The four shipped spaces through the product on one GPU",
}
THROUGHPUT_TARGETS = {"cuda": 20.0, "cpu": 3.0}  # ours / ref, from issue 6


def load_results(folder: Path) -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(folder.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"skipping {path}: {e}", file=sys.stderr)
            continue
        if isinstance(record, dict) and "benchmark" in record and ("table" in record or "archs" in record):
            found.append((path, record))
    return found


def machine(record: dict) -> str:
    m = record.get("machine")
    return machine_line(m) if isinstance(m, dict) else str(m or record.get("device", "?"))


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def save(fig: Figure, plots: Path, name: str) -> str:
    plots.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, dpi=110, format="png")
    (plots / name).write_bytes(buffer.getvalue())
    return f"![{name}]({plots.name}/{name})"


# --- search efficiency ---------------------------------------------------------------------------


def efficiency_section(r: dict, plots: Path) -> list[str]:
    rows = {row["arm"]: row for row in r["results"]}
    seeds = r["settings"]["seeds"]
    budget = r["settings"]["budget_epochs"]
    lines = []
    if "random" in rows:
        default = "auto_asha" if "auto_asha" in rows else "tpe_asha"
        d, rand = rows[default], rows["random"]
        seeds = d.get("seeds", seeds)  # each arm's own seeds (older files: one list for all)
        random_epochs = statistics.mean(
            rand["per_seed"][str(s)]["epochs"]
            if str(s) in rand["per_seed"]
            else rand["per_seed"][s]["epochs"]
            for s in seeds
        )
        reach = d["epochs_to_random_best"]
        reach_mean = statistics.mean(reach) if all(map(math.isfinite, reach)) else math.inf
        # The issue asks for at least 5 seeds: fewer cannot show either target, whatever they say.
        enough = len(seeds) >= 5
        half = enough and reach_mean <= random_epochs / 2
        at_least = enough and d["at_least_random"] >= 4 * len(seeds) / 5
        lines += [
            f"Target (issue 15), for the shipped default ({default}: the shipped spaces have choices, so "
            "`sampler: auto` is multivariate TPE):",
            "",
            markdown_table(
                ["target", "result", ""],
                [
                    [
                        "reaches random search's final best val cosine in at most half of random search's "
                        "epochs "
                        "(mean over seeds)",
                        f"{reach_mean:.1f} epochs against {random_epochs / 2:.1f} "
                        f"(reached on {sum(map(math.isfinite, reach))} of {len(seeds)} seeds)",
                        met(half),
                    ],
                    [
                        f"at the full budget ({budget} epochs) at least as good as random search on at "
                        "least 4 of 5 seeds",
                        f"{d['at_least_random']} of {len(seeds)}",
                        met(at_least),
                    ],
                ],
            ),
            "",
        ]
        if not enough:
            lines += [
                f"Only {len(seeds)} of the 5 seeds the issue asks for ran: neither target is shown.",
                "",
            ]
    lines += [anytime_plot(r, plots), ""]
    return lines


def anytime_plot(r: dict, plots: Path) -> str:
    fig = Figure(figsize=(11, 4))
    by_epochs, by_time = fig.subplots(1, 2)
    budget = r["settings"]["budget_epochs"]
    grid = list(range(1, budget + 1))
    for row in r["results"]:
        curves = []
        for seed_result in row["per_seed"].values():
            curve = seed_result["curve"]
            best, values, i = -math.inf, [], 0
            for spent in grid:
                while i < len(curve) and curve[i][0] <= spent:
                    best = curve[i][2]
                    i += 1
                values.append(best if best > -math.inf else float("nan"))
            curves.append(values)
        mean = [statistics.mean(v) for v in zip(*curves)]
        spread = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in zip(*curves)]
        (line,) = by_epochs.plot(grid, mean, label=row["arm"])
        by_epochs.fill_between(
            grid,
            [m - s for m, s in zip(mean, spread)],
            [m + s for m, s in zip(mean, spread)],
            color=line.get_color(),
            alpha=0.15,
        )
        for seed_result in row["per_seed"].values():
            curve = seed_result["curve"]
            by_time.plot(
                [c[1] for c in curve], [c[2] for c in curve], color=line.get_color(), alpha=0.5, linewidth=0.8
            )
    by_epochs.set(
        xlabel="epochs spent by the search",
        ylabel="best val cosine so far",
        title="Anytime: mean ± sd over seeds",
    )
    by_time.set(xlabel="seconds since the first epoch", title="Each seed against wall time")
    by_epochs.legend()
    low = min(c[0][2] for row in r["results"] for c in [s["curve"] for s in row["per_seed"].values()])
    by_epochs.set_ylim(bottom=low)
    by_time.set_ylim(bottom=low)
    return save(fig, plots, "search_efficiency_anytime.png")


# --- scale ------------------------------------------------------------------------------------------


def scale_section(r: dict, plots: Path) -> list[str]:
    results = r["results"]
    checks = []
    for res in results:
        if res["version"] != "after":
            continue
        for name, c in res["commands"].items():
            if "peak_pss_gb" in c:
                checks.append(
                    [
                        f"{res['passages']:,}: {name} peak memory <= 3 x float32 data + 2 GB",
                        f"{c['peak_pss_gb']:.2f} GB against {res['memory_target_gb']:.2f} GB",
                        met(c["exit"] == 0 and c["peak_pss_gb"] <= res["memory_target_gb"]),
                    ]
                )
    after = {res["passages"]: res for res in results if res["version"] == "after"}
    if after:
        small, large = min(after), max(after)
        if large > small:
            for name in after[small]["commands"]:
                a, b = after[small]["commands"][name], after[large]["commands"].get(name, {})
                if "wall_s" in a and "wall_s" in b:
                    ratio = b["wall_s"] / a["wall_s"]
                    limit = 1.2 * large / small
                    checks.append(
                        [
                            f"{name}: time from {small:,} to {large:,} passages grows at most linearly "
                            f"(ratio <= {limit:.0f}x)",
                            f"{ratio:.1f}x",
                            met(ratio <= limit),
                        ]
                    )
        for res in (res for res in results if res["passages"] == large):
            run = res["commands"].get("run", {})
            if "trials" not in run:
                continue
            text, overheads = search_overheads(run)
            checks.append(
                [
                    f"{large:,} passages, {res['version']}: the search's own overhead < 20% of its "
                    "trials' time",
                    text,
                    met(max(overheads) < 0.2) if res["version"] == "after" else "before",
                ]
            )
    return [
        "Targets (issue 18), computed from the file:",
        "",
        markdown_table(["target", "result", ""], checks),
        "",
        scale_plot(results, plots),
        "",
    ]


def search_overheads(run: dict) -> tuple[str, list[float]]:
    """The search's overhead two ways: against both trial slots full for the trials' summed time
    (idle slots count as overhead), and against the time at least one trial was running."""
    trials = run["trials"]
    slots = trials["sum_time_total_s"] / 2  # two trials at once (the space's max_concurrent)
    overheads = [(run["wall_s"] - slots) / slots]
    text = (
        f"{100 * overheads[0]:.0f}% with both slots full (wall {run['wall_s']:.0f} s, trials "
        f"{trials['sum_time_total_s']:.0f} s over 2 at once)"
    )
    if "busy_s" in trials:  # older result files lack it
        overheads.append((run["wall_s"] - trials["busy_s"]) / trials["busy_s"])
        text += f"; {100 * overheads[1]:.0f}% of the {trials['busy_s']:.0f} s a trial was running"
    return text, overheads


def scale_plot(results: list[dict], plots: Path) -> str:
    fig = Figure(figsize=(11, 4))
    by_time, by_memory = fig.subplots(1, 2)
    versions = sorted({r["version"] for r in results})
    commands = sorted({name for r in results for name in r["commands"]})
    styles = {v: s for v, s in zip(versions, ["--", "-", ":", "-."])}
    for command in commands:
        color = None
        for version in versions:
            points = [
                (r["passages"], r["commands"][command])
                for r in results
                if r["version"] == version and command in r["commands"] and "wall_s" in r["commands"][command]
            ]
            if not points:
                continue
            xs = [p for p, _ in points]
            (line,) = by_time.plot(
                xs,
                [c["wall_s"] for _, c in points],
                styles[version],
                marker="o",
                color=color,
                label=f"{command} ({version})",
            )
            color = line.get_color()
            by_memory.plot(
                xs, [c["peak_pss_gb"] for _, c in points], styles[version], marker="o", color=color
            )
    for ax, label in ((by_time, "wall time (s)"), (by_memory, "peak memory of all processes (GB, PSS)")):
        ax.set(xscale="log", yscale="log", xlabel="passages", ylabel=label)
    by_time.legend(fontsize=7)
    return save(fig, plots, "scale.png")


# --- the rest -------------------------------------------------------------------------------------


def report_speed_section(r: dict, on_sample: bool) -> list[str]:
    """Issue 14's target is for the packaged sample; the other files measure larger storages."""
    after = r["results"].get("after")
    lines = []
    if "load_avg" in r:
        lines.append(f"Load average when it started: {', '.join(f'{x:.1f}' for x in r['load_avg'])}.")
    if after and on_sample:
        lines.append(
            f"Target (issue 14): at most 15 s on this 2-core machine: {after['median_s']:.1f} s, "
            f"{met(after['median_s'] <= 15)}."
        )
    if "ratio" in r:
        lines.append(f"Before / after: {r['ratio']:.1f}x (medians, measured alternately in one run).")
    return [*lines, ""]


def overhead_section(r: dict) -> list[str]:
    after = next((x for x in r["results"] if x["version"] == "after"), None)
    if not after:
        return []
    if r.get("data"):  # the target is for the README's main job, on the packaged sample
        return [
            f"The same command on {r['data']}: overhead {after['overhead_pct']:.1f}% of its wall time.",
            "",
        ]
    lines = [
        f"Target (issue 15): the main job's own overhead under 10% of its wall time: "
        f"{after['overhead_pct']:.1f}%, {met(after['overhead_pct'] < 10)}.",
    ]
    if "ray_tune_floor_s" in r:  # older result files lack it
        floor, trials = r["ray_tune_floor_s"], after["trial_time_s"]
        lines += [
            "",
            f"The floor: a process that only starts Ray as the product does, runs two no-op trials "
            f"through Tune and stops takes {floor:.1f} s here (median of "
            f"{', '.join(f'{x:.1f}' for x in r['ray_tune_floor_runs_s'])} s). With the main job's "
            f"{trials:.0f} s of trial time, under 10% needs at most {trials / 9:.1f} s of overhead; "
            f"Ray Tune alone makes it at least {100 * floor / (trials + floor):.0f}%"
            + (
                f", and importing torch, Optuna and Ray Tune alone takes {r['imports_s']:.1f} s"
                if "imports_s" in r
                else ""
            )
            + f". The remaining "
            f"{after['overhead_s'] - floor:.1f} s are the product's own (the data, torch in the "
            "first trial's actor, the Optuna study, the summary).",
        ]
    return [*lines, ""]


def platform_section(r: dict) -> list[str]:
    rows = [
        [
            arch,
            a["trials"],
            a["stopped_early"],
            a["concurrency"],
            f"{a['wall_s']:.0f}",
            f"{a['best_val']:.4f}",
            f"{a['test']:.4f} [{a['test_interval']['low']:.4f}, {a['test_interval']['high']:.4f}]",
        ]
        for arch, a in r["archs"].items()
    ]
    trials = sum(a["trials"] for a in r["archs"].values())
    return [
        f"Device: {r['device']}.",
        "",
        markdown_table(
            ["arch", "trials", "stopped early", "at once", "wall s", "best val", "test [95% CI]"], rows
        ),
        "",
        f"All {trials} trials in {r['wall_s'] / 60:.1f} minutes (target 10): {met(r['wall_s'] <= 600)}. "
        f"The LSTM search again at `max_concurrent: 2`: {r['lstm_max_concurrent_2']['ratio_to_auto']:.2f}x "
        "the wall time of `auto`.",
        "",
    ]


def throughput_targets(results: list[tuple[Path, dict]]) -> list[str]:
    rows = []
    for path, r in results:
        if r["benchmark"] != "trainer_throughput":
            continue
        kind = r["machine"]["device"].split(":")[0]
        target = THROUGHPUT_TARGETS.get(kind)
        where = r["machine"].get("gpu") or f"CPU, {r['machine']['torch_threads']} torch thread(s)"
        for a in r["results"]:
            rows.append(
                [
                    f"`{path.name}`",
                    where,
                    a["arch"],
                    f"{a['ratio']:.1f}x",
                    f">= {target:g}x",
                    met(a["ratio"] >= target),
                ]
            )
    return (
        [
            "Targets (issue 6):",
            "",
            markdown_table(["result", "measured on", "arch", "ours / ref", "target", ""], rows),
            "",
        ]
        if rows
        else []
    )


def render(results: list[tuple[Path, dict]], folder: Path, plots: Path) -> str:
    out = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/render/write_report.py` from the JSON results under "
        f"`{folder_name(folder)}`. Each "
        "section names the machine it was measured on; ratios compare measurements taken in one run on that "
        "machine. How each number is measured, and the exact commands: `benchmarks/README.md`.",
        "",
    ]
    names = sorted(
        {r["benchmark"] for _, r in results}, key=lambda n: (ORDER.index(n) if n in ORDER else 99, n)
    )
    for name in names:
        out += [f"## {TITLES.get(name, name)}", ""]
        if name == "trainer_throughput":
            out += throughput_targets(results)
        for path, r in [(p, r) for p, r in results if r["benchmark"] == name]:
            out += [f"### `{folder_name(path)}` ({r.get('created', '?')})", "", f"Machine: {machine(r)}.", ""]
            if "table" in r:
                out += [markdown_table(r["table"]["columns"], r["table"]["rows"]), ""]
            out += [f"- {note}" for note in r.get("notes", [])] + ([""] if r.get("notes") else [])
            if name == "search_efficiency":
                out += efficiency_section(r, plots)
            elif name == "scale":
                out += scale_section(r, plots)
            elif name == "report_speed":
                out += report_speed_section(r, folder_name(path).endswith("report_speed.json"))
            elif name == "search_overhead":
                out += overhead_section(r)
            elif name == "platform_search":
                out += platform_section(r)
    return "\n".join(out)


def folder_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--out", default=str(REPO / "reports" / "benchmarks.md"))
    args = p.parse_args(argv)
    folder, out = Path(args.results), Path(args.out)
    results = load_results(folder)
    if not results:
        sys.exit(f"no benchmark results (*.json) under {folder}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results, folder, out.parent / f"{out.stem}_plots"))
    print(f"wrote {out} from {len(results)} result(s)")


if __name__ == "__main__":
    main()
