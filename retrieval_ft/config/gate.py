"""Settings for comparing two results and for the regression gate."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..errors import ConfigError
from .base import _enum, _positive, from_dict
from .evaluation import check_metrics


class StatTest(str, enum.Enum):
    STUDENT = "student"  # paired Student's t-test (ranx)
    FISHER = "fisher"  # Fisher's randomization test (ranx)


@dataclass(frozen=True)
class CompareConfig:
    metrics: tuple[str, ...] = ("ndcg@10",)
    test: StatTest = StatTest.STUDENT
    alpha: float = 0.05
    n_permutations: int = 10000  # fisher
    bootstrap: int = 10000  # resamples for the 95 % confidence interval of the delta
    seed: int = 0
    worst: int = 10  # queries listed as the ones that lost most

    def __post_init__(self) -> None:
        _enum(self, "test", StatTest)
        for name in ("n_permutations", "bootstrap", "worst"):
            _positive(self, name)
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha!r}.")
        object.__setattr__(self, "metrics", check_metrics(self.metrics, k=10**9))


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
        object.__setattr__(self, "metrics", check_metrics(self.metrics, k=10**9))
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
