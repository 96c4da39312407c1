"""What every benchmark script shares: the import path, the machine, the data, the result file.

A result file is one JSON object::

    {"benchmark": "trainer_throughput", "created": "...", "machine": {...}, "args": {...},
     "settings": {...}, "results": [...], "table": {"columns": [...], "rows": [[...]]}, "notes": [...]}

``table`` is the markdown table the script printed, as data; ``render/write_report.py`` renders it again
without knowing anything about the benchmark. ``results`` keeps the raw numbers.

Only the trainer path is imported here: torch, numpy, safetensors (lvm_search.models.checkpoint) and PyYAML
(lvm_search/__init__.py imports lvm_search.ensemble.build); no Ray or Optuna.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
try:
    import lvm_search  # noqa: F401  (installed, or on PYTHONPATH)
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))
# render/_markdown.py formats the table a study prints: the one thing studies take from render/
sys.path.append(str(Path(__file__).resolve().parent / "render"))

import torch  # noqa: E402
from _markdown import machine_line, markdown_table  # noqa: E402,F401

from lvm_search.data.windows import LVMData, Split, load_data  # noqa: E402,F401  (load_data: for the scripts)
from lvm_search.store.provenance import cpu_model  # noqa: E402,F401  (for the scripts)
from lvm_search.train import TrainConfig, _bf16, resolve_device  # noqa: E402

LINUX_DATA_ENV = "LVM_LINUX_DATA"
LINUX_DATA_NAME = "linux-docs-minilm.npz"


# --- the machine ----------------------------------------------------------------------------------


ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what decides float32 and bf16 speed on a CPU


def cpu_isa() -> list[str]:
    try:
        flags = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
        ).split()
    except (OSError, StopIteration):
        return []
    return [f for f in ISA_FLAGS if f in flags]


def machine_info(device: torch.device) -> dict:
    info = {
        "cpu": cpu_model(),
        "cpu_isa": cpu_isa(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "gpu": None,
        # 1, 5 and 15 minute load averages when the result was written: other work on a shared machine
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda
        )
    return info


def pick_device(name: str, threads: int | None = None) -> torch.device:
    if threads:
        torch.set_num_threads(threads)
    return resolve_device(name)


def bf16_setting(no_bf16: bool) -> bool | str:
    """The trainer's ``bf16`` for a script's ``--no-bf16``: auto (autocast where the device computes in
    bf16: CUDA from Ampere, a CPU with AVX-512 BF16 or AMX), else off."""
    return False if no_bf16 else "auto"


def bf16_used(device: torch.device, no_bf16: bool) -> bool:
    """What that setting comes to on ``device``, by the trainer's own rule: what a result records."""
    return _bf16(TrainConfig(bf16=bf16_setting(no_bf16)), device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- data -----------------------------------------------------------------------------------------


def linux_data_path(explicit: str | None = None) -> Path:
    """--data if given, else $LVM_LINUX_DATA, else ../shared/data or shared/data beside the repo."""
    if explicit:
        return Path(explicit)
    if os.environ.get(LINUX_DATA_ENV):
        return Path(os.environ[LINUX_DATA_ENV])
    for candidate in (
        REPO.parent / "shared" / "data" / LINUX_DATA_NAME,
        REPO / "shared" / "data" / LINUX_DATA_NAME,
    ):
        if candidate.exists():
            return candidate
    sys.exit(
        f"cannot find {LINUX_DATA_NAME}: pass --data PATH or set {LINUX_DATA_ENV} "
        f"(looked in {REPO.parent / 'shared/data'} and {REPO / 'shared/data'})"
    )


def synthetic_data(windows: int, dim: int, k: int = 5, val_windows: int = 2048, seed: int = 0) -> LVMData:
    """Random unit vectors cut into sliding windows, as the reference work's benchmark builds them.

    One sequence of ``windows + k`` vectors gives the train windows (window i: context seq[i:i+k],
    target seq[i+k]); a second, independent sequence gives ``val_windows`` windows, only because the
    trainer evaluates after every epoch. The vectors carry no signal: this data is for timing only.
    """
    g = torch.Generator().manual_seed(seed)
    n_train, n_val = windows + k, val_windows + k
    vectors = torch.nn.functional.normalize(torch.randn(n_train + n_val, dim, generator=g), dim=-1)

    def split(first_row: int, m: int) -> Split:
        # one sequence: every target's context may reach back to the sequence's first row
        return Split(first_row + k + torch.arange(m), torch.full((m,), first_row), 1)

    splits = {
        "train": split(0, windows),
        "val": split(n_train, val_windows),
        "test": split(n_train, val_windows),
    }
    return LVMData(
        vectors,
        splits,
        k,
        f"synthetic-{windows}x{dim}-s{seed}",
        f"synthetic(windows={windows}, D={dim})",
        "synthetic",
    )


def materialise(data: LVMData, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's inputs: contexts [M, k, D] and targets [M, D] as plain float32 CPU tensors."""
    vectors = data.vectors.cpu()
    return vectors[data.contexts(split).cpu()].contiguous(), vectors[
        data.splits[split].targets.cpu()
    ].contiguous()


# --- results --------------------------------------------------------------------------------------


def median(values) -> float:
    return float(statistics.median(values))


def finish(
    benchmark: str,
    args,
    device: torch.device,
    settings: dict,
    results: list,
    columns: list[str],
    rows: list[list],
    notes: list[str],
    out: str | None,
    extra: dict | None = None,
    quiet: bool = False,
) -> dict:
    """Print the table and notes; write the JSON result to ``out`` if given (``extra``: more raw data).

    ``quiet``: write only, for a partial result saved while a long script goes on.
    """
    machine = machine_info(device)
    record = {
        "benchmark": benchmark,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "args": {k: v for k, v in vars(args).items()},
        "settings": settings,
        "results": results,
        "table": {"columns": columns, "rows": rows},
        "notes": notes,
        **(extra or {}),
    }
    if not quiet:
        print(f"\n## {benchmark}\n\nMachine: {machine_line(machine)}\n")
        print(markdown_table(columns, rows))
        for note in notes:
            print(f"\n- {note}", end="")
        print()
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, default=str) + "\n")
        if not quiet:
            print(f"\nwrote {path}")
    return record


def add_common_args(parser, data_help: str | None = None) -> None:
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--out", default=None, help="write the JSON result here")
    if data_help:
        parser.add_argument("--data", default=None, help=data_help)


def fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"
