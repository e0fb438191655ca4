"""What a training run costs: peak memory (CUDA allocations on a GPU, else resident memory) and
the size of the artifact on disk. Imports torch only inside its functions.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from pathlib import Path


def reset_peak_memory() -> None:
    """Start a new peak-memory window, so that a second training in the same process (bench) reports
    its own peak: on Linux, writing 5 to clear_refs resets the resident high-water mark (VmHWM)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    # not Linux, or not allowed: the process-wide peak (ru_maxrss) is reported instead
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb() -> float:
    """Peak memory since `reset_peak_memory`: CUDA allocations on a GPU, else resident memory."""
    import torch

    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
