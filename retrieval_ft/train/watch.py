"""What a training run watches besides dev NDCG@10: its guard samples (measured for the base before
the first step and at every evaluation, deciding which checkpoint is kept) and the blend with the
base chosen after training. tune.py calls `watch` and `measure_base` before training, `blend`
after it, and puts `record` into the artifact stamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import TrainConfig
from ..stamp import GuardRecord
from . import progress
from .distributed import from_main
from .guards import GUARD_PREFIX, SELECTION, GuardedDevNDCG, GuardSample, fixed_guard_vectors, guard_samples
from .interpolate import Blend, Choice, Point, search_alpha
from .rows import DEV_METRIC
from .trainer import kept_step

if TYPE_CHECKING:
    from .methods import MethodSetup
    from .tune import TrainingJob



@dataclass
class Watch:
    """The guarded evaluator and the blend's starting weights (None: interpolation off)."""

    evaluator: GuardedDevNDCG
    samples: list[GuardSample]
    blend: Blend | None
    mode: str | float  # config.interpolation


def watch(job: TrainingJob, setup: MethodSetup) -> Watch | None:
    """Set up guard sets and interpolation (None where neither is asked): the guarded evaluator
    replaces the setup's; `measure_base` then measures the base before any step."""
    config = job.config
    if not config.guards and config.interpolation == "off":
        return None
    samples = guard_samples(config.guards or (), config)
    for s in samples:
        progress.stage("guard set %s: a sample of %d queries and %d documents (%s, split %s)", s.guard.name,
                       len(s.queries), len(s.doc_ids), s.guard.data, s.guard.split)
    # query-side methods' documents keep the base's vectors: encode each sample's documents once
    fixed = fixed_guard_vectors(job.base, samples) if config.method.query_side and samples else None
    evaluator = GuardedDevNDCG(setup.evaluator, samples, config.max_guard_drop, fixed, job.precision)
    setup.evaluator = evaluator
    blend = Blend(setup.train_model) if config.interpolation != "off" else None
    return Watch(evaluator, samples, blend, config.interpolation)


def measure_base(w: Watch, model: Any) -> None:
    """The base's dev and guard sample figures (`model` before any step), which guard drops and the
    blend are measured against."""
    progress.stage("measuring the base on the dev set%s", " and the guard samples" if w.samples else "")
    w.evaluator.measure_base(model)


def history_entry(log: dict[str, Any]) -> dict[str, Any] | None:
    """A dev history entry from one of the Trainer's log records (None: not an evaluation)."""
    key = f"eval_dev_{DEV_METRIC}"
    if key not in log:
        return None
    entry: dict[str, Any] = {"step": int(log["step"]), "epoch": float(log.get("epoch", 0.0)), DEV_METRIC: float(log[key])}
    prefix = "eval_dev_" + GUARD_PREFIX
    guards = {k.removeprefix(prefix): float(v) for k, v in log.items() if k.startswith(prefix)}
    if guards:
        entry["guards"] = guards
    if f"eval_dev_{SELECTION}" in log:
        entry[SELECTION] = float(log[f"eval_dev_{SELECTION}"])
    return entry


def blend(job: TrainingJob, w: Watch, trainer: Any, history: list[dict[str, Any]]) -> Choice:
    """Choose alpha (search or fixed, see interpolate.search_alpha) and leave the model as the
    artifact keeps it: blended for full and query-only, the tuned adapter for LoRA, hybrid and query-lora
    (their alpha is applied on load)."""
    model, ev = trainer.model, w.evaluator
    assert ev.base is not None and ev.base_dev is not None
    base_point = Point(0.0, ev.base_dev, dict(ev.base))
    step = kept_step(trainer)
    kept = next((h for h in history if h["step"] == step), None)
    if kept is not None:
        tuned_point = Point(1.0, kept[DEV_METRIC], dict(kept.get("guards", {})))
    else:
        tuned_point = Point(1.0, *ev.point(model))
    if w.blend is None:
        return Choice(1.0, [base_point, tuned_point], "interpolation off: the kept checkpoint as trained")
    w.blend.capture(model)
    progress.stage("choosing the blend with the base (%s)", "searching alpha" if w.mode == "auto" else f"alpha {w.mode}")

    def measure(alpha: float) -> Point:
        assert w.blend is not None
        w.blend.apply(model, alpha)
        return Point(alpha, *ev.point(model))

    choice = from_main(job.world, search_alpha(measure, w.mode, base_point, tuned_point, job.config.max_guard_drop))
    w.blend.apply(model, 1.0 if job.config.method.adapter else choice.alpha)
    progress.stage("blend with the base: %s", choice.reason)
    return choice


def record(w: Watch, config: TrainConfig, choice: Choice, kept_step: int | None) -> GuardRecord:
    """The stamp's `guard`: samples, the limit, base / kept / final figures, the curve and the reason."""
    points = {p.alpha: p for p in choice.curve}
    base, kept, final = points[0.0], points[1.0], points[choice.alpha]
    mode = w.mode if isinstance(w.mode, str) else "fixed"
    return GuardRecord(sets=[s.info() for s in w.samples], max_drop=config.max_guard_drop, base=dict(base.guards),
                       selected=dict(kept.guards), final=dict(final.guards),
                       dev={"base": base.dev, "selected": kept.dev, "final": final.dev}, checkpoint_step=kept_step,
                       interpolate=mode, alpha=choice.alpha, curve=[p.to_dict() for p in choice.curve],
                       reason=choice.reason)

