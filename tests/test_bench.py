"""The method benchmark on a tiny encoder: the JSON layout, Markdown table and SVG plot."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from retrieval_ft.cli import main
from retrieval_ft.config import load_bench_config
from retrieval_ft.errors import ConfigError

from .conftest import write_beir


def _config(tmp: Path, model: Path, methods: str) -> Path:
    write_beir(tmp / "data", n_docs=60)
    write_beir(tmp / "guard", n_docs=30, seed=9)
    path = tmp / "bench.yaml"
    path.write_text(
        f"name: tiny\nmodel: {model}\ndata: data\nout: results\nwork: work\nseeds: [1, 2]\n"
        "eval: {metrics: [ndcg@10, recall@20], k: 20, encode: {progress: false}}\n"
        "guards: [{name: topics, data: guard}]\n"
        f"methods:\n{methods}"
    )
    return path


def test_bench_writes_json_markdown_and_plot(tmp_path: Path, tiny_model_path: Path, capsys, monkeypatch):
    fast = "{max_steps: 2, batch_size: 8, lr: 0.01, warmup_ratio: 0.0}"
    config = _config(tmp_path, tiny_model_path, f"  lora: {{method: lora, train: {fast}}}\n"
                                                f"  query-only: {{method: query-only, train: {fast}}}\n")
    assert main(["bench", str(config)]) == 0
    assert "results:" in capsys.readouterr().out
    out = json.loads((tmp_path / "results" / "tiny.json").read_text())
    assert set(out["methods"]) == {"base", "lora", "query-only"}
    lora = out["methods"]["lora"]
    assert set(lora["metrics"]["ndcg@10"]) == {"mean", "std", "per_seed"} and len(lora["metrics"]["ndcg@10"]["per_seed"]) == 2
    assert set(lora) >= {"delta", "p_value", "guards", "cost"} and "topics" in lora["guards"]
    assert lora["cost"]["documents_reencoded"] == 60 and out["methods"]["query-only"]["cost"]["documents_reencoded"] == 0
    assert lora["cost"]["trainable_params"] < out["methods"]["query-only"]["cost"]["trainable_params"]
    md = (tmp_path / "results" / "tiny.md").read_text()
    assert "| lora |" in md and "| query-only |" in md and "Guard sets" in md
    svg = ET.fromstring((tmp_path / "results" / "tiny.svg").read_text())
    assert len(svg.findall("{http://www.w3.org/2000/svg}circle")) == 2

    # a rerun (after a crash, or to add a method) reuses every finished (method, seed) pair ...
    import retrieval_ft.train as train

    def no_training(*args, **kwargs):
        raise AssertionError("a finished (method, seed) pair was trained again")

    monkeypatch.setattr(train, "finetune", no_training)
    assert main(["bench", str(config)]) == 0
    again = json.loads((tmp_path / "results" / "tiny.json").read_text())
    assert again["methods"]["lora"]["metrics"] == lora["metrics"]
    # ... but not one whose settings changed
    config.write_text(config.read_text().replace("lr: 0.01", "lr: 0.02"))
    with pytest.raises(AssertionError, match="trained again"):
        main(["bench", str(config)])
    # and checkpoints left by other settings are not resumed: the pair starts again
    monkeypatch.undo()
    stale = tmp_path / "work" / "tiny" / "lora-1" / "checkpoints" / "checkpoint-1"
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "trainer_state.json").write_text("{}")
    (tmp_path / "work" / "tiny" / "lora-1.pending").write_text("the key of other settings")
    assert main(["bench", str(config)]) == 0
    assert not list((tmp_path / "work" / "tiny").glob("*.pending"))


def test_bench_config_is_checked(tmp_path: Path, tiny_model_path: Path):
    config = _config(tmp_path, tiny_model_path, "  base: {method: full}\n")
    with pytest.raises(ConfigError, match="not 'base'"):
        load_bench_config(str(config))
    config = _config(tmp_path, tiny_model_path, "  x: {method: full, train: {lrr: 1}}\n")
    with pytest.raises(ConfigError, match="Did you mean 'lr'"):
        load_bench_config(str(config))


def test_shipped_benchmark_config_loads():
    config = load_bench_config(str(Path(__file__).resolve().parents[1] / "eval" / "configs" / "scifact.yaml"))
    methods = ["full", "lora", "hybrid", "query-only", "query-lora"]
    assert [m.name for m in config.methods if not m.guarded and m.name in methods] == methods
    assert config.seeds == (42, 43, 44)
    # each method also guarded, trained alike but watching the bench's guard sets
    longer = ["query-only-long", "hybrid-long", "full-long", "lora-long"]
    assert {m.name for m in config.methods if m.guarded} == {f"{n}-guarded" for n in [*methods, *longer]}
    # the two-sided *-long contenders train longer than the defaults, guarded or not, each alike
    long = {m.name: m.train_config(42) for m in config.methods if m.name.removesuffix("-guarded") in longer[1:]}
    assert len(long) == 6 and all(c.epochs >= 2 for c in long.values())
    assert all(long[n] == replace(long[f"{n}-guarded"], guards=None) for n in longer[1:])
    guards = {g.name for g in config.guards}
    assert all({g.name for g in m.train_config(42, config.guards).guards or ()} == (guards if m.guarded else set())
               for m in config.methods)
    # the shared cost settings reach every method; the methods keep their own defaults otherwise
    assert all(m.train_config(42).max_seq_length == 128 for m in config.methods)
    assert {m.name: m.train_config(42).lr for m in config.methods if m.name in methods} == dict.fromkeys(methods)


def test_common_train_settings_yield_to_a_methods_own(tmp_path: Path, tiny_model_path: Path):
    config = _config(tmp_path, tiny_model_path, "  a: {method: full}\n  b: {method: lora, train: {epochs: 2}}\n")
    config.write_text(config.read_text() + "train: {epochs: 3, max_seq_length: 64}\n")
    a, b = load_bench_config(str(config)).methods
    assert (a.train_config(1).epochs, b.train_config(1).epochs) == (3, 2) and b.train_config(1).max_seq_length == 64
    config.write_text(config.read_text() + "train: {epoch: 3}\n")
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        load_bench_config(str(config))


def test_bench_runs_on_another_collection_from_the_command_line(tmp_path: Path, tiny_model_path: Path, capsys):
    """`--data` points the same config at another collection; its results take that folder's name,
    the config's guard set stays, and the Markdown names the command and states each goal."""
    fast = "{max_steps: 1, batch_size: 8, lr: 0.01, warmup_ratio: 0.0}"
    config = _config(tmp_path, tiny_model_path, f"  full: {{method: full, train: {fast}}}\n"
                                                f"  lora: {{method: lora, train: {fast}}}\n")
    other = tmp_path / "other-collection"
    write_beir(other, n_docs=40, seed=5)
    assert main(["bench", str(config), "--data", str(other), "--seeds", "3", "--out", str(tmp_path / "o")]) == 0
    out = json.loads((tmp_path / "o" / "other-collection.json").read_text())
    assert out["config"]["data"] == str(other) and out["config"]["seeds"] == [3]
    assert out["data"]["documents"] == 40 and out["data"]["train_test_overlap"] == 0
    assert out["methods"]["full"]["metrics"]["ndcg@10"]["per_seed"] and "topics" in out["methods"]["full"]["guards"]
    assert out["timing"]["from_scratch_seconds"] > 0
    md = (tmp_path / "o" / "other-collection.md").read_text()
    assert f"retrieval-ft bench {config} --data {other} --seeds 3" in md
    assert "lora within 0.01 of full" in md and md.count("above base") == 2
    assert not (tmp_path / "results" / "tiny.json").exists()  # the config's own results are untouched


def test_bench_refuses_a_collection_without_a_train_split_before_any_work(tmp_path: Path, tiny_model_path: Path,
                                                                          capsys):
    config = _config(tmp_path, tiny_model_path, "  full: {method: full}\n")
    other = tmp_path / "test-only"
    write_beir(other, n_docs=30, seed=5)
    (other / "qrels" / "train.tsv").unlink()
    assert main(["bench", str(config), "--data", str(other)]) == 2
    assert f"{other}: no 'train' split" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()  # nothing was evaluated or trained
    config.write_text(config.read_text().replace("{method: full}", "{method: full, train: {split: test}}"))
    assert main(["bench", str(config)]) == 2
    assert "methods.full: trains on split 'test', the split it is scored on" in capsys.readouterr().err


def test_bench_goals_state_what_is_not_met():
    from retrieval_ft.report import bench_goals

    def method(mean: float, delta: float, p: float, guard: float) -> dict:
        return {"metrics": {"ndcg@10": {"mean": mean}}, "delta": {"ndcg@10": delta}, "p_value": {"ndcg@10": p},
                "guards": {"g": {"ndcg@10": {"delta": guard}}}}

    out = {"methods": {"base": {}, "full": method(0.70, 0.05, 0.001, 0.0), "lora": method(0.68, 0.03, 0.2, -0.02)}}
    goals = bench_goals(out, "ndcg@10")
    assert goals[0].startswith("met: full above base")
    assert goals[1].startswith("NOT met: lora above base") and "p=0.2" in goals[1]
    assert goals[2].startswith("NOT met: lora within 0.01 of full") and "+0.0200" in goals[2]
    assert goals[3].startswith("met: full drops no guard") and goals[4].startswith("NOT met: lora drops no guard")


def test_from_scratch_time_adds_back_encoding_found_in_the_cache():
    from retrieval_ft.bench import _timing

    pairs = [{"pair": "full-1", "wall": 300.0, "reencodes": True, "cached": False, "encode": 200.0},
             {"pair": "full-2", "wall": 120.0, "reencodes": True, "cached": True, "encode": 0.0},
             {"pair": "lora-1", "wall": 340.0, "reencodes": True, "cached": False, "encode": 220.0},
             {"pair": "query-only-1", "wall": 20.0, "reencodes": False, "cached": True, "encode": 0.0}]
    t = _timing(900.0, 10.0, True, pairs)
    assert t["cached"] == ["full-2", "base"] and t["encode_seconds_added"] == 420.0
    assert t["from_scratch_seconds"] == 10.0 + 780.0 + 420.0 and t["elapsed_seconds"] == 900.0
    assert _timing(1.0, 1.0, False, pairs[:1])["cached"] == []


def test_data_override_names_the_results_after_the_collection(tmp_path: Path, tiny_model_path: Path):
    config = _config(tmp_path, tiny_model_path, "  full: {method: full}\n")
    assert load_bench_config(str(config), {"data": "demo"}).name == "demo"
    assert load_bench_config(str(config), {"data": str(tmp_path / "nfcorpus") + "/"}).name == "nfcorpus"
    assert load_bench_config(str(config), {"data": "demo", "name": "mine"}).name == "mine"
    assert load_bench_config(str(config), {"data": None}).name == "tiny"
