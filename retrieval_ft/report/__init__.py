"""Reports: terminal tables, Markdown, HTML and SVG for evaluations, comparisons, gate verdicts,
runs (with their guard-aware tuning) and the method benchmark. Reads result records only; no torch."""

from __future__ import annotations

from ._markup import esc as _esc
from .bench import bench_goals, bench_markdown, guard_plots, quality_cost_svg
from .guard import guard_html, guard_markdown, guard_svg
from .run import (
    comparison_markdown,
    evaluation_table,
    page_gallery,
    run_html,
    run_markdown,
    verdict_markdown,
    warning_lines,
    write_run_report,
    write_trec_run,
)

__all__ = ["_esc", "bench_goals", "bench_markdown", "comparison_markdown", "evaluation_table", "guard_html", "guard_plots",
           "guard_markdown", "guard_svg", "page_gallery", "quality_cost_svg", "run_html", "run_markdown",
           "verdict_markdown", "warning_lines", "write_run_report", "write_trec_run"]
