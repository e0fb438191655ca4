"""The two jobs that chain every stage: `run` (RunConfig) and `bench` (BenchConfig), and their YAML loaders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .base import _enum, from_dict, load_yaml
from .evaluation import EvalConfig
from .gate import GateConfig
from .training import Method, TrainConfig


@dataclass(frozen=True)
class GuardSet:
    """A dataset the tuned model must not get worse on (a general-domain set, say)."""

    name: str
    data: str
    split: str = "test"


GENERATED_DATA = ("demo", "demo-pages")  # datasets `run` generates instead of reading
GENERATED_MODELS = ("tiny-clip",)  # encoders `run` builds instead of loading


@dataclass(frozen=True)
class RunConfig:
    """`retrieval-ft run`: evaluate the base, tune, evaluate the tuned model, guard sets, gate, report.

    Generated stand-ins, written into OUT on first use: `data: demo` is the embedded product
    catalog (OUT/demo-data), `data: demo-pages` the generated document pages (OUT/demo-pages), and
    `model: tiny-clip` an untrained tiny CLIP text/image encoder (OUT/tiny-clip).
    """

    model: str
    data: str
    out: str = "runs/run"
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    guards: tuple[GuardSet, ...] = ()
    gate: GateConfig = field(default_factory=GateConfig)
    unknown_ids: str = "error"

    def __post_init__(self) -> None:
        if not self.model or not self.data:
            raise ConfigError("model and data are required.")
        names = [g.name for g in self.guards]
        if len(set(names)) != len(names):
            raise ConfigError(f"guard set names must be unique, got {names}.")
        if "main" in names:
            raise ConfigError("'main' is reserved for the main dataset; rename that guard set.")
        if self.unknown_ids not in ("error", "drop"):
            raise ConfigError(f"unknown_ids must be 'error' or 'drop', got {self.unknown_ids!r}.")


def load_run_config(path: str, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Read a run config YAML; relative paths (data, guards, out, a local model) are relative to it."""
    import os

    values = load_yaml(path)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    base = os.path.dirname(os.path.abspath(path))

    def rel(p: Any) -> Any:
        return p if not isinstance(p, str) or os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    if isinstance(values.get("data"), str) and values["data"] not in GENERATED_DATA:
        values["data"] = rel(values["data"])
    if isinstance(values.get("out"), str) and not (overrides or {}).get("out"):
        values["out"] = rel(values["out"])
    if isinstance(values.get("model"), str) and values["model"] not in GENERATED_MODELS and os.path.exists(rel(values["model"])):
        values["model"] = rel(values["model"])
    guards = values.get("guards") or []
    if not isinstance(guards, list):
        raise ConfigError(f"{path}: guards must be a list of {{name, data, split}} mappings.")
    values["guards"] = [from_dict(GuardSet, {**g, "data": rel(g.get("data"))} if isinstance(g, dict) else g,
                                  f"guards[{i}]") for i, g in enumerate(guards)]
    try:
        return from_dict(RunConfig, values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class BenchMethod:
    """One contender: a name for the tables, the tuning method and TrainConfig overrides."""

    name: str
    method: Method
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields

    def __post_init__(self) -> None:
        _enum(self, "method", Method)
        from_dict(TrainConfig, {**self.train, "method": self.method.value}, f"methods.{self.name}.train")

    def train_config(self, seed: int) -> TrainConfig:
        return from_dict(TrainConfig, {**self.train, "method": self.method.value, "seed": seed})


@dataclass(frozen=True)
class BenchConfig:
    """`retrieval-ft bench`: every method with several seeds against the base, with guard sets."""

    name: str
    model: str
    data: str
    methods: tuple[BenchMethod, ...]
    seeds: tuple[int, ...] = (42, 43, 44)
    # TrainConfig fields given to every method (a method's own `train` wins), e.g. the training
    # sequence length: cost settings that should be the same for every contender
    train: dict[str, Any] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)
    guards: tuple[GuardSet, ...] = ()
    out: str = "eval/results"
    work: str = "out/bench"  # tuned artifacts, one folder per method and seed

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("methods: name at least one method to benchmark.")
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names) or "base" in names:
            raise ConfigError(f"method names must be unique and not 'base', got {names}.")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed.")


def load_bench_config(path: str, overrides: dict[str, Any] | None = None) -> BenchConfig:
    """Read a benchmark config YAML; paths in it are relative to it. `overrides` (from the command
    line: data, name, seeds, out, work) replace its values; their paths are taken as given."""
    import os

    values = load_yaml(path)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "data" in overrides and "name" not in overrides:
        # another collection: its results get its own name instead of overwriting the config's
        overrides["name"] = os.path.basename(os.path.normpath(overrides["data"]))
    for key in ("data", "out", "work"):
        if isinstance(overrides.get(key), str) and not (key == "data" and overrides[key] in GENERATED_DATA):
            overrides[key] = os.path.abspath(overrides[key])
    base = os.path.dirname(os.path.abspath(path))

    def rel(p: Any) -> Any:
        return p if not isinstance(p, str) or os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    for key in ("data", "out", "work"):
        if isinstance(values.get(key), str) and not (key == "data" and values[key] in GENERATED_DATA):
            values[key] = rel(values[key])
    if isinstance(values.get("model"), str) and values["model"] not in GENERATED_MODELS and os.path.exists(rel(values["model"])):
        values["model"] = rel(values["model"])
    values["guards"] = [from_dict(GuardSet, {**g, "data": rel(g.get("data"))} if isinstance(g, dict) else g,
                                  f"guards[{i}]") for i, g in enumerate(values.get("guards") or [])]
    values.update(overrides)
    common = values.get("train") or {}
    if not isinstance(common, dict):
        raise ConfigError(f"{path}: train: expected a mapping of TrainConfig fields, got {type(common).__name__}.")
    from_dict(TrainConfig, common, "train")  # unknown or bad fields are named here
    methods = values.get("methods")
    if isinstance(methods, dict):  # {name: {method: lora, train: {...}}}
        values["methods"] = [
            from_dict(BenchMethod, {"name": n, **(m or {}), "train": {**common, **((m or {}).get("train") or {})}},
                      f"methods.{n}")
            for n, m in methods.items()]
    try:
        return from_dict(BenchConfig, values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
