"""The "Guard-aware tuning" part of a run's report: the guard samples, the kept checkpoint, the blend
with the base and why, as tables and a plot of in-domain dev gain against the worst guard change
(along alpha and over checkpoints). Reads the stamp's guard record and dev history only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..stamp import GuardRecord
from ._markup import axis, esc

DEV = "ndcg@10"  # the dev history's and the guard record's metric
Point = tuple[str, float, float]  # (label, worst guard change, dev gain)


def worst_change(values: Mapping[str, float] | None, base: Mapping[str, float] | None) -> float | None:
    """The most negative change value - base over the guard sets both name (None: none to compare)."""
    changes = [values[n] - b for n, b in (base or {}).items() if n in (values or {})]
    return min(changes) if changes else None


def _num(value: float | None, fmt: str = ".4f") -> str:
    return "" if value is None else format(value, fmt)


def _rows(guard: GuardRecord) -> list[list[str]]:
    """One row per guard set and one for the dev set: name, data (split), sample queries and
    documents, base / selected / final NDCG@10 and the final change."""
    rows = []
    sets = {s.get("name"): s for s in guard.sets or []}
    for name in dict.fromkeys([*sets, *(guard.base or {})]):
        s = sets.get(name, {})
        base = (guard.base or {}).get(name)
        final = (guard.final or {}).get(name)
        rows.append([str(name), f"{s.get('data', '')} ({s.get('split', '')})", str(s.get("queries", "")),
                     str(s.get("documents", "")), _num(base), _num((guard.selected or {}).get(name)), _num(final),
                     _num(None if base is None or final is None else final - base, "+.4f")])
    dev = guard.dev or {}
    change = None if dev.get("base") is None or dev.get("final") is None else dev["final"] - dev["base"]
    rows.append(["dev (in domain)", "", "", "", _num(dev.get("base")), _num(dev.get("selected")), _num(dev.get("final")),
                 _num(change, "+.4f")])
    return rows


def _head(guard: GuardRecord) -> list[str]:
    step = "" if guard.checkpoint_step is None else f" (step {guard.checkpoint_step})"
    alpha = "" if guard.alpha is None else f" (alpha {guard.alpha:g})"
    return ["set", "data (split)", "sample queries", "sample documents", "base", f"selected{step}", f"final{alpha}",
            "change"]


def _summary(guard: GuardRecord) -> str:
    """The choice in words: the allowed drop, the kept checkpoint, the blend and the reason."""
    parts = [f"NDCG@10 on each guard set's sample; allowed drop {_num(guard.max_drop, 'g') or 'not recorded'}"]
    if guard.checkpoint_step is not None:
        parts.append(f"checkpoint kept: step {guard.checkpoint_step}")
    parts.append(f"interpolation {guard.interpolate or 'not recorded'}"
                 + ("" if guard.alpha is None else f", alpha {guard.alpha:g}"))
    text = "; ".join(parts) + "."
    return text + (f" Why: {guard.reason}" if guard.reason else "")


def _curve_rows(guard: GuardRecord) -> list[list[str]]:
    """One row per alpha tried: alpha, dev NDCG@10, dev gain, worst guard change, within the allowed drop."""
    dev_base = (guard.dev or {}).get("base")
    rows = []
    for point in guard.curve or []:
        worst = worst_change(point.get("guards"), guard.base)
        within = "" if worst is None or guard.max_drop is None else ("yes" if worst >= -guard.max_drop else "no")
        rows.append([f"{point['alpha']:g}", _num(point.get("dev")),
                     _num(None if dev_base is None or point.get("dev") is None else point["dev"] - dev_base, "+.4f"),
                     _num(worst, "+.4f"), within])
    return rows


_TEXT = ' class="text"'  # left-aligned cells: names and paths
_CURVE_HEAD = ["alpha", "dev NDCG@10", "dev gain", "worst guard change", "within allowed drop"]


def _md_table(head: Sequence[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2),
            *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows)]


def _html_table(table_id: str, head: Sequence[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td{_TEXT if i < 2 else ''}>{esc(c)}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f'<table id="{table_id}"><tr>{cells}</tr>{body}</table>'


def guard_markdown(guard: GuardRecord) -> str:
    """The "Guard-aware tuning" section in Markdown: the guard and dev table and the alpha curve
    (the plot, with the checkpoints, is in report.html)."""
    lines = ["## Guard-aware tuning", "", _summary(guard), "", *_md_table(_head(guard), _rows(guard))]
    if guard.curve:
        lines += ["", "Blend with the base (weights = base + alpha x (tuned - base)):", "",
                  *_md_table(_CURVE_HEAD, _curve_rows(guard))]
    return "\n".join(lines) + "\n"


def guard_html(guard: GuardRecord, history: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
    """The "Guard-aware tuning" section of report.html: summary, tables and the plot."""
    parts = ['<h2 id="guard-aware-tuning">Guard-aware tuning</h2>', f"<p>{esc(_summary(guard))}</p>",
             _html_table("guard-tuning", _head(guard), _rows(guard))]
    if guard.curve:
        parts += ["<p>Blend with the base (weights = base + alpha x (tuned - base)):</p>",
                  _html_table("alpha-curve", _CURVE_HEAD, _curve_rows(guard))]
    parts.append(guard_svg(guard, history))
    return parts


def tradeoff_points(guard: GuardRecord, history: Sequence[Mapping[str, Any]] | None
                    ) -> tuple[list[Point], list[Point], Point | None]:
    """The plot's points, (label, worst guard change, dev gain vs the base's dev NDCG@10): along
    alpha (the curve), over checkpoints (dev history entries with guard values), and the choice
    (the artifact's final values). A point missing a value is left out."""
    dev_base = (guard.dev or {}).get("base")
    if dev_base is None or not guard.base:
        return [], [], None

    def point(label: str, guards: Mapping[str, float] | None, dev: float | None) -> Point | None:
        worst = worst_change(guards, guard.base)
        return None if worst is None or dev is None else (label, worst, dev - dev_base)

    along = [point(f"α {p['alpha']:g}", p.get("guards"), p.get("dev")) for p in guard.curve or []]
    over = [point(f"step {e.get('step')}", e.get("guards"), e.get(DEV)) for e in history or []]
    chosen = point("chosen" + ("" if guard.alpha is None else f" (α {guard.alpha:g})"), guard.final,
                   (guard.dev or {}).get("final"))
    return [p for p in along if p], [p for p in over if p], chosen


def guard_svg(guard: GuardRecord, history: Sequence[Mapping[str, Any]] | None = None,
              width: int = 640, height: int = 380) -> str:
    """In-domain dev gain (y) against the worst guard change (x), both vs the base: one line along
    alpha, one over checkpoints, the choice ringed, the allowed band (x >= -max_drop) shaded."""
    along, over, chosen = tradeoff_points(guard, history)
    everything = along + over + ([chosen] if chosen else [])
    if not everything:
        return "<p>No guard values were recorded to plot.</p>"
    drop = guard.max_drop or 0.0
    xs, ys = [p[1] for p in everything] + [0.0, -drop], [p[2] for p in everything] + [0.0]
    xpad, ypad = max(0.005, (max(xs) - min(xs)) * 0.1), max(0.005, (max(ys) - min(ys)) * 0.1)
    pad = 60
    sx = axis(min(xs) - xpad, max(xs) + xpad, pad, width - pad / 2)
    sy = axis(min(ys) - ypad, max(ys) + ypad, height - pad, pad / 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             'font-size="11" role="img" aria-label="in-domain dev gain against the worst guard change">',
             f'<rect class="allowed" x="{sx(-drop):.1f}" y="{pad / 2:.1f}" width="{width - pad / 2 - sx(-drop):.1f}" '
             f'height="{height - 1.5 * pad:.1f}" fill="#e8f5e9"/>',
             f'<line x1="{sx(-drop):.1f}" y1="{pad / 2:.1f}" x2="{sx(-drop):.1f}" y2="{height - pad:.1f}" stroke="#2e7d32" '
             f'stroke-dasharray="4"/><text x="{sx(-drop) + 4:.1f}" y="{pad / 2 + 12:.1f}" fill="#2e7d32">allowed drop '
             f'{-drop:+g}</text>',
             f'<line x1="{pad}" y1="{sy(0):.1f}" x2="{width - pad / 2}" y2="{sy(0):.1f}" stroke="#999"/>',
             f'<line x1="{sx(0):.1f}" y1="{pad / 2}" x2="{sx(0):.1f}" y2="{height - pad}" stroke="#999"/>',
             f'<text x="{width / 2:.0f}" y="{height - 24}" text-anchor="middle">worst guard change in NDCG@10 (vs base)</text>',
             f'<text x="14" y="{height / 2:.0f}" transform="rotate(-90 14 {height / 2:.0f})" text-anchor="middle">'
             "dev gain in NDCG@10 (vs base)</text>"]
    for points, color, cls, dy in ((over, "#ef6c00", "checkpoints", -6), (along, "#1565c0", "alpha", 13)):
        parts.append(_line(points, sx, sy, color, cls, dy))
    if chosen:
        x, y = sx(chosen[1]), sy(chosen[2])
        parts.append(f'<circle class="chosen" cx="{x:.1f}" cy="{y:.1f}" r="9" fill="none" stroke="#000" stroke-width="2"/>'
                     f'<text x="{x + 11:.1f}" y="{y - 8:.1f}" font-weight="bold">{esc(chosen[0])}</text>')
    parts.append(_ticks(sx, sy, (min(xs) - xpad, max(xs) + xpad), (min(ys) - ypad, max(ys) + ypad)))
    parts.append(f'<rect x="{pad}" y="{height - 10}" width="10" height="3" fill="#1565c0"/><text x="{pad + 14}" '
                 f'y="{height - 5}">along alpha</text><rect x="{pad + 110}" y="{height - 10}" width="10" height="3" '
                 f'fill="#ef6c00"/><text x="{pad + 124}" y="{height - 5}">over checkpoints (alpha 1)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _ticks(sx: Any, sy: Any, xr: tuple[float, float], yr: tuple[float, float]) -> str:
    """The values at the ends of each axis, and at 0 where it is not crowded by an end."""
    out = []
    for v, anchor in ((xr[0], "start"), (0.0, "middle"), (xr[1], "end")):
        if v == 0.0 and min(abs(sx(0.0) - sx(xr[0])), abs(sx(0.0) - sx(xr[1]))) < 60:
            continue
        out.append(f'<text x="{sx(v):.1f}" y="{sy(yr[0]) + 13:.1f}" text-anchor="{anchor}" fill="#666">{v:+.3f}</text>')
    for v in (yr[0], 0.0, yr[1]):
        if v == 0.0 and min(abs(sy(0.0) - sy(yr[0])), abs(sy(0.0) - sy(yr[1]))) < 14:
            continue
        out.append(f'<text x="{sx(xr[0]) - 4:.1f}" y="{sy(v) + 4:.1f}" text-anchor="end" fill="#666">{v:+.3f}</text>')
    return "".join(out)


def _line(points: list[Point], sx: Any, sy: Any, color: str, cls: str, dy: float) -> str:
    """A polyline through `points` (in their order), each labelled `dy` below it (above: negative)."""
    if not points:
        return ""
    coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for _, x, y in points)
    out = [f'<g class="{cls}"><polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"/>']
    out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}"/>'
            f'<text x="{sx(x) + 5:.1f}" y="{sy(y) + dy:.1f}" fill="{color}">{esc(label)}</text>' for label, x, y in points]
    return "".join(out) + "</g>"
