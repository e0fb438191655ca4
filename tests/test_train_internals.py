"""Training's internals on a tiny offline encoder: gradient checkpointing, resuming across it."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

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
EVAL_SECONDS = 0.25


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


# -- where the time goes, and what is not done twice ---------------------------------------------
def _scripted_dev(monkeypatch, values: list[float]) -> None:
    """Dev NDCG@10 of successive evaluations as given, to decide which step is the best; each takes
    EVAL_SECONDS."""
    from retrieval_ft.train.dev_eval import DevNDCG

    calls = iter(values)

    def scripted(self, model, output_path=None, epoch=-1, steps=-1):
        value = next(calls)
        time.sleep(EVAL_SECONDS)
        self.history.append({"step": int(steps), "epoch": float(epoch), "ndcg@10": value})
        return self.prefix_name_to_metrics({"ndcg@10": value}, self.name)

    monkeypatch.setattr(DevNDCG, "__call__", scripted)


class ListCheckpoints:
    """The checkpoint folders there are when training ends (copied to `keep`, if given: writing
    the artifact replaces the output folder, checkpoints and all)."""

    def __init__(self, folder: Path, keep: Path | None = None) -> None:
        self.folder, self.keep, self.names = folder, keep, None

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def on_train_end(self, args, state, control, **kwargs):
        self.names = sorted(p.name for p in self.folder.glob("checkpoint-*"))
        if self.keep is not None:
            shutil.copytree(self.folder, self.keep)


class SeeFrozenHeap:
    """Records, at each step, how many objects the garbage collector keeps frozen."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def __getattr__(self, name):  # other callback events are no-ops
        return lambda *args, **kwargs: None

    def on_step_end(self, args, state, control, **kwargs):
        import gc

        self.counts.append(gc.get_freeze_count())


def test_frozen_heap_freezes_what_exists_and_gives_it_back():
    import gc

    from retrieval_ft.train.timing import frozen_heap

    assert gc.get_freeze_count() == 0
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the modules imported so far
    assert gc.get_freeze_count() == 0
    # a process that froze its heap itself keeps it frozen, no more and no less
    gc.freeze()
    try:
        own = gc.get_freeze_count()
        with frozen_heap():
            assert gc.get_freeze_count() == own
        assert gc.get_freeze_count() == own
    finally:
        gc.unfreeze()


def _count_reloads(monkeypatch) -> list[str]:
    from sentence_transformers import SentenceTransformerTrainer

    loaded: list[str] = []
    original = SentenceTransformerTrainer._load_from_checkpoint

    def counted(self, checkpoint_path):
        loaded.append(Path(checkpoint_path).name)
        return original(self, checkpoint_path)

    monkeypatch.setattr(SentenceTransformerTrainer, "_load_from_checkpoint", counted)
    return loaded


def test_the_last_step_when_best_is_kept_without_a_reload_or_a_last_checkpoint(tiny_model_path, data_dir, tmp_path,
                                                                                 monkeypatch, caplog):
    _scripted_dev(monkeypatch, [0.5, 0.9])  # evaluations at steps 2 and 4: the last is the best
    loaded = _count_reloads(monkeypatch)
    written, heap = ListCheckpoints(tmp_path / "t" / "checkpoints"), SeeFrozenHeap()
    with caplog.at_level("INFO", logger="retrieval_ft"):
        result = finetune(str(tiny_model_path), data_dir, TrainConfig(method="full", lr=5e-3, **FAST), tmp_path / "t",
                          encode=ENC, callbacks=[written, heap])
    # full collections skip what existed before the run while it runs, and it is given back after
    import gc

    assert len(heap.counts) == 4 and min(heap.counts) > 1000 and gc.get_freeze_count() == 0
    assert loaded == []
    assert result.stamp.best_checkpoint == "checkpoint-4" and result.best_dev_ndcg == 0.9
    # the artifact, written right after training, is the result: no checkpoint after the last step
    # (the artifact replaces the output folder, checkpoints and all)
    assert written.names == ["checkpoint-2"] and not (tmp_path / "t" / "checkpoints").exists()
    # the model card names example texts but does not encode them (no similarity printout)
    card = (result.artifact / "README.md").read_text()
    assert "similarities = model.similarity" in card and "tensor([[" not in card

    # the timings: every phase, none negative, adding up to the run's wall time
    timings = result.stamp.to_dict()["timings"]
    assert timings == result.timings
    from retrieval_ft.train.timing import PHASES

    assert list(timings) == [*PHASES, "total"]
    assert all(v >= 0 for v in timings.values())
    assert timings["steps"] > 0 and timings["save"] > 0 and timings["load"] > 0
    # the two evaluations' time is told apart from the steps'
    assert 2 * EVAL_SECONDS <= timings["evaluations"] < 2 * EVAL_SECONDS + 0.5
    assert timings["evaluations"] == result.stamp.eval_seconds
    parts = sum(v for k, v in timings.items() if k != "total")
    assert parts <= timings["total"] + 0.05 and parts >= 0.9 * timings["total"]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("time: ")]
    assert lines == [f"time: load {timings['load']:.1f} s, data {timings['data']:.1f} s, mining {timings['mining']:.1f} s, "
                     f"dev set {timings['dev_set']:.1f} s, metric library {timings['metric_library']:.1f} s, steps {timings['steps']:.1f} s, evaluations "
                     f"{timings['evaluations']:.1f} s, checkpoints {timings['checkpoints']:.1f} s, selection "
                     f"{timings['selection']:.1f} s, save {timings['save']:.1f} s; total {timings['total']:.1f} s"]


def test_an_earlier_best_checkpoint_is_loaded_back(tiny_model_path, data_dir, tmp_path, monkeypatch):
    _scripted_dev(monkeypatch, [0.9, 0.5])  # the first evaluation (step 2) is the best
    loaded = _count_reloads(monkeypatch)
    written = ListCheckpoints(tmp_path / "t" / "checkpoints", keep=tmp_path / "kept")
    result = finetune(str(tiny_model_path), data_dir, TrainConfig(method="full", lr=5e-3, **FAST), tmp_path / "t",
                      encode=ENC, callbacks=[written])
    assert loaded == ["checkpoint-2"] and written.names == ["checkpoint-2"]
    assert result.stamp.best_checkpoint == "checkpoint-2" and result.timings["selection"] > 0
    kept = Encoder(str(tmp_path / "kept" / "checkpoint-2"), ENC).encode_queries(TEXTS)
    assert np.abs(Encoder(str(result.artifact), ENC).encode_queries(TEXTS) - kept).max() < 1e-6


def _sentence_transformers_alive() -> set[int]:
    import gc

    from sentence_transformers import SentenceTransformer

    gc.collect()
    # the object's own type, not isinstance: isinstance asks a weak proxy for its referent's class,
    # which raises once the referent is gone (and touches torch's deprecated aliases on the way)
    return {id(o) for o in gc.get_objects() if issubclass(type(o), SentenceTransformer)}


class CountModels:
    """The SentenceTransformer objects alive at the first step that were not alive before training."""

    def __init__(self, before: set[int]) -> None:
        self.before, self.new = before, None

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.new is None:
            self.new = len(_sentence_transformers_alive() - self.before)


@pytest.mark.parametrize("method", ["query-lora", "query-only", "lora"])
def test_training_holds_one_model(tiny_model_path, data_dir, tmp_path, method):
    """The base is loaded once, and query-side methods hold no copy of it as a document model: the
    documents are the base's cached vectors."""
    counter = CountModels(_sentence_transformers_alive())
    result = finetune(str(tiny_model_path), data_dir, TrainConfig(method=method, lr=2e-2, **FAST), tmp_path / "t",
                      encode=ENC, callbacks=[counter])
    assert counter.new == 1
    # the documents still keep the base's vectors, bit for bit
    base = Encoder(str(tiny_model_path), ENC).encode_documents(TEXTS)
    assert np.array_equal(Encoder(str(result.artifact), ENC).encode_documents(TEXTS), base) == method.startswith("query-")


def test_the_dev_corpus_is_encoded_once_per_evaluation(tiny_model_path, data_dir, tmp_path, monkeypatch):
    import retrieval_ft.train.dev_eval as dev_eval

    encoded: list[int] = []
    original = dev_eval.encode_items

    def counted(model, items, **kwargs):
        encoded.append(len(items))
        return original(model, items, **kwargs)

    monkeypatch.setattr(dev_eval, "encode_items", counted)
    evaluators = []
    original_init = dev_eval.DevNDCG.__init__

    def kept(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        evaluators.append(self)

    monkeypatch.setattr(dev_eval.DevNDCG, "__init__", kept)
    result = finetune(str(tiny_model_path), data_dir, TrainConfig(method="lora", lr=2e-2, **FAST), tmp_path / "t",
                      encode=ENC)
    assert len(encoded) == len(result.history) == 2 and set(encoded) == {result.stamp.data.dev_corpus_size}
    # and the encodings are let go once scored: the evaluator keeps no vectors between evaluations
    [evaluator] = evaluators
    assert not [k for k, v in vars(evaluator).items() if isinstance(v, (np.ndarray, torch.Tensor))]

