"""Fine-tuning (full, LoRA, hybrid, query-only) with the sentence-transformers Trainer.

`tune.finetune` is the recipe; each step's material has its own module:
`rows` (training pairs, dev queries, the training set), `negatives` (hard-negative mining),
`dev_eval` (the dev evaluator for model selection), `methods` (query-only vs shared-tower set-up),
`losses` (one class per loss), `trainer` (the Trainer's schedule and arguments, training, keeping the
best checkpoint), `checkpoints` (resume), `distributed` (torchrun/accelerate processes), `measure`
(peak memory, sizes), `timing` (where the run's time goes), `progress` and `callbacks` (what
training shows while it runs).
Training sits after encode, index, search and metrics in the flow: it uses them to mine negatives
and score dev sets.
"""

from __future__ import annotations

from .checkpoints import CHECKPOINTS, RUN_SETTINGS
from .negatives import mine_hard_negatives
from .rows import DEV_METRIC, TrainingData, training_data, training_set
from .tune import TrainResult, finetune

__all__ = ["CHECKPOINTS", "DEV_METRIC", "RUN_SETTINGS", "TrainResult", "TrainingData", "finetune",
           "mine_hard_negatives", "training_data", "training_set"]
