"""Markdown pieces shared by the renderers here and the studies' printed tables (``_common.py``); no torch."""

from __future__ import annotations


def markdown_table(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(m: dict) -> str:
    """One line naming the machine a result was measured on."""
    where = f"{m['cpu']} ({m['usable_cpus']} usable CPUs, torch threads {m['torch_threads']})"
    if m.get("gpu"):
        where = f"{m['gpu']} ({m.get('gpu_memory_gib')} GiB, CUDA {m.get('cuda')}); host CPU {where}"
    return f"{where}; torch {m['torch']}, Python {m['python']}"
