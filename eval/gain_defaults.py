"""What the training defaults of the guard-aware release changed, on the generated product catalog:
per-query vs no-duplicates batching (LoRA), negative filling on vs off (query-only, three seeds) and
corpus negatives (query-only). 30 steps of 32 pairs each, min_grade 3; dev (best) and test NDCG@10.

    python eval/gain_defaults.py [OUT]        (default OUT: out/gain-defaults; figures in
                                               eval/results/gain-defaults.md)
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from retrieval_ft.config import EncodeConfig, EvalConfig, HardNegatives, TrainConfig
from retrieval_ft.data.demo import write_demo
from retrieval_ft.pipeline import evaluate
from retrieval_ft.train import finetune

COMMON = dict(max_steps=30, batch_size=32, min_grade=3, evals_per_epoch=1, dev_corpus_size=800)
RUNS = {
    "lora, per-query batching": dict(method="lora", batching="per-query", seed=42),
    "lora, no-duplicates batching": dict(method="lora", batching="no-duplicates", seed=42),
    **{f"query-only, fill {'on' if fill else 'off'}, seed {seed}":
       dict(method="query-only", hard_negatives=HardNegatives(fill=fill), seed=seed)
       for seed in (42, 1, 2) for fill in (True, False)},
    "query-only, corpus negatives, seed 42": dict(method="query-only", corpus_negatives=True, seed=42),
}


def main(out: Path) -> None:
    logging.basicConfig(level=logging.WARNING)
    data = out / "demo-data"
    if not (data / "dataset.yaml").is_file():
        write_demo(data)
    enc = EncodeConfig(batch_size=64, max_seq_length=64, progress=False)
    ev = EvalConfig(split="test", encode=enc)
    results = {"base": evaluate("all-MiniLM-L6-v2", data, ev).metrics["ndcg@10"]}
    print(f"base: test ndcg@10 {results['base']:.4f}", flush=True)
    for name, fields in RUNS.items():
        trained = finetune("all-MiniLM-L6-v2", data, TrainConfig(**COMMON, **fields), out / name.replace(" ", "_"),
                           encode=enc)
        test = evaluate(str(trained.artifact), data, ev).metrics["ndcg@10"]
        results[name] = {"pairs": trained.stamp.data.pairs, "steps": trained.stamp.steps,
                         "dev_best": trained.best_dev_ndcg, "test_ndcg@10": test}
        print(f"{name}: {results[name]}", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/gain-defaults"))
