"""What `retrieval-ft run` produced (RunReport) and its training summary: records, torch-free.

(To join the other result records in results.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .results import EvaluationResult, library_versions

if TYPE_CHECKING:
    from .gate import Verdict
    from .train import TrainResult


@dataclass(frozen=True)
class TrainSummary:
    """The `train` part of report.json: what tuning cost and what it chose."""

    method: str
    seconds: float
    peak_memory_mb: float
    trainable_params: int
    total_params: int
    artifact_bytes: int
    artifact: str
    best_dev_ndcg: float | None  # JSON key best_dev_ndcg@10
    dev: str  # where the dev queries for model selection came from
    pairs: int
    steps: int
    learning_rate: float

    @classmethod
    def from_trained(cls, trained: TrainResult) -> TrainSummary:
        stamp = trained.stamp
        return cls(method=trained.method, seconds=round(trained.train_seconds, 2),
                   peak_memory_mb=round(trained.peak_memory_mb, 1), trainable_params=trained.trainable_params,
                   total_params=trained.total_params, artifact_bytes=trained.artifact_bytes,
                   artifact=str(trained.artifact), best_dev_ndcg=trained.best_dev_ndcg,
                   dev=stamp["data"]["dev"], pairs=stamp["data"]["pairs"], steps=stamp["steps"],
                   learning_rate=stamp["learning_rate"])

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "seconds": self.seconds, "peak_memory_mb": self.peak_memory_mb,
                "trainable_params": self.trainable_params, "total_params": self.total_params,
                "artifact_bytes": self.artifact_bytes, "artifact": self.artifact,
                "best_dev_ndcg@10": self.best_dev_ndcg, "dev": self.dev, "pairs": self.pairs, "steps": self.steps,
                "learning_rate": self.learning_rate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSummary:
        values = {k: v for k, v in data.items() if k != "best_dev_ndcg@10"}
        return cls(**values, best_dev_ndcg=data.get("best_dev_ndcg@10"))


@dataclass
class RunReport:
    """What `run` produced: the parts of report.json, and where the files are."""

    base: EvaluationResult
    tuned: EvaluationResult
    guards: dict[str, dict[str, EvaluationResult]]  # name -> {"base": ..., "tuned": ...}
    train: TrainSummary
    verdict: Verdict
    out: Path
    config: dict[str, Any] = field(default_factory=dict)
    gallery: list[dict[str, Any]] = field(default_factory=list)  # page corpora: pages retrieved for the worst queries

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.to_dict(),
            "tuned": self.tuned.to_dict(),
            "guards": {name: {side: r.to_dict() for side, r in parts.items()} for name, parts in self.guards.items()},
            "train": self.train.to_dict(),
            "gate": {"passed": self.verdict.passed, "reasons": self.verdict.reasons, "checked": self.verdict.checked},
            "comparisons": {k: c.to_dict() for k, c in self.verdict.comparisons.items()},
            "config": self.config,
            "worst_pages": self.gallery,
            "versions": library_versions(),
        }
