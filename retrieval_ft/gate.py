"""The regression gate: rules over comparisons, for the main dataset and each guard set.

A verdict is a list of failed rules, each a sentence saying which set, which metric and why.
No torch, no models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .compare import Comparison, MetricComparison, compare
from .config import CompareConfig, GateConfig, GateRules
from .errors import ConfigError, DataError
from .results import EvaluationResult


@dataclass
class Verdict:
    passed: bool
    reasons: list[str]  # one sentence per failed rule
    comparisons: dict[str, Comparison] = field(default_factory=dict)  # "main" and guard names
    checked: list[str] = field(default_factory=list)  # one sentence per rule checked
    # one sentence per significant drop of a compared metric that no rule reads: it does not fail
    # the gate, but it should not pass unseen under "every rule held"
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "checked": self.checked, "warnings": self.warnings,
                "comparisons": {k: c.to_dict() for k, c in self.comparisons.items()}}


def apply_rules(name: str, comparison: Comparison, rules: GateRules) -> tuple[list[str], list[str]]:
    """(failures, checks) of `rules` on one comparison."""
    failures, checks = [], []
    where = "" if name == "main" else f"guard set {name!r}: "
    for metric in rules.metrics:  # compare() refused the results unless both have every one
        m = comparison.metrics[metric]
        drop = -m.delta
        stats = f"{m.baseline:.4f} -> {m.candidate:.4f} ({m.delta:+.4f}, p={m.p_value:.3g}, 95% CI [{m.ci_low:+.4f}, {m.ci_high:+.4f}])"
        if drop > rules.max_drop and (not rules.require_significance or m.significant(rules.alpha)):
            why = f"significant at alpha={rules.alpha}" if rules.require_significance else "no significance required"
            failures.append(f"{where}{metric} dropped {stats}; more than the allowed {rules.max_drop:g} and {why}.")
        elif rules.max_drop_any is not None and drop > rules.max_drop_any:
            failures.append(f"{where}{metric} dropped {stats}; more than {rules.max_drop_any:g}, which fails even "
                            "without significance.")
        checks.append(f"{where}{metric} {stats}{missing_note(m)}")
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


def unguarded_drops(name: str, comparison: Comparison, rules: GateRules) -> list[str]:
    """Warnings for the metrics of `comparison` that no rule in `rules` reads and that dropped
    significantly (at the rules' alpha): reported beside the verdict, never failing it."""
    where = "" if name == "main" else f"guard set {name!r}: "
    fix = "the gate's rules.metrics" if name == "main" else f"the gate's guards.{name}.metrics (or guard_rules.metrics)"
    warnings = []
    for metric, m in comparison.metrics.items():
        if metric in rules.metrics or m.delta >= 0 or not m.significant(rules.alpha):
            continue
        warnings.append(f"{where}{metric} dropped {m.baseline:.4f} -> {m.candidate:.4f} ({m.delta:+.4f}, "
                        f"p={m.p_value:.3g}), significant at alpha={rules.alpha}, and no gate rule reads it; "
                        f"add it to {fix} to gate it.")
    return warnings


def missing_note(m: MetricComparison) -> str:
    """The tail "; N baseline queries missing from the candidate" (and likewise for candidate queries)
    when the comparison left queries out (allow_missing), else ""."""
    parts = [f"{n} {what}" for n, what in ((m.missing_queries, "baseline queries missing from the candidate"),
                                           (m.extra_queries, "candidate queries missing from the baseline")) if n]
    return "".join(f"; {p}" for p in parts)


def gate(baseline: EvaluationResult, candidate: EvaluationResult, config: GateConfig | None = None,
         guards: dict[str, tuple[EvaluationResult, EvaluationResult]] | None = None, force: bool = False,
         also_compare: tuple[str, ...] = (), allow_missing: bool = False,
         unpaired: dict[str, str] | None = None) -> Verdict:
    """Compare and apply the rules to the main results and to each guard set's (baseline, candidate).

    `also_compare`: metrics compared for the report too (when both results have them), without rules;
    a significant drop of one of them is a warning of the verdict (`Verdict.warnings`), not a failure.
    `allow_missing`: compare over the queries both results scored (see `compare`).
    `unpaired`: guard sets only one side has (name -> that side, from `pair_guards`): not compared,
    and the verdict's checked lines say so.
    Rules for a guard set that is not among `guards` are an error: they would check nothing.
    """
    config = config or GateConfig()
    guards = guards or {}
    if "main" in guards:
        raise ConfigError("a guard set cannot be named 'main' (the name of the main dataset's comparison); rename it.")
    unknown = sorted(set(config.guards) - set(guards))
    if unknown:
        have = ", ".join(map(repr, guards)) or "none"
        raise ConfigError(f"gate rules name guard set(s) {', '.join(map(repr, unknown))}, which the results do not "
                          f"have (guard sets: {have}); fix the name under `guards:` or remove its rules.")
    reasons, checked, warnings, comparisons = [], [], [], {}
    for name, (base, cand) in {"main": (baseline, candidate), **guards}.items():
        rules = config.rules if name == "main" else config.for_guard(name)
        extra = tuple(m for m in also_compare if m in base.per_query and m in cand.per_query)
        cmp_config = CompareConfig(metrics=tuple(dict.fromkeys(rules.metrics + extra)), test=config.test,
                                   bootstrap=config.bootstrap, seed=config.seed)
        comparisons[name] = compare(base, cand, cmp_config, force=force, allow_missing=allow_missing)
        failures, checks = apply_rules(name, comparisons[name], rules)
        reasons += failures
        checked += checks
        warnings += unguarded_drops(name, comparisons[name], rules)
    checked += unpaired_lines({k: v for k, v in (unpaired or {}).items() if k not in guards})
    return Verdict(passed=not reasons, reasons=reasons, comparisons=comparisons, checked=checked, warnings=warnings)


def pair_guards(baseline: dict[str, EvaluationResult] | None, candidate: dict[str, EvaluationResult] | None
                ) -> tuple[dict[str, tuple[EvaluationResult, EvaluationResult]], dict[str, str]]:
    """Guard results of the two inputs, paired by name, and the guard sets left unpaired (name ->
    the side that has them). None: an `evaluate` result file, which has no guard sets.

    Between two run reports a guard set on one side only is an error: a candidate without a guard set
    would skip its rules. Against a result file, a report's guard sets cannot be compared: they are
    returned unpaired, for the verdict to say so (`gate(..., unpaired=...)`)."""
    if baseline is None or candidate is None:
        side, guards = ("candidate", candidate) if baseline is None else ("baseline", baseline)
        return {}, {name: side for name in sorted(guards or {})}
    lonely = sorted(set(baseline) ^ set(candidate))
    if lonely:
        raise DataError(f"guard set(s) {', '.join(map(repr, lonely))} are in only one of the two reports "
                        f"(baseline: {', '.join(sorted(baseline)) or 'none'}; candidate: "
                        f"{', '.join(sorted(candidate)) or 'none'}); gate reports of runs with the same guard sets.")
    return {name: (baseline[name], candidate[name]) for name in baseline}, {}


def unpaired_lines(unpaired: dict[str, str]) -> list[str]:
    """One "checked" sentence per side whose guard sets were not compared, naming them."""
    lines = []
    for side in ("baseline", "candidate"):
        names = [name for name, s in unpaired.items() if s == side]
        if names:
            other = "candidate" if side == "baseline" else "baseline"
            lines.append(f"guard set(s) {', '.join(map(repr, names))} not compared: only the {side} (a run report) "
                         f"has them, the {other} is a result file without guard sets; gate two run reports, or "
                         "give each guard set's files with --guard, to check them.")
    return lines
