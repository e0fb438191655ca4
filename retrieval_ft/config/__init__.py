"""Settings for each stage as frozen dataclasses, checked on construction; dicts/YAML map onto them.

`base` holds the mapping machinery, `evaluation` the encode/index/eval settings, `training` the
fine-tuning settings, `gate` the compare/gate rules, `jobs` the `run` and `bench` configs that
chain them, and `serve` the settings of `retrieval-ft serve`. Everything is re-exported here:
`from retrieval_ft.config import TrainConfig`. This package imports nothing heavy.
"""

from __future__ import annotations

from .base import did_you_mean, from_dict, load_yaml, to_dict
from .evaluation import (
    DEFAULT_METRICS,
    DEFAULT_PART_SIZE,
    METRIC_NAMES,
    EncodeConfig,
    EvalConfig,
    ImageCheck,
    IndexConfig,
    IndexKind,
    Precision,
    Similarity,
    check_metrics,
)
from .gate import CompareConfig, GateConfig, GateRules, StatTest, load_gate_config
from .jobs import (
    GENERATED_DATA,
    GENERATED_MODELS,
    BenchConfig,
    BenchMethod,
    RunConfig,
    load_bench_config,
    load_run_config,
)
from .serve import ServeConfig, load_serve_config
from .training import DEFAULT_LR, Batching, GuardSet, HardNegatives, LoraSettings, Loss, Method, TrainConfig

__all__ = [
    "DEFAULT_LR", "DEFAULT_METRICS", "DEFAULT_PART_SIZE", "GENERATED_DATA", "GENERATED_MODELS", "METRIC_NAMES",
    "Batching", "BenchConfig", "BenchMethod", "CompareConfig", "EncodeConfig", "EvalConfig", "GateConfig", "GateRules",
    "GuardSet", "HardNegatives", "ImageCheck", "IndexConfig", "IndexKind", "LoraSettings", "Loss", "Method",
    "Precision", "RunConfig", "ServeConfig", "Similarity", "StatTest", "TrainConfig",
    "check_metrics", "did_you_mean", "from_dict", "load_bench_config", "load_gate_config", "load_run_config",
    "load_serve_config", "load_yaml", "to_dict",
]
