"""What a training run watches besides dev NDCG@10: its guard samples (measured for the base before
the first step and at every evaluation, deciding which checkpoint is kept) and the blend with the
base chosen after training. tune.py calls `watch` and `measure_base` before training, `hold_last`
as it ends, `blend` after it, and puts `record` into the artifact stamp.

Two checkpoints are blended where they differ: the one guard-aware selection kept (the best dev
NDCG@10 within the guards, often an early one) and the last step (trained longest, pulled back
toward the base by the blend, as WiSE-FT does); the final model is the blend with the highest dev
NDCG@10 with every guard within the limit, from either.
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
    last: tuple[int, dict[str, Any]] | None = None  # (step, weights) of the last step, where it is not kept


@dataclass(frozen=True)
class Kept:
    """The blend the artifact keeps, the checkpoint it blends, and the best blend of each checkpoint
    that was searched ({step, alpha, dev, guards})."""

    choice: Choice
    step: int
    candidates: list[dict[str, Any]]


def watch(job: TrainingJob, setup: MethodSetup, guard_length: int | None = None) -> Watch | None:
    """Set up guard sets and interpolation (None where neither is asked): the guarded evaluator
    replaces the setup's; `measure_base` then measures the base before any step. Guard samples are
    encoded at `guard_length` tokens (the artifact's limit; see GuardedDevNDCG)."""
    config = job.config
    if not config.guards and config.interpolation == "off":
        return None
    samples = guard_samples(config.guards or (), config)
    for s in samples:
        progress.stage("guard set %s: a sample of %d queries and %d documents (%s, split %s)%s", s.guard.name,
                       len(s.queries), len(s.doc_ids), s.guard.data, s.guard.split,
                       f", encoded up to {guard_length} tokens" if guard_length else "")
    # query-side methods' documents keep the base's vectors: encode each sample's documents once
    fixed = fixed_guard_vectors(job.base, samples) if config.method.query_side and samples else None
    evaluator = GuardedDevNDCG(setup.evaluator, samples, config.max_guard_drop, fixed, job.precision, guard_length)
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


def hold_last(w: Watch, trainer: Any) -> None:
    """As training ends, before the kept checkpoint is loaded back: hold the last step's weights, the
    blend's second starting point, where the alpha search has guards to keep and another step is kept."""
    if w.blend is None or w.mode != "auto" or not w.samples or kept_step(trainer) == trainer.state.global_step:
        return
    w.last = (int(trainer.state.global_step), w.blend.snapshot(trainer.model))


def _at_step(step: int, history: list[dict[str, Any]], ev: GuardedDevNDCG, model: Any) -> Point:
    """A checkpoint as alpha 1: its dev evaluation from the history, or measured now (the model holds it)."""
    entry = next((h for h in history if h["step"] == step), None)
    if entry is not None:
        return Point(1.0, entry[DEV_METRIC], dict(entry.get("guards", {})))
    return Point(1.0, *ev.point(model))


def _search(job: TrainingJob, w: Watch, model: Any, base_point: Point, tuned_point: Point, step: int) -> Choice:
    """The blend of the checkpoint the model holds with the base (interpolate.search_alpha)."""
    assert w.blend is not None
    w.blend.capture(model)
    how = "searching alpha" if w.mode == "auto" else f"alpha {w.mode}"
    progress.stage("choosing the blend of step %d with the base (%s)", step, how)

    def measure(alpha: float) -> Point:
        assert w.blend is not None
        w.blend.apply(model, alpha)
        return Point(alpha, *w.evaluator.point(model))

    return from_main(job.world, search_alpha(measure, w.mode, base_point, tuned_point, job.config.max_guard_drop))


def blend(job: TrainingJob, w: Watch, trainer: Any, history: list[dict[str, Any]]) -> Kept:
    """Choose the checkpoint and alpha (search or fixed, see interpolate.search_alpha) and leave the
    model as the artifact keeps it: blended for full and query-only, the tuned adapter for LoRA, hybrid
    and query-lora (their alpha is applied on load). Where `hold_last` held the last step, its blend
    is searched too, and the higher dev NDCG@10 within the guards is kept (the selected checkpoint's
    on a tie)."""
    model, ev = trainer.model, w.evaluator
    assert ev.base is not None and ev.base_dev is not None
    base_point = Point(0.0, ev.base_dev, dict(ev.base))
    step = kept_step(trainer)
    tuned_point = _at_step(step, history, ev, model)
    if w.blend is None:
        return Kept(Choice(1.0, [base_point, tuned_point], "interpolation off: the kept checkpoint as trained"), step, [])
    selected = w.blend.snapshot(model) if w.last is not None else None
    choice = _search(job, w, model, base_point, tuned_point, step)
    candidates = [_candidate(step, choice)]
    if selected is not None and w.last is not None:
        last_step, weights = w.last
        w.last = None
        w.blend.restore(model, weights)
        last = _search(job, w, model, base_point, _at_step(last_step, history, ev, model), last_step)
        candidates.append(_candidate(last_step, last))
        if last.chosen.dev > choice.chosen.dev:
            reason = (f"{last.reason}; from the last step ({last_step}), whose blend beats the selected "
                      f"checkpoint's (step {step}: dev {choice.chosen.dev:.4f} at alpha {choice.alpha:g})")
            choice, step = Choice(last.alpha, last.curve, reason), last_step
        else:
            w.blend.restore(model, selected)
            w.blend.capture(model)
            choice = Choice(choice.alpha, choice.curve,
                            f"{choice.reason}; the last step's ({last_step}) best blend scored {last.chosen.dev:.4f} "
                            f"(alpha {last.alpha:g})")
    w.blend.apply(model, 1.0 if job.config.method.adapter else choice.alpha)
    progress.stage("blend with the base: step %d, %s", step, choice.reason)
    return Kept(choice, step, candidates)


def _candidate(step: int, choice: Choice) -> dict[str, Any]:
    return {"step": step, **choice.chosen.to_dict()}


def record(w: Watch, config: TrainConfig, kept: Kept) -> GuardRecord:
    """The stamp's `guard`: samples, the limit, base / kept / final figures, the curve and the reason."""
    choice = kept.choice
    points = {p.alpha: p for p in choice.curve}
    base, tuned, final = points[0.0], points[1.0], points[choice.alpha]
    mode = w.mode if isinstance(w.mode, str) else "fixed"
    return GuardRecord(sets=[s.info() for s in w.samples], max_drop=config.max_guard_drop, base=dict(base.guards),
                       selected=dict(tuned.guards), final=dict(final.guards),
                       dev={"base": base.dev, "selected": tuned.dev, "final": final.dev}, checkpoint_step=kept.step,
                       interpolate=mode, alpha=choice.alpha, curve=[p.to_dict() for p in choice.curve],
                       candidates=kept.candidates or None, reason=choice.reason)

