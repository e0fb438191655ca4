"""Fine-tune with LoRA, evaluate base and tuned, and gate the comparison, with the public API.

    python examples/tune_and_compare.py [DATA] [MODEL]   (defaults: the demo catalog, all-MiniLM-L6-v2)
"""

from __future__ import annotations

import sys

from retrieval_ft import TrainConfig, evaluate, finetune, load_dataset
from retrieval_ft.data.demo import write_demo
from retrieval_ft.gate import gate

data = sys.argv[1] if len(sys.argv) > 1 else str(write_demo("out/examples/demo-data"))
model = sys.argv[2] if len(sys.argv) > 2 else "all-MiniLM-L6-v2"

dataset = load_dataset(data)
base = evaluate(model, dataset)
tuned_model = finetune(model, dataset, TrainConfig(method="lora", epochs=1, min_grade=3), out="out/examples/lora")
tuned = evaluate(str(tuned_model.artifact), dataset)
verdict = gate(base, tuned)
print(f"ndcg@10 {base.metrics['ndcg@10']:.4f} -> {tuned.metrics['ndcg@10']:.4f}; "
      f"trained {tuned_model.trainable_params:,} parameters in {tuned_model.train_seconds:.0f} s")
print("gate passed" if verdict.passed else "\n".join(verdict.reasons))
