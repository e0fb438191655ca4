"""Base vs tuned: mean deltas, paired significance (ranx), bootstrap intervals, per-query wins and
losses. Works on result records only: no torch, no models, so a CI gate starts fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import CompareConfig, StatTest
from .errors import DataError
from .results import EvaluationResult, check_scores

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
    missing_queries: int = 0  # baseline queries the candidate lacks (compared without them: --allow-missing-queries)
    extra_queries: int = 0  # candidate queries the baseline lacks (likewise)

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
    elif np.ptp(candidate - baseline) <= TIE:
        return 0.0  # differences all equal (not all zero): the t statistic is infinite, scipy's p NaN or 0
    else:
        p, _ = paired_student_t_test(baseline, candidate, 0.05)
    if not math.isfinite(p):
        raise DataError(f"the {test.value} test returned p={p} for {len(baseline)} paired values.")
    return float(p)


def bootstrap_interval(deltas: np.ndarray, n: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `deltas` (queries resampled with replacement)."""
    if len(deltas) == 0:
        raise DataError("no per-query differences to resample: the results share no query.")
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
    """Both results must carry the same dataset fingerprint (unless `force`): a missing one is no
    match, since nothing then says the two were computed on the same data."""
    if force:
        return
    a, b = baseline.dataset, candidate.dataset
    lacking = [side for side, d in (("baseline", a), ("candidate", b)) if not d.fingerprint]
    if lacking:
        which = "neither result records" if len(lacking) == 2 else f"the {lacking[0]} result does not record"
        raise DataError(f"{which} the fingerprint of its data (dataset.fingerprint), so nothing shows that both "
                        "were computed on the same corpus, queries and judgments. Re-evaluate to record it, or "
                        "pass --force.")
    if a.fingerprint != b.fingerprint:
        raise DataError(
            f"the results were computed on different data (baseline: {a.path} split {a.split!r}, fingerprint "
            f"{str(a.fingerprint)[:12]}; candidate: {b.path} split {b.split!r}, fingerprint {str(b.fingerprint)[:12]}): "
            "corpus, queries or judgments differ, so their metrics are not comparable. Re-evaluate on the same data, "
            "or pass --force."
        )


def same_data(baseline: EvaluationResult, candidate: EvaluationResult) -> bool:
    """Whether both results record one dataset fingerprint (a missing one matches nothing)."""
    return bool(baseline.dataset.fingerprint) and baseline.dataset.fingerprint == candidate.dataset.fingerprint


def shared_queries(metric: str, baseline: Mapping[str, float], candidate: Mapping[str, float],
                   allow_missing: bool = False) -> tuple[list[str], int, int]:
    """(query ids both scored, sorted; baseline queries the candidate lacks; candidate queries the
    baseline lacks). Unless `allow_missing`, any query scored by one side only is an error: dropping
    it silently would let a candidate hide its worst queries, and would move either mean."""
    missing = sorted(set(baseline) - set(candidate))
    extra = sorted(set(candidate) - set(baseline))
    if (missing or extra) and not allow_missing:
        parts = [f"{len(ids)} {what} (e.g. {', '.join(ids[:3])})" for ids, what in (
            (missing, f"of the baseline's {len(baseline)} queries are missing from the candidate"),
            (extra, "candidate queries are not in the baseline")) if ids]
        raise DataError(f"{metric}: {'; '.join(parts)}. Both results must score the same queries; re-evaluate on "
                        "the same split, or pass --allow-missing-queries to compare over the queries both scored.")
    qids = sorted(set(baseline) & set(candidate))
    if not qids:
        raise DataError(f"the results share no query for {metric!r}; were they computed on the same split?")
    return qids, len(missing), len(extra)


def compare(baseline: EvaluationResult, candidate: EvaluationResult, config: CompareConfig | None = None,
            force: bool = False, allow_missing: bool = False) -> Comparison:
    """Compare two results metric by metric. Both must score the same queries; with `allow_missing`
    the comparison runs over the queries both scored and records how many each side lacked."""
    config = config or CompareConfig()
    check_comparable(baseline, candidate, force)
    texts = {**baseline.queries, **candidate.queries}
    out: dict[str, MetricComparison] = {}
    for metric in config.metrics:
        if metric not in baseline.per_query or metric not in candidate.per_query:
            have = sorted(set(baseline.per_query) & set(candidate.per_query))
            raise DataError(f"metric {metric!r} is not in both results (both have: {', '.join(have) or 'none'}); "
                            "evaluate with --metrics including it.")
        out[metric] = compare_metric(metric, baseline.per_query[metric], candidate.per_query[metric], config,
                                     texts, allow_missing)
    return Comparison(
        baseline={"name": baseline.model.name, "fingerprint": baseline.model.fingerprint},
        candidate={"name": candidate.model.name, "fingerprint": candidate.model.fingerprint},
        dataset={k: getattr(candidate.dataset, k) for k in ("path", "split", "fingerprint")},
        metrics=out,
        forced=force and not same_data(baseline, candidate),
    )


def compare_metric(metric: str, baseline: Mapping[str, float], candidate: Mapping[str, float], config: CompareConfig,
                   texts: Mapping[str, str] | None = None, allow_missing: bool = False) -> MetricComparison:
    """One metric's comparison from the per-query values of each side (query id -> value)."""
    check_scores({}, {metric: baseline}, "baseline")
    check_scores({}, {metric: candidate}, "candidate")
    qids, n_missing, n_extra = shared_queries(metric, baseline, candidate, allow_missing)
    b = np.array([baseline[q] for q in qids], dtype=np.float64)
    c = np.array([candidate[q] for q in qids], dtype=np.float64)
    d = c - b
    low, high = bootstrap_interval(d, config.bootstrap, config.seed)
    order = np.argsort(d, kind="stable")[: config.worst]
    texts = texts or {}
    worst = [QueryDelta(qids[i], float(b[i]), float(c[i]), float(d[i]), texts.get(qids[i]))
             for i in order if d[i] < -TIE]
    return MetricComparison(
        metric=metric, baseline=float(b.mean()), candidate=float(c.mean()), delta=float(d.mean()),
        p_value=paired_p_value(b, c, config.test, config.n_permutations, config.seed), test=config.test.value,
        ci_low=low, ci_high=high,
        wins=int((d > TIE).sum()), ties=int((np.abs(d) <= TIE).sum()), losses=int((d < -TIE).sum()),
        n_queries=len(qids), deltas=dict(zip(qids, d.tolist(), strict=True)), worst=worst,
        missing_queries=n_missing, extra_queries=n_extra,
    )
