"""The method benchmark on a tiny encoder: the JSON layout, Markdown table and SVG plot."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
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


def test_bench_config_is_checked(tmp_path: Path, tiny_model_path: Path):
    config = _config(tmp_path, tiny_model_path, "  base: {method: full}\n")
    with pytest.raises(ConfigError, match="not 'base'"):
        load_bench_config(str(config))
    config = _config(tmp_path, tiny_model_path, "  x: {method: full, train: {lrr: 1}}\n")
    with pytest.raises(ConfigError, match="Did you mean 'lr'"):
        load_bench_config(str(config))


def test_shipped_benchmark_config_loads():
    config = load_bench_config(str(Path(__file__).resolve().parents[1] / "eval" / "configs" / "scifact.yaml"))
    assert [m.name for m in config.methods] == ["full", "lora", "hybrid", "query-only"] and config.seeds == (42, 43, 44)
