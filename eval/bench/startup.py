"""Start-up time of the CLI: `retrieval-ft --help`, and `retrieval-ft gate` cold (fresh process,
empty numba cache) and warm, against the plain stack's import in the same run.

The plain-stack figure is `python -c "import sentence_transformers"`: what any command built on the
plain stack pays before it can print its help. Goals: `--help` < 0.5 s, gate cold < 5 s on a fresh
CI runner. Each command runs in its own process, median of --repeats.

    .venv/bin/python eval/bench/startup.py [--queries 3000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, save


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
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the figures here (default eval/results/perf/startup.json)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    base, cand = write_results(tmp, args.queries)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "retrieval_ft.cli"]
    commands = {"python (interpreter alone)": [sys.executable, "-c", "pass"],
                "import sentence_transformers (plain stack)": [sys.executable, "-c", "import sentence_transformers"],
                "retrieval-ft --help": [*cli, "--help"]}
    timing = {name: statistics.median(timed(cmd, env) for _ in range(args.repeats)) for name, cmd in commands.items()}
    gate = [*cli, "gate", "--baseline", base, "--candidate", cand]
    cold_env = {**env, "NUMBA_CACHE_DIR": str(tmp / "numba-cold")}
    timing["retrieval-ft gate, cold (empty numba cache)"] = timed(gate, cold_env)
    timing["retrieval-ft gate, warm"] = statistics.median(timed(gate, cold_env) for _ in range(args.repeats))
    plain = timing["import sentence_transformers (plain stack)"]
    for name, seconds in timing.items():
        print(f"{name:<46} {seconds:6.2f} s   ({plain / seconds:5.1f}x faster than the plain import)")
    print(f"gate: {args.queries} queries, student t-test; goals: --help < 0.5 s, gate cold < 5 s")
    save("startup", {"seconds": timing, "queries": args.queries, "repeats": args.repeats}, args.json)


if __name__ == "__main__":
    main()
