"""Which float type encoding and training compute in on a device: float32, or bf16/fp16 autocast
where the hardware computes it natively.

Measured (eval/results/performance.md): on a CPU without native bf16 (AVX2 only) bf16 autocast is
about 5x slower than float32, while on a CPU with AVX512-BF16 it is about 2.5x faster; so "auto"
asks the hardware. Weights stay float32 either way (autocast), so artifacts do not change type.
This module knows nothing about models or data.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import Precision
from .errors import ConfigError

ENV = "RETRIEVAL_FT_PRECISION"  # overrides "auto" for a whole process (e.g. fp32 for bit-stable CI runs)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 arithmetic instructions (x86 AVX512-BF16 or AMX, Arm BF16)."""
    import torch

    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        if check is not None:
            with contextlib.suppress(Exception):
                if check():
                    return True
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_precision(requested: Precision | str | None, device: Any) -> Precision:
    """The precision to compute in on `device` (a torch.device or its name): an explicit choice is
    kept; "auto" (or None) follows $RETRIEVAL_FT_PRECISION when set, else the hardware."""
    choice = Precision(requested or Precision.AUTO)
    if choice is Precision.AUTO and os.environ.get(ENV):
        try:
            choice = Precision(os.environ[ENV].strip().lower())
        except ValueError:
            allowed = ", ".join(p.value for p in Precision)
            raise ConfigError(f"${ENV}={os.environ[ENV]!r} is not one of {allowed}.") from None
    if choice is not Precision.AUTO:
        return choice
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    if kind == "cuda":
        import torch

        # native bf16 only (Ampere and later): older GPUs emulate it slowly, and take fp16
        return Precision.BF16 if torch.cuda.is_bf16_supported(including_emulation=False) else Precision.FP16
    if kind == "cpu":
        return Precision.BF16 if cpu_has_native_bf16() else Precision.FP32
    return Precision.FP32  # mps and others: float32 is the safe choice


@contextlib.contextmanager
def autocast(precision: Precision, device: Any) -> Iterator[None]:
    """torch.autocast for bf16/fp16 on `device`; nothing for fp32."""
    if precision in (Precision.FP32, Precision.AUTO):
        yield
        return
    import torch

    kind = getattr(device, "type", None) or str(device).split(":")[0]
    dtype = torch.bfloat16 if precision is Precision.BF16 else torch.float16
    with torch.autocast(kind, dtype=dtype):
        yield
