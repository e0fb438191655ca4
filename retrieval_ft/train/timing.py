"""Where a training run's wall time goes: a clock of named phases, which tune.py times each step of
the recipe with (callbacks.TrainerTimes tells the Trainer's evaluations and checkpoint writes apart
from its steps), and what a run does to spend less of it outside its steps (`frozen_heap`). Knows
nothing of models, data or torch.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator

# The phases, in the order a run passes through them (the stamp's `timings` keys, plus `total`):
PHASES = (
    "load",  # the base model read and prepared for the method (adapters added), the Trainer built
    "data",  # the dataset read, training pairs and rows made, data and model fingerprints hashed
    "mining",  # the base's corpus embeddings (encoded, or read from the cache) and mined hard negatives
    "dev_set",  # the dev corpus (with dev_hard, the base's top documents) and the guard samples
    "metric_library",  # the metric library that dev evaluations score with (ranx, its compiled code), loaded once
    "steps",  # the Trainer's optimizer steps (its set-up, and on --resume the checkpoint's loading, included)
    "evaluations",  # dev (and guard sample) evaluations: the base's before training, then each one the Trainer runs
    "checkpoints",  # the Trainer's checkpoint writes
    "selection",  # the kept checkpoint loaded back (where it is not the last step), the blend search
    "save",  # the artifact written
)


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Python's full garbage collections skip the objects that existed before the block (imported
    modules: with torch, transformers and the metric library, ~600,000 objects that a full pass walks
    in ~0.3 s on a 2-core machine; a short run triggered three such passes, a second of its wall
    time). They are unfrozen afterwards, so that garbage among them is still collected later. A
    process that froze its heap itself (before forking workers, say) keeps it as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class PhaseClock:
    """Seconds per phase (PHASES) and since the clock started; `phase(name)` times a block."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds = dict.fromkeys(PHASES, 0.0)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        if name not in self.seconds:
            raise ValueError(f"unknown training phase {name!r}; one of {', '.join(PHASES)}")
        self.seconds[name] += max(0.0, seconds)

    def total(self) -> float:
        return time.perf_counter() - self.start

    def to_dict(self) -> dict[str, float]:
        """{phase: seconds} in PHASES order, then `total` (seconds since the clock started)."""
        return {**{name: round(s, 2) for name, s in self.seconds.items()}, "total": round(self.total(), 2)}


def timings_line(timings: dict[str, float]) -> str:
    """`time: load 1.2 s, data 0.3 s, ..., save 0.5 s; total 56.1 s`."""
    parts = [f"{name.replace('_', ' ')} {s:.1f} s" for name, s in timings.items() if name != "total"]
    return f"time: {', '.join(parts)}; total {timings['total']:.1f} s"
