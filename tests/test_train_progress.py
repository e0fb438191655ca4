"""Training's progress display: library bars silenced with progress off, and, without bars, a
line per stage and periodic training lines on the retrieval_ft.progress logger."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from retrieval_ft.config import EncodeConfig, HardNegatives, TrainConfig
from retrieval_ft.train import finetune
from retrieval_ft.train.progress import library_bars, progress_line

from .conftest import write_beir


def test_progress_line():
    assert progress_line(40, 400, 62.0, 0.43125) == "step 40/400 (10%), loss 0.4313, elapsed 1m02s, eta 9m18s"
    assert progress_line(0, 10, 0.0, None) == "step 0/10 (0%), elapsed 0m00s"
    assert progress_line(5, 10, 4000.0, None).endswith("elapsed 1h06m, eta 1h06m")


def test_library_bars_are_silenced_and_restored():
    import datasets
    from sentence_transformers.base import model_card

    bar = model_card.tqdm
    with library_bars(False):
        assert datasets.utils.are_progress_bars_disabled()
        assert model_card.tqdm([1, 2], desc="Computing widget examples").disable
    assert model_card.tqdm is bar and not datasets.utils.are_progress_bars_disabled()
    with library_bars(True):
        assert model_card.tqdm is bar


def test_training_without_bars_logs_stages_and_no_library_bar(tiny_model_path: Path, tmp_path: Path, capfd,
                                                             caplog: pytest.LogCaptureFixture):
    """Before, --no-progress still showed 'Computing widget examples' and datasets' bars, and a run
    outside a terminal logged nothing while it trained."""
    data = write_beir(tmp_path / "beir", n_docs=40)
    with caplog.at_level(logging.INFO, logger="retrieval_ft.progress"):
        finetune(str(tiny_model_path), data, TrainConfig(max_steps=3, batch_size=8, evals_per_epoch=1, warmup_ratio=0.0,
                                                         hard_negatives=HardNegatives(enabled=True, num=1)),
                 tmp_path / "out", encode=EncodeConfig(progress=False))
    err = capfd.readouterr().err
    assert "Computing widget examples" not in err and "Hashing" not in err and "examples/s" not in err
    lines = [r.getMessage() for r in caplog.records if r.name == "retrieval_ft.progress"]
    assert any(line.startswith("mining 1 hard negatives per pair") for line in lines)
    assert any(line.startswith("dev set: ") for line in lines)
    assert any(line.startswith("training full: ") for line in lines)
    assert any(line.startswith("training: step 3/3 (100%)") for line in lines)
    assert any(line.startswith("evaluation at step ") for line in lines)
    assert any(line.startswith("saving the artifact to ") for line in lines)
