"""Retrieval metrics through ranx, per query and averaged. No model, index or torch knowledge.

Definitions, pinned here:
- `ndcg@k` is Jarvelin & Kekalainen's NDCG with linear gain (grade / log2(rank + 1)), the variant
  trec_eval's `ndcg_cut` and BEIR report; `ndcg_burges@k` uses gain 2^grade - 1.
- A document is relevant for recall, MRR and MAP when its grade is >= 1; grade 0 is judged
  non-relevant.
- Ranking order is score descending, then document id ascending for equal scores: ranx receives
  rank-derived scores so its own sort cannot reorder ties.
- Only queries with at least one relevant judgment are scored ("judged"); the others are left out
  of every mean and counted by the caller. A judged query with no results scores 0.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from ._io import cache_dir
from .config import check_metrics
from .errors import DataError

Run = Mapping[str, Mapping[str, float]]  # query id -> doc id -> score
QrelsMap = Mapping[str, Mapping[str, int]]  # query id -> doc id -> grade

_NO_RESULT = "\x00retrieval-ft:no-result"  # placeholder for a judged query with an empty result list


@dataclass(frozen=True)
class MetricScores:
    mean: dict[str, float]  # metric -> mean over judged queries
    per_query: dict[str, dict[str, float]]  # metric -> query id -> value
    n_queries: int


def _ranx() -> object:
    # Compiled functions are cached per user, so only the first process pays for numba compilation.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir("numba")))
    import ranx

    return ranx


def ranked(results: Mapping[str, float]) -> list[tuple[str, float]]:
    """(doc id, score) best first; equal scores ordered by doc id."""
    return sorted(results.items(), key=lambda item: (-item[1], item[0]))


def evaluate_run(qrels: QrelsMap, run: Run, metrics: tuple[str, ...] | list[str] = ("ndcg@10",)) -> MetricScores:
    """Score `run` against `qrels` for each metric over the judged queries (see module docstring).

    Queries in the run without judgments are ignored. Without any judged query no metric is defined,
    so that is a DataError, not a NaN.
    """
    names = check_metrics(metrics, k=10**9)
    judged = sorted(q for q, docs in qrels.items() if any(g > 0 for g in docs.values()))
    if not judged:
        what = f"every judgment of the {len(qrels)} queries judged is grade 0 (not relevant)" if qrels else "there are no judgments"
        raise DataError(f"no judged query: {what}, so no metric is defined; evaluate on judgments with at least "
                        "one relevant (grade >= 1) document per query.")
    ranx_qrels = {q: {d: int(g) for d, g in qrels[q].items()} for q in judged}
    ranx_run = {}
    for q in judged:
        hits = ranked(run.get(q, {}))
        ranx_run[q] = {d: float(len(hits) - i) for i, (d, _) in enumerate(hits)} if hits else {_NO_RESULT: 0.0}
    ranx = _ranx()
    with warnings.catch_warnings():
        # ranx hashes doc ids to uint64 and sorts them as int64; harmless, and noisy.
        warnings.filterwarnings("ignore", message="unsafe cast", category=Warning)
        # ranx 0.3 mislooks-up the result of a lone metric with a cutoff, so always ask for two.
        asked = list(names) + (["precision@1" if names[0] != "precision@1" else "hit_rate@1"] if len(names) == 1 else [])
        scores = ranx.evaluate(ranx_qrels, ranx_run, asked, return_mean=False)  # type: ignore[attr-defined]
    per_query = {m: {q: float(v) for q, v in zip(judged, scores[m], strict=True)} for m in names}
    mean = {m: float(sum(vals.values()) / len(vals)) for m, vals in per_query.items()}
    return MetricScores(mean, per_query, len(judged))
