"""The artifact stamp (retrieval_ft.json): what made a tuned model, as a typed record.

Training writes it, model loading reads it. This module knows nothing of models, data or torch:
it only maps the stamp's JSON keys onto small dataclasses and checks their types. A key an older
stamp did not record stays absent: it is neither filled in on load nor written back.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import ModelError

STAMP = "retrieval_ft.json"  # what made a tuned artifact: method, base model, data, hyper-parameters


class ArtifactKind(str, enum.Enum):
    FULL = "full"  # a complete sentence-transformers model folder
    ADAPTER = "adapter"  # LoRA / hybrid: adapter weights; the base model is loaded from the stamp
    QUERY_ONLY = "query-only"  # a query/document Router: tuned query side, base document side


_INT, _NUMBER, _TEXT, _MAPPING, _LIST = "an integer", "a number", "a string", "a mapping", "a list"
_CHECKS = {
    _INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
    _NUMBER: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    _TEXT: lambda v: isinstance(v, str),
    _MAPPING: lambda v: isinstance(v, Mapping),
    _LIST: lambda v: isinstance(v, list),
}


@dataclass(kw_only=True)
class _Record:
    """A JSON object with known keys. `recorded` holds the keys the file had (None: a new record,
    which records every key); `extra` keeps keys this version does not know, written back as read."""

    _KEYS: ClassVar[dict[str, tuple[str, Any]]]  # attribute -> (JSON key, expected: a kind or a _Record type)
    _ONLY_WHEN_SET: ClassVar[frozenset[str]] = frozenset()  # keys a new record writes only when not None

    recorded: frozenset[str] | None = field(default=None, compare=False, repr=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, raw: Any, source: str = "", prefix: str = "") -> Any:
        """The record of `raw`; a wrong type raises ModelError naming `source` and the field."""
        if not isinstance(raw, Mapping):
            _malformed(source, prefix.rstrip(".") or "(top level)", _MAPPING, raw)
        values: dict[str, Any] = {}
        for attr, (key, expected) in cls._KEYS.items():
            if key not in raw or raw[key] is None:
                continue
            value = raw[key]
            if isinstance(expected, type) and issubclass(expected, _Record):
                value = expected.from_dict(value, source, f"{prefix}{key}.")
            elif not _CHECKS[expected](value):
                _malformed(source, prefix + key, expected, value)
            values[attr] = value
        known = {key for key, _ in cls._KEYS.values()}
        return cls(**values, recorded=frozenset(raw), extra={k: v for k, v in raw.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the keys recorded (every key for a new record), then the unknown ones."""
        out: dict[str, Any] = {}
        for attr, (key, _) in self._KEYS.items():
            value = getattr(self, attr)
            written = key in self.recorded if self.recorded is not None else key not in self._ONLY_WHEN_SET
            if value is not None or written:
                out[key] = value.to_dict() if isinstance(value, _Record) else _plain(value)
        out.update(self.extra)
        return out


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _malformed(source: str, name: str, expected: str, value: Any) -> None:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise ModelError(f"{source}: field {name!r} should be {expected}, not {type(value).__name__} {shown}; "
                     "re-run training or restore the file.")


@dataclass(kw_only=True)
class BaseModelInfo(_Record):
    """The model a tuned artifact started from (an adapter is loaded onto it)."""

    _KEYS = {"name": ("name", _TEXT), "path": ("path", _TEXT), "fingerprint": ("fingerprint", _TEXT)}

    name: str | None = None
    path: str | None = None  # where it was found when training: a local folder, or None for a hub id
    fingerprint: str | None = None


@dataclass(kw_only=True)
class TrainingDataInfo(_Record):
    """The data a model was tuned on."""

    _KEYS = {"path": ("path", _TEXT), "split": ("split", _TEXT), "fingerprint": ("fingerprint", _TEXT),
             "pairs": ("pairs", _INT), "hard_negatives": ("hard_negatives", _INT), "dev": ("dev", _TEXT),
             "dev_corpus_size": ("dev_corpus_size", _INT)}

    path: str | None = None
    split: str | None = None
    fingerprint: str | None = None
    pairs: int | None = None
    hard_negatives: int | None = None  # per pair
    dev: str | None = None  # where the dev queries came from, in words
    dev_corpus_size: int | None = None


@dataclass(kw_only=True)
class ArtifactStamp(_Record):
    """retrieval_ft.json. `best_dev_ndcg` is the JSON key `best_dev_ndcg@10`."""

    _KEYS = {
        "artifact": ("artifact", _TEXT), "method": ("method", _TEXT), "base": ("base", BaseModelInfo),
        "data": ("data", TrainingDataInfo), "config": ("config", _MAPPING), "learning_rate": ("learning_rate", _NUMBER),
        "encode": ("encode", _MAPPING), "precision": ("precision", _TEXT), "max_seq_length": ("max_seq_length", _INT),
        "steps": ("steps", _INT), "distributed": ("distributed", _MAPPING), "train_seconds": ("train_seconds", _NUMBER),
        "eval_seconds": ("eval_seconds", _NUMBER), "peak_memory_mb": ("peak_memory_mb", _NUMBER),
        "trainable_params": ("trainable_params", _INT), "total_params": ("total_params", _INT),
        "preparation": ("preparation", _MAPPING), "best_dev_ndcg": ("best_dev_ndcg@10", _NUMBER),
        "dev_history": ("dev_history", _LIST), "best_checkpoint": ("best_checkpoint", _TEXT),
        "versions": ("versions", _MAPPING), "created": ("created", _TEXT),
        "artifact_bytes": ("artifact_bytes", _INT), "merged_from": ("merged_from", _TEXT),
    }
    _ONLY_WHEN_SET = frozenset({"artifact_bytes", "merged_from"})

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
    train_seconds: float | None = None
    eval_seconds: float | None = None  # in dev evaluations, included in train_seconds
    peak_memory_mb: float | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    preparation: dict[str, Any] | None = None
    best_dev_ndcg: float | None = None
    dev_history: list[dict[str, float]] | None = None
    best_checkpoint: str | None = None
    versions: dict[str, str] | None = None
    created: str | None = None
    artifact_bytes: int | None = None  # recorded once the artifact is complete
    merged_from: str | None = None  # an adapter merged into a full model: the adapter's folder

    @classmethod
    def from_dict(cls, raw: Any, source: str = "", prefix: str = "") -> ArtifactStamp:
        if not isinstance(raw, Mapping) or "artifact" not in raw:
            raise ModelError(f"{source}: not a retrieval-ft artifact stamp (no 'artifact' key).")
        kinds = [k.value for k in ArtifactKind]
        if raw["artifact"] not in kinds:
            _malformed(source, "artifact", "one of " + ", ".join(kinds), raw["artifact"])
        stamp = super().from_dict(raw, source, prefix)
        stamp.artifact = ArtifactKind(stamp.artifact)
        return stamp


def read_stamp(folder: str | os.PathLike[str]) -> ArtifactStamp | None:
    """The stamp of a tuned artifact, or None for a plain model folder; a corrupt or malformed
    stamp raises ModelError naming the file (and the field)."""
    path = Path(folder) / STAMP
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: corrupt artifact stamp ({exc}); re-run training or restore the file.") from None
    return ArtifactStamp.from_dict(raw, str(path))
