"""The regression gate: rules over comparisons, for the main dataset and each guard set.

A verdict is a list of failed rules, each a sentence saying which set, which metric and why.
No torch, no models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .compare import Comparison, compare
from .config import CompareConfig, GateConfig, GateRules
from .results import EvaluationResult


@dataclass
class Verdict:
    passed: bool
    reasons: list[str]  # one sentence per failed rule
    comparisons: dict[str, Comparison] = field(default_factory=dict)  # "main" and guard names
    checked: list[str] = field(default_factory=list)  # one sentence per rule checked

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "checked": self.checked,
                "comparisons": {k: c.to_dict() for k, c in self.comparisons.items()}}


def apply_rules(name: str, comparison: Comparison, rules: GateRules) -> tuple[list[str], list[str]]:
    """(failures, checks) of `rules` on one comparison."""
    failures, checks = [], []
    where = "" if name == "main" else f"guard set {name!r}: "
    for metric in rules.metrics:
        if metric not in comparison.metrics:
            failures.append(f"{where}{metric} was not compared (evaluate with --metrics including it).")
            continue
        m = comparison.metrics[metric]
        drop = -m.delta
        stats = f"{m.baseline:.4f} -> {m.candidate:.4f} ({m.delta:+.4f}, p={m.p_value:.3g}, 95% CI [{m.ci_low:+.4f}, {m.ci_high:+.4f}])"
        if drop > rules.max_drop and (not rules.require_significance or m.significant(rules.alpha)):
            why = f"significant at alpha={rules.alpha}" if rules.require_significance else "no significance required"
            failures.append(f"{where}{metric} dropped {stats}; more than the allowed {rules.max_drop:g} and {why}.")
        elif rules.max_drop_any is not None and drop > rules.max_drop_any:
            failures.append(f"{where}{metric} dropped {stats}; more than {rules.max_drop_any:g}, which fails even "
                            "without significance.")
        checks.append(f"{where}{metric} {stats}")
        if rules.min_value is not None and m.candidate < rules.min_value:
            failures.append(f"{where}{metric} is {m.candidate:.4f}, below the required minimum {rules.min_value:g}.")
        if rules.min_gain is not None and m.delta < rules.min_gain:
            failures.append(f"{where}{metric} gained {m.delta:+.4f}, less than the required {rules.min_gain:+g}.")
        if rules.max_losing_share is not None:
            share = m.losing_share(rules.loss_threshold)
            if share > rules.max_losing_share:
                failures.append(
                    f"{where}{share:.1%} of queries lost more than {rules.loss_threshold:g} {metric} "
                    f"(allowed: {rules.max_losing_share:.1%})."
                )
    return failures, checks


def gate(baseline: EvaluationResult, candidate: EvaluationResult, config: GateConfig | None = None,
         guards: dict[str, tuple[EvaluationResult, EvaluationResult]] | None = None, force: bool = False,
         also_compare: tuple[str, ...] = ()) -> Verdict:
    """Compare and apply the rules to the main results and to each guard set's (baseline, candidate).

    `also_compare`: metrics compared for the report too (when both results have them), without rules.
    """
    config = config or GateConfig()
    pairs = {"main": (baseline, candidate), **(guards or {})}
    reasons, checked, comparisons = [], [], {}
    for name, (base, cand) in pairs.items():
        rules = config.rules if name == "main" else config.for_guard(name)
        extra = tuple(m for m in also_compare if m in base.per_query and m in cand.per_query)
        cmp_config = CompareConfig(metrics=tuple(dict.fromkeys(rules.metrics + extra)), test=config.test, alpha=rules.alpha,
                                   bootstrap=config.bootstrap, seed=config.seed)
        comparisons[name] = compare(base, cand, cmp_config, force=force)
        failures, checks = apply_rules(name, comparisons[name], rules)
        reasons += failures
        checked += checks
    return Verdict(passed=not reasons, reasons=reasons, comparisons=comparisons, checked=checked)
