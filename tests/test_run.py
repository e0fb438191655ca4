"""`retrieval-ft run`: config validation, the three report files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from retrieval_ft.cli import main
from retrieval_ft.config import load_run_config
from retrieval_ft.errors import ConfigError

from .conftest import ROOT, write_beir

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"


def _config(tmp: Path, model: Path, extra: str = "", gate: str = "") -> Path:
    write_beir(tmp / "data", n_docs=60)
    write_beir(tmp / "guard", n_docs=30, seed=7)
    path = tmp / "run.yaml"
    path.write_text(
        f"model: {model}\n"
        "data: data\n"
        "out: out\n"
        "train: {method: lora, max_steps: 3, batch_size: 8, lr: 0.02, warmup_ratio: 0.0}\n"
        "eval: {metrics: [ndcg@10, recall@20], k: 20, encode: {progress: false}}\n"
        "guards:\n  - {name: topics, data: guard}\n"
        f"{gate}{extra}"
    )
    return path


def test_run_writes_reports_and_exit_code_follows_the_gate(tmp_path: Path, tiny_model_path: Path, capsys):
    config = _config(tmp_path, tiny_model_path, gate="gate: {rules: {min_gain: -1.0, max_drop_any: null, max_drop: 1.0}, "
                                                       "guard_rules: {max_drop_any: null, max_drop: 1.0}}\n")
    assert main(["run", str(config)]) == 0
    out = capsys.readouterr().out
    assert "ndcg@10" in out and "report:" in out and "gate passed" in out
    folder = tmp_path / "out"
    report = json.loads((folder / "report.json").read_text())
    assert set(report) >= {"base", "tuned", "guards", "train", "gate"}
    assert set(report["base"]) >= {"metrics", "per_query"} and set(report["tuned"]) >= {"metrics", "per_query"}
    assert report["gate"] == {**report["gate"], "passed": True, "reasons": []}
    assert set(report["guards"]["topics"]) == {"base", "tuned"}
    assert report["train"]["method"] == "lora" and report["train"]["trainable_params"] > 0
    assert set(report["train"]) == {"method", "seconds", "peak_memory_mb", "trainable_params", "total_params",
                                    "artifact_bytes", "artifact", "best_dev_ndcg@10", "dev", "pairs", "steps",
                                    "learning_rate", "guard", "dev_history"}
    # training watched the run's guard set (a sample of it) and chose the blend with the base
    assert [s["name"] for s in report["train"]["guard"]["sets"]] == ["topics"]
    assert report["train"]["guard"]["interpolate"] == "auto" and 0.0 <= report["train"]["guard"]["alpha"] <= 1.0
    assert all("topics" in h["guards"] for h in report["train"]["dev_history"])
    assert "Guard-aware tuning" in (folder / "report.md").read_text()
    assert (folder / "model" / "retrieval_ft.json").is_file() and (folder / "index" / "index.json").is_file()
    assert report["base"]["dataset"]["fingerprint"] == report["tuned"]["dataset"]["fingerprint"]

    md = (folder / "report.md").read_text()
    assert md.startswith("# retrieval-ft run: gate passed") and "| ndcg@10 |" in md and "Guard set `topics`" in md

    root = ET.fromstring((folder / "report.html").read_text())  # well-formed XHTML
    assert root.find(f".//{XHTML}title").text == "retrieval-ft run: gate passed"
    bars = [r for r in root.findall(f".//{SVG}rect") if r.get("class") == "bar"]
    assert len(bars) == report["base"]["dataset"]["n_queries_judged"]  # one bar per query (gated metric ndcg@10)
    assert root.find(".//*[@id='guards']") is not None and root.find(".//*[@id='training']") is not None

    # the same config with a rule that cannot hold: exit 1 and the reason on stdout
    config.write_text(config.read_text().replace("min_gain: -1.0", "min_gain: 0.9"))
    assert main(["run", str(config), "--resume"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: ndcg@10 gained" in out
    assert json.loads((folder / "report.json").read_text())["gate"]["passed"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("trian: {epochs: 1}\n", "unknown key 'trian'. Did you mean 'train'"),
        ("eval: {metrics: [ndcg@10], kk: 5}\n", "unknown key 'eval.kk'. Did you mean 'k'"),
        ("unknown_ids: ignore\n", "unknown_ids must be 'error' or 'drop'"),
        ("gate: {rules: {alpha: 2}}\n", "alpha must be in"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, tiny_model_path: Path, extra: str, message: str, capsys):
    config = _config(tmp_path, tiny_model_path)
    text = config.read_text()
    key = extra.split(":")[0]
    if key in ("eval", "gate"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith(key + ":")) + "\n"
    config.write_text(text + extra)
    with pytest.raises(ConfigError, match=message):
        load_run_config(str(config))
    assert main(["run", str(config)]) == 2
    assert message.split("'")[0] in capsys.readouterr().err


def test_paths_are_relative_to_the_config(tmp_path: Path, tiny_model_path: Path):
    config = load_run_config(str(_config(tmp_path, tiny_model_path)))
    assert config.data == str(tmp_path / "data") and config.out == str(tmp_path / "out")
    assert config.guards[0].data == str(tmp_path / "guard")
    assert load_run_config(str(tmp_path / "run.yaml"), {"out": "elsewhere"}).out == "elsewhere"


def test_shipped_configs_load():
    root = Path(__file__).resolve().parents[1] / "configs"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert {"demo.yaml", "scifact-lora.yaml", "scifact-full.yaml", "visual-demo.yaml"} <= set(names)
    for name in names:
        cfg = load_run_config(str(root / name))
        assert cfg.model == ("tiny-clip" if name == "visual-demo.yaml" else "all-MiniLM-L6-v2")
        if name == "visual-demo.yaml":  # generated stand-ins are names, not paths
            assert cfg.data == "demo-pages" and cfg.out.endswith("out/visual-demo")


@pytest.mark.parametrize(
    ("gate", "where"),
    [
        ("", "gate.rules.metrics: ndcg@10 not in eval.metrics (recall@20, mrr@10)"),
        ("gate: {rules: {metrics: [recall@20]}}\n", "gate.guard_rules.metrics: ndcg@10 not in eval.metrics"),
        ("gate: {rules: {metrics: [recall@20]}, guard_rules: {metrics: [mrr@10]}, guards: {topics: {metrics: [map@5]}}}\n",
         "gate.guards.topics.metrics: map@5 not in eval.metrics"),
        ("gate: {rules: {metrics: [recall@20]}, guard_rules: {metrics: [mrr@10]}, guards: {topicz: {metrics: [mrr@10]}}}\n",
         "gate.guards.topicz: no guard set is named 'topicz' (guard sets: topics). Did you mean 'topics'?"),
    ],
)
def test_gated_metrics_must_be_evaluated_before_any_work(tmp_path: Path, tiny_model_path: Path, capsys, monkeypatch,
                                                         gate: str, where: str):
    """The gate (main and guard rules) may only read evaluated metrics: refused when the config is
    read, not after tuning ("metric 'ndcg@10' is not in both results", exit 2)."""
    config = _config(tmp_path, tiny_model_path, gate=gate)
    config.write_text(config.read_text().replace("metrics: [ndcg@10, recall@20]", "metrics: [recall@20, mrr@10]"))
    with pytest.raises(ConfigError, match=where.replace("(", r"\(").replace(")", r"\)")):
        load_run_config(str(config))
    import retrieval_ft.train as train

    def no_training(*args, **kwargs):
        raise AssertionError("tuned before the config was checked")

    monkeypatch.setattr(train, "finetune", no_training)
    assert main(["run", str(config)]) == 2
    assert where in capsys.readouterr().err


def test_run_gated_on_another_metric_logs_each_stage_in_ci(tmp_path: Path, tiny_model_path: Path):
    """A run gated on recall@20 (ndcg@10 not evaluated) reports that metric for its guard sets, and
    with stdout not a terminal (as in CI) it logs a line per stage on stderr without -v."""
    rules = "{metrics: [recall@20], min_gain: -1.0, max_drop_any: null, max_drop: 1.0}"
    config = _config(tmp_path, tiny_model_path, gate=f"gate: {{rules: {rules}, guard_rules: {rules}}}\n")
    config.write_text(config.read_text().replace("metrics: [ndcg@10, recall@20]", "metrics: [recall@20, mrr@10]"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "retrieval_ft", "run", str(config)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "guard topics: recall@20 base" in proc.stdout and "recall@20 change" in proc.stdout
    stages = ["base model: evaluating", "guard set topics: evaluating the base model", "tuning: ",
              "tuned model: trained in", "guard set topics: evaluating the tuned model", "gate: comparing",
              "report: "]
    lines = proc.stderr.splitlines()
    found = [next((i for i, line in enumerate(lines) if stage in line), None) for stage in stages]
    assert None not in found and found == sorted(found), proc.stderr
    assert "Traceback" not in proc.stderr


def test_quiet_hides_the_stage_lines_and_verbose_adds_library_lines():
    import logging

    from retrieval_ft.cli import _setup_logging

    ours, root = logging.getLogger("retrieval_ft"), logging.getLogger()
    saved = ours.level, root.level
    try:
        _setup_logging(verbose=False, quiet=True, command="run")
        assert not ours.isEnabledFor(logging.INFO)
        _setup_logging(verbose=False, quiet=False, command="run")
        assert ours.isEnabledFor(logging.INFO) and not ours.isEnabledFor(logging.DEBUG)
        _setup_logging(verbose=True, quiet=False, command="run")
        assert ours.isEnabledFor(logging.DEBUG)
    finally:
        ours.setLevel(saved[0])
        root.setLevel(saved[1])
