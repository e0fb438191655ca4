"""Base vs tuned: mean deltas, paired significance (ranx), bootstrap intervals, per-query wins and
losses. Works on result records only: no torch, no models, so a CI gate starts fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import CompareConfig, StatTest
from .errors import DataError
from .results import EvaluationResult

TIE = 1e-12  # per-query differences at most this large count as ties


@dataclass(frozen=True)
class QueryDelta:
    query_id: str
    baseline: float
    candidate: float
    delta: float
    text: str | None = None


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    baseline: float  # mean over the queries both results scored
    candidate: float
    delta: float  # candidate - baseline
    p_value: float
    test: str
    ci_low: float  # bootstrap 95 % interval of the delta
    ci_high: float
    wins: int
    ties: int
    losses: int
    n_queries: int
    deltas: dict[str, float] = field(repr=False)  # query id -> candidate - baseline
    worst: list[QueryDelta] = field(default_factory=list)

    def significant(self, alpha: float) -> bool:
        return bool(self.p_value <= alpha)

    def losing_share(self, threshold: float) -> float:
        """Share of queries whose value dropped by more than `threshold`."""
        return sum(d < -threshold for d in self.deltas.values()) / self.n_queries if self.n_queries else 0.0


@dataclass(frozen=True)
class Comparison:
    baseline: dict[str, Any]  # model name / fingerprint
    candidate: dict[str, Any]
    dataset: dict[str, Any]
    metrics: dict[str, MetricComparison]
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for m in out["metrics"].values():
            m.pop("deltas")
        return out


def paired_p_value(baseline: np.ndarray, candidate: np.ndarray, test: StatTest, n_permutations: int, seed: int) -> float:
    """Two-sided p-value of the paired difference, from ranx's statistical tests."""
    if len(baseline) < 2 or np.allclose(baseline, candidate, atol=TIE, rtol=0):
        return 1.0
    from .metrics import _ranx

    _ranx()  # sets numba's cache folder before ranx compiles anything
    from ranx.statistical_tests import fisher_randomization_test, paired_student_t_test

    if test is StatTest.FISHER:
        p, _ = fisher_randomization_test(baseline, candidate, n_permutations, 0.05, seed)
    else:
        p, _ = paired_student_t_test(baseline, candidate, 0.05)
    return float(p)


def bootstrap_interval(deltas: np.ndarray, n: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `deltas` (queries resampled with replacement)."""
    if len(deltas) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    chunk = max(1, 2_000_000 // len(deltas))
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        idx = rng.integers(0, len(deltas), size=(size, len(deltas)))
        means[start:start + size] = deltas[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def check_comparable(baseline: EvaluationResult, candidate: EvaluationResult, force: bool = False) -> None:
    a, b = baseline.dataset.get("fingerprint"), candidate.dataset.get("fingerprint")
    if a != b and not force:
        raise DataError(
            f"the results were computed on different data (baseline: {baseline.dataset.get('path')} split "
            f"{baseline.dataset.get('split')!r}, fingerprint {str(a)[:12]}; candidate: {candidate.dataset.get('path')} "
            f"split {candidate.dataset.get('split')!r}, fingerprint {str(b)[:12]}): corpus, queries or judgments "
            "differ, so their metrics are not comparable. Re-evaluate on the same data, or pass --force."
        )


def compare(baseline: EvaluationResult, candidate: EvaluationResult, config: CompareConfig | None = None,
            force: bool = False) -> Comparison:
    """Compare two results metric by metric over the queries both scored."""
    config = config or CompareConfig()
    check_comparable(baseline, candidate, force)
    out: dict[str, MetricComparison] = {}
    for metric in config.metrics:
        if metric not in baseline.per_query or metric not in candidate.per_query:
            have = sorted(set(baseline.per_query) & set(candidate.per_query))
            raise DataError(f"metric {metric!r} is not in both results (both have: {', '.join(have) or 'none'}); "
                            "evaluate with --metrics including it.")
        base_q, cand_q = baseline.per_query[metric], candidate.per_query[metric]
        qids = sorted(set(base_q) & set(cand_q))
        if not qids:
            raise DataError(f"the results share no query for {metric!r}; were they computed on the same split?")
        b = np.array([base_q[q] for q in qids], dtype=np.float64)
        c = np.array([cand_q[q] for q in qids], dtype=np.float64)
        d = c - b
        p = paired_p_value(b, c, config.test, config.n_permutations, config.seed)
        low, high = bootstrap_interval(d, config.bootstrap, config.seed)
        order = np.argsort(d, kind="stable")[: config.worst]
        texts = {**baseline.queries, **candidate.queries}
        worst = [QueryDelta(qids[i], float(b[i]), float(c[i]), float(d[i]), texts.get(qids[i]))
                 for i in order if d[i] < -TIE]
        out[metric] = MetricComparison(
            metric=metric, baseline=float(b.mean()), candidate=float(c.mean()), delta=float(d.mean()),
            p_value=p, test=config.test.value, ci_low=low, ci_high=high,
            wins=int((d > TIE).sum()), ties=int((np.abs(d) <= TIE).sum()), losses=int((d < -TIE).sum()),
            n_queries=len(qids), deltas=dict(zip(qids, d.tolist(), strict=True)), worst=worst,
        )
    return Comparison(
        baseline={k: baseline.model.get(k) for k in ("name", "fingerprint")},
        candidate={k: candidate.model.get(k) for k in ("name", "fingerprint")},
        dataset={k: candidate.dataset.get(k) for k in ("path", "split", "fingerprint")},
        metrics=out,
        forced=force and baseline.dataset.get("fingerprint") != candidate.dataset.get("fingerprint"),
    )
