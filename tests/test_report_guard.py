"""The run report's guard-aware tuning section and gate warnings, from hand-made records (no training)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from retrieval_ft.gate import gate
from retrieval_ft.report import guard_markdown, guard_svg, run_html, run_markdown, write_run_report
from retrieval_ft.report.guard import tradeoff_points, worst_change
from retrieval_ft.results import RunReport, TrainSummary
from retrieval_ft.stamp import ArtifactStamp, GuardRecord

from .test_gate_warning import NDCG, RECALL, moved, result

SVG = "{http://www.w3.org/2000/svg}"
BASE = {"cranfield": 0.40, "cisi": 0.20}
SELECTED = {"cranfield": 0.37, "cisi": 0.21}  # the kept checkpoint: cranfield -0.03
FINAL = {"cranfield": 0.395, "cisi": 0.205}  # after the blend: cranfield -0.005


def guard_record() -> GuardRecord:
    return GuardRecord(
        sets=[{"name": "cranfield", "data": "/data/cranfield", "split": "test", "queries": 200, "documents": 1000},
              {"name": "cisi", "data": "/data/cisi", "split": "test", "queries": 76, "documents": 900}],
        max_drop=0.01, base=BASE, selected=SELECTED, final=FINAL,
        dev={"base": 0.50, "selected": 0.65, "final": 0.62}, checkpoint_step=80, interpolate="auto", alpha=0.6,
        curve=[{"alpha": 0.0, "dev": 0.50, "guards": dict(BASE)},
               {"alpha": 0.3, "dev": 0.58, "guards": {"cranfield": 0.398, "cisi": 0.203}},
               {"alpha": 0.6, "dev": 0.62, "guards": dict(FINAL)},
               {"alpha": 1.0, "dev": 0.65, "guards": dict(SELECTED)}],
        reason="alpha 0.6 has the best dev NDCG@10 with every guard within 0.01; alpha 1 drops cranfield by 0.03.")


HISTORY = [{"step": 40, "epoch": 0.5, "ndcg@10": 0.60, "guards": {"cranfield": 0.395, "cisi": 0.20}, "selection": 0.60},
           {"step": 80, "epoch": 1.0, "ndcg@10": 0.65, "guards": dict(SELECTED), "selection": 0.65},
           {"step": 120, "epoch": 1.5, "ndcg@10": 0.66, "guards": {"cranfield": 0.35, "cisi": 0.19}, "selection": 0.66}]


@dataclass(frozen=True)
class GuardedSummary(TrainSummary):
    """A training summary carrying the stamp's guard record and dev history."""

    guard: GuardRecord | None = None
    dev_history: list[dict[str, Any]] | None = None


def summary(cls: type = TrainSummary, **extra: Any) -> TrainSummary:
    return cls(method="lora", seconds=12.0, peak_memory_mb=900.0, trainable_params=1000, total_params=20000,
               artifact_bytes=4096, artifact="out/model", best_dev_ndcg=0.65, dev="the dev split", pairs=100,
               steps=120, learning_rate=1e-3, **extra)


def report(train: TrainSummary, tmp_path: Path) -> RunReport:
    base, tuned = result(NDCG, RECALL), result(moved(NDCG, 0.05, seed=1), moved(RECALL, -0.03, seed=2), name="tuned")
    verdict = gate(base, tuned, also_compare=("recall@100",))
    return RunReport(base=base, tuned=tuned, guards={}, train=train, verdict=verdict, out=tmp_path)


def test_the_plot_points_are_dev_gain_against_the_worst_guard_change():
    along, over, chosen = tradeoff_points(guard_record(), HISTORY)
    assert [p[0] for p in along] == ["α 0", "α 0.3", "α 0.6", "α 1"]
    assert [p[0] for p in over] == ["step 40", "step 80", "step 120"]
    assert along[0][1:] == pytest.approx((0.0, 0.0))
    assert along[-1][1:] == pytest.approx((-0.03, 0.15))  # cranfield is the worst guard at alpha 1
    assert over[2][1:] == pytest.approx((-0.05, 0.16))
    assert chosen is not None and chosen[0] == "chosen (α 0.6)" and chosen[1:] == pytest.approx((-0.005, 0.12))
    assert worst_change({"cisi": 0.25}, BASE) == pytest.approx(0.05) and worst_change({}, BASE) is None


def _circle_x(svg: ET.Element, cls: str) -> list[float]:
    group = next(g for g in svg.iter(f"{SVG}g") if g.get("class") == cls)
    return [float(c.get("cx")) for c in group.iter(f"{SVG}circle")]


def test_the_svg_marks_the_choice_inside_the_allowed_band():
    svg = ET.fromstring(guard_svg(guard_record(), HISTORY))
    assert len(_circle_x(svg, "alpha")) == 4 and len(_circle_x(svg, "checkpoints")) == 3
    band = next(r for r in svg.iter(f"{SVG}rect") if r.get("class") == "allowed")
    edge = float(band.get("x"))  # x of -max_drop
    chosen = next(c for c in svg.iter(f"{SVG}circle") if c.get("class") == "chosen")
    assert float(chosen.get("cx")) > edge  # -0.005 is within the allowed drop
    steps = _circle_x(svg, "checkpoints")
    assert steps[2] < edge < steps[0]  # step 120 (-0.05) outside the band, step 40 (-0.005) inside
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "α 0.3" in texts and "step 120" in texts and "chosen (α 0.6)" in texts


def test_the_section_tables_the_sets_the_choice_and_the_curve():
    md = guard_markdown(guard_record())
    assert md.startswith("## Guard-aware tuning")
    assert "allowed drop 0.01" in md and "checkpoint kept: step 80" in md and "interpolation auto, alpha 0.6" in md
    assert "Why: alpha 0.6 has the best dev NDCG@10" in md
    assert "| cranfield | /data/cranfield (test) | 200 | 1000 | 0.4000 | 0.3700 | 0.3950 | -0.0050 |" in md
    assert "| cisi | /data/cisi (test) | 76 | 900 | 0.2000 | 0.2100 | 0.2050 | +0.0050 |" in md
    assert "| dev (in domain) |  |  |  | 0.5000 | 0.6500 | 0.6200 | +0.1200 |" in md
    assert "| 1 | 0.6500 | +0.1500 | -0.0300 | no |" in md and "| 0.6 | 0.6200 | +0.1200 | -0.0050 | yes |" in md


def test_a_record_missing_values_is_shown_with_what_it_has():
    partial = GuardRecord(base=BASE, max_drop=0.01, interpolate="off")
    md = guard_markdown(partial)
    assert "| cranfield |  () |  |  | 0.4000 |  |  |  |" in md and "interpolation off." in md
    assert "No guard values were recorded" in guard_svg(partial, None)


def test_the_run_report_shows_the_section_only_with_a_guard_record(tmp_path: Path):
    plain = report(summary(), tmp_path)
    assert "Guard-aware tuning" not in run_markdown(plain) and "Guard-aware tuning" not in run_html(plain)
    guarded = report(summary(GuardedSummary, guard=guard_record(), dev_history=HISTORY), tmp_path)
    md = run_markdown(guarded)
    assert "## Guard-aware tuning" in md and "| cranfield |" in md
    assert md.replace(guard_markdown(guard_record()) + "\n", "") == run_markdown(plain)  # the rest is as before
    page = ET.fromstring(run_html(guarded))  # still well-formed XHTML
    ids = {e.get("id") for e in page.iter() if e.get("id")}
    assert {"guard-aware-tuning", "guard-tuning", "alpha-curve"} <= ids
    assert any(e.tag == f"{SVG}svg" and "worst guard change" in (e.get("aria-label") or "") for e in page.iter())


def test_a_stamp_guard_record_read_from_json_reaches_the_section(tmp_path: Path):
    stamp = ArtifactStamp.from_dict({"artifact": "adapter", "guard": guard_record().to_dict(), "alpha": 0.6,
                                     "dev_history": HISTORY}, "retrieval_ft.json")
    train = summary(GuardedSummary, guard=stamp.guard, dev_history=stamp.dev_history)
    assert guard_markdown(guard_record()) in run_markdown(report(train, tmp_path))
    as_dict = summary(GuardedSummary, guard=guard_record().to_dict(), dev_history=HISTORY)  # a plain mapping works too
    assert "## Guard-aware tuning" in run_markdown(report(as_dict, tmp_path))


def test_the_gate_warning_is_beside_the_verdict_in_every_report_file(tmp_path: Path):
    rep = report(summary(), tmp_path)
    assert rep.verdict.passed and len(rep.verdict.warnings) == 1
    warning = rep.verdict.warnings[0]
    write_run_report(rep, tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["gate"]["passed"] is True and data["gate"]["warnings"] == [warning]
    md = (tmp_path / "report.md").read_text()
    lines = md.splitlines()
    assert lines[2] == "- every gate rule held" and lines[3] == f"- **Warning:** {warning}"
    page = ET.fromstring((tmp_path / "report.html").read_text())
    items = [e for e in page.iter() if e.get("id") == "warnings"]
    assert len(items) == 1 and re.search("recall@100 dropped", ET.tostring(items[0], encoding="unicode"))
