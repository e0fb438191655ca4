"""The artifact stamp as a typed record: the same JSON keys, nothing invented on load, and a
malformed stamp refused with the file and field named (never a traceback)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from retrieval_ft.errors import ModelError
from retrieval_ft.models import load_model
from retrieval_ft.stamp import STAMP, ArtifactKind, ArtifactStamp, BaseModelInfo, TrainingDataInfo, read_stamp

FULL = {
    "artifact": "adapter", "method": "lora", "base": {"name": "b", "path": "/m/b", "fingerprint": "f" * 64},
    "data": {"path": "/d", "split": "train", "fingerprint": "e" * 64, "pairs": 16, "hard_negatives": 0,
             "dev": "split 'dev'", "dev_corpus_size": 60},
    "config": {"method": "lora", "batch_size": 8}, "learning_rate": 0.02,
    "encode": {"query_prompt": None, "document_prompt": None, "similarity": "cosine", "normalize": True},
    "precision": "fp32", "max_seq_length": 64, "steps": 4,
    "distributed": {"world_size": 1, "backend": None, "global_batch_size": 8, "negatives_gathered": False},
    "train_seconds": 1.5, "eval_seconds": 0.2, "peak_memory_mb": 300.0, "trainable_params": 10, "total_params": 100,
    "preparation": {"method": "lora"}, "best_dev_ndcg@10": None, "dev_history": [], "best_checkpoint": None,
    "versions": {"torch": "2"}, "created": "2026-12-02T00:00:00Z", "artifact_bytes": 1234,
}


def test_round_trip_keeps_every_key_and_value():
    stamp = ArtifactStamp.from_dict(FULL)
    assert stamp.to_dict() == FULL
    assert stamp.artifact is ArtifactKind.ADAPTER and stamp.data is not None and stamp.data.dev == "split 'dev'"
    assert stamp.steps == 4 and stamp.best_dev_ndcg is None and stamp.base == BaseModelInfo(name="b", path="/m/b",
                                                                                          fingerprint="f" * 64)


def test_a_new_stamp_writes_every_key_but_the_late_ones():
    stamp = ArtifactStamp(artifact=ArtifactKind.FULL, base=BaseModelInfo(name="b"), data=TrainingDataInfo(pairs=3))
    keys = set(stamp.to_dict())
    assert "best_dev_ndcg@10" in keys and "best_checkpoint" in keys  # recorded as null
    assert "artifact_bytes" not in keys and "merged_from" not in keys  # only once known
    assert stamp.to_dict()["base"] == {"name": "b", "path": None, "fingerprint": None}
    assert "artifact_bytes" in replace(stamp, artifact_bytes=5).to_dict()


def test_an_older_stamp_gains_nothing_on_load_or_merge():
    old = {"artifact": "adapter", "method": "lora", "base": {"name": "b"}, "steps": 4, "custom": {"x": 1}}
    stamp = ArtifactStamp.from_dict(old)
    assert stamp.versions is None and stamp.data is None and stamp.base.fingerprint is None
    assert stamp.to_dict() == old  # no versions, no dev history, no base path: not recorded, not invented
    merged = replace(stamp, artifact=ArtifactKind.FULL, merged_from="/a").to_dict()
    assert merged == {**old, "artifact": "full", "merged_from": "/a"}


@pytest.mark.parametrize(("change", "field"), [
    ({"base": "model-name"}, "'base'"),
    ({"base": ["b"]}, "'base'"),
    ({"base": {"name": 3}}, "'base.name'"),
    ({"data": {"pairs": "16"}}, "'data.pairs'"),
    ({"steps": "4"}, "'steps'"),
    ({"steps": True}, "'steps'"),
    ({"learning_rate": "fast"}, "'learning_rate'"),
    ({"encode": "cosine"}, "'encode'"),
    ({"dev_history": {}}, "'dev_history'"),
    ({"artifact": "weights"}, "'artifact'"),
])
def test_a_malformed_stamp_names_the_file_and_field(tmp_path: Path, change: dict, field: str):
    (tmp_path / STAMP).write_text(json.dumps({**FULL, **change}))
    with pytest.raises(ModelError, match=rf"{STAMP}: field {field} should be"):
        read_stamp(tmp_path)


def test_an_adapter_whose_base_is_not_a_mapping_is_refused_by_load_model(tmp_path: Path):
    """Before, load_model stopped with AttributeError ('str' object has no attribute 'get')."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / STAMP).write_text(json.dumps({"artifact": "adapter", "method": "lora", "base": "bert-base"}))
    with pytest.raises(ModelError, match=r"retrieval_ft.json: field 'base' should be a mapping, not str 'bert-base'"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("text", ["{", "[]", '{"method": "lora"}'])
def test_a_stamp_that_is_not_one_is_refused(tmp_path: Path, text: str):
    (tmp_path / STAMP).write_text(text)
    with pytest.raises(ModelError, match="corrupt artifact stamp|not a retrieval-ft artifact stamp"):
        read_stamp(tmp_path)
    assert read_stamp(tmp_path / "elsewhere") is None


def test_stamps_and_result_records_share_one_record_base_with_their_own_error():
    """One base (retrieval_ft._records.Record) checks both families; each raises its own error."""
    from retrieval_ft._records import Record
    from retrieval_ft.errors import DataError
    from retrieval_ft.results import DatasetInfo, ModelInfo

    for cls in (ArtifactStamp, BaseModelInfo, TrainingDataInfo, ModelInfo, DatasetInfo):
        assert issubclass(cls, Record)
    with pytest.raises(ModelError, match=r"s.json: field 'base.name' should be a string, not int 3; re-run training"):
        ArtifactStamp.from_dict({**FULL, "base": {"name": 3}}, "s.json")
    with pytest.raises(DataError, match=r"r.json: field 'dataset.n_docs' should be an integer, not bool True; "
                                        r"re-run evaluate"):
        DatasetInfo.from_dict({"n_docs": True}, "r.json", "dataset.")
    older = {"name": "m", "written_by_a_newer_version": 1}
    assert ModelInfo.from_dict(older).to_dict() == older  # absent keys stay absent, unknown ones are kept
    assert set(ModelInfo(name="m").to_dict()) == set(ModelInfo.json_keys())  # a new record writes every key


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_stamp_number_that_is_not_finite_is_refused(tmp_path: Path, value: float):
    """The record base refuses non-finite numbers, as result records always did (write_json_atomic
    never writes one, so only a hand edit brings it)."""
    (tmp_path / STAMP).write_text(json.dumps({**FULL, "learning_rate": value}))
    with pytest.raises(ModelError, match=rf"{STAMP}: field 'learning_rate' should be a number"):
        read_stamp(tmp_path)


def test_reading_a_record_as_a_dict_still_works_with_a_warning():
    """Scripts written when results were dicts (`result.dataset["split"]`) keep running, warned."""
    from retrieval_ft.results import DatasetInfo

    info = DatasetInfo.from_dict({"path": "data", "split": "test", "fingerprint": "abc"}, "r.json")
    with pytest.warns(DeprecationWarning, match=r"DatasetInfo\['split'\] is deprecated; read the attribute"):
        assert info["split"] == "test" == info.split


def test_the_deprecation_names_the_attribute_of_a_renamed_key():
    """`best_dev_ndcg@10` is the JSON key of the attribute `best_dev_ndcg`."""
    stamp = ArtifactStamp.from_dict({"artifact": "adapter", "best_dev_ndcg@10": 0.5}, "retrieval_ft.json")
    with pytest.warns(DeprecationWarning, match=r"\(\.best_dev_ndcg\)"):
        assert stamp["best_dev_ndcg@10"] == 0.5 == stamp.best_dev_ndcg
