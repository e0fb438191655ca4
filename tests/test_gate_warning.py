"""Significant drops of compared metrics that no gate rule reads: warned beside the verdict, never failing it."""

from __future__ import annotations

import numpy as np

from retrieval_ft.cli.commands import _verdict_exit
from retrieval_ft.config import GateConfig, GateRules
from retrieval_ft.gate import gate
from retrieval_ft.results import EvaluationResult

RNG = np.random.default_rng(3)
N = 200
NDCG = RNG.uniform(0.2, 0.8, N)
RECALL = RNG.uniform(0.3, 0.9, N)


def moved(values: np.ndarray, delta: float, noise: float = 0.02, seed: int = 1) -> np.ndarray:
    return np.clip(values + delta + np.random.default_rng(seed).normal(0, noise, values.shape), 0, 1)


def result(ndcg: np.ndarray, recall: np.ndarray, fingerprint: str = "fp", name: str = "m") -> EvaluationResult:
    qids = [f"q{i:03d}" for i in range(len(ndcg))]
    per_query = {"ndcg@10": dict(zip(qids, map(float, ndcg), strict=True)),
                 "recall@100": dict(zip(qids, map(float, recall), strict=True))}
    return EvaluationResult(metrics={m: float(np.mean(list(v.values()))) for m, v in per_query.items()},
                            per_query=per_query, model={"name": name, "fingerprint": name + "-fp"},
                            dataset={"path": "data", "split": "test", "fingerprint": fingerprint})


def test_a_significant_drop_no_rule_reads_is_a_warning_not_a_failure(capsys):
    base = result(NDCG, RECALL)
    cand = result(moved(NDCG, 0.05, seed=1), moved(RECALL, -0.03, seed=2), name="tuned")
    verdict = gate(base, cand, also_compare=("recall@100",))
    assert verdict.passed and verdict.reasons == []
    assert len(verdict.warnings) == 1
    warning = verdict.warnings[0]
    m = verdict.comparisons["main"].metrics["recall@100"]
    assert warning.startswith("recall@100 dropped") and f"{m.delta:+.4f}" in warning and f"p={m.p_value:.3g}" in warning
    assert m.p_value < 0.05 and "no gate rule reads it" in warning
    assert verdict.to_dict()["warnings"] == verdict.warnings

    assert _verdict_exit(verdict) == 0  # the exit code follows the rules only
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "gate passed" and out[1] == f"WARNING: {warning}"


def test_covered_insignificant_or_rising_metrics_raise_no_warning():
    base = result(NDCG, RECALL)
    # recall@100 drops a little with much noise: not significant
    noisy = result(moved(NDCG, 0.05), moved(RECALL, -0.002, noise=0.2, seed=4), name="tuned")
    assert gate(base, noisy, also_compare=("recall@100",)).comparisons["main"].metrics["recall@100"].p_value > 0.05
    assert gate(base, noisy, also_compare=("recall@100",)).warnings == []
    # a gain, however significant
    assert gate(base, result(moved(NDCG, 0.05), moved(RECALL, 0.03)), also_compare=("recall@100",)).warnings == []
    # the same drop with a rule reading recall@100 is the rule's business: a failure, not a warning
    cand = result(moved(NDCG, 0.05, seed=1), moved(RECALL, -0.03, seed=2), name="tuned")
    ruled = gate(base, cand, GateConfig(rules=GateRules(metrics=("ndcg@10", "recall@100"))))
    assert not ruled.passed and ruled.warnings == []


def test_a_guard_set_is_covered_by_its_own_rules_and_the_warning_names_it():
    base, guard_base = result(NDCG, RECALL), result(NDCG, RECALL, fingerprint="g")
    cand = result(moved(NDCG, 0.05), moved(RECALL, 0.0, noise=0.001), name="tuned")
    guard_cand = result(moved(NDCG, -0.01, noise=0.005, seed=5), moved(RECALL, -0.03, seed=6), fingerprint="g",
                        name="tuned")
    # the guard's rules read recall@100 only; its ndcg@10 dropped significantly (within max_drop_any)
    config = GateConfig(guards={"cisi": GateRules(metrics=("recall@100",), max_drop=0.05, max_drop_any=None)})
    verdict = gate(base, cand, config, {"cisi": (guard_base, guard_cand)}, also_compare=("ndcg@10", "recall@100"))
    assert verdict.passed
    assert len(verdict.warnings) == 1 and verdict.warnings[0].startswith("guard set 'cisi': ndcg@10 dropped")
    assert "guards.cisi.metrics" in verdict.warnings[0]


def test_the_warning_uses_the_rules_alpha():
    base = result(NDCG, RECALL)
    cand = result(moved(NDCG, 0.05, seed=1), moved(RECALL, -0.004, noise=0.03, seed=7), name="tuned")
    p = gate(base, cand, also_compare=("recall@100",)).comparisons["main"].metrics["recall@100"].p_value
    assert 1e-6 < p < 0.5  # a drop whose significance depends on the level
    strict, lax = GateRules(alpha=p / 2), GateRules(alpha=min(0.99, p * 2))
    assert gate(base, cand, GateConfig(rules=strict), also_compare=("recall@100",)).warnings == []
    assert len(gate(base, cand, GateConfig(rules=lax), also_compare=("recall@100",)).warnings) == 1
