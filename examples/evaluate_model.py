"""Evaluate an encoder on a dataset with the public API, then look at the weakest queries.

    python examples/evaluate_model.py [DATA] [MODEL]     (defaults: the demo catalog, all-MiniLM-L6-v2)
"""

from __future__ import annotations

import sys

from retrieval_ft import EvalConfig, evaluate, load_dataset
from retrieval_ft.data.demo import write_demo

data = sys.argv[1] if len(sys.argv) > 1 else str(write_demo("out/examples/demo-data"))
model = sys.argv[2] if len(sys.argv) > 2 else "all-MiniLM-L6-v2"

dataset = load_dataset(data)
result = evaluate(model, dataset, EvalConfig(split="test", metrics=("ndcg@10", "recall@100")))
print({name: round(value, 4) for name, value in result.metrics.items()})
print(f"judged queries {result.dataset.n_queries_judged}, skipped {result.dataset.n_queries_skipped}, "
      f"corpus cache hit: {result.cache['hit']}")
worst = sorted(result.per_query["ndcg@10"].items(), key=lambda item: item[1])[:5]
for qid, value in worst:
    print(f"{value:.3f}  {dataset.queries[qid]}")
result.save("out/examples/result.json")
