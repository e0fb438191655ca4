"""The evaluation result record: what `evaluate` writes and later stages (compare, gate) read.

Plain data and JSON only; no torch, no models.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ._io import write_json_atomic
from .errors import DataError

SCHEMA_VERSION = 1
TOP_DOCS = 10  # hits kept per query in a result, for reports
VERSIONED = ("retrieval-ft", "torch", "sentence-transformers", "transformers", "peft", "faiss-cpu", "ranx",
             "datasets", "numpy")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class EvaluationResult:
    """Metrics of one encoder on one dataset split.

    `metrics`: name -> mean over judged queries; `per_query`: name -> {query id -> value};
    `model`: name, path, fingerprint and encoding settings; `dataset`: path, split, fingerprint and
    counts; `retrieval`: k and index; `timings`: seconds per stage; `cache`: corpus-embedding reuse;
    `top_docs`: the first hits of each query, best first (empty in files written before it existed).
    """

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    model: dict[str, Any]
    dataset: dict[str, Any]
    retrieval: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)  # judged query id -> text, for reports
    top_docs: dict[str, list[str]] = field(default_factory=dict)  # judged query id -> its first TOP_DOCS hits
    versions: dict[str, str] = field(default_factory=library_versions)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        write_json_atomic(path, self.to_dict())
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> EvaluationResult:
        missing = [k for k in ("metrics", "per_query", "model", "dataset") if k not in data]
        if missing:
            raise DataError(f"{source}: not a retrieval-ft result file (missing {', '.join(missing)}).")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> EvaluationResult:
        return cls.from_dict(_read_json_object(Path(path)), str(path))


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: result file not found.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a retrieval-ft result file (expected a JSON object).")
    return data


def load_result_file(path: str | Path, side: str) -> tuple[EvaluationResult, dict[str, EvaluationResult]]:
    """A result to compare, from an `evaluate` result file or a `run` report (its `base` or `tuned`
    part, `side`); also returns the report's guard results on that side ({} for result files)."""
    path = Path(path)
    data = _read_json_object(path)
    if "metrics" in data:
        return EvaluationResult.from_dict(data, str(path)), {}
    if side in data and isinstance(data[side], dict):
        guards = {}
        for name, parts in (data.get("guards") or {}).items():
            if isinstance(parts, dict) and isinstance(parts.get(side), dict):
                guards[name] = EvaluationResult.from_dict(parts[side], f"{path} (guards.{name}.{side})")
        return EvaluationResult.from_dict(data[side], f"{path} ({side})"), guards
    raise DataError(f"{path}: neither an evaluate result (no 'metrics') nor a run report (no '{side}').")
