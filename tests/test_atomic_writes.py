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
