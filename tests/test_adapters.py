"""AdapterRetriever: one base model, many adapters switched per query, each embedding and ranking
as its artifact loaded alone does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval_ft import AdapterRetriever
from retrieval_ft.config import EncodeConfig, TrainConfig
from retrieval_ft.data import load_dataset
from retrieval_ft.encode import Encoder
from retrieval_ft.errors import ConfigError, IndexMismatchError, ModelError, UnknownAdapterError
from retrieval_ft.search import Retriever
from retrieval_ft.stamp import STAMP
from retrieval_ft.train import finetune

from .conftest import build_tiny_model, write_beir

ENC = EncodeConfig(progress=False)
FAST = dict(max_steps=4, batch_size=8, evals_per_epoch=2, warmup_ratio=0.0)
LR = {"query-lora": 2e-2, "lora": 2e-2, "hybrid": 2e-2, "query-only": 5e-3}
QUERIES = ["star galaxy orbit", "flour sugar bake", "goal match referee", "vaccine dose", "bank loan", "moon"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("adapter-data") / "beir", n_docs=60)


@pytest.fixture(scope="module")
def artifacts(tiny_model_path: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny artifact per servable method, plus a second query-lora (another seed)."""
    out = tmp_path_factory.mktemp("adapters")
    found = {}
    for method, lr in LR.items():
        found[method] = finetune(str(tiny_model_path), data_dir, TrainConfig(method=method, lr=lr, **FAST),
                                 out / method, encode=ENC).artifact
    found["query-lora-2"] = finetune(str(tiny_model_path), data_dir,
                                     TrainConfig(method="query-lora", lr=LR["query-lora"], seed=7, **FAST),
                                     out / "query-lora-2", encode=ENC).artifact
    return found


@pytest.fixture(scope="module")
def served(tiny_model_path: Path, data_dir: Path, artifacts: dict[str, Path]) -> AdapterRetriever:
    return AdapterRetriever(str(tiny_model_path), data=data_dir, encode=ENC, adapters=artifacts)


def _alone(path: Path, data_dir: Path) -> Retriever:
    return Retriever.build(Encoder(str(path), ENC), load_dataset(data_dir))


def test_each_adapter_embeds_and_ranks_as_its_artifact_alone(served, artifacts, data_dir):
    assert served.names() == sorted(artifacts)
    for name, path in artifacts.items():
        alone = _alone(path, data_dir)
        mine, theirs = served.encode_queries(QUERIES, adapter=name), alone.encoder.encode_queries(QUERIES)
        cosine = (mine * theirs).sum(axis=1) / np.linalg.norm(mine, axis=1) / np.linalg.norm(theirs, axis=1)
        assert cosine.min() >= 0.9999, (name, cosine)
        for got, want in zip(served.search(QUERIES, k=10, adapter=name), alone.search(QUERIES, k=10), strict=True):
            assert [h.doc_id for h in got] == [h.doc_id for h in want], name
    base = _alone(Path(served.encoder.path), data_dir)
    np.testing.assert_allclose(served.encode_queries(QUERIES), base.encoder.encode_queries(QUERIES), atol=1e-5)


def test_a_batch_mixes_adapters(served):
    names = ["query-lora", None, "lora", "query-only", "hybrid", "query-lora-2"]
    mixed = served.encode_queries(QUERIES, adapter=names)
    for i, name in enumerate(names):
        np.testing.assert_allclose(mixed[i], served.encode_queries([QUERIES[i]], adapter=name)[0], atol=1e-5)
    hits = served.search(QUERIES, k=5, adapter=names)
    for i, name in enumerate(names):
        assert [h.doc_id for h in hits[i]] == [h.doc_id for h in served.search([QUERIES[i]], k=5, adapter=name)[0]]
    # adapters differ from each other and from the base
    assert not np.allclose(mixed[0], served.encode_queries([QUERIES[0]], adapter="query-lora-2")[0], atol=1e-4)


def test_query_side_adapters_share_the_base_index_and_two_sided_ones_get_their_own(served):
    info = {i.name: i for i in served.info()}
    assert info["query-lora"].side == "query" and info["query-lora"].index == "base"
    assert info["query-only"].side == "query"
    served.search(QUERIES[:1], adapter="lora")
    info = {i.name: i for i in served.info()}
    assert info["lora"].side == "both" and info["lora"].index == "own"
    assert info["query-lora"].to_dict()["method"] == "query-lora"


def test_adapters_are_added_and_removed_at_run_time(tiny_model_path, data_dir, artifacts):
    served = AdapterRetriever(str(tiny_model_path), data=data_dir, encode=ENC)
    base = served.encode_queries(QUERIES)
    served.add("a", artifacts["query-lora"])
    served.add("b", artifacts["query-lora-2"])
    assert served.names() == ["a", "b"]
    with pytest.raises(ConfigError, match="already loaded"):
        served.add("a", artifacts["lora"])
    served.add("a", artifacts["query-lora-2"], replace=True)
    np.testing.assert_allclose(served.encode_queries(QUERIES, "a"), served.encode_queries(QUERIES, "b"), atol=1e-6)
    served.remove("a")
    with pytest.raises(UnknownAdapterError, match=r"unknown adapter 'a'; loaded adapters: b\."):
        served.search(QUERIES, adapter="a")
    served.remove("b")
    assert served.names() == [] and served._peft is None
    np.testing.assert_allclose(served.encode_queries(QUERIES), base, atol=1e-6)  # the plain base again


def test_adapters_of_another_base_or_no_adapter_are_refused(tiny_model_path, data_dir, artifacts, tmp_path):
    other = build_tiny_model(tmp_path / "other", seed=5)
    served = AdapterRetriever(str(other), data=data_dir, encode=ENC)
    with pytest.raises(ModelError, match="tuned from another base") as err:
        served.add("x", artifacts["query-lora"])
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="not a tuned artifact"):
        served.add("x", tiny_model_path)
    with pytest.raises(ConfigError, match="adapter name"):
        served.add("bad name!", artifacts["query-lora"])
    assert served.names() == []


def test_served_from_a_saved_index(tiny_model_path, data_dir, artifacts, tmp_path):
    folder = _alone(tiny_model_path, data_dir).save(tmp_path / "index")
    served = AdapterRetriever(str(tiny_model_path), index=folder, encode=ENC, adapters={"q": artifacts["query-lora"]})
    alone = _alone(artifacts["query-lora"], data_dir)
    assert [h.doc_id for h in served.search(QUERIES[:2], adapter="q")[0]] == [h.doc_id for h in alone.search(QUERIES[:2])[0]]
    # a two-sided adapter needs the corpus, or its own saved index
    with pytest.raises(ConfigError, match="needs an index of its own"):
        served.add("l", artifacts["lora"])
    own = _alone(artifacts["lora"], data_dir).save(tmp_path / "lora-index")
    served.add("l", artifacts["lora"], index=own)
    assert served.search(QUERIES[:1], adapter="l")[0][0].doc_id == _alone(artifacts["lora"], data_dir).search(QUERIES[:1])[0][0].doc_id
    with pytest.raises(IndexMismatchError):
        served.add("l2", artifacts["hybrid"], index=own)
    # an index of another encoder is refused as the base index
    with pytest.raises(IndexMismatchError):
        AdapterRetriever(str(build_tiny_model(tmp_path / "other", seed=5)), index=folder, encode=ENC)


def test_a_copied_stamp_naming_another_base_is_refused(served, artifacts, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(artifacts["query-lora"], copy)
    stamp = json.loads((copy / STAMP).read_text())
    stamp["base"]["fingerprint"] = "0" * 64
    (copy / STAMP).write_text(json.dumps(stamp))
    with pytest.raises(ModelError, match="tuned from another base"):
        served.add("copy", copy)


def test_a_mix_of_ranks_and_targets_in_one_batched_pass(tiny_model_path, data_dir, artifacts, tmp_path):
    """Mixed batches take serve/stacked.py's one pass per layer: equal to peft's own mixed batches
    and to each adapter alone, with adapters of other ranks and target layers and base rows."""
    from retrieval_ft.config import LoraSettings
    from retrieval_ft.serve import stacked

    small = finetune(str(tiny_model_path), data_dir,
                     TrainConfig(method="query-lora", lr=LR["query-lora"], seed=3,
                                 lora=LoraSettings(r=4, alpha=8, target_modules=("query", "value")), **FAST),
                     tmp_path / "small", encode=ENC).artifact
    served = AdapterRetriever(str(tiny_model_path), data=data_dir, encode=ENC,
                              adapters={"big": artifacts["query-lora"], "lora": artifacts["lora"], "small": small})
    assert stacked.supports(served._peft) and served._stacked
    names = ["small", "big", None, "lora", "small", "big"]
    calls: list[int | None] = []
    original = stacked._Layer.forward

    def counted(self, rows, single):
        calls.append(single)
        return original(self, rows, single)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stacked._Layer, "forward", counted)
        mine = served.encode_queries(QUERIES, adapter=names)
    assert calls and set(calls) == {None}  # the batched pass ran, rows mixed
    layers = [s.layer for s in served._stacked.layers]
    # it left the layers as they were, and the adapters' weights are views of the stacks, not copies
    assert not [layer for layer in layers if "forward" in vars(layer) or "forward" in layer._modules]
    for stack in served._stacked.layers:
        for name in served._stacked.names:
            if name in stack.layer.lora_A:
                assert stack.layer.lora_A[name].weight.untyped_storage().data_ptr() == stack.a.untyped_storage().data_ptr()
    layers, served._stacked = served._stacked, None  # peft's own mixed batches
    try:
        theirs = served.encode_queries(QUERIES, adapter=names)
        one_peft = served.encode_queries(QUERIES, adapter="small")
    finally:
        served._stacked = layers
    np.testing.assert_allclose(served.encode_queries(QUERIES, adapter="small"), one_peft, atol=1e-5)
    np.testing.assert_allclose(mine, theirs, atol=1e-5)
    for i, name in enumerate(names):
        np.testing.assert_allclose(mine[i], served.encode_queries([QUERIES[i]], adapter=name)[0], atol=1e-5)
    # the small adapter moves its rows away from the base and from the other adapter
    for other in (None, "big"):
        assert not np.allclose(mine[0], served.encode_queries([QUERIES[0]], adapter=other)[0], atol=1e-4)
