"""Scoring time of retrieval-ft's metrics (ranx behind pinned tie and no-result rules) against ranx
called directly on the same run, and that the scores agree.

A synthetic run of Q queries x 100 results with graded judgments; both sides compute ndcg@10,
recall@100, mrr@10 and map@100 per query, interleaved and repeated in one process after a warm-up
(so numba compilation is not timed). The ratio is ranx time / our time (goal >= 1.0 would mean no
overhead; ours also copies and re-ranks the run to pin tie order).

    .venv/bin/python eval/bench/metrics.py [--queries 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common
import numpy as np

METRICS = ["ndcg@10", "recall@100", "mrr@10", "map@100"]


def synthetic(n_queries: int, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        docs = rng.choice(100_000, 120, replace=False)
        qrels[f"q{q}"] = {f"d{d}": int(rng.integers(1, 3)) for d in docs[:5]}
        scores = rng.random(100)
        run[f"q{q}"] = {f"d{d}": float(s) for d, s in zip(docs[3:103], scores, strict=True)}
    return qrels, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the figures here (default eval/results/perf/metrics.json)")
    args = parser.parse_args()

    import ranx

    from retrieval_ft.metrics import evaluate_run

    qrels, run = synthetic(args.queries)

    def plain():
        return ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), METRICS, return_mean=False)

    def ours():
        return evaluate_run(qrels, run, METRICS)

    plain(), ours()  # numba compilation (cached per user) is not what is measured
    times: dict[str, list[float]] = {"ranx": [], "ours": []}
    for _ in range(args.repeats):
        for name, fn in (("ranx", plain), ("ours", ours)):
            start = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - start)
            if name == "ranx":
                plain_scores = out
            else:
                our_scores = out
    gap = max(abs(float(np.mean(plain_scores[m])) - our_scores.mean[m]) for m in METRICS)
    t_plain, t_ours = statistics.median(times["ranx"]), statistics.median(times["ours"])
    print(f"{args.queries:,} queries x 100 results, metrics {', '.join(METRICS)}")
    print(f"ranx.evaluate (plain): {t_plain:6.2f} s  ({args.queries / t_plain:8.0f} queries/s)")
    print(f"retrieval-ft evaluate: {t_ours:6.2f} s  ({args.queries / t_ours:8.0f} queries/s)")
    print(f"ratio (ranx time / our time): {t_plain / t_ours:.2f}x; largest difference of a mean: {gap:.1e}")
    _common.save("metrics", {"queries": args.queries, "metrics": METRICS, "ranx_seconds": t_plain,
                             "ours_seconds": t_ours, "ratio": t_plain / t_ours, "max_mean_difference": gap}, args.json)


if __name__ == "__main__":
    main()
