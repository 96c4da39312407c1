"""The warm starts' section of reports/quality.md, from the ``warm_start_<corpus>.json`` files that
``benchmarks/warm_start.py`` writes; every number and verdict from the files. Imports neither the
study nor torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from _markdown import markdown_table

TARGET_GAIN = 0.005  # issue 32: warm best single over scratch, test cosine, interval excluding 0


def _ci(i: dict, spec: str = ".4f") -> str:
    return f"{i['value']:{spec}} [{i['low']:{spec}}, {i['high']:{spec}}]"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def _corpus_table(result: dict) -> list[str]:
    rows = []
    for arm in result["arms"]:
        b, e = arm["best_single"], arm["ensemble"]
        vs_b, vs_e = b["scores"].get("minus_first_arm"), e["scores"].get("minus_first_arm")
        searches = sum(s for step, s in arm["wall_s"].items() if step.startswith("run"))
        rows.append(
            [
                arm["name"],
                f"{b['arch']} (k={b['k']})",
                _ci(b["scores"]["val"]),
                _ci(b["scores"]["test"]),
                _ci(vs_b["test"], "+.4f") if vs_b else "–",
                _ci(vs_b["val"], "+.4f") if vs_b else "–",
                f"{e['method']}, {e['members']}",
                _ci(e["scores"]["test"]),
                _ci(vs_e["test"], "+.4f") if vs_e else "–",
                f"{_minutes(searches)} / {_minutes(arm['wall_s']['total'])}",
            ]
        )
    for shot in result["zero_shot"]:
        s = shot["scores"]
        rows.append(
            [
                "pretrained only (no fitting)",
                f"{shot['arch']} (k={shot['k']})",
                _ci(s["val"]),
                _ci(s["test"]),
                _ci(s["minus_first_arm"]["test"], "+.4f"),
                _ci(s["minus_first_arm"]["val"], "+.4f"),
                "–",
                "–",
                "–",
                "–",
            ]
        )
    header = [
        "arm",
        "best single (chosen on val)",
        "val cosine",
        "test cosine [95% CI]",
        "test − scratch's best single [paired CI]",
        "val − scratch's",
        "ensemble (method, members)",
        "ensemble test [95% CI]",
        "ensemble test − scratch's [paired CI]",
        "wall min: searches / pipeline",
    ]
    notes = [f"*{arm['name']}*'s wall time: {arm['note']}." for arm in result["arms"] if arm.get("note")]
    return [markdown_table(header, rows), "", *([" ".join(notes), ""] if notes else [])]


def _per_architecture(result: dict) -> list[str]:
    arms = result["arms"]
    archs = sorted({r["arch"] for arm in arms for r in arm["runs"]})
    rows = []
    for arch in archs:
        cells = [arch]
        for i, arm in enumerate(arms):
            run = next((r for r in arm["runs"] if r["arch"] == arch), None)
            vs = run and run["scores"].get("minus_first_arm")
            cells.append(
                "–"
                if run is None
                else f"{run['scores']['val']['value']:.4f} / {run['scores']['test']['value']:.4f}"
                + (f"; test {_ci(vs['test'], '+.4f')}" if vs else "")
            )
        rows.append(cells)
    header = [
        "architecture",
        *(f"{a['name']}: val / test" + (f"; − {arms[0]['name']}" if i else "") for i, a in enumerate(arms)),
    ]
    return [markdown_table(header, rows), ""]


def target_checks(results: list[dict]) -> list[tuple[str, bool]]:
    checks = []
    for result in results:
        warm = next((a for a in result["arms"] if a["name"] == "warm"), None)
        if warm is None:
            continue
        gain = warm["best_single"]["scores"]["minus_first_arm"]["test"]
        checks.append(
            (
                f"{result['corpus']}: warm-started best single beats scratch's by ≥ {TARGET_GAIN} test "
                f"cosine, interval excluding 0 (measured {_ci(gain, '+.4f')})",
                gain["value"] >= TARGET_GAIN and gain["low"] > 0,
            )
        )
    return checks


def warm_start_section(folder: str | Path) -> list[str]:
    """## Warm starts: one table per ``warm_start_<corpus>.json`` in ``folder``."""
    results = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("warm_start_*.json"))]
    if not results:
        return []
    corpus = results[0].get("pretraining") or {}
    lines = [
        "## Warm starts from a pretrained model (`--init`)",
        "",
        "Generated from `benchmarks/warm_start.py`. Arms, each the default pipeline of this report "
        "(`lvm-search run` of the shipped spaces, `lvm-search ensemble`, `lvm-search report`) at the "
        "spaces' own epoch budgets: *scratch*, as shipped; *warm*, every trial starting from the "
        "pretrained model of its architecture (`--init`; the settings that size the weights or change what "
        "they compute, base_decay among them, are the pretrained model's, the recipe and k are searched); "
        "*warm, base searched*, the same for AMN and GRU only, from an earlier version of `--init` that "
        "took only the settings that size the weights, so that base_decay was searched as shipped; "
        "*mixed*, the pretraining windows added to every "
        "trial's train split (`--extra-train`; an epoch then covers the pretraining data too). Each "
        "arm searched the architectures listed under its corpus, and its ensemble is built from those "
        "searches' trials. The best single model is the best "
        "trial of the arm's search whose val cosine is highest: val decides, test only scores. "
        "Differences are paired over the "
        "same resampled documents, 95% bootstrap. *Pretrained only*: the pretrained model scored on "
        "the corpus with no fitting at all.",
        "",
    ]
    if corpus:
        lines += [
            f"Pretraining data: {corpus['passages']:,} passages in {corpus['documents']:,} documents "
            f"(one per HTML page) of {len(corpus['packages'])} Debian documentation packages "
            f"(`scripts/build_pretrain_corpus.sh`, sha256 `{corpus['sha256'][:16]}…`; embedded in "
            f"{_minutes(corpus['embed_wall_seconds'])} min), plus every linux-docs window. Neither "
            "python-docs (python3.11-doc) nor the Austen novels (r-cran-janeaustenr) is in it.",
            "",
        ]
        for result in results:
            shared = (result.get("pretraining") or {}).get("same_text_as_val_or_test") or {}
            if shared:
                counts = ", ".join(f"`{Path(f).name}` {n}" for f, n in shared.items())
                lines += [
                    f"Pretraining passages with the same text as a val or test passage of "
                    f"{result['corpus']}: {counts}.",
                    "",
                ]
        rows = [
            [
                name,
                package["version"],
                f"{corpus['passages_by_package'].get(name, 0):,}",
                ", ".join(package["licences"]) or "see its debian/copyright",
            ]
            for name, package in corpus["packages"].items()
        ]
        lines += [markdown_table(["package", "version", "passages", "licences (debian/copyright)"], rows), ""]
    walls = results[0].get("inits_wall_s") or {}
    if walls:
        spent = ", ".join(
            f"{arch} {_minutes(w['wall_s'])} min ({w['epochs']} epochs)" for arch, w in walls.items()
        )
        note = results[0].get("inits_note")
        lines += [
            f"Pretraining each architecture's model (once, for every corpus): {spent}"
            + (f" ({note})." if note else "."),
            "",
        ]
    for result in results:
        lines += [
            f"**{result['corpus']}**: {result['windows']['test']:,} test windows in "
            f"{result['documents']['test']} documents; {result['machine']}",
            "",
            "Architectures searched: "
            + "; ".join(
                f"{arm['name']} {', '.join(r['arch'] for r in arm['runs'])}" for arm in result["arms"]
            )
            + ".",
            "",
            *_corpus_table(result),
            "Each search's best, val / test cosine:",
            "",
            *_per_architecture(result),
        ]
    return lines
