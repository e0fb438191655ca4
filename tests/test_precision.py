"""Compute precision: "auto" follows the hardware, explicit choices are kept, bf16 runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval_ft import precision as prec
from retrieval_ft.cli import build_parser
from retrieval_ft.config import EncodeConfig, Precision, TrainConfig
from retrieval_ft.encode import Encoder
from retrieval_ft.errors import ConfigError
from retrieval_ft.stamp import STAMP
from retrieval_ft.train import finetune

from .conftest import write_beir

TEXTS = ["star galaxy orbit", "flour sugar bake", "goal match referee", "vaccine dose", "comet nebula moon"]


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(prec.ENV, raising=False)


@pytest.mark.parametrize("native", [True, False])
def test_auto_on_a_cpu_follows_native_bf16(no_env, monkeypatch: pytest.MonkeyPatch, native: bool):
    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: native)
    assert prec.resolve_precision("auto", "cpu") is (Precision.BF16 if native else Precision.FP32)
    assert prec.resolve_precision(None, torch.device("cpu")) is (Precision.BF16 if native else Precision.FP32)


@pytest.mark.parametrize(("bf16", "expected"), [(True, Precision.BF16), (False, Precision.FP16)])
def test_auto_on_cuda_prefers_bf16_then_fp16(no_env, monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: Precision):
    # emulated bf16 (pre-Ampere GPUs) does not count: ask for native support only
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16 and not including_emulation)
    assert prec.resolve_precision("auto", "cuda:0") is expected
    assert prec.resolve_precision("auto", "mps") is Precision.FP32


def test_explicit_choices_and_the_environment(no_env, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda: True)
    assert prec.resolve_precision("fp32", "cpu") is Precision.FP32
    monkeypatch.setenv(prec.ENV, "FP32")
    assert prec.resolve_precision("auto", "cpu") is Precision.FP32
    assert prec.resolve_precision("bf16", "cpu") is Precision.BF16  # an explicit choice beats the environment
    monkeypatch.setenv(prec.ENV, "half")
    with pytest.raises(ConfigError, match=r"\$RETRIEVAL_FT_PRECISION='half' is not one of auto, fp32, bf16, fp16"):
        prec.resolve_precision("auto", "cpu")
    with pytest.raises(ConfigError, match="precision: 'fp64' is not one of"):
        EncodeConfig(precision="fp64")


def test_native_bf16_detection_agrees_with_the_cpu_flags():
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}
    if flags & {"avx512_bf16", "amx_bf16"}:
        assert prec.cpu_has_native_bf16()
    elif flags and "avx512f" not in flags:
        assert not prec.cpu_has_native_bf16()


def test_bf16_encoding_is_close_to_fp32_and_keyed_apart(tiny_model_path: Path):
    fp32 = Encoder(str(tiny_model_path), EncodeConfig(precision="fp32", progress=False))
    bf16 = Encoder(str(tiny_model_path), EncodeConfig(precision="bf16", progress=False))
    a, b = fp32.encode_documents(TEXTS), bf16.encode_documents(TEXTS)
    assert b.dtype == np.float32 and a.shape == b.shape
    assert not np.array_equal(a, b)  # bf16 really ran
    assert (a * b).sum(axis=1).min() > 0.98  # unit vectors: cosine to the fp32 vector
    assert (fp32.settings()["precision"], bf16.settings()["precision"]) == ("fp32", "bf16")
    ids = [str(i) for i in range(len(TEXTS))]
    assert fp32.cache_key(ids, TEXTS) != bf16.cache_key(ids, TEXTS)


def test_bf16_training_keeps_float32_weights(tiny_model_path: Path, tmp_path: Path):
    data = write_beir(tmp_path / "beir", n_docs=40)
    config = TrainConfig(max_steps=2, batch_size=8, warmup_ratio=0.0, lr=5e-3, precision="bf16")
    result = finetune(str(tiny_model_path), data, config, tmp_path / "tuned", encode=EncodeConfig(progress=False))
    stamp = json.loads((result.artifact / STAMP).read_text())
    assert stamp["precision"] == "bf16" and "precision" not in stamp["encode"]
    from safetensors import safe_open

    weights = next(result.artifact.rglob("model.safetensors"))
    with safe_open(str(weights), "pt") as fh:
        assert {fh.get_tensor(k).dtype for k in fh.keys()} == {torch.float32}  # noqa: SIM118 - safe_open is not iterable
    with pytest.raises(ConfigError, match="fp16' trains on CUDA only"):
        finetune(str(tiny_model_path), data, TrainConfig(max_steps=1, precision="fp16"), tmp_path / "fp16",
                 encode=EncodeConfig(progress=False, device="cpu"))


def test_cli_precision_flag():
    parser = build_parser()
    assert parser.parse_args(["evaluate", "--model", "m", "--data", "d", "--precision", "bf16"]).precision == "bf16"
    assert parser.parse_args(["train", "--model", "m", "--data", "d", "--out", "o"]).precision is None
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--model", "m", "--data", "d", "--precision", "fp8"])
