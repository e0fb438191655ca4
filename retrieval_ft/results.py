"""The result records: what `evaluate` writes and later stages (compare, gate) read, and what
`run` reports (RunReport, with its TrainSummary).

Plain data and JSON only; no torch, no models. A file is checked when it is loaded, so a hand-edited
or foreign file is refused with one line naming the file and field, never scored.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import read_json_object, write_json_atomic
from ._records import Record
from .config import check_metrics
from .errors import ConfigError, DataError

if TYPE_CHECKING:
    from .gate import Verdict
    from .stamp import GuardRecord
    from .train import TrainResult

SCHEMA_VERSION = 1
TOP_DOCS = 10  # hits kept per query in a result, for reports
VERSIONED = ("retrieval-ft", "torch", "sentence-transformers", "transformers", "peft", "faiss-cpu", "ranx",
             "datasets", "numpy")
# Every metric of config.METRIC_NAMES is a share or a normalised gain, so each value lies in [0, 1];
# SCORE_SLACK absorbs float rounding (an NDCG of 1.0000000000000002).
SCORE_RANGE = (0.0, 1.0)
SCORE_SLACK = 1e-9
_FIX = "re-run evaluate to get a sound result file"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"{type(value).__name__} {value!r}")


@dataclass(frozen=True, kw_only=True)
class ModelInfo(Record, error=DataError, fix=_FIX):
    """The encoder a result was computed with (`Encoder.describe()`): name and weights' fingerprint, and
    the settings besides the weights that decide the vectors."""

    name: str | None = None
    path: str | None = None
    fingerprint: str | None = None
    document_fingerprint: str | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None
    similarity: str | None = None
    normalize: bool | None = None
    max_seq_length: int | None = None
    precision: str | None = None


@dataclass(frozen=True, kw_only=True)
class DatasetInfo(Record, error=DataError, fix=_FIX):
    """The data a result was computed on: where, which split, its fingerprint, and what was left out."""

    path: str | None = None
    split: str | None = None
    fingerprint: str | None = None
    n_docs: int | None = None
    n_queries_judged: int | None = None
    n_queries_skipped: int | None = None  # queries without a relevant judgment
    skipped_query_ids: list[str] | None = None
    dropped_judgments: int | None = None  # judgments naming unknown ids (--drop-unknown-judgments)
    skipped_pages: list[str] | None = None  # pages that failed to decode (--skip-bad-images)


@dataclass
class EvaluationResult:
    """Metrics of one encoder on one dataset split.

    `metrics`: name -> mean over judged queries; `per_query`: name -> {query id -> value};
    `model` and `dataset`: what produced it (a mapping given here is read into `ModelInfo` and
    `DatasetInfo`); `retrieval`: k and index; `timings`: seconds per stage; `cache`: corpus-embedding
    reuse; `top_docs`: the first hits of each query, best first (empty in files written before it
    existed). `versions`: the libraries that computed it; a new record takes today's, a loaded file
    keeps what it recorded (None when it recorded none: provenance is never filled in afterwards).
    """

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    model: ModelInfo
    dataset: DatasetInfo
    retrieval: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)  # judged query id -> text, for reports
    top_docs: dict[str, list[str]] = field(default_factory=dict)  # judged query id -> its first TOP_DOCS hits
    versions: dict[str, str] | None = field(default_factory=library_versions)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelInfo):
            self.model = ModelInfo.from_dict(self.model, prefix="model.")
        if not isinstance(self.dataset, DatasetInfo):
            self.dataset = DatasetInfo.from_dict(self.dataset, prefix="dataset.")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["model"], out["dataset"] = self.model.to_dict(), self.dataset.to_dict()
        if self.versions is None:
            del out["versions"]
        return out

    def save(self, path: str | Path) -> Path:
        write_json_atomic(path, self.to_dict())
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> EvaluationResult:
        """A result from its JSON object, checked: refuses (DataError naming `source` and the field)
        what could make a comparison wrong, such as a NaN, a string or an out-of-range score."""
        missing = [k for k in ("metrics", "per_query", "model", "dataset") if k not in data]
        if missing:
            raise DataError(f"{source}: not a retrieval-ft result file (missing {', '.join(missing)}).")
        check_schema_version(data.get("schema_version", SCHEMA_VERSION), source)
        for name in ("model", "dataset", "retrieval", "timings", "cache", "queries", "top_docs", "versions"):
            if name in data and not isinstance(data[name], Mapping):
                raise DataError(f"{source}: field {name!r} is {_kind(data[name])}, expected an object.")
        check_scores(data["metrics"], data["per_query"], source)
        check_hits(data.get("queries", {}), data.get("top_docs", {}), source)
        known = {f.name for f in dataclasses.fields(cls)} - {"model", "dataset", "versions"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   model=ModelInfo.from_dict(data["model"], source, "model."),
                   dataset=DatasetInfo.from_dict(data["dataset"], source, "dataset."),
                   versions=data.get("versions"))

    @classmethod
    def load(cls, path: str | Path) -> EvaluationResult:
        return cls.from_dict(_read_result_json(path), str(path))


def check_schema_version(found: Any, source: str) -> None:
    """A result file of another layout is refused: read as this one, its fields could mean something else."""
    if type(found) is not int or found != SCHEMA_VERSION:
        shown = found if type(found) is int else f"{_kind(found)} {found!r}"
        raise DataError(f"{source}: schema_version is {shown}; this version of retrieval-ft reads schema_version "
                        f"{SCHEMA_VERSION} only. Read it with the retrieval-ft that wrote it, or re-run evaluate.")


def check_hits(queries: Mapping[str, Any], top_docs: Mapping[str, Any], source: str) -> None:
    """`queries` maps query ids to their text, `top_docs` query ids to lists of document ids."""
    for query_id, text in queries.items():
        if not isinstance(text, str):
            raise DataError(f"{source}: queries[{query_id!r}] is {_kind(text)}, expected the query's text (a string).")
    for query_id, hits in top_docs.items():
        if not isinstance(hits, list):
            raise DataError(f"{source}: top_docs[{query_id!r}] is {_kind(hits)}, expected a list of document ids.")
        for i, doc_id in enumerate(hits):
            if not isinstance(doc_id, str):
                raise DataError(f"{source}: top_docs[{query_id!r}][{i}] is {_kind(doc_id)}, expected a document id "
                                "(a string).")


def check_scores(metrics: Any, per_query: Any, source: str) -> None:
    """Means and per-query values must be finite numbers in SCORE_RANGE, under known metric names."""
    for field_name, values in (("metrics", metrics), ("per_query", per_query)):
        if not isinstance(values, Mapping):
            raise DataError(f"{source}: field {field_name!r} is {_kind(values)}, expected an object of metric names.")
        for name in values:
            try:
                check_metrics([name], k=10**9)
            except ConfigError as exc:
                raise DataError(f"{source}: {field_name}: {exc}") from None
    for name, value in metrics.items():
        _check_score(value, f"metrics[{name!r}]", source)
    for name, scores in per_query.items():
        if not isinstance(scores, Mapping):
            raise DataError(f"{source}: per_query[{name!r}] is {_kind(scores)}, expected an object of query id -> value.")
        for query_id, value in scores.items():
            _check_score(value, f"per_query[{name!r}][{query_id!r}]", source)


def _check_score(value: Any, where: str, source: str) -> None:
    low, high = SCORE_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problem = _kind(value)
    elif not math.isfinite(value):
        problem = repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    elif not low - SCORE_SLACK <= value <= high + SCORE_SLACK:
        problem = f"{value!r}, outside [{low:g}, {high:g}]"
    else:
        return
    raise DataError(f"{source}: {where} is {problem}; every metric value is a number in [{low:g}, {high:g}]. "
                    "Re-run evaluate to get a sound result file.")


def _read_result_json(path: str | Path) -> dict[str, Any]:
    return read_json_object(path, "write it with `retrieval-ft evaluate --out` or `retrieval-ft run`",
                            what="retrieval-ft result file")


def load_result_file(path: str | Path, side: str) -> tuple[EvaluationResult, dict[str, EvaluationResult] | None]:
    """A result to compare, from an `evaluate` result file or a `run` report (its `base` or `tuned`
    part, `side`); also returns the report's guard results on that side (None for a result file,
    which has no guard sets to pair: {} means a run report without any)."""
    path = Path(path)
    data = _read_result_json(path)
    if "metrics" in data:
        return EvaluationResult.from_dict(data, str(path)), None
    if side in data and isinstance(data[side], dict):
        guards = {}
        parts_by_name = data.get("guards", {})
        if not isinstance(parts_by_name, Mapping):
            raise DataError(f"{path}: field 'guards' is {_kind(parts_by_name)}, expected an object of guard sets.")
        for name, parts in parts_by_name.items():  # a guard set skipped here would skip its rules
            if not isinstance(parts, Mapping) or not isinstance(parts.get(side), Mapping):
                raise DataError(f"{path}: guards.{name} has no '{side}' result object; a run report holds "
                                "both 'base' and 'tuned' for every guard set.")
            guards[name] = EvaluationResult.from_dict(parts[side], f"{path} (guards.{name}.{side})")
        return EvaluationResult.from_dict(data[side], f"{path} ({side})"), guards
    raise DataError(f"{path}: neither an evaluate result (no 'metrics') nor a run report (no '{side}').")


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
    guard: GuardRecord | None = None  # guard sets watched while training, and the blend with the base
    dev_history: list[dict[str, Any]] | None = None  # reported with the guard record

    @classmethod
    def from_trained(cls, trained: TrainResult) -> TrainSummary:
        stamp = trained.stamp
        return cls(method=trained.method, seconds=round(trained.train_seconds, 2),
                   peak_memory_mb=round(trained.peak_memory_mb, 1), trainable_params=trained.trainable_params,
                   total_params=trained.total_params, artifact_bytes=trained.artifact_bytes,
                   artifact=str(trained.artifact), best_dev_ndcg=trained.best_dev_ndcg,
                   dev=stamp.data.dev, pairs=stamp.data.pairs, steps=stamp.steps,
                   learning_rate=stamp.learning_rate, guard=stamp.guard,
                   dev_history=stamp.dev_history if stamp.guard is not None else None)

    def to_dict(self) -> dict[str, Any]:
        out = {"method": self.method, "seconds": self.seconds, "peak_memory_mb": self.peak_memory_mb,
               "trainable_params": self.trainable_params, "total_params": self.total_params,
               "artifact_bytes": self.artifact_bytes, "artifact": self.artifact,
               "best_dev_ndcg@10": self.best_dev_ndcg, "dev": self.dev, "pairs": self.pairs, "steps": self.steps,
               "learning_rate": self.learning_rate}
        if self.guard is not None:
            out.update(guard=self.guard.to_dict(), dev_history=self.dev_history)
        return out


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
    versions: dict[str, str] = field(default_factory=library_versions)  # of the libraries that made it

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.to_dict(),
            "tuned": self.tuned.to_dict(),
            "guards": {name: {side: r.to_dict() for side, r in parts.items()} for name, parts in self.guards.items()},
            "train": self.train.to_dict(),
            "gate": {"passed": self.verdict.passed, "reasons": self.verdict.reasons, "checked": self.verdict.checked,
                     "warnings": self.verdict.warnings},
            "comparisons": {k: c.to_dict() for k, c in self.verdict.comparisons.items()},
            "config": self.config,
            "worst_pages": self.gallery,
            "versions": self.versions,
        }
