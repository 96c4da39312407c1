"""Which device trains: CUDA, Apple's GPU (MPS) when it really works, or the CPU.

``auto`` picks CUDA, then MPS, then the CPU. MPS is taken only after a tiny allocation and matrix
product on it succeed: some Macs report MPS available and then fail every allocation (hosted
macOS arm64 CI runners: "MPS backend out of memory ... MPS allocated: 0 bytes",
actions/runner-images#9918); there ``auto`` trains on the CPU and says so in one warning line.

On MPS everything is float32 (MPS has no float64; bf16 autocast is used on CUDA and CPU only).
``bf16: auto`` turns bf16 autocast on where the device computes in bf16 (``computes_bf16``).
"""

from __future__ import annotations

import functools
import logging
import re
import sys

import torch

from .errors import UserError, shown

logger = logging.getLogger(__name__)

KINDS = ("cpu", "cuda", "mps")


def computes_bf16(device: torch.device) -> bool | None:
    """Whether ``device`` has bf16 arithmetic units: a CUDA GPU from Ampere on (compute capability 8),
    or a CPU with AVX-512 BF16 or AMX. Elsewhere (an AVX2 CPU, MPS) bf16 would be emulated, slower
    than float32. None where this torch cannot tell (a CPU, with a torch that has no probe for it)."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    # torch's CPU probes are private and were renamed: torch.cpu's since 2.5, torch._C._cpu's before
    probes = [
        getattr(module, name, None)
        for module, names in (
            (torch.cpu, ("_is_avx512_bf16_supported", "_is_amx_tile_supported")),
            (getattr(torch._C, "_cpu", None), ("_is_cpu_support_avx512bf16", "_is_cpu_support_amx_tile")),
        )
        for name in names
    ]
    probes = [probe for probe in probes if callable(probe)]
    return any(probe() for probe in probes) if probes else None


def mps_environment(platform: str = sys.platform) -> dict[str, str]:
    """On a Mac, PYTORCH_ENABLE_MPS_FALLBACK=1: an operation without an MPS kernel runs on the CPU
    (with PyTorch's warning) instead of failing the trial. Every operation of the four architectures
    has one today; this is a safety net. Set for the search's workers, and by the CLI for itself
    (``cli.MPS_FALLBACK``: PyTorch reads it once, when imported), unless the user set it."""
    return {"PYTORCH_ENABLE_MPS_FALLBACK": "1"} if platform == "darwin" else {}


@functools.lru_cache(maxsize=1)
def mps_usable() -> bool:
    """Whether Apple's GPU is here and works (checked once per process)."""
    if not torch.backends.mps.is_available():
        return False
    try:
        x = torch.ones(8, 8, device="mps")
        (x @ x).sum().item()
    except Exception as e:  # noqa: BLE001 - any failure of the device means: do not use it
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        logger.warning(f"Apple's GPU (MPS) is reported available but does not work ({first}); using the CPU")
        return False
    return True


def local_gpu() -> str | None:
    """The kind of GPU this machine trains on, if any: "cuda", "mps" or None."""
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if mps_usable() else None


def gpus_here() -> int:
    """The GPUs a private Ray cluster on this machine counts: CUDA's, or Apple's one GPU where it
    works (Ray 2.60 counts it as a GPU on a Mac too)."""
    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return 1 if mps_usable() else 0


_DEVICE = re.compile(r"(auto|cpu|cuda|mps)(?::([0-9]{1,4}))?")


def parse_device(name, where: str = "device") -> tuple[str, int | None]:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` -> (kind, N or None); ``cpu:0`` and ``mps:0``
    are torch's names of the one CPU and Apple GPU."""
    m = _DEVICE.fullmatch(name) if isinstance(name, str) else None
    if m is None or (m[2] is not None and (m[1] == "auto" or (m[1] != "cuda" and int(m[2]) != 0))):
        raise UserError(f"{where}: expected auto, cpu, cuda, cuda:N or mps, got {shown(name)}")
    return m[1], None if m[2] is None else int(m[2])


def resolve_device(name: str, where: str = "device") -> torch.device:
    """A device name (auto, cpu, cuda[:N], mps) as the torch device it means on this machine."""
    kind, index = parse_device(name, where)
    if kind == "auto":
        return torch.device(local_gpu() or "cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": mps_usable()}
    if not available[kind]:
        raise UserError(f"{where}: {name!r} was asked for but is not available on this machine")
    if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UserError(f"{where}: {name} was asked for, but this machine has {count} CUDA GPU(s)")
    return torch.device(name)


def gpu_for_trial(requested: str) -> str:
    """The device of a trial that Ray gave a GPU, on the node it runs on: its CUDA GPU, or Apple's
    GPU on a Mac node of a cluster (Ray counts it as a GPU), whatever the driver's machine has."""
    kind = local_gpu()
    if kind is None:
        logger.warning(f"a trial was given a GPU ({requested}) on a node where none works; using the CPU")
        return "cpu"
    return kind
