"""The method benchmark's output (bench.run_bench): the Markdown tables, the goals and the
quality-vs-cost plot, from the results dict alone (no torch, no models)."""

from __future__ import annotations

import json
import math
from typing import Any

from ..stamp import GuardRecord
from ._markup import axis, esc
from .guard import guard_svg


def bench_markdown(results: dict[str, Any], metrics: list[str]) -> str:
    """The benchmark results (bench.run_bench) as Markdown: the methods table, guard sets, goals, timing.
    With guarded methods each sits beside its unguarded twin, with its alpha and worst guard change."""
    seeds = results["config"]["seeds"]
    lines = [f"# Benchmark `{results['name']}`", "",
             f"Model `{results['config']['model']}`, data `{results['config']['data']}`, seeds {seeds}; mean ± std over seeds. "
             "Delta, p-value (paired t-test) and 95 % CI compare per-query values averaged over seeds with the base.", ""]
    lines += _methods_table(results, metrics) + _guards_table(results, metrics[0])
    lines += ["", "Goals:", ""] + [f"- {g}" for g in bench_goals(results, metrics[0])]
    lines += _guard_tuning_lines(results)
    lines += _timing_lines(results.get("timing") or {})
    if results.get("command"):
        lines += ["", "Reproduce (from the project root):", "", "```", results["command"], "```"]
    v = results.get("versions") or {}
    if v:
        lines += ["", "Versions: " + ", ".join(f"{k} {val}" for k, val in sorted(v.items())) + "."]
    lines += ["", f"![quality vs training cost]({results['name']}.svg)", ""]
    return "\n".join(lines)


def is_guarded(entry: dict[str, Any]) -> bool:
    """Whether a bench method trained with the bench's guard sets (BenchMethod.guarded)."""
    return bool(entry.get("guarded"))


def table_order(results: dict[str, Any]) -> list[str]:
    """The methods (base left out) in table order: as configured, except that with guarded methods
    each method's guarded variants follow its unguarded ones."""
    methods = results["methods"]
    names = [n for n in methods if n != "base"]
    if not any(is_guarded(methods[n]) for n in names):
        return names
    first: dict[Any, int] = {}
    for i, n in enumerate(names):
        first.setdefault(_recipe(methods[n]), i)
    return sorted(names, key=lambda n: (first[_recipe(methods[n])], is_guarded(methods[n]), names.index(n)))


def _recipe(entry: dict[str, Any]) -> str:
    """What a contender trains with, guard sets aside: its method and its own settings."""
    return json.dumps([entry.get("method"), entry.get("train") or {}], sort_keys=True, default=str)


def worst_guard(entry: dict[str, Any], metric: str) -> tuple[str, float] | None:
    """(guard set, delta) of the set `metric` dropped most on (mean over seeds), or None without guard sets."""
    return min(((g, d[metric]["delta"]) for g, d in entry["guards"].items()), key=lambda t: t[1], default=None)


def _methods_table(results: dict[str, Any], metrics: list[str]) -> list[str]:
    methods, m0 = results["methods"], metrics[0]
    guarded = any(is_guarded(e) for e in methods.values())
    extra = " guarded | alpha | worst guard change |" if guarded else ""
    lines = ["| method | " + " | ".join(metrics) + " | delta " + m0 + " | p | 95% CI | train s | peak MB | trainable | "
             "artifact MB | docs re-encoded | re-encode s |" + extra, "|" + "---|" * (len(metrics) + 10 + 3 * guarded)]
    for name in ["base", *table_order(results)]:
        e = methods[name]
        cells = [f"{e['metrics'][m]['mean']:.4f} ± {e['metrics'][m]['std']:.4f}" for m in metrics]
        if name == "base":
            lines.append("| base | " + " | ".join(cells) + " |" + " |" * (9 + 3 * guarded))
            continue
        c = e["cost"]
        row = (f"| {name} | " + " | ".join(cells) + f" | {e['delta'][m0]:+.4f} | {e['p_value'][m0]:.3g} | "
               f"[{e['ci'][m0][0]:+.4f}, {e['ci'][m0][1]:+.4f}] | {c['train_seconds']:.0f} | {c['peak_memory_mb']:.0f} | "
               f"{c['trainable_params']:,} | {c['artifact_bytes'] / 2**20:.1f} | {c['documents_reencoded']} | "
               f"{'' if c.get('reencode_seconds') is None else format(c['reencode_seconds'], '.0f')} |")
        if guarded:
            alpha, worst = e.get("alpha"), worst_guard(e, m0)
            row += (f" {'yes' if is_guarded(e) else 'no'} | "
                    f"{'' if alpha is None else format(alpha['mean'], '.2f') + ' ± ' + format(alpha['std'], '.2f')} | "
                    f"{'' if worst is None else f'{worst[0]} {worst[1]:+.4f}'} |")
        lines.append(row)
    return lines


def _guards_table(results: dict[str, Any], metric: str) -> list[str]:
    guard_names = sorted(results["methods"]["base"]["guards"])
    if not guard_names:
        return []
    lines = ["", f"Guard sets ({metric} delta, p):", "", "| method | " + " | ".join(guard_names) + " |",
             "|" + "---|" * (len(guard_names) + 1)]
    for name in table_order(results):
        e = results["methods"][name]
        lines.append(f"| {name} | " + " | ".join(
            f"{e['guards'][g][metric]['delta']:+.4f} (p={e['guards'][g][metric]['p_value']:.3g})" for g in guard_names) + " |")
    return lines


def guard_plots(results: dict[str, Any]) -> dict[str, str]:
    """File name -> SVG of in-domain dev gain against the worst guard change (along alpha and over
    checkpoints, the choice marked), one per method whose results carry a guard-aware tuning record
    (its first seed's)."""
    plots = {}
    for name in table_order(results):
        tuning = results["methods"][name].get("guard_tuning")
        if tuning:
            record = GuardRecord.from_dict(tuning["guard"], f"{results['name']} methods.{name}.guard_tuning", "guard.")
            plots[f"{results['name']}-{name}-guard.svg"] = guard_svg(record, tuning.get("dev_history"))
    return plots


def _guard_tuning_lines(results: dict[str, Any]) -> list[str]:
    """Per method with a guard-aware tuning record: its alpha and why, and its plot (guard_plots)."""
    lines = []
    for name in table_order(results):
        tuning = results["methods"][name].get("guard_tuning")
        if not tuning:
            continue
        guard = tuning["guard"]
        alpha = "" if tuning.get("alpha") is None else f"alpha {tuning['alpha']:g}; "
        lines += [f"- {name} (seed {tuning.get('seed')}): {alpha}{guard.get('reason') or 'no reason recorded'}", "",
                  f"  ![{name}: in-domain dev gain against the worst guard change]({results['name']}-{name}-guard.svg)"]
    return ["", "Guard-aware tuning (the first seed of each guarded method; dev gain against the worst guard change "
                "on the guard samples, along alpha and over checkpoints):", "", *lines] if lines else []


def _timing_lines(timing: dict[str, Any]) -> list[str]:
    if not timing:
        return []
    line = (f"Wall time: {timing['from_scratch_seconds'] / 60:.0f} min from scratch (base evaluation plus every "
            f"(method, seed) pair as recorded); this invocation took {timing['elapsed_seconds'] / 60:.0f} min.")
    if timing.get("cached"):
        added = timing.get("encode_seconds_added")
        line += (f" Embeddings for {', '.join(timing['cached'])} came from the embedding cache; "
                 + (f"the from-scratch figure adds {added / 60:.0f} min for encoding them (the mean of the pairs "
                    "that encoded)." if added is not None else "no pair encoded, so that time is not counted."))
    return ["", line]


def bench_goals(results: dict[str, Any], metric: str, alpha: float = 0.05, lora_gap: float = 0.01,
                guard_drop: float = 0.01, keep: float = 0.8, keep_goal: float = 0.9) -> list[str]:
    """The benchmark's goals, each stated as met or not met with its numbers: every method
    significantly above base, LoRA within `lora_gap` of full, no guard set dropping by more than
    `guard_drop`; and for each guarded method with an unguarded twin (the same `method`): every
    guard within `guard_drop` and at least `keep` of the twin's in-domain gain kept (`keep_goal`
    the aim)."""
    methods = {n: e for n, e in results["methods"].items() if n != "base"}
    lines = []
    for name, e in methods.items():
        ok = e["delta"][metric] > 0 and e["p_value"][metric] < alpha
        lines.append(f"{'met' if ok else 'NOT met'}: {name} above base ({metric} {e['delta'][metric]:+.4f}, "
                     f"p={e['p_value'][metric]:.3g}, threshold p<{alpha})")
    if "full" in methods and "lora" in methods:
        gap = methods["full"]["metrics"][metric]["mean"] - methods["lora"]["metrics"][metric]["mean"]
        lines.append(f"{'met' if gap <= lora_gap else 'NOT met'}: lora within {lora_gap} of full "
                     f"(full - lora = {gap:+.4f})")
    twins = {n: _twin(methods, methods[n]) for n in table_order(results) if is_guarded(methods[n])}
    for name, e in methods.items():
        worst = worst_guard(e, metric)
        if worst is not None and twins.get(name) is None:  # a guarded method with a twin: its own goal below
            lines.append(f"{'met' if worst[1] >= -guard_drop else 'NOT met'}: {name} drops no guard set by more than "
                         f"{guard_drop} (worst: {worst[0]} {worst[1]:+.4f})")
    for name, twin in twins.items():
        if twin is not None:
            lines += _guarded_goals(name, methods[name], twin, methods[twin], metric, guard_drop, keep, keep_goal)
    return lines


def _twin(methods: dict[str, Any], entry: dict[str, Any]) -> str | None:
    """The unguarded method trained as `entry` is (same method and settings), else the first of the
    same method, or None."""
    unguarded = [n for n, t in methods.items() if n != "base" and not is_guarded(t)]
    return (next((n for n in unguarded if _recipe(methods[n]) == _recipe(entry)), None)
            or next((n for n in unguarded if methods[n].get("method") == entry.get("method")), None))


def _guarded_goals(name: str, e: dict[str, Any], twin: str, unguarded: dict[str, Any], metric: str,
                   guard_drop: float, keep: float, keep_goal: float) -> list[str]:
    """A guarded method's goals against its unguarded twin: guards held, in-domain gain kept."""
    lines = []
    worst = worst_guard(e, metric)
    if worst is not None:
        lines.append(f"{'met' if worst[1] >= -guard_drop else 'NOT met'}: {name} keeps every guard within {guard_drop} "
                     f"(mean over seeds; worst: {worst[0]} {worst[1]:+.4f})")
    gain, twin_gain = e["delta"][metric], unguarded["delta"][metric]
    if twin_gain <= 0:
        lines.append(f"n/a: {name} keeps >= {keep:.0%} of its unguarded in-domain gain: {twin} gained "
                     f"{twin_gain:+.4f}, so there is no gain to keep")
        return lines
    share = gain / twin_gain
    lines.append(f"{'met' if share >= keep else 'NOT met'}: {name} keeps >= {keep:.0%} of its unguarded in-domain "
                 f"gain (goal {keep_goal:.0%}: {'reached' if share >= keep_goal else 'not reached'}; {metric} "
                 f"{gain:+.4f} of {twin}'s {twin_gain:+.4f} = {share:.0%})")
    return lines


def quality_cost_svg(results: dict[str, Any], metric: str, width: int = 560, height: int = 320) -> str:
    """Each method's mean metric against its training seconds (log scale), as an inline-able SVG;
    guarded methods are orange diamonds (with a legend) where the bench has any."""
    methods = results["methods"]
    points = [(n, e["cost"]["train_seconds"], e["metrics"][metric]["mean"]) for n, e in methods.items() if n != "base"]
    base = methods["base"]["metrics"][metric]["mean"]
    if not points:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    xs = [math.log10(max(p[1], 1e-3)) for p in points]
    ys = [p[2] for p in points] + [base]
    pad = 50
    sx = axis(min(xs) - 0.2, max(xs) + 0.2, pad, width - pad)
    sy = axis(min(ys) - 0.01, max(ys) + 0.01, height - pad, pad)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<line x1="{pad}" y1="{sy(base):.1f}" x2="{width - pad}" y2="{sy(base):.1f}" stroke="#999" stroke-dasharray="4"/>',
             f'<text x="{pad + 4}" y="{sy(base) - 4:.1f}" fill="#666">base {base:.4f}</text>',
             f'<text x="{width / 2:.0f}" y="{height - 10}" text-anchor="middle">training seconds (log scale)</text>',
             f'<text x="14" y="{height / 2:.0f}" transform="rotate(-90 14 {height / 2:.0f})" text-anchor="middle">{esc(metric)}</text>']
    for (name, seconds, value), lx in zip(points, xs, strict=True):
        x, y = sx(lx), sy(value)
        parts.append((_diamond(x, y) if is_guarded(methods[name]) else f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#1565c0"/>')
                     + f'<text x="{x + 8:.1f}" y="{y + 4:.1f}">{esc(name)} ({seconds:.0f} s)</text>')
    if any(is_guarded(methods[n]) for n, _, _ in points):
        parts.append(f'<circle cx="{width - 150}" cy="16" r="5" fill="#1565c0"/><text x="{width - 142}" y="20">unguarded</text>'
                     f'{_diamond(width - 150, 34)}<text x="{width - 142}" y="38">guarded</text>')
    parts.append("</svg>")
    return "".join(parts)


def _diamond(x: float, y: float, r: float = 6) -> str:
    """The marker of a guarded method."""
    return (f'<polygon class="guarded" points="{x:.1f},{y - r:.1f} {x + r:.1f},{y:.1f} {x:.1f},{y + r:.1f} '
            f'{x - r:.1f},{y:.1f}" fill="#ef6c00"/>')
