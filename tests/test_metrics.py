"""Metric values against hand-computed numbers and an independent numpy implementation."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from retrieval_ft.config import check_metrics
from retrieval_ft.errors import ConfigError, DataError
from retrieval_ft.metrics import evaluate_run

from .conftest import shared_dataset


def test_hand_computed_graded_example():
    qrels = {"q1": {"d1": 2, "d2": 1, "d3": 0}}
    run = {"q1": {"d3": 0.9, "d1": 0.8, "d4": 0.7, "d2": 0.6}}
    s = evaluate_run(qrels, run, ["ndcg@10", "ndcg_burges@10", "mrr@10", "recall@2", "recall@100", "map@100"])
    # relevant d1 (grade 2) at rank 2, d2 (grade 1) at rank 4
    assert s.mean["ndcg@10"] == pytest.approx((2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3)), abs=1e-12)
    assert s.mean["ndcg_burges@10"] == pytest.approx((3 / math.log2(3) + 1 / math.log2(5)) / (3 + 1 / math.log2(3)), abs=1e-12)
    assert s.mean["mrr@10"] == pytest.approx(0.5)
    assert s.mean["recall@2"] == pytest.approx(0.5)
    assert s.mean["recall@100"] == pytest.approx(1.0)
    assert s.mean["map@100"] == pytest.approx((1 / 2 + 2 / 4) / 2)


def test_ties_are_broken_by_doc_id():
    qrels = {"a": {"d5": 1}, "b": {"d7": 1}}
    run = {"a": {"d6": 0.5, "d5": 0.5}, "b": {"d7": 0.5, "d6": 0.5}}
    s = evaluate_run(qrels, run, ["mrr@10"])
    assert s.per_query["mrr@10"] == {"a": 1.0, "b": 0.5}


def test_unjudged_queries_are_left_out_and_empty_results_score_zero():
    qrels = {"judged": {"d1": 1}, "all-zero": {"d2": 0}, "no-results": {"d3": 1}}
    run = {"judged": {"d1": 1.0}, "all-zero": {"d2": 1.0}, "extra": {"d1": 1.0}}
    s = evaluate_run(qrels, run, ["ndcg@10", "recall@100"])
    assert s.n_queries == 2
    assert s.per_query["ndcg@10"] == {"judged": 1.0, "no-results": 0.0}
    assert s.mean["ndcg@10"] == pytest.approx(0.5)


@pytest.mark.parametrize("qrels", [{"q1": {"d1": 0}, "q2": {"d2": 0, "d3": 0}}, {}])
def test_no_judged_query_is_an_error_not_nan(qrels):
    with pytest.raises(DataError, match="no judged query") as err:
        evaluate_run(qrels, {"q1": {"d1": 1.0}}, ["ndcg@10", "recall@100"])
    assert ("grade 0" if qrels else "no judgments") in str(err.value)


def test_one_name_for_scoring_a_run():
    import retrieval_ft
    from retrieval_ft import metrics

    assert retrieval_ft.evaluate_run is metrics.evaluate_run
    assert not hasattr(metrics, "evaluate")


def test_metric_names_are_checked():
    assert check_metrics(["NDCG@10", "mrr@10", "ndcg@10"], 100) == ("ndcg@10", "mrr@10")
    with pytest.raises(ConfigError, match="Did you mean 'ndcg@10'"):
        check_metrics(["ndgc@10"], 100)
    with pytest.raises(ConfigError, match="raise k"):
        check_metrics(["recall@1000"], 100)


# -- an independent implementation ------------------------------------------------------------
def _ranking(results):
    return [d for d, _ in sorted(results.items(), key=lambda x: (-x[1], x[0]))]


def reference(qrels, run, metric, k):
    out = {}
    for q, judged in qrels.items():
        rel = {d: g for d, g in judged.items() if g > 0}
        if not rel:
            continue
        top = _ranking(run.get(q, {}))[:k]
        if metric == "ndcg":
            gains = np.array([rel.get(d, 0) for d in top], dtype=float)
            ideal = np.array(sorted(rel.values(), reverse=True)[:k], dtype=float)
            dcg = float(np.sum(gains / np.log2(np.arange(2, len(gains) + 2)))) if len(gains) else 0.0
            out[q] = dcg / float(np.sum(ideal / np.log2(np.arange(2, len(ideal) + 2))))
        elif metric == "recall":
            out[q] = sum(d in rel for d in top) / len(rel)
        elif metric == "mrr":
            out[q] = next((1 / (i + 1) for i, d in enumerate(top) if d in rel), 0.0)
        elif metric == "map":
            hits, total = 0, 0.0
            for i, d in enumerate(top):
                if d in rel:
                    hits += 1
                    total += hits / (i + 1)
            out[q] = total / len(rel)
    return out


METRICS = ["ndcg@10", "ndcg@3", "recall@100", "recall@5", "mrr@10", "map@100"]


def _check_against_reference(qrels, run):
    s = evaluate_run(qrels, run, METRICS)
    for name in METRICS:
        metric, k = name.split("@")
        ref = reference(qrels, run, metric, int(k))
        assert set(ref) == set(s.per_query[name])
        for q, value in ref.items():
            assert s.per_query[name][q] == pytest.approx(value, abs=1e-9), (name, q)
        assert s.mean[name] == pytest.approx(float(np.mean(list(ref.values()))), abs=1e-9)


def test_equal_to_reference_on_random_graded_runs():
    rng = random.Random(7)
    docs = [f"doc{i}" for i in range(300)]
    qrels, run = {}, {}
    for q in range(200):
        judged = rng.sample(docs, rng.randint(1, 15))
        qrels[f"q{q}"] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        retrieved = rng.sample(docs, 100)
        # coarse scores so ties happen and the tie rule is exercised
        run[f"q{q}"] = {d: round(rng.random(), 2) for d in retrieved}
    _check_against_reference(qrels, run)


def _lexical_run(dataset, split, k=100):
    """A real ranking without a model: token-overlap scores, for checking metrics on real judgments."""
    doc_tokens = {d: set(doc.full_text.lower().split()) for d, doc in dataset.corpus.items()}
    run = {}
    for q in dataset.judged_queries(split):
        qt = set(dataset.queries[q].lower().split())
        scores = {d: len(qt & toks) / (1 + len(toks)) ** 0.5 for d, toks in doc_tokens.items()}
        run[q] = dict(sorted(scores.items(), key=lambda x: (-x[1], x[0]))[:k])
    return run


@pytest.mark.parametrize("name", ["cranfield", "cisi", "scifact"])
def test_equal_to_reference_on_real_judgments(name):
    from retrieval_ft.data import load_dataset

    dataset = load_dataset(shared_dataset(name))
    qrels = dataset.split("test")
    if name == "cranfield":  # graded judgments survive loading
        assert {g for docs in qrels.values() for g in docs.values()} == {1, 2, 3, 4}
    _check_against_reference(qrels, _lexical_run(dataset, "test"))
