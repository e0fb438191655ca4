"""What training shows while it runs: one progress display per stage. On a terminal the bars;
elsewhere (CI logs) a line per stage and a periodic training line on the `retrieval_ft.progress`
logger; library bars (datasets' map/hashing, the model card's widget examples) only with bars on.

The lines are INFO records: a caller shows them by setting that logger's level (the CLI's -v shows
every INFO record). Imports transformers only where a Trainer callback is made.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)
progress = logging.getLogger("retrieval_ft.progress")

EVERY_SHARE = 0.1  # a training line at every tenth of the steps ...
EVERY_SECONDS = 60.0  # ... and at least once a minute


@contextlib.contextmanager
def library_bars(show: bool) -> Iterator[None]:
    """Within: the progress bars of `datasets` and of sentence-transformers' model card follow
    `show` (the widget examples are still computed, so the card is the same either way)."""
    if show:
        yield
        return
    import datasets
    from sentence_transformers.base import model_card

    was_disabled = datasets.utils.are_progress_bars_disabled()
    bar = getattr(model_card, "tqdm", None)
    datasets.utils.disable_progress_bars()
    if bar is not None:
        model_card.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        if bar is not None:
            model_card.tqdm = bar
        if not was_disabled:
            datasets.utils.enable_progress_bars()


def stage(message: str, *args: Any) -> None:
    """A line saying which stage training is in (mining, dev set, training, evaluation, saving)."""
    progress.info(message, *args)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(step: int, total: int, elapsed: float, loss: float | None) -> str:
    """`step 40/400 (10%), loss 0.4312, elapsed 1m02s, eta 9m18s`."""
    share = step / total if total else 0.0
    eta = elapsed / share - elapsed if share else None
    parts = [f"step {step}/{total} ({share:.0%})"]
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    parts.append(f"elapsed {_duration(elapsed)}")
    if eta is not None:
        parts.append(f"eta {_duration(eta)}")
    return ", ".join(parts)


def callbacks(show_bars: bool) -> list[Any]:
    """Trainer callbacks: training logs to the module logger (shown with -v) and, without bars, the
    periodic progress lines."""
    from transformers import TrainerCallback

    class LogToLogger(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if logs:
                values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
                logger.info("step %d/%d: %s", state.global_step, state.max_steps, values)

    class ProgressLines(TrainerCallback):
        def __init__(self) -> None:
            self.start = self.last_time = time.monotonic()
            self.last_step, self.loss = 0, None

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if logs and isinstance(logs.get("loss"), (int, float)):
                self.loss = float(logs["loss"])

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step, total, now = state.global_step, state.max_steps, time.monotonic()
            due = step - self.last_step >= max(1, round(total * EVERY_SHARE)) or now - self.last_time >= EVERY_SECONDS
            if due or step == total:
                progress.info("training: %s", progress_line(step, total, now - self.start, self.loss))
                self.last_step, self.last_time = step, now

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                        **kwargs: Any) -> None:
            shown = {k.removeprefix("eval_dev_"): v for k, v in (metrics or {}).items() if k.startswith("eval_dev_")}
            progress.info("evaluation at step %d: %s", state.global_step,
                          ", ".join(f"dev {k} {v:.4f}" for k, v in shown.items()) or "done")

    return [LogToLogger()] if show_bars else [LogToLogger(), ProgressLines()]
