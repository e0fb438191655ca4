"""Settings for comparing two results and for the regression gate."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from .base import _enum, _positive, from_dict, load_yaml
from .evaluation import check_metrics


class StatTest(str, enum.Enum):
    STUDENT = "student"  # paired Student's t-test (ranx)
    FISHER = "fisher"  # Fisher's randomization test (ranx)


@dataclass(frozen=True)
class CompareConfig:
    """How two results are compared. Whether a difference is significant enough to matter is the
    gate's decision (GateRules.alpha), not the comparison's."""

    metrics: tuple[str, ...] = ("ndcg@10",)
    test: StatTest = StatTest.STUDENT
    n_permutations: int = 10000  # fisher
    bootstrap: int = 10000  # resamples for the 95 % confidence interval of the delta
    seed: int = 0
    worst: int = 10  # queries listed as the ones that lost most

    def __post_init__(self) -> None:
        _enum(self, "test", StatTest)
        for name in ("n_permutations", "bootstrap", "worst"):
            _positive(self, name)
        object.__setattr__(self, "metrics", _metrics(self.metrics))


def _metrics(names: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(names, str) or not names:
        raise ConfigError(f"metrics: expected a non-empty list of metric names, got {names!r}; "
                          "an empty list would compare and check nothing.")
    return check_metrics(names, k=10**9)


def _finite(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}.")


@dataclass(frozen=True)
class GateRules:
    """When a candidate fails against its baseline. Defaults: fail on any statistically significant
    drop (alpha 0.05) of NDCG@10, or on a drop of more than 0.02 whatever its significance."""

    metrics: tuple[str, ...] = ("ndcg@10",)
    max_drop: float = 0.0  # a drop of the mean larger than this fails ...
    require_significance: bool = True  # ... only when significant at alpha
    alpha: float = 0.05
    max_drop_any: float | None = 0.02  # a drop larger than this fails even when not significant
    min_value: float | None = None  # the candidate's mean must reach this
    min_gain: float | None = None  # the candidate must beat the baseline by this much (tuning must help)
    max_losing_share: float | None = None  # share of queries that may lose more than loss_threshold
    loss_threshold: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", _metrics(self.metrics))
        for name in ("max_drop", "alpha", "max_drop_any", "min_value", "min_gain", "max_losing_share",
                     "loss_threshold"):
            _finite(self, name)  # a NaN compares false with everything, so it would switch its rule off
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha!r}.")
        for name in ("max_drop", "loss_threshold"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}.")
        if self.max_losing_share is not None and not 0 <= self.max_losing_share <= 1:
            raise ConfigError(f"max_losing_share must be in [0, 1], got {self.max_losing_share!r}.")


@dataclass(frozen=True)
class GateConfig:
    """Rules for the main dataset, and per guard set (a guard without its own rules uses `guard_rules`)."""

    rules: GateRules = field(default_factory=GateRules)
    guard_rules: GateRules = field(default_factory=GateRules)
    guards: dict[str, GateRules] = field(default_factory=dict)
    test: StatTest = StatTest.STUDENT
    bootstrap: int = 10000
    seed: int = 0

    def __post_init__(self) -> None:
        _enum(self, "test", StatTest)
        _positive(self, "bootstrap")
        guards = {}
        for name, rules in self.guards.items():
            guards[name] = rules if isinstance(rules, GateRules) else from_dict(GateRules, rules, f"guards.{name}")
        object.__setattr__(self, "guards", guards)

    def for_guard(self, name: str) -> GateRules:
        return self.guards.get(name, self.guard_rules)


def load_gate_config(path: str | None = None) -> GateConfig:
    """Gate settings from a YAML file (the defaults without one). A file whose top level holds rule
    keys (max_drop, metrics, ...), or no GateConfig key at all, is the main dataset's rules (so a
    misspelt rule is answered with the rule it resembles)."""
    values = load_yaml(path) if path else {}
    config_keys = set(GateConfig.__dataclass_fields__)
    rule_keys = set(GateRules.__dataclass_fields__) - config_keys
    if values and (set(values) & rule_keys or not set(values) & config_keys):
        values = {"rules": values}
    return from_dict(GateConfig, values, path or "")
