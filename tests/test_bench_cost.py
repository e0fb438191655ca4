"""The cost benchmarks: training by model size (eval/bench/train.py --part sizes) and the wait from
"tune" to "new metrics" (eval/bench/tune_reeval.py). Fast tests check the size table, the ratios
and goals computed from runs, the plain twin's LoRA and the report sections; slow ones run both
scripts on tiny inputs and check their JSON."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from retrieval_ft.models import bundled_minilm_path

from .conftest import build_tiny_model, write_beir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval" / "bench"))

import report  # noqa: E402
import train as bench_train  # noqa: E402
import tune_reeval  # noqa: E402

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
# peak memory (full, lora, hybrid) and steps/s by size: LoRA's share of full's memory falls with size
MEMORY = {"MiniLM-L6": (1300, 1100, 1150), "BERT-base": (2900, 1500, 1700), "BERT-large": (7500, 2600, 3000)}
STEPS = {"MiniLM-L6": (4.0, 3.8, 4.2), "BERT-base": (0.5, 0.62, 0.55), "BERT-large": (0.14, 0.19, 0.16)}


def fake_runs(memory=MEMORY, steps=STEPS) -> list[dict]:
    """A sweep's runs with chosen figures: ours takes 2 s of dev evaluations and 1 s more than plain
    end to end; checkpointing costs 20 % of memory saved and 30 % of steps/s."""
    runs = []
    for size, impl, method, ckpt in bench_train.sweep_configurations(list(bench_train.SIZES),
                                                                     list(bench_train.SWEEP_METHODS), [False, True], 1):
        i = bench_train.SWEEP_METHODS.index(method)
        ours = impl == "ours"
        runs.append({"size": size, "impl": impl, "method": method, "checkpointing": ckpt,
                     "steps_per_s": steps[size][i] * (0.7 if ckpt else 1.0) * (0.9 if ours else 1.0),
                     "seconds": 8.0, "total_seconds": 13.0 if ours else 10.0, "eval_seconds": 2.0 if ours else 0.0,
                     "checkpoint_seconds": 0.5 if ours else 0.0, "peak_mb": memory[size][i] * (0.8 if ckpt else 1.0),
                     "rss_before_mb": 600.0, "added_mb": memory[size][i] * (0.8 if ckpt else 1.0) - 600.0,
                     "process_seconds": 20.0, "steps": 4})
    return runs


def fake_record(runs: list[dict]) -> dict:
    ratios = [bench_train.size_ratios(runs, s.name) for s in bench_train.SIZES]
    return {"batch_size": 8, "max_seq_length": 64, "precision": "fp32", "data": "d", "quick": False, "gpu": False,
            "command": "python eval/bench/train.py --part sizes", "when": "now",
            "sizes": [{"name": s.name, "steps": s.steps, "params": s.nominal_params_m * 10**6} for s in bench_train.SIZES],
            "runs": runs, "ratios": ratios, "goals": bench_train.size_goals(ratios)}


# -- the size table -------------------------------------------------------------------------------
def test_size_table_has_the_issue_shapes_and_parameter_counts():
    import torch
    from transformers import BertConfig, BertModel

    shapes = {s.name: (s.hidden, s.layers, s.heads, s.intermediate) for s in bench_train.SIZES}
    assert shapes == {"MiniLM-L6": (384, 6, 12, 1536), "BERT-base": (768, 12, 12, 3072), "BERT-large": (1024, 24, 16, 4096)}
    for s in bench_train.SIZES:
        config = BertConfig(vocab_size=30522, hidden_size=s.hidden, num_hidden_layers=s.layers, num_attention_heads=s.heads,
                            intermediate_size=s.intermediate, max_position_embeddings=512)
        with torch.device("meta"):
            params = sum(p.numel() for p in BertModel(config).parameters())
        assert params == pytest.approx(s.nominal_params_m * 1e6, rel=0.05), s.name
        assert s.steps >= 2  # steps/s is timed between the first and the last step


def test_sweep_runs_every_configuration_once_plain_first():
    configs = bench_train.sweep_configurations(list(bench_train.SIZES[:2]), ["full", "lora"], [False, True], 1)
    assert len(configs) == len(set(configs)) == 2 * 2 * 2 * 2
    assert configs[:2] == [("MiniLM-L6", "plain", "full", False), ("MiniLM-L6", "ours", "full", False)]
    assert [c[0] for c in configs] == ["MiniLM-L6"] * 8 + ["BERT-base"] * 8


def test_short_sizes_repeat_in_rounds_and_keep_the_median():
    small, base = bench_train.SIZES[0], bench_train.SIZES[1]
    assert small.repeats >= 3 and base.repeats >= 1
    configs = bench_train.sweep_configurations([small, base], ["full"], [False])
    once = [("MiniLM-L6", "plain", "full", False), ("MiniLM-L6", "ours", "full", False)]
    # rounds: every configuration once, then again (not one configuration three times in a row)
    assert configs[:2 * small.repeats] == once * small.repeats
    assert configs[2 * small.repeats:] == [("BERT-base", "plain", "full", False), ("BERT-base", "ours", "full", False)] * base.repeats
    each = [{"steps_per_s": v, "total_seconds": t, "eval_seconds": 1.0, "steps": 8, "checkpointing": False,
             "timings": {"steps": v}} for v, t in ((2.0, 9.0), (1.0, 12.0), (3.0, 10.0))]
    m = bench_train.median_run(each)
    assert m["steps_per_s"] == 2.0 and m["total_seconds"] == 10.0 and m["steps"] == 8 and m["checkpointing"] is False
    assert m["timings"] == {"steps": 2.0}
    assert m["repeats"] == 3 and m["end_to_end_each"] == [8.0, 11.0, 9.0]


def test_size_folder_depends_on_the_shape_not_the_steps():
    small, base = bench_train.SIZES[0], bench_train.SIZES[1]
    assert bench_train.size_folder(small) == bench_train.size_folder(bench_train.Size(**{**small.__dict__, "steps": 99}))
    assert bench_train.size_folder(small) != bench_train.size_folder(base)
    assert bench_train.size_folder(small).parent == bench_train.SIZES_CACHE


# -- ratios and goals ---------------------------------------------------------------------------
def test_size_ratios_are_the_quotients_of_the_runs():
    runs = fake_runs()
    q = bench_train.size_ratios(runs, "BERT-large")
    assert q["lora_full_memory"] == pytest.approx(2600 / 7500)
    assert q["lora_full_added_memory"] == pytest.approx((2600 - 600) / (7500 - 600))
    assert q["lora_full_steps"] == pytest.approx(0.19 / 0.14)
    assert q["hybrid_full_memory"] == pytest.approx(3000 / 7500)
    assert q["checkpointing"]["lora"] == {"memory": pytest.approx(0.8), "steps": pytest.approx(0.7)}
    assert len(q["ours_plain"]) == 6
    for p in q["ours_plain"]:
        assert p["end_to_end"] == pytest.approx((13.0 - 2.0) / 10.0)  # ours' dev evaluations left out
        assert p["steps"] == pytest.approx(0.9) and p["memory"] == pytest.approx(1.0)


def test_missing_runs_give_no_ratio():
    runs = [r for r in fake_runs() if not (r["size"] == "BERT-base" and r["method"] == "lora")]
    q = bench_train.size_ratios(runs, "BERT-base")
    assert q["lora_full_memory"] is None and q["lora_full_steps"] is None
    assert q["hybrid_full_memory"] == pytest.approx(1700 / 2900)
    assert {p["method"] for p in q["ours_plain"]} == {"full", "hybrid"}
    assert bench_train.size_ratios([], "BERT-base")["ours_plain"] == []


def test_goals_met_by_the_expected_figures():
    goals = fake_record(fake_runs())["goals"]
    assert goals["memory"]["MiniLM-L6"] == {"ratio": pytest.approx(1100 / 1300), "goal": 0.9, "met": True}
    assert goals["memory"]["BERT-large"]["met"] and goals["memory_falls"] is True
    assert goals["steps"]["BERT-base"]["met"] and goals["steps"]["BERT-large"]["met"]
    assert set(goals["steps"]) == {"BERT-base", "BERT-large"}
    assert goals["end_to_end"]["worst"] == pytest.approx(1.1) and goals["end_to_end"]["met"]


def test_goals_not_met_when_lora_costs_as_much():
    memory = {**MEMORY, "MiniLM-L6": (1300, 1250, 1250), "BERT-large": (7500, 6000, 6000)}
    steps = {**STEPS, "BERT-base": (0.5, 0.45, 0.5)}
    goals = fake_record(fake_runs(memory, steps))["goals"]
    assert not goals["memory"]["MiniLM-L6"]["met"] and not goals["memory"]["BERT-large"]["met"]
    assert goals["memory_falls"] is False  # 0.96, 0.52, 0.80
    assert not goals["steps"]["BERT-base"]["met"] and goals["steps"]["BERT-large"]["met"]
    runs = fake_runs()
    slow = next(r for r in runs if (r["size"], r["impl"], r["method"], r["checkpointing"]) == ("BERT-base", "ours", "hybrid", True))
    slow["total_seconds"] = 20.0
    e = fake_record(runs)["goals"]["end_to_end"]
    assert (e["size"], e["method"], e["checkpointing"], e["met"]) == ("BERT-base", "hybrid", True, False)
    assert e["worst"] == pytest.approx(1.8)


# -- the plain twin's LoRA is ours' -------------------------------------------------------------
@pytest.mark.parametrize("method", ["lora", "hybrid"])
def test_plain_lora_matches_ours(tiny_model_path, method):
    from retrieval_ft.models import load_model, prepare_for_training

    ours, plain = load_model(str(tiny_model_path), device="cpu"), load_model(str(tiny_model_path), device="cpu")
    prepare_for_training(ours, method)
    plain.add_adapter(bench_train._plain_lora(plain, method))
    a, b = ours.transformers_model.peft_config["default"], plain.transformers_model.peft_config["default"]
    assert set(a.target_modules) == set(b.target_modules) and a.target_modules
    assert (a.r, a.lora_alpha, a.lora_dropout, a.bias) == (b.r, b.lora_alpha, b.lora_dropout, b.bias)
    assert (a.modules_to_save or []) == (b.modules_to_save or []) == (["encoder.layer.1"] if method == "hybrid" else [])
    trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in plain.named_parameters() if p.requires_grad}


# -- report sections ----------------------------------------------------------------------------
def test_train_sizes_section_and_plot():
    record = fake_record(fake_runs())
    text = "\n".join(report.train_sizes_section(record))
    assert text.count("| ours |") == text.count("| plain |") == 18
    assert "| BERT-large | 335M | **0.35x** |" in text  # 2600 / 7500
    assert "BERT-large **0.35x** (goal <= 0.6: met)" in text and "falling with size: met" in text
    assert "at most **1.10x**" in text and "(performance-train-sizes.svg)" in text
    svg = ET.fromstring(report.train_sizes_svg(record))
    ns = "{http://www.w3.org/2000/svg}"
    lines = svg.findall(f"{ns}polyline")
    assert [len(p.get("points").split()) for p in lines] == [3, 3]
    memory_y = [float(pt.split(",")[1]) for pt in lines[0].get("points").split()]
    assert memory_y == sorted(memory_y)  # falling ratios are drawn lower (larger y) as size grows
    assert len(svg.findall(f"{ns}line[@class='goal']")) == 2


def test_report_summary_lines_flag_unmet_goals():
    memory = {**MEMORY, "BERT-large": (7500, 6000, 6000)}
    lines = report.train_sizes_goals(fake_record(fake_runs(memory)))
    assert any("BERT-large **0.80x** (goal <= 0.6: not met)" in ln for ln in lines)
    assert any("falling with size: not met" in ln for ln in lines)


# -- tune_reeval: pure parts --------------------------------------------------------------------
def test_read_beir_and_speedups(tmp_path):
    corpus, queries, qrels = tune_reeval.read_beir(write_beir(tmp_path / "beir"))
    assert len(corpus) == 40 and corpus["d0"].split()[0] in {"astronomy", "cooking", "football", "medicine", "finance"}
    assert set(qrels) == {"train", "test"} and len(qrels["test"]) == 5 and "orphan" in queries
    runs = {"full": {"seconds": 200.0}, "query-only": {"seconds": 20.0}, "query-lora": {"seconds": 25.0}}
    speedup = tune_reeval.speedups(runs, 300.0)
    assert speedup == {"full": 1.5, "query-only": 15.0, "query-lora": 12.0}
    goals = tune_reeval.tune_goals({**speedup, "query-lora": 9.9})
    assert set(goals) == {"query-only", "query-lora"}
    assert goals["query-only"]["met"] and not goals["query-lora"]["met"]
    assert tune_reeval.limit_args(5, None) == ["--max-steps=5"] and tune_reeval.limit_args(None, 0.5) == ["--epochs=0.5"]


def test_tune_reeval_section_orders_methods_and_shows_speedups():
    ours = {m: {"train_seconds": 10.0, "evaluate_seconds": 5.0, "seconds": 15.0, "ndcg@10": 0.7, "steps": 3,
                "corpus_from_cache": m.startswith("query")} for m in ("query-only", "full", "lora")}
    record = {"data": "/x/scifact", "model": "all-MiniLM-L6-v2", "max_steps": None, "epochs": None,
              "warmup": {"seconds": 60.0, "ndcg@10": 0.64}, "ours": ours, "command": "python eval/bench/tune_reeval.py",
              "plain": {"seconds": 300.0, "ndcg@10": 0.66, "steps": 345, "pairs": 919, "epochs": 3.0, "batch_size": 8,
                        "learning_rate": 5e-5, "phases": {"train": 200.0, "encode_corpus": 80.0, "search_and_score": 2.0}},
              "speedup": tune_reeval.speedups(ours, 300.0), "goals": tune_reeval.tune_goals(tune_reeval.speedups(ours, 300.0))}
    text = "\n".join(report.tune_reeval_section(record))
    rows = [ln for ln in text.splitlines() if ln.startswith("| ours ")]
    assert [r.split()[2] for r in rows] == ["full", "lora", "query-only"]
    assert "| ours query-only (3 steps) | 10.0 | 5.0 | 15.0 | 0.7000 | base, cached | **20.0x** |" in text
    assert "| plain full (345 steps) | 200.0 | 82.0 | 300.0 | 0.6600 | re-encoded | 1.0x |" in text
    assert "query-only **20.0x** faster (met" in text and "each path's own default length" in text


# -- both scripts on tiny inputs ----------------------------------------------------------------
def _finite_positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_sizes_quick_run(tmp_path):
    if bundled_minilm_path() is None:
        pytest.skip("the bundled all-MiniLM-L6-v2 (its tokenizer builds the size models) is absent")
    out = tmp_path / "sizes.json"
    proc = subprocess.run([sys.executable, str(ROOT / "eval" / "bench" / "train.py"), "--quick", "--sizes-json", str(out),
                           "--data", str(tmp_path / "demo")], env=ENV, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "[12/12] MiniLM-L6 hybrid +ckpt ours" in proc.stdout
    r = json.loads(out.read_text())
    assert r["quick"] and r["benchmark"] == "train_sizes" and [s["name"] for s in r["sizes"]] == ["MiniLM-L6"]
    assert sorted((x["impl"], x["method"], x["checkpointing"]) for x in r["runs"]) == sorted(
        (i, m, c) for i in ("ours", "plain") for m in ("full", "lora", "hybrid") for c in (False, True))
    for run in r["runs"]:
        assert run["steps"] == 2, run
        assert all(_finite_positive(run[k]) for k in ("steps_per_s", "total_seconds", "peak_mb", "added_mb")), run
        assert run["peak_mb"] > run["rss_before_mb"] and (run["eval_seconds"] > 0) == (run["impl"] == "ours")
    q = r["ratios"][0]
    for key in ("lora_full_memory", "lora_full_added_memory", "lora_full_steps", "hybrid_full_memory", "hybrid_full_steps"):
        assert _finite_positive(q[key]), key
    assert len(q["ours_plain"]) == 6 and all(_finite_positive(p[k]) for p in q["ours_plain"] for k in ("end_to_end", "steps", "memory"))
    assert set(r["goals"]["memory"]) == {"MiniLM-L6"} and r["goals"]["memory_falls"] is None
    assert "Quick mode" in "\n".join(report.train_sizes_section(r))


@pytest.mark.slow
def test_tune_reeval_tiny_run(tmp_path):
    model = build_tiny_model(tmp_path / "model")
    data = write_beir(tmp_path / "beir")
    out = tmp_path / "tune.json"
    proc = subprocess.run([sys.executable, str(ROOT / "eval" / "bench" / "tune_reeval.py"), "--model", str(model),
                           "--data", str(data), "--max-steps", "2", "--work", str(tmp_path / "work"), "--json", str(out)],
                          env=ENV, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(out.read_text())
    assert list(r["ours"]) == sorted(tune_reeval.METHODS)  # every method (keys are written sorted)
    for method, o in r["ours"].items():
        assert o["seconds"] == pytest.approx(o["train_seconds"] + o["evaluate_seconds"])
        assert o["corpus_from_cache"] == (method in tune_reeval.QUERY_SIDE), method
        assert o["steps"] == 2 and 0.0 <= o["ndcg@10"] <= 1.0
        assert r["speedup"][method] == pytest.approx(r["plain"]["seconds"] / o["seconds"])
        assert _finite_positive(r["speedup"][method])
    assert r["plain"]["steps"] == 2 and 0.0 <= r["plain"]["ndcg@10"] <= 1.0
    assert set(r["plain"]["phases"]) == {"train", "encode_corpus", "search_and_score"}
    assert set(r["goals"]) == set(tune_reeval.QUERY_SIDE) and _finite_positive(r["warmup"]["seconds"])
    assert not any((Path(r["work"]) / f"tuned-{m}").exists() for m in tune_reeval.METHODS)  # cleaned up


def test_tune_reeval_skips_without_data(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "eval" / "bench" / "tune_reeval.py"), "--data", str(tmp_path / "none"),
                           "--json", str(tmp_path / "t.json")], env=ENV, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("skipped: no BEIR collection at")
    assert not (tmp_path / "t.json").exists()
