"""Trust and determinism: pickle weights refused, image paths bounded, same seed gives same results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval_ft.cli import main
from retrieval_ft.config import EncodeConfig, TrainConfig
from retrieval_ft.data import load_dataset
from retrieval_ft.encode import Encoder
from retrieval_ft.errors import DataError, ModelError
from retrieval_ft.models import load_model
from retrieval_ft.pipeline import evaluate
from retrieval_ft.train import finetune

from .conftest import write_beir


def _pickled_copy(tiny_model_path: Path, tmp_path: Path) -> Path:
    """The tiny model with its weights saved as pytorch_model.bin (pickle) instead of safetensors."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_path, folder)
    weights = next(folder.rglob("model.safetensors"))
    torch.save(load_file(str(weights)), weights.with_name("pytorch_model.bin"))
    weights.unlink()
    return folder


def test_pickle_weights_are_refused_unless_allowed(tiny_model_path: Path, tmp_path: Path, beir_dir: Path, capsys):
    folder = _pickled_copy(tiny_model_path, tmp_path)
    with pytest.raises(ModelError, match="pytorch_model.bin: pickle-based weights"):
        load_model(str(folder))
    assert main(["evaluate", "--model", str(folder), "--data", str(beir_dir), "--no-progress"]) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    allowed = Encoder(str(folder), EncodeConfig(allow_pickle=True))
    np.testing.assert_allclose(allowed.encode_queries(["moon"]), Encoder(str(tiny_model_path)).encode_queries(["moon"]),
                               atol=1e-6)


@pytest.mark.parametrize("image", ["../outside.png", "/etc/passwd", "images/../../x.png"])
def test_image_paths_cannot_leave_the_dataset(beir_dir: Path, image: str):
    (beir_dir / "corpus.jsonl").write_text(json.dumps({"_id": "p", "text": "", "image": image}) + "\n")
    with pytest.raises(DataError, match=r"corpus.jsonl:1 \(field 'image'\): image path .* leaves the dataset folder"):
        load_dataset(beir_dir)


def test_image_paths_inside_are_kept(beir_dir: Path):
    (beir_dir / "images").mkdir()
    (beir_dir / "images" / "0.png").write_bytes(b"")  # existence is checked at load; decoding when encoded
    (beir_dir / "corpus.jsonl").write_text(json.dumps({"_id": "d0", "text": "", "image": "images/0.png"}) + "\n")
    (beir_dir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\ntest-cooking\td0\t1\n")
    (beir_dir / "qrels" / "train.tsv").unlink()
    assert load_dataset(beir_dir).corpus["d0"].image == "images/0.png"


def test_same_config_and_seed_give_the_same_metrics(tiny_model_path: Path, tmp_path: Path):
    data = write_beir(tmp_path / "data", n_docs=60)
    config = TrainConfig(method="full", lr=5e-3, max_steps=3, batch_size=8, warmup_ratio=0.0)
    metrics = []
    for i in range(2):
        run = finetune(str(tiny_model_path), data, config, tmp_path / f"run{i}", encode=EncodeConfig(progress=False))
        result = evaluate(str(run.artifact), data)
        metrics.append((run.stamp.dev_history, result.metrics, result.per_query))
    assert metrics[0] == metrics[1]
