"""The two jobs that chain every stage: `run` (RunConfig) and `bench` (BenchConfig), and their YAML loaders."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError
from .base import _enum, did_you_mean, documented, from_dict, load_yaml, option, resolver
from .evaluation import EvalConfig
from .gate import GateConfig
from .training import GuardSet, Method, TrainConfig

GENERATED_DATA = ("demo", "demo-pages")  # datasets `run` generates instead of reading
GENERATED_MODELS = ("tiny-clip",)  # encoders `run` builds instead of loading


@documented
@dataclass(frozen=True)
class RunConfig:
    """`retrieval-ft run`: evaluate the base, tune, evaluate the tuned model, guard sets, gate, report.

    Generated stand-ins, written into OUT on first use: `data: demo` is the embedded product
    catalog (OUT/demo-data), `data: demo-pages` the generated document pages (OUT/demo-pages), and
    `model: tiny-clip` an untrained tiny CLIP text/image encoder (OUT/tiny-clip).
    """

    model: str = option(help="base model folder, hub id, all-MiniLM-L6-v2 (bundled) or tiny-clip")
    data: str = option(help="dataset path (relative to the config file), demo or demo-pages")
    out: str = option("runs/run", "output folder: report.json/.md/.html, model/, index/")
    train: TrainConfig = option(default_factory=TrainConfig, help="fine-tuning settings")
    eval: EvalConfig = option(default_factory=EvalConfig, help="evaluation settings (base, tuned and guard sets)")
    guards: tuple[GuardSet, ...] = option((), "guard sets: [{name, data, split}]")
    gate: GateConfig = option(default_factory=GateConfig, help="gate rules")
    unknown_ids: str = option("error", "judgments naming unknown ids: error or drop")

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
        self._check_gated_metrics()

    def _check_gated_metrics(self) -> None:
        """Every guard set a gate rule names must be configured, and every metric a rule reads must be
        evaluated: found now, not after tuning."""
        unknown = sorted(set(self.gate.guards) - {g.name for g in self.guards})
        if unknown:
            known = ", ".join(g.name for g in self.guards) or "none"
            raise ConfigError(f"gate.guards.{unknown[0]}: no guard set is named {unknown[0]!r} (guard sets: {known})."
                              + did_you_mean(unknown[0], [g.name for g in self.guards]))
        rules = {"gate.rules": self.gate.rules}
        for guard in self.guards:
            where = f"gate.guards.{guard.name}" if guard.name in self.gate.guards else "gate.guard_rules"
            rules[where] = self.gate.for_guard(guard.name)
        for where, rule in rules.items():
            missing = [m for m in rule.metrics if m not in self.eval.metrics]
            if missing:
                raise ConfigError(f"{where}.metrics: {', '.join(missing)} not in eval.metrics "
                                  f"({', '.join(self.eval.metrics)}); add {'it' if len(missing) == 1 else 'them'} "
                                  f"to eval.metrics or gate on an evaluated metric.")

    @property
    def training(self) -> TrainConfig:
        """The training settings, watching the run's guard sets unless `train.guards` names its own
        (an empty list: none)."""
        return self.train if self.train.guards is not None else replace(self.train, guards=self.guards)

    @property
    def headline_metric(self) -> str:
        """The metric reports lead with: the gate's first (gate rules always name one)."""
        return self.gate.rules.metrics[0]


def _model_and_guards(values: dict[str, Any], path: str, rel: Callable[[Any], Any]) -> None:
    """In place: a model that is a local folder, and the guard sets' data, resolved against the
    config file (a hub id or a generated model stays as it is)."""
    import os

    model = values.get("model")
    if isinstance(model, str) and model not in GENERATED_MODELS and os.path.exists(rel(model)):
        values["model"] = rel(model)
    train = values.get("train")
    if isinstance(train, dict) and isinstance(train.get("guards"), list):
        values["train"] = {**train, "guards": [{**g, "data": rel(g.get("data"))} if isinstance(g, dict) else g
                                               for g in train["guards"]]}
    guards = values.get("guards") or []
    if not isinstance(guards, list):
        raise ConfigError(f"{path}: guards must be a list of {{name, data, split}} mappings.")
    values["guards"] = [from_dict(GuardSet, {**g, "data": rel(g.get("data"))} if isinstance(g, dict) else g,
                                  f"guards[{i}]") for i, g in enumerate(guards)]


def load_run_config(path: str, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Read a run config YAML; relative paths (data, guards, out, a local model) are relative to it."""

    values = load_yaml(path)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    rel = resolver(path)
    if isinstance(values.get("data"), str) and values["data"] not in GENERATED_DATA:
        values["data"] = rel(values["data"])
    if isinstance(values.get("out"), str) and not (overrides or {}).get("out"):
        values["out"] = rel(values["out"])
    _model_and_guards(values, path, rel)
    try:
        return from_dict(RunConfig, values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


@documented
@dataclass(frozen=True)
class BenchMethod:
    """One contender: a name for the tables, the tuning method and TrainConfig overrides."""

    name: str = option(help="the name tables use (not 'base')")
    method: Method = option(help="full, lora, hybrid, query-only or query-lora")
    train: dict[str, Any] = option(default_factory=dict, help="TrainConfig fields for this method")
    guarded: bool = option(False, "train with the bench's guard sets as train.guards (checkpoint selection and "
                                  "interpolation keep them within train.max_guard_drop; interpolate defaults to auto)")

    def __post_init__(self) -> None:
        _enum(self, "method", Method)
        if self.guarded and "guards" in self.train:
            raise ConfigError(f"methods.{self.name}: guarded trains with the bench's guard sets, and train.guards names "
                              "others; remove train.guards, or set guarded: false to watch those.")
        from_dict(TrainConfig, {**self.train, "method": self.method.value}, f"methods.{self.name}.train")

    def train_config(self, seed: int, guards: tuple[GuardSet, ...] = ()) -> TrainConfig:
        """This method's training settings for `seed`; a guarded method watches `guards` (the bench's)."""
        config = from_dict(TrainConfig, {**self.train, "method": self.method.value, "seed": seed})
        return replace(config, guards=tuple(guards)) if self.guarded else config


@documented
@dataclass(frozen=True)
class BenchConfig:
    """`retrieval-ft bench`: every method with several seeds against the base, with guard sets."""

    name: str = option(help="results name: OUT/NAME.json, .md and .svg")
    model: str = option(help="base model folder, hub id or all-MiniLM-L6-v2 (bundled)")
    data: str = option(help="dataset with train and test judgments, relative to the config file")
    methods: tuple[BenchMethod, ...] = option(help="{name: {method, train}} for each contender")
    seeds: tuple[int, ...] = option((42, 43, 44), "training seeds of every method")
    train: dict[str, Any] = option(default_factory=dict, help="TrainConfig fields given to every method (a method's "
                                   "own `train` wins): cost settings that should be the same for every contender")
    eval: EvalConfig = option(default_factory=EvalConfig, help="evaluation settings")
    guards: tuple[GuardSet, ...] = option((), "guard sets: [{name, data, split}]")
    out: str = option("eval/results", "results folder")
    work: str = option("out/bench", "tuned artifacts and finished (method, seed) records, one folder per pair")

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("methods: name at least one method to benchmark.")
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names) or "base" in names:
            raise ConfigError(f"method names must be unique and not 'base', got {names}.")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed.")
        guarded = [m.name for m in self.methods if m.guarded]
        if guarded and not self.guards:
            raise ConfigError(f"methods.{guarded[0]}: guarded needs the bench's guard sets; add guards: "
                              "[{name, data, split}] or set guarded: false.")


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
    rel = resolver(path)
    for key in ("data", "out", "work"):
        if isinstance(values.get(key), str) and not (key == "data" and values[key] in GENERATED_DATA):
            values[key] = rel(values[key])
    _model_and_guards(values, path, rel)
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
