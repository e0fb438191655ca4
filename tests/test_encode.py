"""Encoder: shapes, normalisation, prompts, and the corpus-embedding cache."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval_ft.config import EncodeConfig, Similarity
from retrieval_ft.data import Document, load_dataset
from retrieval_ft.encode import Encoder

TEXTS = ["star galaxy orbit", "recipe with flour and sugar", "a goal in the match", "moon"]


def test_shapes_order_and_normalisation(tiny_model):
    enc = Encoder(tiny_model, EncodeConfig(batch_size=2))
    vecs = enc.encode_documents(TEXTS)
    assert vecs.dtype == np.float32 and vecs.shape == (4, enc.dim) == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    one_by_one = np.stack([enc.encode_documents([t])[0] for t in TEXTS])
    np.testing.assert_allclose(vecs, one_by_one, atol=1e-5)
    assert enc.encode_queries([]).shape == (0, 32)


def test_prompts_are_prepended(tiny_model):
    enc = Encoder(tiny_model, EncodeConfig(query_prompt="query: ", document_prompt="passage: "))
    plain = Encoder(tiny_model, EncodeConfig())
    np.testing.assert_allclose(enc.encode_queries(["moon"]), plain.encode_queries(["query: moon"]), atol=1e-6)
    np.testing.assert_allclose(enc.encode_documents(["moon"]), plain.encode_documents(["passage: moon"]), atol=1e-6)
    assert enc.settings()["query_prompt"] == "query: "


def test_dot_similarity_does_not_normalise(tmp_path: Path):
    from .conftest import build_tiny_model

    raw = build_tiny_model(tmp_path, normalize=False)
    enc = Encoder(str(raw), EncodeConfig(similarity=Similarity.DOT))
    norms = np.linalg.norm(enc.encode_documents(TEXTS), axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)
    assert Encoder(str(raw)).normalize  # the model's own default is cosine


class CountingEncoder(Encoder):
    calls = 0

    def encode_documents(self, texts, *, desc="Encoding documents"):
        CountingEncoder.calls += 1
        return super().encode_documents(texts, desc=desc)


def test_corpus_cache_hits_misses_and_repairs(tiny_model_path, beir_dir: Path, tmp_path: Path, caplog):
    from retrieval_ft.models import load_model

    corpus = load_dataset(beir_dir).corpus
    config = EncodeConfig(cache_dir=str(tmp_path / "cache"))
    enc = CountingEncoder(load_model(str(tiny_model_path)), config)
    CountingEncoder.calls = 0
    first = enc.encode_corpus(corpus)
    second = enc.encode_corpus(corpus)
    assert (first.cache_hit, second.cache_hit, CountingEncoder.calls) == (False, True, 1)
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert first.ids == list(corpus)

    changed = dict(corpus)
    changed["d0"] = Document("d0", "a different text", "astronomy")
    assert not enc.encode_corpus(changed).cache_hit

    with torch.no_grad():  # a changed weight is a different encoder
        next(enc.model.parameters()).add_(0.01)
    enc.refresh()
    assert not enc.encode_corpus(corpus).cache_hit
    current = enc.encode_corpus(corpus)
    assert current.cache_hit and current.cache_path != second.cache_path

    array = Path(current.cache_path)
    array.write_bytes(array.read_bytes()[:-16])  # truncate: the checksum no longer matches
    with caplog.at_level(logging.WARNING):
        repaired = enc.encode_corpus(corpus)
    assert not repaired.cache_hit and "corrupt" in caplog.text
    assert enc.encode_corpus(corpus).cache_hit


def test_cache_can_be_turned_off(tiny_model, beir_dir: Path):
    enc = Encoder(tiny_model, EncodeConfig(cache=False))
    corpus = load_dataset(beir_dir).corpus
    assert not enc.encode_corpus(corpus).cache_hit
    assert not enc.encode_corpus(corpus).cache_hit


def test_default_batch_sizes_follow_the_input_kind_and_device(tiny_model, monkeypatch: pytest.MonkeyPatch):
    from types import SimpleNamespace

    from retrieval_ft import encode as encode_module
    from retrieval_ft.encode import default_batch_size

    assert [default_batch_size(tiny_model, k) for k in ("document", "query", "page")] == [16, 32, 32]
    gpu = SimpleNamespace(device=SimpleNamespace(type="cuda"))
    assert default_batch_size(gpu, "document") == 32
    # the encoder passes each kind its own default: queries in batches of 32, documents of 16
    seen: list[tuple[str, int]] = []
    original = tiny_model.encode

    def spy(inputs, batch_size, **kwargs):
        seen.append((kwargs.get("prompt", ""), batch_size))
        return original(inputs, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(tiny_model, "encode", spy)
    enc = encode_module.Encoder(tiny_model, EncodeConfig(progress=False, cache=False))
    enc.encode_queries(["a query"])
    enc.encode_documents(["a document"])
    assert [bs for _, bs in seen] == [32, 16]
    seen.clear()
    encode_module.Encoder(tiny_model, EncodeConfig(batch_size=4, progress=False, cache=False)).encode_documents(["x"])
    assert [bs for _, bs in seen] == [4]


class _NoModalities:
    pass


class _Modalities:
    def __init__(self, found: list[str] | Exception) -> None:
        self.found = found

    @property
    def modalities(self) -> list[str]:
        if isinstance(self.found, Exception):
            raise self.found
        return self.found


def test_check_encodes_pages_reads_modalities_and_lets_real_errors_surface():
    """Any exception from `model.modalities` read as "text-only" before, hiding a broken model behind
    "use a multimodal model"; only a missing attribute means text-only now."""
    from retrieval_ft.encode import check_encodes_pages
    from retrieval_ft.errors import ConfigError

    check_encodes_pages(_Modalities(["text", "image"]))
    with pytest.raises(ConfigError, match="encodes only text; use a multimodal model"):
        check_encodes_pages(_NoModalities())
    with pytest.raises(ConfigError, match="encodes only text; use a multimodal model"):
        check_encodes_pages(_Modalities(["text"]))
    with pytest.raises(RuntimeError, match="processor failed to load"):
        check_encodes_pages(_Modalities(RuntimeError("processor failed to load")))
    with pytest.raises(KeyError):
        check_encodes_pages(_Modalities(KeyError("modality_config")))
