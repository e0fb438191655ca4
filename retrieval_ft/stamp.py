"""The artifact stamp (retrieval_ft.json): what made a tuned model, as a typed record.

Training writes it, model loading reads it. This module knows nothing of models, data or torch:
it only maps the stamp's JSON keys onto small records (`_records.Record`, which checks their types).
A key an older stamp did not record stays absent: it is neither filled in on load nor written back.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import read_json_object
from ._records import Record, recorded_as
from .errors import ModelError

STAMP = "retrieval_ft.json"  # what made a tuned artifact: method, base model, data, hyper-parameters


class ArtifactKind(str, enum.Enum):
    FULL = "full"  # a complete sentence-transformers model folder
    ADAPTER = "adapter"  # LoRA / hybrid: adapter weights; the base model is loaded from the stamp
    QUERY_ONLY = "query-only"  # the tuned query side; documents keep the base (loaded from the stamp)
    QUERY_ADAPTER = "query-adapter"  # query-lora: a LoRA adapter for queries; documents keep the base


_FIX = "re-run training or restore the file"


@dataclass(frozen=True, kw_only=True)
class BaseModelInfo(Record, error=ModelError, fix=_FIX):
    """The model a tuned artifact started from (an adapter is loaded onto it)."""

    name: str | None = None
    path: str | None = None  # where it was found when training: a local folder, or None for a hub id
    fingerprint: str | None = None


@dataclass(frozen=True, kw_only=True)
class TrainingDataInfo(Record, error=ModelError, fix=_FIX):
    """The data a model was tuned on."""

    path: str | None = None
    split: str | None = None
    fingerprint: str | None = None
    pairs: int | None = None
    hard_negatives: int | None = None  # per pair
    dev: str | None = None  # where the dev queries came from, in words
    dev_corpus_size: int | None = None


@dataclass(frozen=True, kw_only=True)
class GuardRecord(Record, error=ModelError, fix=_FIX):
    """How training kept the general domain: guard samples, checkpoint selection and the blend with
    the base (the stamp's `guard`). NDCG@10 values are on the guard samples and the dev set, not on
    the full collections; `drop` = base - value.

    `sets`: [{name, data, split, queries, documents}]; `base`/`selected`/`final`: {guard: NDCG@10} of
    the base, the kept checkpoint (alpha 1) and the artifact (after the blend); `dev`: {"base",
    "selected", "final"}; `checkpoint_step`: the step the final model blends; `curve`: [{alpha, dev,
    guards: {name: NDCG@10}}] by alpha, of that step; `reason`: why this alpha, in words."""

    sets: list[dict[str, Any]] | None = None
    max_drop: float | None = None
    base: dict[str, float] | None = None
    selected: dict[str, float] | None = None
    final: dict[str, float] | None = None
    dev: dict[str, float] | None = None
    checkpoint_step: int | None = None  # the kept checkpoint's step
    interpolate: str | None = None  # auto, off, or fixed
    alpha: float | None = None
    curve: list[dict[str, Any]] | None = None
    # the best blend of each checkpoint searched: [{step, alpha, dev, guards}] (the selected
    # checkpoint, and the last step where another was selected)
    candidates: list[dict[str, Any]] | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ArtifactStamp(Record, error=ModelError, fix=_FIX):
    """retrieval_ft.json. `best_dev_ndcg` is the JSON key `best_dev_ndcg@10`."""

    artifact: ArtifactKind
    method: str | None = None
    base: BaseModelInfo | None = None
    data: TrainingDataInfo | None = None
    config: dict[str, Any] | None = None  # the TrainConfig as a dict
    learning_rate: float | None = None
    encode: dict[str, Any] | None = None  # how to encode with this model (prompts, similarity, normalize)
    precision: str | None = None
    max_seq_length: int | None = None
    steps: int | None = None
    distributed: dict[str, Any] | None = None
    train_seconds: float | None = None  # in the Trainer's train() (steps, evaluations, checkpoint writes)
    eval_seconds: float | None = None  # in dev evaluations, included in train_seconds
    # the run's wall time by phase (load, data, mining, dev_set, steps, evaluations, checkpoints,
    # selection, save) and its total, in seconds
    timings: dict[str, float] | None = recorded_as(only_when_set=True)
    peak_memory_mb: float | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    preparation: dict[str, Any] | None = None
    best_dev_ndcg: float | None = recorded_as("best_dev_ndcg@10")
    dev_history: list[dict[str, Any]] | None = None  # per evaluation: step, epoch, ndcg@10 (and guards, selection)
    best_checkpoint: str | None = None
    versions: dict[str, str] | None = None
    created: str | None = None
    artifact_bytes: int | None = recorded_as(only_when_set=True)  # recorded once the artifact is complete
    merged_from: str | None = recorded_as(only_when_set=True)
    # the blend with the base, weights = base + alpha x (tuned - base): an adapter artifact holds
    # the tuned adapter and is scaled by alpha on load (and by merge); full and query-only
    # artifacts hold the blended weights
    alpha: float | None = recorded_as(only_when_set=True)
    guard: GuardRecord | None = recorded_as(only_when_set=True)  # an adapter merged into a full model: the adapter's folder

    @classmethod
    def from_dict(cls, raw: Any, source: str = "", prefix: str = "") -> ArtifactStamp:
        if not isinstance(raw, Mapping) or "artifact" not in raw:
            raise ModelError(f"{source}: not a retrieval-ft artifact stamp (no 'artifact' key).")
        return super().from_dict(raw, source, prefix)


def read_stamp(folder: str | os.PathLike[str]) -> ArtifactStamp | None:
    """The stamp of a tuned artifact, or None for a plain model folder; a corrupt or malformed
    stamp raises ModelError naming the file (and the field)."""
    path = Path(folder) / STAMP
    if not path.is_file():
        return None
    raw = read_json_object(path, "re-run training or restore the file", what="retrieval-ft artifact stamp",
                           error=ModelError)
    return ArtifactStamp.from_dict(raw, str(path))
