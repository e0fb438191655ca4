"""retrieval-ft: fine-tune embedding models for retrieval and measure whether tuning helped.

The public API is re-exported lazily: importing the package does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AdapterRetriever",
    "ConfigError",
    "DataError",
    "EncodeConfig",
    "Encoder",
    "EvalConfig",
    "EvaluationResult",
    "Hit",
    "IRDataset",
    "IndexConfig",
    "IndexMismatchError",
    "ModelError",
    "Retriever",
    "RetrievalFTError",
    "ShardInfo",
    "VectorIndex",
    "build_index",
    "build_index_from_shards",
    "encode_shard",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "evaluate_run",
    "finetune",
    "merge_adapter",
    "load_dataset",
    "load_model",
]

_LOCATIONS = {
    "ConfigError": "errors", "DataError": "errors", "IndexMismatchError": "errors", "ModelError": "errors",
    "RetrievalFTError": "errors",
    "EncodeConfig": "config", "EvalConfig": "config", "IndexConfig": "config", "TrainConfig": "config",
    "TrainResult": "train", "finetune": "train", "merge_adapter": "models",
    "IRDataset": "data", "load_dataset": "data",
    "load_model": "models",
    "Encoder": "encode",
    "VectorIndex": "index", "build_index": "index",
    "ShardInfo": "shards", "encode_shard": "shards", "build_index_from_shards": "shards",
    "Hit": "search", "Retriever": "search",
    "AdapterRetriever": "serve",
    "EvaluationResult": "results",
    "evaluate": "pipeline",
    "evaluate_run": "metrics",
}

if TYPE_CHECKING:
    from .config import EncodeConfig, EvalConfig, IndexConfig, TrainConfig
    from .data import IRDataset, load_dataset
    from .encode import Encoder
    from .errors import ConfigError, DataError, IndexMismatchError, ModelError, RetrievalFTError
    from .index import VectorIndex, build_index
    from .metrics import evaluate_run
    from .models import load_model, merge_adapter
    from .pipeline import evaluate
    from .results import EvaluationResult
    from .search import Hit, Retriever
    from .serve import AdapterRetriever
    from .shards import ShardInfo, build_index_from_shards, encode_shard
    from .train import TrainResult, finetune


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LOCATIONS:
        return getattr(importlib.import_module(f".{_LOCATIONS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
