"""Output of an evaluation, a comparison, a gate verdict and a run: terminal tables, Markdown, the
run's HTML page, TREC run files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import write_text_atomic
from ..compare import Comparison
from ..gate import Verdict, missing_note
from ..metrics import ranked
from ..results import EvaluationResult, RunReport
from ..stamp import GuardRecord
from ._markup import esc
from .guard import guard_html, guard_markdown

if TYPE_CHECKING:
    from ..data import IRDataset


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
    lines += warning_lines(verdict)
    lines.append("")
    for name, comparison in verdict.comparisons.items():
        lines.append(comparison_markdown(comparison, "Main dataset" if name == "main" else f"Guard set `{name}`"))
    return "\n".join(lines)


def warning_lines(verdict: Verdict) -> list[str]:
    """The verdict's warnings as Markdown list items (none: no lines)."""
    return [f"- **Warning:** {w}" for w in verdict.warnings]


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
    lines += warning_lines(v)
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
    guard, _ = guard_tuning(report)
    if guard is not None:
        lines.append(guard_markdown(guard))
    for name, comparison in v.comparisons.items():
        lines.append(comparison_markdown(comparison, "Main dataset" if name == "main" else f"Guard set `{name}`"))
    return "\n".join(lines)


def guard_tuning(report: RunReport) -> tuple[GuardRecord | None, list[dict[str, Any]] | None]:
    """The tuned artifact's guard record (the stamp's `guard`) and dev history, as the training
    summary carries them; (None, None) when training watched no guard set."""
    guard = getattr(report.train, "guard", None)
    if guard is not None and not isinstance(guard, GuardRecord):
        guard = GuardRecord.from_dict(guard, "report train.guard", "guard.")
    return guard, getattr(report.train, "dev_history", None)


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

    from ..data.images import load_image
    from ..errors import DataError, MissingExtraError

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
        parts.append(f'<div class="query"><p><b>{esc(entry["query_id"])}</b>: {esc(entry["text"])} '
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
        img = f'<img src="{uri}" alt="{esc(page["doc_id"])}"/>' if uri else '<span class="noimg">(unreadable)</span>'
    return (f'<figure class="{cls}">{img}<figcaption>{esc(caption)}<br/><code>{esc(page["doc_id"])}</code>'
            "</figcaption></figure>")


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
            f'aria-label="per-query {esc(metric)} deltas, sorted">'
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
             "td.text{text-align:left}.passed{color:#2e7d32}.failed{color:#c62828}.warning{color:#b26a00}h1 span{font-weight:normal}"
             ".pages{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;padding:3px;border:3px solid #ddd;font-size:11px;"
             "text-align:center}figure.relevant{border-color:#2e7d32}figure.missed{border-style:dashed;border-color:#2e7d32}"
             "figure img{display:block;max-height:140px}</style>",
             "</head><body>",
             f'<h1>retrieval-ft run: <span class="{status}" id="verdict">gate {status}</span></h1>']
    if v.reasons:
        parts.append('<ul id="reasons">' + "".join(f"<li>{esc(r)}</li>" for r in v.reasons) + "</ul>")
    if v.warnings:
        parts.append('<ul id="warnings">' + "".join(f'<li class="warning"><b>Warning:</b> {esc(w)}</li>'
                                                     for w in v.warnings) + "</ul>")
    parts.append(f"<p>Base <code>{esc(report.base.model.name)}</code>, tuned with <b>{esc(t.method)}</b>, "
                 f"on <code>{esc(report.base.dataset.path)}</code> (split {esc(report.base.dataset.split)}, "
                 f"{report.base.dataset.n_queries_judged} judged queries).</p>")
    parts.append('<h2>Before and after</h2><table id="metrics"><tr><th>metric</th><th>base</th><th>tuned</th><th>delta</th>'
                 "<th>95% CI</th><th>p-value</th></tr>")
    for name, value in report.base.metrics.items():
        tuned = report.tuned.metrics.get(name, float("nan"))
        m = main.metrics.get(name) if main else None
        ci = f"[{m.ci_low:+.4f}, {m.ci_high:+.4f}]" if m else ""
        p = f"{m.p_value:.3g}" if m else ""
        parts.append(f"<tr><td class='text'>{esc(name)}</td><td>{value:.4f}</td><td>{tuned:.4f}</td>"
                     f"<td>{tuned - value:+.4f}</td><td>{ci}</td><td>{p}</td></tr>")
    parts.append("</table>")
    gated = set(report.config.get("gate", {}).get("rules", {}).get("metrics", ())) or set(main.metrics if main else ())
    if main:
        for name, m in main.metrics.items():
            if name not in gated:
                continue
            parts.append(f"<h2>Per-query change of {esc(name)}</h2><p>{m.wins} queries gained, {m.ties} unchanged, "
                         f"{m.losses} lost; sorted from the largest loss to the largest gain.</p>")
            parts.append(_delta_svg(list(m.deltas.values()), name))
            if m.worst:
                parts.append('<h3>Queries that got most worse</h3><table class="worst"><tr><th>query</th><th>base</th>'
                             "<th>tuned</th><th>delta</th><th>text</th></tr>")
                parts += [f"<tr><td class='text'>{esc(w.query_id)}</td><td>{w.baseline:.4f}</td><td>{w.candidate:.4f}</td>"
                          f"<td>{w.delta:+.4f}</td><td class='text'>{esc(w.text or '')}</td></tr>" for w in m.worst]
                parts.append("</table>")
    if getattr(report, "gallery", None):
        parts += _gallery_html(report.gallery)
    guard, history = guard_tuning(report)
    if guard is not None:
        parts += guard_html(guard, history)
    guard_names = [n for n in v.comparisons if n != "main"]
    if guard_names:
        parts.append('<h2>Guard sets</h2><table id="guards"><tr><th>set</th><th>metric</th><th>base</th><th>tuned</th>'
                     "<th>delta</th><th>p-value</th></tr>")
        for n in guard_names:
            for m in v.comparisons[n].metrics.values():
                parts.append(f"<tr><td class='text'>{esc(n)}</td><td class='text'>{esc(m.metric)}</td><td>{m.baseline:.4f}</td>"
                             f"<td>{m.candidate:.4f}</td><td>{m.delta:+.4f}</td><td>{m.p_value:.3g}</td></tr>")
        parts.append("</table>")
    parts.append('<h2>Training cost</h2><table id="training">')
    rows = [("method", t.method), ("training pairs", t.pairs), ("steps", t.steps),
            ("learning rate", f"{t.learning_rate:g}"), ("time", f"{t.seconds:.0f} s"),
            ("peak memory", f"{t.peak_memory_mb:.0f} MB"),
            ("trainable parameters", f"{t.trainable_params:,} of {t.total_params:,}"),
            ("artifact size", _fmt_bytes(t.artifact_bytes)), ("model selection", t.dev)]
    parts += [f"<tr><th>{esc(k)}</th><td class='text'>{esc(val)}</td></tr>" for k, val in rows]
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def write_run_report(report: RunReport, out: str | Path) -> None:
    from .._io import write_json_atomic

    out = Path(out)
    data = report.to_dict()
    write_json_atomic(out / "report.json", data)
    write_text_atomic(out / "report.md", run_markdown(report))
    write_text_atomic(out / "report.html", run_html(report))
