"""Interpolation with the base in weight space: weights = base + alpha x (tuned - base), and the
search for the alpha with the best dev NDCG@10 whose guard sets all stay within the allowed drop
(WiSE-FT's blend, chosen against guard sets).

Only the weights training changes take part. A LoRA adapter's delta is B x A with B starting at
zero, so blending B alone scales the adapter by alpha (A is left as trained); a hybrid run's fully
trained modules and a full or query-only run's weights are blended with their starting values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._progress import progress
from .guards import guard_drops, within

logger = logging.getLogger(__name__)

# the adapter inputs: the LoRA delta is B x A, linear in B alone
_KEPT = ("lora_A", "lora_embedding_A")
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)  # the first pass of the auto search; then two points around the best
REFINE = 0.125


def _blended(name: str) -> bool:
    return not any(f".{k}." in f".{name}." for k in _KEPT)


class Blend:
    """The starting values of the weights a model trains, taken before training; `apply(alpha)`
    sets base + alpha x (tuned - base) once `capture` has taken the tuned values."""

    def __init__(self, model: Any) -> None:
        trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.trained = list(trained)
        self.base = {n: p.detach().clone() for n, p in trained.items() if _blended(n)}
        self.tuned: dict[str, Any] | None = None

    def _params(self, model: Any) -> dict[str, Any]:
        params = dict(model.named_parameters())
        missing = [n for n in self.base if n not in params]
        if missing:
            raise RuntimeError(f"interpolation: the trained model lacks {len(missing)} weights it started with "
                               f"(e.g. {missing[0]}); it cannot be blended with its start.")
        return params

    def capture(self, model: Any) -> None:
        """Take the tuned values (alpha 1): the kept checkpoint's, once training is done."""
        params = self._params(model)
        self.tuned = {n: params[n].detach().clone() for n in self.base}

    def snapshot(self, model: Any) -> dict[str, Any]:
        """Every weight training changes (an adapter's inputs too) as the model holds them now, for
        `restore`: another checkpoint to blend from."""
        params = self._params(model)
        return {n: params[n].detach().clone() for n in self.trained}

    def restore(self, model: Any, weights: dict[str, Any]) -> None:
        """Put a `snapshot` back into the model (`capture` then takes it as alpha 1)."""
        import torch

        params = self._params(model)
        with torch.no_grad():
            for name, value in weights.items():
                params[name].copy_(value)

    def apply(self, model: Any, alpha: float) -> None:
        import torch

        if self.tuned is None:
            raise RuntimeError("Blend.apply: capture the tuned weights first")
        params = self._params(model)
        with torch.no_grad():
            for name, start in self.base.items():
                params[name].copy_(torch.lerp(start, self.tuned[name], float(alpha)))


@dataclass(frozen=True)
class Point:
    """One alpha: dev NDCG@10 and each guard sample's."""

    alpha: float
    dev: float
    guards: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "dev": self.dev, "guards": dict(self.guards)}


@dataclass(frozen=True)
class Choice:
    alpha: float
    curve: list[Point]  # by alpha
    reason: str

    @property
    def chosen(self) -> Point:
        return next(p for p in self.curve if p.alpha == self.alpha)


def _best(points: Mapping[float, Point], base: Mapping[str, float], max_drop: float) -> Point:
    """The highest dev NDCG@10 among the points within the limit (the larger alpha on a tie);
    alpha 0 is the base and always within it."""
    ok = [p for p in points.values() if within(p.guards, base, max_drop)] or [points[0.0]]
    return max(ok, key=lambda p: (p.dev, p.alpha))


def _worst(point: Point, base: Mapping[str, float]) -> str:
    drops = guard_drops(point.guards, base)
    if not drops:
        return ""
    name = max(drops, key=lambda n: drops[n])
    return f"{name} {-drops[name]:+.4f}"


def search_alpha(evaluate: Callable[[float], Point], mode: str | float, base_point: Point, tuned_point: Point,
                 max_drop: float) -> Choice:
    """The blend to keep. `mode` auto: the grid GRID, then the two points REFINE either side of the
    best, keeping the best dev NDCG@10 with every guard within `max_drop` of `base_point`'s; a number:
    that alpha (evaluated for the record). `evaluate(alpha)` measures a blend; alpha 0 and 1 are
    `base_point` and `tuned_point`, measured already."""
    base = base_point.guards
    points = {0.0: Point(0.0, base_point.dev, dict(base)), 1.0: Point(1.0, tuned_point.dev, dict(tuned_point.guards))}

    def measure(alpha: float) -> None:
        if 0.0 <= alpha <= 1.0 and alpha not in points:
            points[alpha] = evaluate(alpha)
            progress.info("blend alpha %.3f: dev %.4f%s", alpha, points[alpha].dev,
                        f", worst guard {_worst(points[alpha], base)}" if base else "")

    if mode == "auto":
        for alpha in GRID:
            measure(alpha)
        best = _best(points, base, max_drop)
        for alpha in (best.alpha - REFINE, best.alpha + REFINE):
            measure(alpha)
        chosen = _best(points, base, max_drop)
        reason = _auto_reason(chosen, points[1.0], base, max_drop)
    else:
        alpha = float(mode)
        measure(alpha)
        chosen = points[alpha]
        reason = f"alpha {alpha:g} as configured (interpolate: {alpha:g})"
        if base and not within(chosen.guards, base, max_drop):
            logger.warning("interpolation: the configured alpha %g drops a guard set by more than %g (worst: %s).",
                           alpha, max_drop, _worst(chosen, base))
            reason += f"; it drops a guard set by more than {max_drop:g} (worst: {_worst(chosen, base)})"
    return Choice(chosen.alpha, [points[a] for a in sorted(points)], reason)


def _auto_reason(chosen: Point, tuned: Point, base: Mapping[str, float], max_drop: float) -> str:
    if not base:
        return f"alpha {chosen.alpha:g}: the highest dev NDCG@10 ({chosen.dev:.4f}) along the blend"
    limit = f"every guard within {max_drop:g} of the base (worst: {_worst(chosen, base)})"
    if chosen.alpha == 1.0:
        return f"alpha 1: the tuned model has the highest dev NDCG@10 ({chosen.dev:.4f}) with {limit}"
    text = f"alpha {chosen.alpha:g}: the highest dev NDCG@10 ({chosen.dev:.4f}) with {limit}"
    if not within(tuned.guards, base, max_drop):
        text += f"; the tuned model (alpha 1) drops {_worst(tuned, base)}"
    else:
        text += f"; the tuned model (alpha 1) scores {tuned.dev:.4f} on dev"
    return text
