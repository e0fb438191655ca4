"""Human- and machine-readable output of results: terminal tables, Markdown, TREC run files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import write_text_atomic
from .compare import Comparison
from .gate import Verdict, missing_note
from .metrics import ranked
from .results import EvaluationResult, RunReport

if TYPE_CHECKING:
    from .data import IRDataset


def write_trec_run(path: str | Path, run: Mapping[str, Mapping[str, float]], tag: str = "retrieval-ft") -> None:
    """A TREC run file: `qid Q0 docid rank score tag`, ranks from 1 in evaluation order."""
    tag = "".join(c if not c.isspace() else "_" for c in tag) or "retrieval-ft"
    lines = []
    for qid, results in run.items():
        for rank, (did, score) in enumerate(ranked(results), start=1):
            lines.append(f"{qid} Q0 {did} {rank} {score:.6f} {tag}")
    write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))


def evaluation_table(result: EvaluationResult) -> str:
    """A short plain-text summary for the terminal."""
    ds, model, t = result.dataset, result.model, result.timings
    width = max(len(m) for m in result.metrics) if result.metrics else 6
    lines = [
        f"model    {model.name}  (fingerprint {str(model.fingerprint)[:12]})",
        f"dataset  {ds.path}  split={ds.split}  docs={ds.n_docs}  "
        f"judged queries={ds.n_queries_judged}  skipped (no judgments)={ds.n_queries_skipped}",
        "",
        f"{'metric':<{width}}  value",
        f"{'-' * width}  ------",
    ]
    lines += [f"{name:<{width}}  {value:.4f}" for name, value in result.metrics.items()]
    enc = "cache hit, 0.0 s" if result.cache.get("hit") else f"{t.get('encode_corpus', 0.0):.1f} s"
    lines += ["", f"corpus encoding: {enc}; queries {t.get('encode_queries', 0.0):.1f} s; "
              f"search {t.get('search', 0.0):.2f} s; total {t.get('total', 0.0):.1f} s"]
    return "\n".join(lines)


def comparison_markdown(comparison: Comparison, title: str = "Retrieval comparison") -> str:
    """Markdown for people and CI summaries ($GITHUB_STEP_SUMMARY)."""
    lines = [f"### {title}", "",
             f"baseline `{comparison.baseline.get('name')}` vs candidate `{comparison.candidate.get('name')}` on "
             f"`{comparison.dataset.get('path')}` (split `{comparison.dataset.get('split')}`)", ""]
    if comparison.forced:
        lines += ["**Warning:** the results were computed on different data (--force).", ""]
    for m in comparison.metrics.values():
        if m.missing_queries or m.extra_queries:
            lines += [f"**Note ({m.metric}):** compared over the {m.n_queries} queries both scored"
                      f"{missing_note(m).replace('; ', ', ')} (--allow-missing-queries).", ""]
    lines += ["| metric | baseline | candidate | delta | 95% CI | p-value | wins / ties / losses |",
              "|---|---:|---:|---:|---|---:|---|"]
    for m in comparison.metrics.values():
        lines.append(f"| {m.metric} | {m.baseline:.4f} | {m.candidate:.4f} | {m.delta:+.4f} | "
                     f"[{m.ci_low:+.4f}, {m.ci_high:+.4f}] | {m.p_value:.3g} ({m.test}) | {m.wins} / {m.ties} / {m.losses} |")
    for m in comparison.metrics.values():
        if not m.worst:
            continue
        lines += ["", f"Queries that lost most ({m.metric}):", "", "| query | baseline | candidate | delta | text |",
                  "|---|---:|---:|---:|---|"]
        for w in m.worst:
            text = (w.text or "").replace("|", "\\|")
            text = text[:120] + ("…" if len(text) > 120 else "")
            lines.append(f"| {w.query_id} | {w.baseline:.4f} | {w.candidate:.4f} | {w.delta:+.4f} | {text} |")
    return "\n".join(lines) + "\n"


def verdict_markdown(verdict: Verdict) -> str:
    head = "**Gate passed**" if verdict.passed else "**Gate failed**"
    lines = [f"## Retrieval gate: {head}", ""]
    lines += [f"- {r}" for r in verdict.reasons] or ["- every rule held"]
    lines.append("")
    for name, comparison in verdict.comparisons.items():
        lines.append(comparison_markdown(comparison, "Main dataset" if name == "main" else f"Guard set `{name}`"))
    return "\n".join(lines)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def run_markdown(report: RunReport) -> str:
    """The run report for people and CI logs."""
    v, t = report.verdict, report.train
    lines = [f"# retrieval-ft run: {'gate passed' if v.passed else 'gate FAILED'}", ""]
    lines += [f"- {r}" for r in v.reasons] or ["- every gate rule held"]
    lines += ["", "## Metrics (test split)", "", "| metric | base | tuned | delta |", "|---|---:|---:|---:|"]
    for name, value in report.base.metrics.items():
        tuned = report.tuned.metrics.get(name, float("nan"))
        lines.append(f"| {name} | {value:.4f} | {tuned:.4f} | {tuned - value:+.4f} |")
    lines += ["", "## Training", "",
              f"method {t.method}; {t.pairs} pairs, {t.steps} steps, learning rate {t.learning_rate:g}; "
              f"{t.seconds:.0f} s; peak memory {t.peak_memory_mb:.0f} MB; trainable parameters "
              f"{t.trainable_params:,} of {t.total_params:,}; artifact {_fmt_bytes(t.artifact_bytes)}; "
              f"best dev NDCG@10 {t.best_dev_ndcg if t.best_dev_ndcg is None else round(t.best_dev_ndcg, 4)} "
              f"({t.dev})", ""]
    for name, comparison in v.comparisons.items():
        lines.append(comparison_markdown(comparison, "Main dataset" if name == "main" else f"Guard set `{name}`"))
    return "\n".join(lines)


# -- pages retrieved for the worst queries (page-image corpora) ---------------------------------
def page_gallery(dataset: IRDataset, base: EvaluationResult, tuned: EvaluationResult, metric: str,
                 n: int = 5, k: int = 5) -> list[dict[str, Any]]:
    """For the `n` queries the tuned model serves worst (lowest tuned `metric`, larger loss first),
    the tuned model's first `k` pages, each marked relevant or not, and the relevant pages it left
    out of them. Empty unless the corpus has page images."""
    if not any(d.image for d in dataset.corpus.values()) or metric not in tuned.per_query:
        return []
    qrels = dataset.split(tuned.dataset.split or "test")
    after, before = tuned.per_query[metric], base.per_query.get(metric, {})
    worst = sorted(after, key=lambda q: (after[q], after[q] - before.get(q, after[q]), q))[:n]

    def page(doc_id: str) -> dict[str, Any]:
        doc = dataset.corpus[doc_id]
        return {"doc_id": doc_id, "image": str(dataset.root / doc.image) if doc.image else None}

    gallery = []
    for q in worst:
        relevant = {d for d, g in qrels.get(q, {}).items() if g > 0}
        hits = tuned.top_docs.get(q, [])[:k]
        gallery.append({
            "query_id": q, "text": tuned.queries.get(q, ""), "base": before.get(q), "tuned": after[q],
            "hits": [{**page(d), "relevant": d in relevant} for d in hits if d in dataset.corpus],
            "missed": [page(d) for d in sorted(relevant - set(hits)) if d in dataset.corpus][:k],
        })
    return gallery


def _thumbnail(path: str | None, height: int = 140) -> str | None:
    """A small JPEG of the page as a data URI, or None when it cannot be read."""
    if path is None:
        return None
    import base64
    import io

    from .data.images import load_image
    from .errors import DataError, MissingExtraError

    try:
        image = load_image(path, pdf_scale=1.0)
    except (DataError, MissingExtraError):
        return None
    image.thumbnail((height * 2, height))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=75)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _gallery_html(gallery: list[dict[str, Any]]) -> list[str]:
    parts = ['<h2>Pages retrieved for the worst queries</h2><p>The tuned model\'s first pages for the queries it '
             "serves worst; a green frame marks a relevant page, and relevant pages it missed follow.</p>",
             '<div id="gallery">']
    for entry in gallery:
        base = "" if entry["base"] is None else f"base {entry['base']:.3f}, "
        parts.append(f'<div class="query"><p><b>{_esc(entry["query_id"])}</b>: {_esc(entry["text"])} '
                     f'({base}tuned {entry["tuned"]:.3f})</p><div class="pages">')
        for rank, hit in enumerate(entry["hits"], 1):
            cls = "hit relevant" if hit["relevant"] else "hit"
            parts.append(_figure(hit, cls, f"#{rank}" + (" relevant" if hit["relevant"] else "")))
        for miss in entry["missed"]:
            parts.append(_figure(miss, "missed", "relevant, missed"))
        parts.append("</div></div>")
    parts.append("</div>")
    return parts


def _figure(page: dict[str, Any], cls: str, caption: str) -> str:
    if page.get("image") is None:
        img = '<span class="noimg">(text document)</span>'
    else:
        uri = _thumbnail(page["image"])
        img = f'<img src="{uri}" alt="{_esc(page["doc_id"])}"/>' if uri else '<span class="noimg">(unreadable)</span>'
    return (f'<figure class="{cls}">{img}<figcaption>{_esc(caption)}<br/><code>{_esc(page["doc_id"])}</code>'
            "</figcaption></figure>")


_XML_FORBIDDEN = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32)], "\ufffd")


def _esc(text: Any) -> str:
    """Escaped for (X)HTML; control characters XML forbids become U+FFFD, so the page stays XML."""
    import html

    return html.escape(str(text), quote=True).translate(_XML_FORBIDDEN)


def _delta_svg(deltas: list[float], metric: str, width: int = 760, height: int = 220) -> str:
    """Per-query deltas as sorted bars (red: lost, green: gained), an inline SVG."""
    if not deltas:
        return "<p>No per-query values.</p>"
    values = sorted(deltas)
    peak = max(1e-9, max(abs(x) for x in values))
    mid = height / 2
    bar = width / len(values)
    rects = []
    for i, x in enumerate(values):
        h = abs(x) / peak * (mid - 10)
        y = mid - h if x > 0 else mid
        color = "#2e7d32" if x > 0 else "#c62828" if x < 0 else "#9e9e9e"
        rects.append(f'<rect class="bar" x="{i * bar:.2f}" y="{y:.2f}" width="{max(bar, 0.5):.2f}" '
                     f'height="{max(h, 0.5):.2f}" fill="{color}"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="per-query {_esc(metric)} deltas, sorted">'
            f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" stroke="#555" stroke-width="1"/>{"".join(rects)}'
            f'<text x="4" y="14" font-size="12">+{peak:.3f}</text><text x="4" y="{height - 4}" font-size="12">-{peak:.3f}</text>'
            "</svg>")


def run_html(report: RunReport) -> str:
    """A single self-contained HTML page: verdict, metric table, per-query delta plot, worst queries,
    for page corpora thumbnails of the pages retrieved for the worst queries, guard sets and training cost. Written as XHTML so it also parses as XML."""
    v, t = report.verdict, report.train
    main = v.comparisons.get("main")
    status = "passed" if v.passed else "failed"
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<!DOCTYPE html>",
             '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/>',
             f"<title>retrieval-ft run: gate {status}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "td.text{text-align:left}.passed{color:#2e7d32}.failed{color:#c62828}h1 span{font-weight:normal}"
             ".pages{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;padding:3px;border:3px solid #ddd;font-size:11px;"
             "text-align:center}figure.relevant{border-color:#2e7d32}figure.missed{border-style:dashed;border-color:#2e7d32}"
             "figure img{display:block;max-height:140px}</style>",
             "</head><body>",
             f'<h1>retrieval-ft run: <span class="{status}" id="verdict">gate {status}</span></h1>']
    if v.reasons:
        parts.append('<ul id="reasons">' + "".join(f"<li>{_esc(r)}</li>" for r in v.reasons) + "</ul>")
    parts.append(f"<p>Base <code>{_esc(report.base.model.name)}</code>, tuned with <b>{_esc(t.method)}</b>, "
                 f"on <code>{_esc(report.base.dataset.path)}</code> (split {_esc(report.base.dataset.split)}, "
                 f"{report.base.dataset.n_queries_judged} judged queries).</p>")
    parts.append('<h2>Before and after</h2><table id="metrics"><tr><th>metric</th><th>base</th><th>tuned</th><th>delta</th>'
                 "<th>95% CI</th><th>p-value</th></tr>")
    for name, value in report.base.metrics.items():
        tuned = report.tuned.metrics.get(name, float("nan"))
        m = main.metrics.get(name) if main else None
        ci = f"[{m.ci_low:+.4f}, {m.ci_high:+.4f}]" if m else ""
        p = f"{m.p_value:.3g}" if m else ""
        parts.append(f"<tr><td class='text'>{_esc(name)}</td><td>{value:.4f}</td><td>{tuned:.4f}</td>"
                     f"<td>{tuned - value:+.4f}</td><td>{ci}</td><td>{p}</td></tr>")
    parts.append("</table>")
    gated = set(report.config.get("gate", {}).get("rules", {}).get("metrics", ())) or set(main.metrics if main else ())
    if main:
        for name, m in main.metrics.items():
            if name not in gated:
                continue
            parts.append(f"<h2>Per-query change of {_esc(name)}</h2><p>{m.wins} queries gained, {m.ties} unchanged, "
                         f"{m.losses} lost; sorted from the largest loss to the largest gain.</p>")
            parts.append(_delta_svg(list(m.deltas.values()), name))
            if m.worst:
                parts.append('<h3>Queries that got most worse</h3><table class="worst"><tr><th>query</th><th>base</th>'
                             "<th>tuned</th><th>delta</th><th>text</th></tr>")
                parts += [f"<tr><td class='text'>{_esc(w.query_id)}</td><td>{w.baseline:.4f}</td><td>{w.candidate:.4f}</td>"
                          f"<td>{w.delta:+.4f}</td><td class='text'>{_esc(w.text or '')}</td></tr>" for w in m.worst]
                parts.append("</table>")
    if getattr(report, "gallery", None):
        parts += _gallery_html(report.gallery)
    guard_names = [n for n in v.comparisons if n != "main"]
    if guard_names:
        parts.append('<h2>Guard sets</h2><table id="guards"><tr><th>set</th><th>metric</th><th>base</th><th>tuned</th>'
                     "<th>delta</th><th>p-value</th></tr>")
        for n in guard_names:
            for m in v.comparisons[n].metrics.values():
                parts.append(f"<tr><td class='text'>{_esc(n)}</td><td class='text'>{_esc(m.metric)}</td><td>{m.baseline:.4f}</td>"
                             f"<td>{m.candidate:.4f}</td><td>{m.delta:+.4f}</td><td>{m.p_value:.3g}</td></tr>")
        parts.append("</table>")
    parts.append('<h2>Training cost</h2><table id="training">')
    rows = [("method", t.method), ("training pairs", t.pairs), ("steps", t.steps),
            ("learning rate", f"{t.learning_rate:g}"), ("time", f"{t.seconds:.0f} s"),
            ("peak memory", f"{t.peak_memory_mb:.0f} MB"),
            ("trainable parameters", f"{t.trainable_params:,} of {t.total_params:,}"),
            ("artifact size", _fmt_bytes(t.artifact_bytes)), ("model selection", t.dev)]
    parts += [f"<tr><th>{_esc(k)}</th><td class='text'>{_esc(val)}</td></tr>" for k, val in rows]
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def write_run_report(report: RunReport, out: str | Path) -> None:
    from ._io import write_json_atomic

    out = Path(out)
    write_json_atomic(out / "report.json", report.to_dict())
    write_text_atomic(out / "report.md", run_markdown(report))
    write_text_atomic(out / "report.html", run_html(report))


# -- the method benchmark (bench.run_bench): Markdown table, goals, quality-vs-cost plot -----------
def bench_markdown(results: dict[str, Any], metrics: list[str]) -> str:
    """The benchmark results (bench.run_bench) as Markdown: the methods table, guard sets, goals, timing."""
    seeds = results["config"]["seeds"]
    lines = [f"# Benchmark `{results['name']}`", "",
             f"Model `{results['config']['model']}`, data `{results['config']['data']}`, seeds {seeds}; mean ± std over seeds. "
             "Delta, p-value (paired t-test) and 95 % CI compare per-query values averaged over seeds with the base.", ""]
    head = "| method | " + " | ".join(metrics) + " | delta " + metrics[0] + " | p | 95% CI | train s | peak MB | trainable | artifact MB | docs re-encoded | re-encode s |"
    lines += [head, "|" + "---|" * (len(metrics) + 10)]
    for name, e in results["methods"].items():
        cells = [f"{e['metrics'][m]['mean']:.4f} ± {e['metrics'][m]['std']:.4f}" for m in metrics]
        if name == "base":
            lines.append("| base | " + " | ".join(cells) + " |" + " |" * 9)
            continue
        c, m0 = e["cost"], metrics[0]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {e['delta'][m0]:+.4f} | {e['p_value'][m0]:.3g} | "
                     f"[{e['ci'][m0][0]:+.4f}, {e['ci'][m0][1]:+.4f}] | {c['train_seconds']:.0f} | {c['peak_memory_mb']:.0f} | "
                     f"{c['trainable_params']:,} | {c['artifact_bytes'] / 2**20:.1f} | {c['documents_reencoded']} | "
                     f"{'' if c.get('reencode_seconds') is None else format(c['reencode_seconds'], '.0f')} |")
    guard_names = sorted(results["methods"]["base"]["guards"])
    if guard_names:
        lines += ["", f"Guard sets ({metrics[0]} delta, p):", "", "| method | " + " | ".join(guard_names) + " |",
                  "|" + "---|" * (len(guard_names) + 1)]
        for name, e in results["methods"].items():
            if name == "base":
                continue
            lines.append(f"| {name} | " + " | ".join(
                f"{e['guards'][g][metrics[0]]['delta']:+.4f} (p={e['guards'][g][metrics[0]]['p_value']:.3g})" for g in guard_names) + " |")
    lines += ["", "Goals:", ""] + [f"- {g}" for g in bench_goals(results, metrics[0])]
    timing = results.get("timing") or {}
    if timing:
        lines += ["", f"Wall time: {timing['from_scratch_seconds'] / 60:.0f} min from scratch (base evaluation plus every "
                      f"(method, seed) pair as recorded); this invocation took {timing['elapsed_seconds'] / 60:.0f} min."]
        if timing.get("cached"):
            added = timing.get("encode_seconds_added")
            lines[-1] += (f" Embeddings for {', '.join(timing['cached'])} came from the embedding cache; "
                          + (f"the from-scratch figure adds {added / 60:.0f} min for encoding them (the mean of the pairs "
                             "that encoded)." if added is not None else "no pair encoded, so that time is not counted."))
    if results.get("command"):
        lines += ["", "Reproduce (from the project root):", "", "```", results["command"], "```"]
    v = results.get("versions") or {}
    if v:
        lines += ["", "Versions: " + ", ".join(f"{k} {val}" for k, val in sorted(v.items())) + "."]
    lines += ["", f"![quality vs training cost]({results['name']}.svg)", ""]
    return "\n".join(lines)


def bench_goals(results: dict[str, Any], metric: str, alpha: float = 0.05, lora_gap: float = 0.01,
                guard_drop: float = 0.01) -> list[str]:
    """The benchmark's goals, each stated as met or not met with its numbers: every method
    significantly above base, LoRA within `lora_gap` of full, no guard set dropping by more than
    `guard_drop`."""
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
    for name, e in methods.items():
        worst = min(((g, d[metric]["delta"]) for g, d in e["guards"].items()), key=lambda t: t[1], default=None)
        if worst is not None:
            lines.append(f"{'met' if worst[1] >= -guard_drop else 'NOT met'}: {name} drops no guard set by more than "
                         f"{guard_drop} (worst: {worst[0]} {worst[1]:+.4f})")
    return lines


def quality_cost_svg(results: dict[str, Any], metric: str, width: int = 560, height: int = 320) -> str:
    """Each method's mean metric against its training seconds (log scale), as an inline-able SVG."""
    import math

    points = [(n, e["cost"]["train_seconds"], e["metrics"][metric]["mean"]) for n, e in results["methods"].items() if n != "base"]
    base = results["methods"]["base"]["metrics"][metric]["mean"]
    if not points:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    xs = [math.log10(max(p[1], 1e-3)) for p in points]
    ys = [p[2] for p in points] + [base]
    x0, x1 = min(xs) - 0.2, max(xs) + 0.2
    y0, y1 = min(ys) - 0.01, max(ys) + 0.01
    pad = 50

    def sx(v: float) -> float:
        return pad + (v - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(v: float) -> float:
        return height - pad - (v - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<line x1="{pad}" y1="{sy(base):.1f}" x2="{width - pad}" y2="{sy(base):.1f}" stroke="#999" stroke-dasharray="4"/>',
             f'<text x="{pad + 4}" y="{sy(base) - 4:.1f}" fill="#666">base {base:.4f}</text>',
             f'<text x="{width / 2:.0f}" y="{height - 10}" text-anchor="middle">training seconds (log scale)</text>',
             f'<text x="14" y="{height / 2:.0f}" transform="rotate(-90 14 {height / 2:.0f})" text-anchor="middle">{_esc(metric)}</text>']
    for (name, seconds, value), lx in zip(points, xs, strict=True):
        parts.append(f'<circle cx="{sx(lx):.1f}" cy="{sy(value):.1f}" r="5" fill="#1565c0"/>'
                     f'<text x="{sx(lx) + 8:.1f}" y="{sy(value) + 4:.1f}">{_esc(name)} ({seconds:.0f} s)</text>')
    parts.append("</svg>")
    return "".join(parts)
