"""Guarded bench methods: config loading, their training settings, and the tables, goals and plot
from a hand-made results dict (no training)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from retrieval_ft.bench import _method_entry, _tuning
from retrieval_ft.config import BenchMethod, Method, load_bench_config
from retrieval_ft.errors import ConfigError
from retrieval_ft.report import bench_goals, bench_markdown, guard_plots, quality_cost_svg
from retrieval_ft.report.bench import table_order
from retrieval_ft.stamp import ArtifactStamp

from .test_gate_warning import NDCG, RECALL, moved, result
from .test_report_guard import HISTORY, guard_record

SVG = "{http://www.w3.org/2000/svg}"
METRICS = ["ndcg@10", "recall@100"]


def _config(tmp: Path, methods: str, guards: bool = True) -> Path:
    path = tmp / "bench.yaml"
    path.write_text("name: tiny\nmodel: some-model\ndata: data\nseeds: [1, 2]\n"
                    + ("guards: [{name: cisi, data: cisi}, {name: cranfield, data: cranfield, split: dev}]\n" if guards else "")
                    + f"methods:\n{methods}")
    return path


def test_a_guarded_method_trains_with_the_bench_guard_sets(tmp_path: Path):
    config = load_bench_config(str(_config(tmp_path, "  lora: {method: lora}\n"
                                                     "  lora-guarded: {method: lora, guarded: true, train: {epochs: 3}}\n")))
    plain, guarded = config.methods
    assert not plain.guarded and guarded.guarded
    train = guarded.train_config(7, config.guards)
    assert [(g.name, g.split) for g in train.guards] == [("cisi", "test"), ("cranfield", "dev")]
    assert train.guards[0].data == str(tmp_path / "cisi")  # resolved against the config file
    assert train.interpolation == "auto" and train.seed == 7 and train.epochs == 3
    untouched = plain.train_config(7, config.guards)
    assert untouched.guards is None and untouched.interpolation == "off"
    fixed = BenchMethod(name="g", method=Method.FULL, guarded=True, train={"interpolate": 0.5})
    assert fixed.train_config(1, config.guards).interpolation == 0.5


@pytest.mark.parametrize("methods,guards,message", [
    ("  g: {method: lora, guarded: true}\n", False, "methods.g: guarded needs the bench's guard sets"),
    ("  g: {method: lora, guarded: maybe}\n", True, "guarded: expected bool"),
    ("  g: {method: lora, guarded: true, train: {guards: [{name: x, data: y}]}}\n", True, "remove train.guards"),
])
def test_bad_guarded_settings_are_refused(tmp_path: Path, methods: str, guards: bool, message: str):
    with pytest.raises(ConfigError, match=message):
        load_bench_config(str(_config(tmp_path, methods, guards)))


def test_the_tuning_record_is_the_stamped_blend_and_guard_record():
    assert _tuning(ArtifactStamp.from_dict({"artifact": "full", "alpha": 0.7})) == {"alpha": 0.7}
    assert _tuning(ArtifactStamp.from_dict({"artifact": "full"})) == {"alpha": None}
    stamp = ArtifactStamp.from_dict({"artifact": "adapter", "guard": guard_record().to_dict(), "dev_history": HISTORY})
    tuning = _tuning(stamp)
    assert tuning["alpha"] == 0.6 and tuning["guard"] == guard_record().to_dict() and tuning["dev_history"] == HISTORY


def test_a_method_entry_records_guarded_and_the_alpha_over_seeds():
    base, guard_base = result(NDCG, RECALL), result(NDCG, RECALL, fingerprint="g")
    seeds = [result(moved(NDCG, 0.04, seed=s), moved(RECALL, 0.01, seed=s)) for s in (1, 2)]
    guards = {"cisi": [result(moved(NDCG, -0.002, seed=s), RECALL, fingerprint="g") for s in (3, 4)]}
    cost = {"train_seconds": 10.0, "peak_memory_mb": 100.0, "trainable_params": 5, "artifact_bytes": 9,
            "reencode_seconds": 1.0}
    spec = BenchMethod(name="full-guarded", method=Method.FULL, guarded=True)
    tunings = [{"alpha": 0.6, "seed": 1, "guard": guard_record().to_dict(), "dev_history": HISTORY},
               {"alpha": 0.8, "seed": 2, "guard": guard_record().to_dict(), "dev_history": HISTORY}]
    entry = _method_entry(spec, seeds, guards, [cost, cost], tunings, base, {"cisi": guard_base}, METRICS, 100)
    assert entry["guarded"] is True and entry["alpha"]["mean"] == pytest.approx(0.7)
    assert entry["alpha"]["per_seed"] == [0.6, 0.8] and entry["guard_tuning"]["seed"] == 1
    plain = _method_entry(BenchMethod(name="full", method=Method.FULL), seeds, guards, [cost, cost],
                          [{"alpha": None}, {"alpha": None}], base, {"cisi": guard_base}, METRICS, 100)
    assert plain["guarded"] is False and plain["alpha"] is None and "guard_tuning" not in plain


def _method(kind: str, mean: float, delta: float, guards: dict[str, float], seconds: float,
            guarded: bool | None = None, alpha: float | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {
        "method": kind, "train": {},
        "metrics": {m: {"mean": mean, "std": 0.01, "per_seed": [mean]} for m in METRICS},
        "delta": {m: delta for m in METRICS}, "p_value": {m: 0.001 for m in METRICS},
        "ci": {m: [delta - 0.01, delta + 0.01] for m in METRICS},
        "guards": {g: {m: {"delta": d, "p_value": 0.02} for m in METRICS} for g, d in guards.items()},
        "cost": {"train_seconds": seconds, "peak_memory_mb": 900.0, "trainable_params": 1000, "artifact_bytes": 2**21,
                 "documents_reencoded": 10, "reencode_seconds": 3.0}}
    if guarded is not None:
        e["guarded"] = guarded
        e["alpha"] = None if alpha is None else {"mean": alpha, "std": 0.05, "per_seed": [alpha]}
    return e


def _results(guarded: bool) -> dict[str, Any]:
    flag = False if guarded else None
    methods = {"base": {"metrics": {m: {"mean": 0.5, "std": 0.0, "per_seed": [0.5]} for m in METRICS},
                        "guards": {"cranfield": {m: 0.4 for m in METRICS}, "cisi": {m: 0.2 for m in METRICS}}},
               "full": _method("full", 0.60, 0.10, {"cranfield": -0.05, "cisi": -0.02}, 100.0, flag),
               "lora": _method("lora", 0.58, 0.08, {"cranfield": -0.10, "cisi": 0.01}, 120.0, flag)}
    if guarded:
        methods["lora-guarded"] = _method("lora", 0.56, 0.06, {"cranfield": -0.02, "cisi": 0.0}, 150.0, True, 0.5)
        methods["full-guarded"] = _method("full", 0.595, 0.095, {"cranfield": -0.004, "cisi": 0.001}, 130.0, True, 0.7)
        methods["full-guarded"]["guard_tuning"] = {"alpha": 0.6, "seed": 1, "guard": guard_record().to_dict(),
                                                   "dev_history": HISTORY}
        methods["hybrid-guarded"] = _method("hybrid", 0.57, 0.07, {"cranfield": 0.0, "cisi": 0.0}, 140.0, True, 0.9)
    return {"name": "synth", "config": {"seeds": [1, 2], "model": "m", "data": "d"}, "methods": methods}


def _rows(md: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()
            if line.startswith(f"| {first_cell}")]


def test_guarded_rows_sit_beside_their_unguarded_twins_with_alpha_and_worst_guard():
    md = bench_markdown(_results(True), METRICS)
    head = _rows(md, "method")[0]
    assert head[-3:] == ["guarded", "alpha", "worst guard change"]
    table = md.split("\n\n")[2]
    names = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert names == ["base", "full", "full-guarded", "lora", "lora-guarded", "hybrid-guarded"]
    rows = {r[0]: r for r in _rows(md, "") if len(r) == len(head)}
    assert rows["full-guarded"][-3:] == ["yes", "0.70 ± 0.05", "cranfield -0.0040"]
    assert rows["lora"][-3:] == ["no", "", "cranfield -0.1000"]
    assert rows["base"][-3:] == ["", "", ""]
    guards = md.split("Guard sets (ndcg@10 delta, p):")[1].split("Goals:")[0]
    assert [line.split("|")[1].strip() for line in guards.strip().splitlines()[2:]] == names[1:]


def test_goals_for_a_guarded_method_with_an_unguarded_twin():
    goals = bench_goals(_results(True), "ndcg@10")
    held = [g for g in goals if "keeps every guard within 0.01" in g]
    kept = [g for g in goals if "of its unguarded in-domain gain" in g]
    assert held == ["met: full-guarded keeps every guard within 0.01 (mean over seeds; worst: cranfield -0.0040)",
                    "NOT met: lora-guarded keeps every guard within 0.01 (mean over seeds; worst: cranfield -0.0200)"]
    assert kept[0].startswith("met: full-guarded keeps >= 80% of its unguarded in-domain gain (goal 90%: reached;")
    assert "+0.0950 of full's +0.1000 = 95%" in kept[0]
    assert kept[1].startswith("NOT met: lora-guarded keeps >= 80%") and "goal 90%: not reached" in kept[1]
    assert "= 75%" in kept[1] and len(kept) == 2  # hybrid-guarded has no unguarded twin
    assert any(g.startswith("met: hybrid-guarded drops no guard set") for g in goals)
    assert not any(g.startswith(("met: full-guarded drops", "NOT met: lora-guarded drops")) for g in goals)


def test_a_twin_without_gain_leaves_nothing_to_keep():
    results = _results(True)
    results["methods"]["full"]["delta"]["ndcg@10"] = -0.01
    kept = [g for g in bench_goals(results, "ndcg@10") if "full-guarded keeps >= 80%" in g]
    assert kept == ["n/a: full-guarded keeps >= 80% of its unguarded in-domain gain: full gained -0.0100, so there is "
                    "no gain to keep"]


def test_the_plot_marks_guarded_methods_and_nothing_changes_without_them():
    svg = ET.fromstring(quality_cost_svg(_results(True), "ndcg@10"))
    marked = [p for p in svg.iter(f"{SVG}polygon") if p.get("class") == "guarded"]
    assert len(marked) == 3 + 1  # three guarded methods and the legend's marker
    assert len(list(svg.iter(f"{SVG}circle"))) == 2 + 1  # full, lora and the legend's
    plain = quality_cost_svg(_results(False), "ndcg@10")
    assert "polygon" not in plain and "guarded" not in plain
    md = bench_markdown(_results(False), METRICS)
    assert "worst guard change" not in md and "keeps every guard" not in md
    plain_head, guarded_head = _rows(md, "method")[0], _rows(bench_markdown(_results(True), METRICS), "method")[0]
    assert guarded_head == plain_head + ["guarded", "alpha", "worst guard change"]


def test_a_guard_tuning_record_gets_its_plot_embedded_in_the_markdown():
    plots = guard_plots(_results(True))
    assert list(plots) == ["synth-full-guarded-guard.svg"]
    svg = ET.fromstring(plots["synth-full-guarded-guard.svg"])
    assert any(c.get("class") == "chosen" for c in svg.iter(f"{SVG}circle"))
    md = bench_markdown(_results(True), METRICS)
    assert "- full-guarded (seed 1): alpha 0.6; alpha 0.6 has the best dev NDCG@10" in md
    assert "](synth-full-guarded-guard.svg)" in md
    assert guard_plots(_results(False)) == {} and "Guard-aware tuning" not in bench_markdown(_results(False), METRICS)


def test_a_bench_trains_its_guarded_method_with_the_guard_sets(tmp_path: Path, tiny_model_path: Path, monkeypatch):
    import retrieval_ft.train as train
    from retrieval_ft.cli import main

    from .conftest import write_beir

    write_beir(tmp_path / "data", n_docs=60)
    write_beir(tmp_path / "guard", n_docs=30, seed=9)
    fast = "{max_steps: 2, batch_size: 8, lr: 0.01, warmup_ratio: 0.0}"
    config = tmp_path / "bench.yaml"
    config.write_text(f"name: tiny\nmodel: {tiny_model_path}\ndata: data\nout: results\nwork: work\nseeds: [1]\n"
                      "eval: {metrics: [ndcg@10, recall@20], k: 20, encode: {progress: false}}\n"
                      "guards: [{name: topics, data: guard}]\n"
                      f"methods:\n  lora-guarded: {{method: lora, guarded: true, train: {fast}}}\n"
                      f"  lora: {{method: lora, train: {fast}}}\n")
    seen = {}
    finetune = train.finetune

    def spy(model, data, train_config, out, **kwargs):
        seen[Path(out).name] = train_config
        return finetune(model, data, train_config, out, **kwargs)

    monkeypatch.setattr(train, "finetune", spy)
    assert main(["bench", str(config)]) == 0
    assert [(g.name, g.data) for g in seen["lora-guarded-1"].guards] == [("topics", str(tmp_path / "guard"))]
    assert seen["lora-guarded-1"].interpolation == "auto" and seen["lora-1"].guards is None
    out = json.loads((tmp_path / "results" / "tiny.json").read_text())
    assert out["methods"]["lora-guarded"]["guarded"] is True and out["methods"]["lora"]["guarded"] is False
    md = (tmp_path / "results" / "tiny.md").read_text()
    rows = [line.split("|")[1].strip() for line in md.split("\n\n")[2].splitlines()[2:]]
    assert rows == ["base", "lora", "lora-guarded"]  # the guarded one beside its twin, after it
    assert "keeps every guard within 0.01 (mean over seeds" in md and "of its unguarded in-domain gain" in md
    svg = ET.fromstring((tmp_path / "results" / "tiny.svg").read_text())
    assert len([p for p in svg.iter(f"{SVG}polygon") if p.get("class") == "guarded"]) == 2  # the method and the legend
    if out["methods"]["lora-guarded"].get("guard_tuning"):  # the stamp recorded the guard-aware tuning
        assert (tmp_path / "results" / "tiny-lora-guarded-guard.svg").is_file()


def test_a_guarded_method_pairs_with_the_unguarded_one_trained_alike():
    results = _results(False)
    long = {"epochs": 3}
    results["methods"]["lora-long"] = {**_method("lora", 0.62, 0.12, {"cranfield": -0.2}, 90.0, False), "train": long}
    results["methods"]["lora-long-guarded"] = {
        **_method("lora", 0.61, 0.11, {"cranfield": -0.005}, 95.0, True, 0.6), "train": long}
    results["methods"]["lora-guarded"] = _method("lora", 0.575, 0.075, {"cranfield": 0.0}, 99.0, True, 0.8)
    assert table_order(results) == ["full", "lora", "lora-guarded", "lora-long", "lora-long-guarded"]
    kept = {g.split(" keeps")[0].split(": ")[1]: g for g in bench_goals(results, "ndcg@10") if "in-domain gain" in g}
    assert "of lora-long's +0.1200" in kept["lora-long-guarded"] and "of lora's +0.0800" in kept["lora-guarded"]
