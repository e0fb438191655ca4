"""The sentence-transformers Trainer of a training run: its schedule (steps, evaluations), its
arguments, and the call that trains. Knows the job and the method's set-up it is given, nothing of
data reading, the artifact or its stamp (tune.py).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import write_json_atomic
from ..config import Precision, TrainConfig
from ..errors import ConfigError
from .checkpoints import RUN_SETTINGS
from .distributed import DDP_TIMEOUT, World, find_unused_parameters
from .measure import peak_memory_mb, reset_peak_memory

if TYPE_CHECKING:
    from .methods import MethodSetup
    from .tune import TrainingJob

logger = logging.getLogger(__name__)

PREFIX_CHECKPOINT_DIR = "checkpoint"  # transformers' checkpoint folders: checkpoint-<step>


@dataclass(frozen=True)
class Schedule:
    global_batch: int  # batch_size is per process, as in the Trainer
    total_steps: int
    eval_steps: int  # dev evaluations (and checkpoints) every this many steps


def schedule_of(config: TrainConfig, world: World, train_set: Any, sampler: Any) -> Schedule:
    """Steps as the Trainer will take them: the batches `sampler` forms from `train_set`, each
    process taking its share (checked before training, see sampling.steps_per_epoch)."""
    from .sampling import steps_per_epoch

    global_batch = config.batch_size * world.size
    if world.size > 1 and len(train_set) < global_batch:
        # every process drops its last short batch (see dataloader_drop_last): none would be left
        raise ConfigError(f"{len(train_set)} training pairs cannot fill one step of {world.size} processes x "
                          f"batch size {config.batch_size}; lower --batch-size or start fewer processes.")
    per_epoch = steps_per_epoch(config, world.size, train_set, sampler)
    total_steps = config.max_steps or math.ceil(per_epoch * config.epochs)
    eval_steps = max(1, min(total_steps, per_epoch // config.evals_per_epoch or 1))
    return Schedule(global_batch, total_steps, eval_steps)


def _training_arguments(job: TrainingJob, setup: MethodSetup, schedule: Schedule) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments

    config, world = job.config, job.world
    trainable = [n for n, p in setup.train_model.named_parameters() if p.requires_grad]
    return SentenceTransformerTrainingArguments(
        output_dir=str(job.ckpt_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=setup.sampler,
        eval_strategy="steps",
        eval_steps=schedule.eval_steps,
        save_strategy="steps",
        save_steps=schedule.eval_steps,
        save_total_limit=2,
        # the best checkpoint is loaded back by keep_best, and only where it is not the last step
        load_best_model_at_end=False,
        # dev NDCG@10, or with guard sets the selection score (guards.selection_score)
        metric_for_best_model=f"eval_{setup.evaluator.name}_{setup.evaluator.primary_metric}",
        greater_is_better=True,
        logging_steps=max(1, schedule.eval_steps // 2),
        report_to="none",
        disable_tqdm=not job.show_bars,
        dataloader_num_workers=0,
        # with several processes every one must take a full batch at every step: gathering needs
        # equal shapes, and a process left with an extra short batch would wait for the others forever
        dataloader_drop_last=world.size > 1,
        ddp_timeout=int(DDP_TIMEOUT.total_seconds()),
        # search for parameters without gradient only where some exist (a BERT pooler, say): the
        # search costs an autograd traversal per step, and warns at every step when it finds none
        ddp_find_unused_parameters=_find_unused(job.config, trainable, setup.encodes_images) if world.size > 1 else None,
        prompts=setup.prompts,
        use_cpu=job.use_cpu,
        # mixed precision: float32 weights, bf16/fp16 matmuls where the hardware has them
        bf16=job.precision is Precision.BF16,
        fp16=job.precision is Precision.FP16,
        **_checkpointing(config.gradient_checkpointing),
    )


def _checkpointing(enabled: bool) -> dict[str, Any]:
    """The Trainer's activation checkpointing arguments. Non-reentrant checkpointing takes gradients
    through blocks whose inputs need none (LoRA's frozen base weights and embeddings), which the
    reentrant kind would silently leave untrained. transformers 5.23 renamed gradient_checkpointing
    to activation_checkpointing (the old name warns); older 5.x releases know only the old name."""
    if not enabled:
        return {}
    from sentence_transformers import SentenceTransformerTrainingArguments

    known = {f.name for f in fields(SentenceTransformerTrainingArguments)}
    name = "activation_checkpointing" if "activation_checkpointing" in known else "gradient_checkpointing"
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}}


def _find_unused(config: TrainConfig, trainable: list[str], encodes_images: bool) -> bool:
    """DDP's search for weights without gradient: as configured, else where the model has some."""
    if config.ddp_find_unused_parameters is not None:
        return config.ddp_find_unused_parameters
    return find_unused_parameters(trainable, encodes_images)


def build_trainer(job: TrainingJob, setup: MethodSetup, schedule: Schedule, train_set: Any, callbacks: list[Any] | None) -> Any:
    """The Trainer, its logs sent to our loggers instead of dicts printed on stdout."""
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import PrinterCallback

    from .callbacks import NoFinalCheckpoint, trainer_callbacks

    # the model card sentence-transformers writes with every checkpoint and the artifact would
    # otherwise encode its example texts each time
    setup.train_model.model_card_data.generate_widget_examples = False
    trainer = SentenceTransformerTrainer(model=setup.train_model, args=_training_arguments(job, setup, schedule),
                                         train_dataset=train_set, loss=setup.loss, evaluator=setup.evaluator,
                                         callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    for callback in [*trainer_callbacks(job.show_bars), NoFinalCheckpoint()]:
        trainer.add_callback(callback)
    return trainer


@dataclass(frozen=True)
class Trained:
    """What one call of `train` measured."""

    seconds: float  # in the Trainer's train(): steps, evaluations and checkpoint writes
    evaluations: float  # of those, in dev evaluations
    checkpoints: float  # and in checkpoint writes
    reload_seconds: float  # loading the kept checkpoint back (0: the last step's weights were kept)
    peak_memory_mb: float  # over training and the reload


def train(job: TrainingJob, trainer: Any, before_reload: Callable[[Any], None] | None = None) -> Trained:
    """Train (from the checkpoint to resume, if any), and leave the model with the kept (best)
    checkpoint's weights; `before_reload(trainer)` sees the last step's first."""
    from .callbacks import TrainerTimes

    if job.world.is_main:
        job.ckpt_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(job.ckpt_dir / RUN_SETTINGS, job.settings)
    times = TrainerTimes()
    trainer.add_callback(times)
    reset_peak_memory()
    start = time.perf_counter()
    with warnings.catch_warnings():
        # under DDP: torch deprecations raised inside accelerate's DDP wrapping and inside
        # sentence-transformers' gathering (again after every evaluation), which no user can act on
        for message in (r"`broadcast_buffers` is deprecated", r"torch\.distributed\.nn\.functional\.all_gather is deprecated"):
            warnings.filterwarnings("ignore", message=message, category=FutureWarning)
        trainer.train(resume_from_checkpoint=str(job.resume_from) if job.resume_from is not None else None)
    seconds = time.perf_counter() - start
    if before_reload is not None:
        before_reload(trainer)
    reload = keep_best(trainer)
    return Trained(seconds, times.evaluations, times.checkpoints, reload, peak_memory_mb())


def kept_step(trainer: Any) -> int:
    """The step whose weights the artifact keeps: the best evaluation's (the first of equals)."""
    state = trainer.state
    return int(state.best_global_step or state.global_step)


def keep_best(trainer: Any) -> float:
    """Load the best checkpoint back where it is not the last step, whose weights the model holds
    already (and which is not written as a checkpoint, see callbacks.NoFinalCheckpoint); returns the
    seconds spent loading."""
    if kept_step(trainer) == trainer.state.global_step:
        logger.info("keeping the last step's weights: its dev evaluation is the best")
        return 0.0
    start = time.perf_counter()
    best = Path(trainer.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{kept_step(trainer)}"
    if not best.is_dir():  # every evaluation before the last step writes its checkpoint
        raise RuntimeError(f"the best checkpoint {best} is missing; the run cannot keep its best weights.")
    logger.info("loading back the best checkpoint, %s", best.name)
    trainer.state.best_model_checkpoint = str(best)
    trainer._load_from_checkpoint(str(best))  # sentence-transformers' loader of its own checkpoints
    return time.perf_counter() - start
