"""Training's internals on a tiny offline encoder: gradient checkpointing, resuming across it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from retrieval_ft.cli import main
from retrieval_ft.config import EncodeConfig, TrainConfig, from_dict
from retrieval_ft.encode import Encoder
from retrieval_ft.errors import ConfigError
from retrieval_ft.stamp import STAMP
from retrieval_ft.train import finetune

from .conftest import write_beir

TEXTS = ["star galaxy orbit", "flour sugar bake", "goal match referee", "vaccine dose"]
FAST = dict(max_steps=4, batch_size=8, evals_per_epoch=2, warmup_ratio=0.0)
ENC = EncodeConfig(progress=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("internals-data") / "beir", n_docs=60)


class SeeCheckpointing:
    """Records, at the first step, whether the transformer recomputes its activations."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def __getattr__(self, name):  # every other callback event is a no-op
        return lambda *args, **kwargs: None

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if not self.seen:
            self.seen.append(any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules()))


class StopAt:
    def __init__(self, step: int) -> None:
        self.step = step

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


# -- gradient checkpointing ---------------------------------------------------------------------
def test_gradient_checkpointing_is_a_setting_of_yaml_and_cli():
    assert TrainConfig().gradient_checkpointing is False
    assert from_dict(TrainConfig, {"gradient_checkpointing": True}).gradient_checkpointing is True
    from retrieval_ft.cli.parser import build_parser

    args = build_parser().parse_args(["train", "--model", "m", "--data", "d", "--out", "o", "--gradient-checkpointing"])
    assert args.gradient_checkpointing is True
    assert build_parser().parse_args(["train", "--model", "m", "--data", "d", "--out", "o"]).gradient_checkpointing is None


def test_cli_flag_reaches_the_training(monkeypatch, tmp_path):
    seen = {}

    def fake_finetune(model, data, config, out, **kwargs):
        seen["config"] = config
        raise ConfigError("stop here")

    monkeypatch.setattr("retrieval_ft.train.finetune", fake_finetune)
    assert main(["train", "--model", "m", "--data", "d", "--out", str(tmp_path), "--gradient-checkpointing"]) == 2
    assert seen["config"].gradient_checkpointing is True


@pytest.mark.parametrize("method", ["lora", "query-lora"])
def test_gradient_checkpointing_trains_the_same_model(tiny_model_path, data_dir, tmp_path, method):
    """Recomputed activations are the same activations: LoRA (frozen base weights, where reentrant
    checkpointing would pass no gradient) reaches the model it reaches without checkpointing."""
    config = TrainConfig(method=method, lr=2e-2, **FAST)
    seen = SeeCheckpointing()
    plain = finetune(str(tiny_model_path), data_dir, config, tmp_path / "plain", encode=ENC)
    checked = finetune(str(tiny_model_path), data_dir, dataclasses.replace(config, gradient_checkpointing=True),
                       tmp_path / "checkpointed", encode=ENC, callbacks=[seen])
    assert seen.seen == [True]
    assert checked.stamp.config["gradient_checkpointing"] is True
    base = Encoder(str(tiny_model_path), ENC).encode_queries(TEXTS)
    a = Encoder(str(plain.artifact), ENC).encode_queries(TEXTS)
    b = Encoder(str(checked.artifact), ENC).encode_queries(TEXTS)
    assert not np.allclose(b, base, atol=1e-4)  # it trained
    assert np.abs(a - b).max() < 1e-5
    assert [h["ndcg@10"] for h in checked.history] == pytest.approx([h["ndcg@10"] for h in plain.history], abs=1e-6)


def test_resume_accepts_a_change_of_gradient_checkpointing(tiny_model_path, data_dir, tmp_path):
    config = TrainConfig(method="lora", lr=2e-2, max_steps=6, batch_size=8, evals_per_epoch=2, warmup_ratio=0.0)
    whole = finetune(str(tiny_model_path), data_dir, config, tmp_path / "whole", encode=ENC)
    with pytest.raises(KeyboardInterrupt):
        finetune(str(tiny_model_path), data_dir, config, tmp_path / "cut", encode=ENC, callbacks=[StopAt(5)])
    assert not (tmp_path / "cut" / STAMP).exists()
    resumed = finetune(str(tiny_model_path), data_dir, dataclasses.replace(config, gradient_checkpointing=True),
                       tmp_path / "cut", encode=ENC, resume=True)
    assert resumed.stamp.steps == 6 and resumed.stamp.config["gradient_checkpointing"] is True
    a = Encoder(str(whole.artifact), ENC).encode_documents(TEXTS)
    b = Encoder(str(resumed.artifact), ENC).encode_documents(TEXTS)
    assert np.abs(a - b).max() < 1e-5
