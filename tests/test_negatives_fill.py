"""Pairs short of hard negatives: filled from beyond range_max (never a judged-relevant document),
kept with what exists where the loss takes it; the query-only loss's masks and whole-corpus
negatives; the harder dev corpus."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from retrieval_ft.config import EncodeConfig, HardNegatives, Similarity, TrainConfig
from retrieval_ft.errors import DataError
from retrieval_ft.train import finetune
from retrieval_ft.train.dev_eval import dev_corpus
from retrieval_ft.train.losses import FixedDocumentsMNRL
from retrieval_ft.train.negatives import mine_negatives

from .conftest import write_beir

IDS = [f"d{i}" for i in range(8)]


def _near_positive_corpus():
    """Query (1, 0); d0 the positive; d1-d3 score within the margin of it; d4 judged relevant;
    d5-d7 further away, best first."""
    angles = [0.0, 0.05, 0.08, 0.1, 0.5, 0.9, 1.1, 1.3]
    docs = np.array([[math.cos(a), math.sin(a)] for a in angles], dtype=np.float32)
    return docs, {"q": np.array([1, 0], dtype=np.float32)}, {"q": {"d0": 1, "d4": 1}}


@pytest.mark.parametrize("fill,expected", [(True, ["d5", "d6"]), (False, [])])
def test_short_pairs_fill_from_beyond_range_max(fill, expected):
    docs, query, qrels = _near_positive_corpus()
    mined = mine_negatives([("q", "d0")], qrels, query, IDS, docs, num=2, range_max=3, relative_margin=0.05,
                           similarity=Similarity.COSINE, fill=fill)
    # the top 4 (range_max + 1) are the positive and three near-positives: none is below the margin;
    # the fill skips d4 (judged relevant) and takes the next-ranked
    assert mined.lists == [expected] and mined.filled == int(fill)


def test_a_corpus_short_of_negatives_gives_what_exists():
    docs, query, qrels = _near_positive_corpus()
    mined = mine_negatives([("q", "d0")], qrels, query, IDS, docs, num=10, range_max=3, relative_margin=0.05,
                           similarity=Similarity.COSINE, fill=True)
    assert mined.lists == [["d5", "d6", "d7"]]


class Identity(torch.nn.Module):
    def forward(self, features):
        return {"sentence_embedding": features["x"]}


def _ce(scores: list[float], target: int) -> float:
    return -scores[target] + math.log(sum(math.exp(s) for s in scores))


def test_fixed_documents_loss_masks_the_query_relevant_documents_and_padding():
    """Two pairs of one query in a batch: neither positive is the other's negative; a missing
    negative (-1) is no candidate."""
    docs = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    loss = FixedDocumentsMNRL(Identity(), docs, normalize=False, scale=1.0, relevant=[[0, 1]])
    q = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([[0, 0, 2], [0, 1, -1]])  # query 0; positive; a hard negative or none
    value = loss([{"x": q}], labels).item()
    # candidates d0, d2, d1, (pad); row 0: d1 masked (relevant), row 1: d0 masked (relevant)
    expected = (_ce([2, 2], 0) + _ce([1, 1], 1)) / 2
    assert value == pytest.approx(expected, abs=1e-6)


def test_corpus_negatives_score_every_document_but_the_query_relevant_ones():
    docs = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32)
    loss = FixedDocumentsMNRL(Identity(), docs, normalize=False, scale=1.0, relevant=[[0, 1], [2]],
                              corpus_negatives=True)
    q = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([[0, 0], [1, 2]])
    value = loss([{"x": q}], labels).item()
    # row 0 (query 0, positive d0): d1 relevant, masked; candidates d0, d2, d3
    # row 1 (query 1, positive d2): every other document is a negative
    expected = (_ce([2, 2, -2], 0) + _ce([0, 1, 1, 0], 2)) / 2
    assert value == pytest.approx(expected, abs=1e-6)


def test_hard_dev_corpus_holds_the_base_top_documents_rank_by_rank():
    qrels = {"a": {"d0": 1}, "b": {"d1": 1}}
    top = {"a": ["d2", "d3", "d4"], "b": ["d5", "d2", "d6"]}
    docs = [f"d{i}" for i in range(20)]
    assert dev_corpus(qrels, docs, 5, 0, top) == ["d0", "d1", "d2", "d5", "d3"]
    bigger = dev_corpus(qrels, docs, 12, 0, top)
    assert bigger[:7] == ["d0", "d1", "d2", "d5", "d3", "d4", "d6"] and len(set(bigger)) == 12
    assert dev_corpus(qrels, docs, 5, 0)[:2] == ["d0", "d1"]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """Eight documents: each query has one or two judged, so 10 negatives per pair cannot exist."""
    return write_beir(tmp_path_factory.mktemp("tiny") / "beir", n_docs=8)


def test_query_only_trains_on_pairs_short_of_negatives(tiny_model_path, tiny_corpus, tmp_path, caplog):
    config = TrainConfig(method="query-only", max_steps=2, batch_size=4, evals_per_epoch=1, warmup_ratio=0.0,
                         hard_negatives=HardNegatives(num=10, range_max=2), dev_hard=True, corpus_negatives=True)
    with caplog.at_level(logging.INFO):
        result = finetune(str(tiny_model_path), tiny_corpus, config, tmp_path / "qo",
                          encode=EncodeConfig(progress=False))
    assert result.stamp.steps == 2 and result.stamp.data.pairs > 0
    assert "took the next-ranked documents beyond them" in caplog.text and "dropped" not in caplog.text
    assert "train with fewer than 10 negatives" in caplog.text


def test_shared_towers_refuse_pairs_short_of_negatives(tiny_model_path, tiny_corpus, tmp_path, caplog):
    config = TrainConfig(method="full", max_steps=2, batch_size=4, hard_negatives=HardNegatives(enabled=True, num=10))
    with caplog.at_level(logging.WARNING), pytest.raises(DataError, match="no training pair found 10 negatives"):
        finetune(str(tiny_model_path), tiny_corpus, config, tmp_path / "full", encode=EncodeConfig(progress=False))
    assert "were dropped" in caplog.text
