"""Nothing is lost: a writer killed (SIGKILL) mid-save leaves the previous artifact intact and loadable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from retrieval_ft.config import Similarity
from retrieval_ft.index import VectorIndex, build_index

from .conftest import ROOT

WRITER = """
import sys, numpy as np
from retrieval_ft.config import Similarity
from retrieval_ft.index import build_index
from retrieval_ft._io import write_json_atomic
kind, target = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while True:  # keep rewriting until killed
    if kind == "index":
        x = np.random.default_rng(1).standard_normal((200_000, 64)).astype(np.float32)
        build_index(x, [f"n{i}" for i in range(len(x))], Similarity.DOT).save(target)
    else:
        write_json_atomic(target, {"rows": list(range(300_000))})
"""


def _kill_mid_write(kind: str, target: Path, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, kind, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("delay", [0.2, 0.8, 1.5])
def test_killed_index_writer_leaves_a_loadable_index(tmp_path: Path, delay: float):
    target = tmp_path / "index"
    old = np.random.default_rng(0).standard_normal((10, 64)).astype(np.float32)
    build_index(old, [f"o{i}" for i in range(10)], Similarity.DOT).save(target)
    _kill_mid_write("index", target, delay)
    loaded = VectorIndex.load(target)
    assert len(loaded) in (10, 200_000)  # the old index, or a complete new one: never a torn one
    assert loaded.index.ntotal == len(loaded.ids)


@pytest.mark.parametrize("delay", [0.1, 0.4])
def test_killed_json_writer_leaves_valid_json(tmp_path: Path, delay: float):
    target = tmp_path / "report.json"
    target.write_text(json.dumps({"rows": [1, 2, 3]}))
    _kill_mid_write("json", target, delay)
    rows = json.loads(target.read_text())["rows"]
    assert rows == [1, 2, 3] or len(rows) == 300_000


def test_training_killed_with_sigkill_resumes_to_the_same_model(tmp_path: Path, tiny_model_path: Path):
    from retrieval_ft.config import EncodeConfig, TrainConfig
    from retrieval_ft.encode import Encoder
    from retrieval_ft.stamp import STAMP
    from retrieval_ft.train import finetune

    from .conftest import write_beir

    data = write_beir(tmp_path / "data", n_docs=60)
    args = ["train", "--model", str(tiny_model_path), "--data", str(data), "--method", "full", "--lr", "0.005",
            "--max-steps", "12", "--batch-size", "8", "--no-progress", "--config", str(tmp_path / "t.yaml")]
    # 4 train queries x 4 pairs, batched per query: 4 batches an epoch, a checkpoint every 2 steps
    (tmp_path / "t.yaml").write_text("warmup_ratio: 0.0\nevals_per_epoch: 2\n")
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "retrieval_ft.cli", *args, "--out", str(cut)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while time.time() < deadline and not (cut / "checkpoints" / "checkpoint-6" / "trainer_state.json").exists():
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / STAMP).exists(), "training finished before it could be killed"

    config = TrainConfig(method="full", lr=0.005, max_steps=12, batch_size=8, warmup_ratio=0.0, evals_per_epoch=2)
    enc = EncodeConfig(progress=False)
    resumed = finetune(str(tiny_model_path), data, config, cut, encode=enc, resume=True)
    whole = finetune(str(tiny_model_path), data, config, tmp_path / "whole", encode=enc)
    texts = ["star galaxy", "flour sugar", "goal match"]
    a = Encoder(str(whole.artifact), enc).encode_documents(texts)
    b = Encoder(str(resumed.artifact), enc).encode_documents(texts)
    assert np.abs(a - b).max() < 1e-5  # same seed and data order; float reassociation only
    assert resumed.stamp.steps == 12


def test_json_artifacts_are_strict(tmp_path: Path):
    from retrieval_ft._io import write_json_atomic
    from retrieval_ft.errors import DataError

    target = tmp_path / "r.json"
    write_json_atomic(target, {"ok": 1.0})
    with pytest.raises(DataError, match=r"r.json: not written: a\.b\[1\] is NaN or infinite"):
        write_json_atomic(target, {"a": {"b": [0.5, float("nan")]}})
    with pytest.raises(DataError, match="the value is NaN"):
        write_json_atomic(target, float("inf"))
    assert json.loads(target.read_text()) == {"ok": 1.0}  # the previous file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_writing_onto_a_folder_names_the_folder(tmp_path: Path):
    from retrieval_ft._io import write_text_atomic

    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as err:
        write_text_atomic(folder, "x")
    assert err.value.filename == str(folder) and list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary file left beside it
