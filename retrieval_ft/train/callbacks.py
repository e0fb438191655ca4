"""Trainer callbacks: the Trainer's own log records at DEBUG (shown with -v); where no progress bar
is shown (CI logs), a periodic progress line and each dev evaluation; the time the Trainer spends
in evaluations and checkpoint writes; no checkpoint after the last step."""

from __future__ import annotations

import logging
import time
from typing import Any

from transformers import TrainerCallback

from .._progress import EVERY_SECONDS, progress
from .progress import EVERY_SHARE, progress_line

logger = logging.getLogger(__name__)


class LogToLogger(TrainerCallback):
    """The Trainer's log dicts (loss, learning rate...) as log records instead of lines on stdout."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if logs:
            values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
            logger.debug("step %d/%d: %s", state.global_step, state.max_steps, values)


class ProgressLines(TrainerCallback):
    """`training: step i/N (x%), loss, elapsed, eta` every tenth of the steps and at least once a
    minute, and a line per dev evaluation."""

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


class TrainerTimes(TrainerCallback):
    """The time the Trainer spends inside `train()` besides optimizer steps: dev evaluations (the
    Trainer's own `eval_runtime` of each) and checkpoint writes (from the end of the step, or of its
    evaluation, to `on_save`)."""

    def __init__(self) -> None:
        self.evaluations = 0.0
        self.checkpoints = 0.0
        self._mark: float | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._mark = time.perf_counter()

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                    **kwargs: Any) -> None:
        self.evaluations += float((metrics or {}).get("eval_runtime", 0.0))
        self._mark = time.perf_counter()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._mark is not None:
            self.checkpoints += time.perf_counter() - self._mark
        self._mark = None


class NoFinalCheckpoint(TrainerCallback):
    """No checkpoint after the last step: the artifact, written right after training, is the run's
    result, and a run killed before it is written resumes from the checkpoint before (redoing the
    steps since). The last step's weights are the model in memory; tune.py keeps them or loads an
    earlier best checkpoint back (trainer.keep_best)."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= state.max_steps:
            control.should_save = False


def trainer_callbacks(show_bars: bool) -> list[TrainerCallback]:
    """One progress display: the Trainer's bar where bars are shown, else the progress lines."""
    return [LogToLogger()] if show_bars else [LogToLogger(), ProgressLines()]
