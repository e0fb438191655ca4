"""Base vs full vs LoRA vs hybrid vs query-only tuning on a real collection, through the CLI.

For each method: `retrieval-ft train` (one process, so peak memory is its own), then
`retrieval-ft evaluate` of the artifact on the test split. Prints test NDCG@10 with the gain over
the base, training time, peak memory, trainable parameters, artifact size, and the wall time of
"tune + re-evaluate", whose ratio full / query-only shows what not re-encoding documents saves.

    .venv/bin/python eval/bench_methods.py [--data ../shared/data/scifact] [--methods query-only,full,lora,hybrid]
                                           [--epochs 1] [--out out/bench-methods]

The base model's corpus embeddings are cached first (the base evaluation), as `retrieval-ft run` does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "retrieval_ft.cli"]


def sh(args: list[str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(args) + "\n")
        fh.flush()
        subprocess.run(args, check=True, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--methods", default="query-only,full,lora,hybrid")
    parser.add_argument("--epochs", default="1")
    parser.add_argument("--extra", default="", help="extra flags for train, e.g. '--hard-negatives 1'")
    parser.add_argument("--out", default=str(ROOT / "out" / "bench-methods"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    rows = []
    base_json = out / "base.json"
    t_base = sh([*CLI, "evaluate", "--model", args.model, "--data", args.data, "--out", str(base_json), "--no-progress"], log)
    base = json.loads(base_json.read_text())
    rows.append({"method": "base", "ndcg@10": base["metrics"]["ndcg@10"], "eval_s": t_base})
    for method in args.methods.split(","):
        art = out / method
        t_train = sh([*CLI, "train", "--model", args.model, "--data", args.data, "--method", method, "--out", str(art),
                      "--epochs", args.epochs, "--no-progress", *args.extra.split()], log)
        res_json = out / f"{method}.json"
        t_eval = sh([*CLI, "evaluate", "--model", str(art), "--data", args.data, "--out", str(res_json), "--no-progress"], log)
        res = json.loads(res_json.read_text())
        stamp = json.loads((art / "retrieval_ft.json").read_text())
        rows.append({"method": method, "ndcg@10": res["metrics"]["ndcg@10"], "train_s": stamp["train_seconds"],
                     "tune_process_s": t_train, "eval_s": t_eval, "peak_mb": stamp["peak_memory_mb"],
                     "trainable": stamp["trainable_params"], "total": stamp["total_params"],
                     "artifact_mb": stamp["artifact_bytes"] / 2**20, "best_dev": stamp["best_dev_ndcg@10"],
                     "cache_hit": res["cache"]["hit"]})
        (out / "summary.json").write_text(json.dumps(rows, indent=2))

    b = rows[0]["ndcg@10"]
    print(f"data {args.data}; model {args.model}; epochs {args.epochs} {args.extra}")
    print(f"{'method':<11} {'test ndcg@10':>12} {'gain':>7} {'dev':>6} {'train s':>8} {'tune+eval s':>11} "
          f"{'peak MB':>8} {'trainable':>11} {'artifact MB':>11}")
    for r in rows:
        if r["method"] == "base":
            print(f"{'base':<11} {r['ndcg@10']:>12.4f}")
            continue
        print(f"{r['method']:<11} {r['ndcg@10']:>12.4f} {r['ndcg@10'] - b:>+7.4f} {r['best_dev'] or 0:>6.3f} "
              f"{r['train_s']:>8.0f} {r['tune_process_s'] + r['eval_s']:>11.0f} {r['peak_mb']:>8.0f} "
              f"{r['trainable']:>11,} {r['artifact_mb']:>11.1f}")
    by = {r["method"]: r for r in rows}
    if "full" in by and "query-only" in by:
        full_t = by["full"]["tune_process_s"] + by["full"]["eval_s"]
        qo_t = by["query-only"]["tune_process_s"] + by["query-only"]["eval_s"]
        print(f"tune + re-evaluate, full / query-only: {full_t:.0f} s / {qo_t:.0f} s = {full_t / qo_t:.1f}x (goal >= 5x)")


if __name__ == "__main__":
    main()
