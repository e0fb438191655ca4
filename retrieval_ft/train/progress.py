"""What training shows while it runs: one progress display per stage. On a terminal the bars;
elsewhere (CI logs) a line per stage and a periodic training line on the `retrieval_ft.progress`
logger; library bars (datasets' map/hashing, the model card's widget examples) only with bars on.

The lines are INFO records of `retrieval_ft.progress`: the CLI shows them unless --quiet or
--no-progress. The Trainer callbacks that write them are in callbacks.py.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import Any

from .._progress import progress, share_line

logger = logging.getLogger(__name__)

EVERY_SHARE = 0.1  # a training line at every tenth of the steps, and at least every EVERY_SECONDS


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


def progress_line(step: int, total: int, elapsed: float, loss: float | None) -> str:
    """`step 40/400 (10%), loss 0.4312, elapsed 1m02s, eta 9m18s`."""
    return "step " + share_line(step, total, elapsed, () if loss is None else (f"loss {loss:.4f}",))
