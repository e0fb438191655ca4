"""Run by tests/test_distributed.py under torchrun (2 CPU processes, gloo); not a test module.

Usage: distributed_worker.py MODEL DATA OUT. Each process checks what needs the process group from
the inside and writes what it saw to OUT/rank<R>.json: the gathered query-only loss against the
same loss over the whole global batch in one process, and a query-only training run whole, cut by
an interruption and resumed, with every artifact write the process made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from retrieval_ft.config import EncodeConfig, TrainConfig
from retrieval_ft.train import finetune
from retrieval_ft.train import trainer as trainer_module
from retrieval_ft.train import tune as train_module
from retrieval_ft.train.distributed import World, join_world
from retrieval_ft.train.losses import FixedDocumentsMNRL

ENC = EncodeConfig(progress=False, device="cpu")
CONFIG = TrainConfig(method="query-only", lr=5e-3, max_steps=6, batch_size=4, evals_per_epoch=2, warmup_ratio=0.0)


class Identity(torch.nn.Module):
    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"sentence_embedding": features["x"]}


def gathered_loss(world: World) -> dict[str, float]:
    """Each process scores its 3 queries against the candidates of all 6 (DDP then averages the
    processes' losses and gradients); one process scoring all 6 queries must agree exactly. Rank 1's
    first positive is rank 0's first positive too, so masking across processes is exercised."""
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(10, 8)).astype(np.float32)
    queries = torch.from_numpy(rng.normal(size=(6, 8)).astype(np.float32))
    labels = torch.tensor([[0, 5], [1, 6], [2, 7], [0, 8], [3, 9], [4, 5]])  # positive, hard negative
    mine = slice(3 * world.rank, 3 * world.rank + 3)

    local_q = queries[mine].clone().requires_grad_(True)
    gathered = FixedDocumentsMNRL(Identity(), docs, normalize=True, gather_across_devices=True)
    local = gathered([{"x": local_q}], labels[mine])
    local.backward()
    mean = local.detach().clone()
    dist.all_reduce(mean)
    mean /= world.size

    all_q = queries.clone().requires_grad_(True)
    whole = FixedDocumentsMNRL(Identity(), docs, normalize=True)([{"x": all_q}], labels)
    whole.backward()
    assert all_q.grad is not None and local_q.grad is not None
    return {"gathered_mean": float(mean), "one_process": float(whole),
            "grad_max_diff": float((local_q.grad / world.size - all_q.grad[mine]).abs().max())}


class StopAt:
    """Interrupts training, as a kill would, after a given step (on every process alike)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise KeyboardInterrupt


def main(model: str, data: str, out: Path) -> None:
    world = join_world("cpu")
    report: dict[str, Any] = {"rank": world.rank, "world_size": world.size, "backend": world.backend}
    report["loss"] = gathered_loss(world)

    writes: list[str] = []
    atomic_dir, write_json_atomic = train_module.atomic_dir, train_module.write_json_atomic

    def spy_dir(target: Any) -> Any:
        writes.append(str(target))
        return atomic_dir(target)

    def spy_json(target: Any, obj: Any) -> None:
        writes.append(str(target))
        write_json_atomic(target, obj)

    train_module.atomic_dir, train_module.write_json_atomic = spy_dir, spy_json  # type: ignore[assignment]
    trainer_module.write_json_atomic = spy_json  # type: ignore[assignment]  # the run settings beside checkpoints

    whole = finetune(model, data, CONFIG, out / "whole", encode=ENC)
    try:
        finetune(model, data, CONFIG, out / "cut", encode=ENC, callbacks=[StopAt(5)])
        report["interrupted"] = False
    except KeyboardInterrupt:
        report["interrupted"] = True
    report["stamp_after_cut"] = (out / "cut" / "retrieval_ft.json").exists()
    resumed = finetune(model, data, CONFIG, out / "cut", encode=ENC, resume=True)
    for name, result in (("whole", whole), ("resumed", resumed)):
        report[name] = {"artifact": str(result.artifact), "steps": result.stamp.steps,
                        "history": [h["step"] for h in result.history], "best": result.best_dev_ndcg,
                        "distributed": result.stamp.distributed}
    report["writes"] = writes
    (out / f"rank{world.rank}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
