"""Progress for logs without a terminal (CI): the `retrieval_ft.progress` logger, the one way
durations and "done of total" are written, and a ticker that stands in for a progress bar.

Stages that show a bar on a terminal log these lines elsewhere; `--no-progress` silences both.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

progress = logging.getLogger("retrieval_ft.progress")

EVERY_SECONDS = 60.0  # a long job says where it is at least once a minute


def duration(seconds: float) -> str:
    """`1m02s`, or `1h06m` from an hour on."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def share_line(done: int, total: int, elapsed: float, extra: tuple[str, ...] = ()) -> str:
    """`40/400 (10%), <extra...>, elapsed 1m02s, eta 9m18s` (no eta before anything is done)."""
    share = done / total if total else 0.0
    parts = [f"{done}/{total} ({share:.0%})", *extra, f"elapsed {duration(elapsed)}"]
    if share:
        parts.append(f"eta {duration(elapsed / share - elapsed)}")
    return ", ".join(parts)


class Ticker:
    """A bar's stand-in: `update(n)` counts work done and logs `<what>: 1200/54667 (2%), elapsed 1m00s,
    eta 44m31s` once every `every` seconds, so short jobs stay silent and long ones report."""

    def __init__(self, what: str, total: int, every: float = EVERY_SECONDS) -> None:
        self.what, self.total, self.every = what, total, every
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            progress.info("%s: %s", self.what, share_line(self.done, self.total, now - self.start))
            self.last = now


def shows_bars(setting: bool | None) -> bool:
    """Whether progress bars are drawn: as set, else only on a terminal."""
    return setting if setting is not None else sys.stderr.isatty()


@contextlib.contextmanager
def progress_display(setting: bool | None, what: str, total: int, *, initial: int = 0, **bar: Any) -> Iterator[Any]:
    """The one progress display of a stage, to `update(n)` as work is done: a tqdm bar on a
    terminal; elsewhere (CI logs) a `Ticker`'s line a minute; None when progress is off (False)."""
    if not shows_bars(setting):
        ticker = Ticker(what.lower(), total) if setting is None else None
        if ticker is not None:
            ticker.done = initial
        yield ticker
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, initial=initial, desc=what, **bar) as shown:
        yield shown
