"""Human- and machine-readable output of results: terminal tables, Markdown, TREC run files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ._io import write_text_atomic
from .compare import Comparison
from .gate import Verdict
from .metrics import ranked
from .results import EvaluationResult


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
        f"model    {model.get('name')}  (fingerprint {str(model.get('fingerprint'))[:12]})",
        f"dataset  {ds.get('path')}  split={ds.get('split')}  docs={ds.get('n_docs')}  "
        f"judged queries={ds.get('n_queries_judged')}  skipped (no judgments)={ds.get('n_queries_skipped')}",
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
