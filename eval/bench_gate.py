"""Cold-start time of `retrieval-ft gate`: a fresh process with an empty numba cache, to a verdict on
two result files of a few thousand queries (goal < 5 s on a fresh CI runner).

    .venv/bin/python eval/bench_gate.py [--queries 3000] [--test student|fisher]

It also times the same command with a warm cache, measured in the same run for comparison.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_results(folder: Path, n: int) -> tuple[str, str]:
    from retrieval_ft.results import EvaluationResult

    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, n)
    cand = np.clip(base + rng.normal(0.01, 0.1, n), 0, 1)
    paths = []
    for name, values in (("baseline", base), ("candidate", cand)):
        per_query = {f"q{i}": float(v) for i, v in enumerate(values)}
        res = EvaluationResult(metrics={"ndcg@10": float(values.mean())}, per_query={"ndcg@10": per_query},
                               model={"name": name}, dataset={"fingerprint": "bench"},
                               queries={q: f"query text {q}" for q in per_query})
        paths.append(str(res.save(folder / f"{name}.json")))
    return paths[0], paths[1]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"gate failed to run:\n{proc.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--test", choices=["student", "fisher"], default="student")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    base, cand = write_results(tmp, args.queries)
    rules = tmp / "gate.yaml"
    rules.write_text("rules: {max_drop: 0.0}\n")
    cmd = [sys.executable, "-m", "retrieval_ft.cli", "gate", "--baseline", base, "--candidate", cand, "--rules", str(rules)]
    if args.test == "fisher":
        rules.write_text("test: fisher\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / "numba-cold"), "PYTHONPATH": str(ROOT)}
    cold = timed(cmd, env)
    warm = timed(cmd, env)
    print(f"gate on {args.queries} queries ({args.test} test, 10000 bootstrap resamples)")
    print(f"cold start (empty numba cache): {cold:5.2f} s   (goal < 5 s)")
    print(f"warm (cache filled):            {warm:5.2f} s")


if __name__ == "__main__":
    main()
