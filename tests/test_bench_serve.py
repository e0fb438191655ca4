"""The serving benchmark (eval/bench/serve.py) in its quick mode: every figure in its JSON, each
sane, each ratio the one its figures give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval_ft.models import bundled_minilm_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if bundled_minilm_path() is None:
        pytest.skip("the bundled all-MiniLM-L6-v2 (demo extra) is absent")
    out = tmp_path_factory.mktemp("serve") / "serve.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "eval" / "bench" / "serve.py"), "--quick", "--json", str(out)],
                          env=env, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "goal: mixed batches" in proc.stdout
    return json.loads(out.read_text())


def test_memory_rows_and_their_ratios(figures):
    rows = figures["memory"]
    counts = figures["adapters"]
    assert [(r["kind"], r["adapters"]) for r in rows] == [("base", 0), ("retriever", 0), *[("retriever", n) for n in counts],
                                                          *[("separate", n) for n in counts]]
    base = rows[0]
    for r in rows:
        assert 0 < r["before_mb"] < r["loaded_mb"] and r["rss_mb"] <= r["peak_mb"], r
        assert r["model_mb"] == pytest.approx(r["rss_mb"] - r["before_mb"]) and r["model_mb"] > 0
        assert r["rss_ratio"] == pytest.approx(r["rss_mb"] / base["rss_mb"])
        assert r["model_ratio"] == pytest.approx(r["model_mb"] / base["model_mb"])
    # a separately loaded model holds the base twice over (query tower and document tower)
    separate = next(r for r in rows if r["kind"] == "separate" and r["adapters"] == max(counts))
    assert separate["model_mb"] > base["model_mb"]


def test_throughput_and_operations(figures):
    enc, search = figures["throughput"]["encode"], figures["throughput"]["search"]
    mixed = [f"mixed-{n}" for n in figures["adapters"] if n > 1]
    assert set(enc) == {"merged", "single", "base", *mixed} and set(search) == {"merged", "single", *mixed}
    for part in (enc, search):
        for row in part.values():
            assert row["seconds"] > 0 and row["queries_per_s"] == pytest.approx(figures["queries"] / row["seconds"])
            assert row["ratio_vs_merged"] == pytest.approx(row["queries_per_s"] / part["merged"]["queries_per_s"])
    ops = figures["operations"]
    assert all(ops[k] > 0 for k in ("add_ms", "remove_ms", "switch_ms", "same_ms")) and ops["distinct_adapters"]
    assert ops["switch_ratio"] == pytest.approx(ops["switch_ms"] / ops["same_ms"])


def test_adapters_are_real_and_goals_are_judged(figures):
    check = figures["check"]
    assert check["min_cosine_to_base"] < 0.9999  # random LoRA weights: not the base
    assert check["min_cosine_served_vs_merged"] > 0.99  # the served adapter embeds as the merged model
    assert figures["lora"]["targets"] > 0 and figures["adapter_mb"] > 0
    goals = figures["goals"]
    most = next(r for r in figures["memory"] if r["kind"] == "retriever" and r["adapters"] == max(figures["adapters"]))
    assert goals["memory"]["rss_ratio"] == most["rss_ratio"] and goals["memory"]["met_rss"] == (most["rss_ratio"] < 1.5)
    assert goals["memory"]["met_model"] == (most["model_ratio"] < 1.5)
    empty = next(r for r in figures["memory"] if r["kind"] == "retriever" and r["adapters"] == 0)
    assert goals["memory"]["per_adapter_mb"] == pytest.approx((most["rss_mb"] - empty["rss_mb"]) / most["adapters"])
    worst = min((k for k in figures["throughput"]["encode"] if k.startswith("mixed-")),
                key=lambda k: figures["throughput"]["encode"][k]["ratio_vs_merged"])
    assert goals["mixed"]["worst"] == worst and goals["mixed"]["met"] == (goals["mixed"]["ratio"] >= 0.7)
    assert figures["benchmark"] == "serve" and figures["quick"] is True


def test_report_renders_the_section(figures):
    sys.path.insert(0, str(ROOT / "eval" / "bench"))
    try:
        import report
    finally:
        sys.path.remove(str(ROOT / "eval" / "bench"))
    text = "\n".join(report.serve_section(figures))
    assert "### Serving adapters" in text and "| merged single model (baseline) |" in text
    assert text.count("met") >= 2 and "goal" in text
    assert text.index("| merged single model (baseline) |") < text.index("| AdapterRetriever, the base")  # baseline first
