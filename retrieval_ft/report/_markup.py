"""What every report page and plot shares: escaping for (X)HTML/SVG and a linear axis. No data."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

_XML_FORBIDDEN = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32)], "\ufffd")


def esc(text: Any) -> str:
    """Escaped for (X)HTML; control characters XML forbids become U+FFFD, so the page stays XML."""
    return html.escape(str(text), quote=True).translate(_XML_FORBIDDEN)


def axis(low: float, high: float, start: float, end: float) -> Callable[[float], float]:
    """The map of data values [low, high] onto drawing coordinates [start, end] (end < start for a
    y axis drawn upwards)."""
    span = (high - low) or 1.0
    return lambda v: start + (v - low) / span * (end - start)
