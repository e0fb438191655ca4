"""One-seed sweeps of training settings, used to choose the methods' defaults.

Each variant is a set of TrainConfig fields; for each, fine-tune on the train split, then report
the best dev NDCG@10 (what a choice should rest on: the dev queries are held out of train) and
the test NDCG@10 (what the benchmark reports), training seconds (dev evaluations included) and
peak memory. One JSON line per variant is printed and appended to --out.

    .venv/bin/python eval/sweep.py '{"lora-5e-4": {"method": "lora", "lr": 5e-4, "max_seq_length": 128}}'
        [--data ../shared/data/scifact] [--model all-MiniLM-L6-v2] [--seed 42] [--out out/sweep.jsonl]

The base model's corpus embeddings come from the embedding cache when an earlier evaluation
stored them; every tuned model re-encodes the test corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", help='JSON: {"name": {TrainConfig fields}, ...}')
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", default=str(ROOT / "out" / "sweep"))
    parser.add_argument("--out", default=str(ROOT / "out" / "sweep.jsonl"))
    parser.add_argument("--guard", action="append", default=[], metavar="NAME=PATH",
                        help="also report NDCG@10 on this collection's test split, and its change from the base")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from retrieval_ft.config import EvalConfig, TrainConfig, from_dict
    from retrieval_ft.data import load_dataset
    from retrieval_ft.encode import Encoder
    from retrieval_ft.pipeline import evaluate_guards, tune_and_evaluate

    dataset = load_dataset(args.data)
    scored = EvalConfig(metrics=("ndcg@10",))
    guards = {g.split("=", 1)[0]: (load_dataset(g.split("=", 1)[1]), scored.split) for g in args.guard}
    base = Encoder(args.model) if guards else None
    base_guards = {n: r.metrics["ndcg@10"] for n, r in evaluate_guards(base, guards, scored, "base model").items()}
    for name, fields in json.loads(args.variants).items():
        folder = Path(args.work) / name
        shutil.rmtree(folder, ignore_errors=True)
        config = from_dict(TrainConfig, {"seed": args.seed, **fields})
        start = time.perf_counter()
        tuned = tune_and_evaluate(args.model, dataset, config, folder, scored, guards)
        trained, result = tuned.trained, tuned.result
        guard_delta = {n: round(r.metrics["ndcg@10"] - base_guards[n], 4) for n, r in tuned.guards.items()}
        line = {"name": name, **fields, "seed": args.seed, "dev": round(trained.best_dev_ndcg or 0.0, 4),
                "dev_history": [round(h["ndcg@10"], 4) for h in trained.history], "test": round(result.metrics["ndcg@10"], 4),
                "guard_delta": guard_delta,
                "train_seconds": round(trained.train_seconds), "dev_eval_seconds": trained.stamp.eval_seconds,
                "peak_memory_mb": round(trained.peak_memory_mb), "wall_seconds": round(time.perf_counter() - start)}
        if trained.stamp.guard is not None:  # guard-aware: the blend chosen, why, and the curve it was chosen on
            line["guard"] = trained.stamp.guard.to_dict()
        print(json.dumps(line), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
