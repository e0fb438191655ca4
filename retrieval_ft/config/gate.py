"""Settings for comparing two results and for the regression gate."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from ..errors import ConfigError
from .base import _enum, _positive, documented, from_dict, load_yaml, option
from .evaluation import check_metrics


class StatTest(str, enum.Enum):
    STUDENT = "student"  # paired Student's t-test (ranx)
    FISHER = "fisher"  # Fisher's randomization test (ranx)


@documented
@dataclass(frozen=True)
class CompareConfig:
    """How two results are compared. Whether a difference is significant enough to matter is the
    gate's decision (GateRules.alpha), not the comparison's."""

    metrics: tuple[str, ...] = option(("ndcg@10",), "metrics to compare, named as evaluate names them (the "
                                                    "--metric flag takes one; repeat it for more)")
    test: StatTest = option(StatTest.STUDENT, "paired significance test (ranx): student (paired t-test) or fisher "
                                              "(randomization test)")
    n_permutations: int = option(10000, "permutations of the fisher test")
    bootstrap: int = option(10000, "resamples for the 95 % confidence interval of the delta")
    seed: int = option(0, "seed of the permutations and the resamples")
    worst: int = option(10, "queries listed as the ones that lost most")

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


@documented
@dataclass(frozen=True)
class GateRules:
    """When a candidate fails against its baseline. By default: on a statistically significant drop
    of the metrics, or on a drop larger than max_drop_any whatever its significance."""

    metrics: tuple[str, ...] = option(("ndcg@10",), "metrics the rules check")
    max_drop: float = option(0.0, "a drop of the mean larger than this fails (only when significant at alpha, "
                                  "unless require_significance is false)")
    require_significance: bool = option(True, "fail a drop over max_drop only when it is significant at alpha")
    alpha: float = option(0.05, "significance level of the paired test")
    max_drop_any: float | None = option(0.02, "a drop larger than this fails even when not significant "
                                              "(null: no such limit)")
    min_value: float | None = option(None, "the candidate's mean must reach this")
    min_gain: float | None = option(None, "the candidate must beat the baseline by this much (tuning must help)")
    max_losing_share: float | None = option(None, "the largest share of queries that may lose more than "
                                                  "loss_threshold")
    loss_threshold: float = option(0.1, "a query loses when its value drops by more than this (max_losing_share)")

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


@documented
@dataclass(frozen=True)
class GateConfig:
    """Rules for the main dataset, and per guard set (a guard without its own rules uses `guard_rules`)."""

    rules: GateRules = option(help="rules for the main dataset", default_factory=GateRules)
    guard_rules: GateRules = option(help="rules for a guard set without its own", default_factory=GateRules)
    guards: dict[str, GateRules] = option(help="guard set name -> its own rules",
                                          default_factory=dict)
    test: StatTest = option(StatTest.STUDENT, "paired significance test: student or fisher")
    bootstrap: int = option(10000, "resamples for the 95 % confidence interval of each delta")
    seed: int = option(0, "seed of the resamples")

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
