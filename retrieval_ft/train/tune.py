"""Fine-tuning with the sentence-transformers Trainer: full, LoRA, hybrid and query-only.

Training pairs come from a split's judgments (query, relevant document) or from a pair/triplet
file; optional hard negatives are mined with the base encoder's cached corpus embeddings. Model
selection uses NDCG@10 on dev queries (the dataset's dev split, else a held-out slice of the train
queries; the test split is never read). Checkpoints land in `OUT/checkpoints` and `resume=True`
continues from the last one. The artifact written to OUT carries a stamp (retrieval_ft.json)
saying what made it.

`finetune` reads as the recipe: checkpoint check, training data, negatives, dev set, method set-up
(query-only or shared towers), the Trainer, training, artifact stamp, write. The Trainer's schedule
and arguments live in trainer.py, the losses in losses.py, the dev evaluator in dev_eval.py, mining
in negatives.py, several processes in distributed.py, progress display in progress.py and
callbacks.py.

Launched as several processes (torchrun, accelerate launch), the Trainer trains with DDP: the batch
size is per process, in-batch negatives are gathered across processes, and only rank 0 writes the
artifact.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_dir, write_json_atomic
from .._progress import shows_bars
from ..config import EncodeConfig, Method, Precision, TrainConfig, to_dict
from ..data import IRDataset, UnknownIds, load_dataset
from ..data.pairs import is_pair_file, load_pairs
from ..encode import Encoder, check_encodes_pages
from ..errors import ConfigError, DataError
from ..models import parameter_counts
from ..precision import resolve_precision
from ..results import library_versions
from ..stamp import STAMP, ArtifactKind, ArtifactStamp, BaseModelInfo, GuardRecord, TrainingDataInfo
from . import progress
from .checkpoints import CHECKPOINTS, check_same_run, checkpoint_to_resume
from .distributed import World, from_main, gathers_across_devices, join_world, written_by_main
from .measure import folder_bytes
from .methods import MethodSetup, query_only_setup, shared_towers_setup
from .negatives import mine_negatives
from .rows import DEV_METRIC, TrainingData, training_data, training_set
from .sampling import check_steps
from .timing import PhaseClock, frozen_heap, timings_line
from .trainer import PREFIX_CHECKPOINT_DIR, Schedule, Trained, build_trainer, kept_step, schedule_of, train
from .watch import Watch, blend, history_entry, hold_last, measure_base, record, watch

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "finetune"]


@dataclass
class TrainResult:
    artifact: Path
    method: str
    best_dev_ndcg: float | None
    history: list[dict[str, Any]]  # per dev evaluation: step, epoch, ndcg@10 (and guards, selection)
    train_seconds: float
    peak_memory_mb: float
    trainable_params: int
    total_params: int
    artifact_bytes: int
    stamp: ArtifactStamp  # what retrieval_ft.json in `artifact` says
    timings: dict[str, float]  # wall time by phase (timing.PHASES) and `total`, in seconds


# -- the recipe's steps -------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingJob:
    """What the steps of one training run share: settings, this process, the data and the base."""

    config: TrainConfig
    encode: EncodeConfig
    world: World
    precision: Precision
    use_cpu: bool
    show_bars: bool
    out: Path
    resume_from: Path | None  # the checkpoint to continue from
    dataset: IRDataset
    base: Encoder
    settings: dict[str, Any]  # what checkpoints are kept beside (see _run_settings)
    n_pages: int  # page images in the corpus (0: texts)
    clock: PhaseClock  # where the run's time goes

    @property
    def ckpt_dir(self) -> Path:
        return self.out / CHECKPOINTS


def _device_and_precision(config: TrainConfig, encode: EncodeConfig) -> tuple[bool, Precision]:
    """(train on the CPU, the precision `config.precision` resolves to there)."""
    import torch

    use_cpu = encode.device == "cpu" or not torch.cuda.is_available()
    precision = resolve_precision(config.precision, "cpu" if use_cpu else "cuda")
    if precision is Precision.FP16 and use_cpu:
        raise ConfigError("precision 'fp16' trains on CUDA only; on a CPU use 'bf16' or 'fp32' (or 'auto').")
    return use_cpu, precision


def _read_data(data: IRDataset | str | Path, config: TrainConfig,
               unknown_ids: UnknownIds | str) -> tuple[IRDataset, dict[tuple[str, str], list[str]], TrainingData]:
    """(the dataset, negatives a triplet file names per (query, positive), pairs and dev queries)."""
    explicit: dict[tuple[str, str], list[str]] = {}
    if isinstance(data, IRDataset):
        dataset = data
    elif is_pair_file(data):
        dataset, explicit = load_pairs(data)
    else:
        dataset = load_dataset(data, unknown_ids)
    return dataset, explicit, training_data(dataset, config)


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# how a run computes, not what: gradient checkpointing recomputes the same activations, so a run may
# resume with it switched (to fit a smaller GPU, say); precision is kept as resolved instead
_NOT_THE_RUN = ("precision", "gradient_checkpointing")


def _run_settings(config: TrainConfig, precision: Precision, base: Encoder, dataset: IRDataset) -> dict[str, Any]:
    """What checkpoints are kept beside, for a resumed run to match: the precision it resolved to,
    not "auto" (another machine's auto could switch it mid-run)."""
    return {"config": {k: v for k, v in to_dict(config).items() if k not in _NOT_THE_RUN},
            "precision": precision.value, "base_fingerprint": base.fingerprint,
            "data_fingerprint": dataset.fingerprint(config.split),
            "encode": {k: v for k, v in base.settings().items() if k != "precision"}}


def _page_count(dataset: IRDataset, base: Encoder) -> int:
    """How many documents are page images; a corpus must be all pages (for a model that encodes
    them) or all texts."""
    n_pages = sum(d.image is not None for d in dataset.corpus.values())
    if n_pages:
        check_encodes_pages(base.model)
        if n_pages < len(dataset.corpus):
            raise DataError(f"{dataset.source}: {n_pages} of {len(dataset.corpus)} documents are page images and the "
                            "rest text; training needs a corpus of one kind (all pages, or all texts).")
    return n_pages


@dataclass(frozen=True)
class Negatives:
    tdata: TrainingData  # without the pairs mining found too few negatives for
    lists: list[list[str]]  # per pair, best first
    per_pair: int
    corpus_vectors: np.ndarray | None  # (n_docs, dim): the base encoder's, when query-only or mining


def _negatives(job: TrainingJob, tdata: TrainingData, explicit: dict[tuple[str, str], list[str]]) -> Negatives:
    """A triplet file brings its own negatives (the same number on every row); else they are
    mined if asked."""
    config = job.config
    negatives: list[list[str]] = [explicit.get(pair, []) for pair in tdata.pairs]
    per_pair = len(negatives[0]) if negatives else 0
    mine = per_pair == 0 and config.mines_negatives
    # Several processes each encode the corpus (or read it from the cache) themselves, side by side
    # on their own GPUs: had rank 0 filled the cache while the others waited, they would idle as long,
    # and on a large corpus the wait could outlast the process group's timeout. Cache files are
    # written by atomic renames and checked by checksum, so concurrent writers cannot leave a torn one.
    vectors = job.base.encode_corpus(job.dataset).vectors if config.method.query_side or mine else None
    if not mine:
        return Negatives(tdata, negatives, per_pair, vectors)
    assert vectors is not None
    hn = config.hard_negatives
    progress.stage("mining %d hard negatives per pair for %d pairs", hn.num, len(tdata.pairs))
    qids = sorted({q for q, _ in tdata.pairs})
    qvecs = dict(zip(qids, job.base.encode_queries([job.dataset.queries[q] for q in qids]), strict=True))
    mined = mine_negatives(tdata.pairs, job.dataset.split(config.split), qvecs, list(job.dataset.corpus), vectors,
                           hn.num, hn.range_max, hn.relative_margin, job.base.similarity, hn.fill)
    # Mining is cheap and deterministic, but two GPUs need not agree to the last bit, and a
    # near-tie could keep a pair on one process and drop it on another: with different row
    # counts one process would step alone and hang the others. All take rank 0's negatives.
    negatives = from_main(job.world, mined.lists)
    if mined.filled:
        logger.info("hard negatives: %d of %d pairs found fewer than %d below the margin among the top %d and "
                    "took the next-ranked documents beyond them.", mined.filled, len(negatives), hn.num, hn.range_max)
    # query-only's loss takes a pair with fewer negatives (its labels are padded); the shared towers'
    # negative columns need every one
    short_ok = hn.fill and config.method.query_side
    keep = [i for i, n in enumerate(negatives) if len(n) == hn.num or (short_ok and n)]
    short = sum(0 < len(negatives[i]) < hn.num for i in keep)
    if short:
        logger.info("hard negatives: %d pairs train with fewer than %d negatives (the corpus has no more that are "
                    "not judged relevant).", short, hn.num)
    if len(keep) < len(negatives):
        logger.warning("hard negatives: %d of %d pairs found fewer than %d negatives and were dropped%s.",
                       len(negatives) - len(keep), len(negatives), hn.num,
                       "" if hn.fill else " (hard_negatives.fill keeps them)")
    if not keep:
        raise DataError(f"hard negatives: no training pair found {hn.num} negatives (the corpus has "
                        f"{len(job.dataset.corpus)} documents); lower hard_negatives.num (--hard-negatives).")
    kept = TrainingData([tdata.pairs[i] for i in keep], tdata.dev_qrels, tdata.dev_source)
    return Negatives(kept, [negatives[i] for i in keep], hn.num, vectors)


_ARTIFACT_KIND = {Method.FULL: ArtifactKind.FULL, Method.QUERY_ONLY: ArtifactKind.QUERY_ONLY,
                  Method.QUERY_LORA: ArtifactKind.QUERY_ADAPTER}  # LoRA and hybrid: an adapter


def _artifact_kind(method: Method) -> ArtifactKind:
    return _ARTIFACT_KIND.get(method, ArtifactKind.ADAPTER)


@dataclass(frozen=True)
class _Facts:
    """What the stamp records besides the settings: sizes, the world, what training measured."""

    rows: int  # training rows (pairs)
    dev_corpus_size: int
    parameters: tuple[int, int]  # (trainable, total)
    distributed: dict[str, Any]
    trained: Trained


def _artifact_stamp(job: TrainingJob, negs: Negatives, setup: MethodSetup, trainer: Any, facts: _Facts,
                    history: list[dict[str, Any]], guard: GuardRecord | None) -> ArtifactStamp:
    """What made the artifact."""
    config, base, state = job.config, job.base, trainer.state
    return ArtifactStamp(
        artifact=_artifact_kind(config.method),
        method=config.method.value,
        base=BaseModelInfo(name=base.name, path=base.path, fingerprint=base.fingerprint),
        data=TrainingDataInfo(path=job.dataset.source, split=config.split,
                              fingerprint=job.settings["data_fingerprint"], pairs=facts.rows,
                              hard_negatives=negs.per_pair, dev=negs.tdata.dev_source,
                              dev_corpus_size=facts.dev_corpus_size),
        config=to_dict(config),
        learning_rate=config.learning_rate,
        # how to encode with this model; precision is the encoding machine's business
        encode={k: v for k, v in base.settings().items() if k not in ("max_seq_length", "precision")},
        precision=job.precision.value,
        max_seq_length=base.model.max_seq_length,
        steps=state.global_step,
        distributed=facts.distributed,
        train_seconds=round(facts.trained.seconds, 2),
        # time spent in dev evaluations, included in train_seconds (this process's, as train_seconds)
        eval_seconds=round(facts.trained.evaluations, 2),
        peak_memory_mb=round(facts.trained.peak_memory_mb, 1),  # of rank 0's process when there are several
        trainable_params=facts.parameters[0],
        total_params=facts.parameters[1],
        preparation=setup.preparation,
        best_dev_ndcg=max((h[DEV_METRIC] for h in history), default=None),
        dev_history=history,
        # the step whose weights were kept (the blend's, where guards chose between two)
        best_checkpoint=f"{PREFIX_CHECKPOINT_DIR}-{guard.checkpoint_step if guard else kept_step(trainer)}",
        versions=library_versions(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        alpha=guard.alpha if guard is not None else None,
        guard=guard,
    )


def _write(out: Path, model: SentenceTransformer, stamp: ArtifactStamp, facts: _Facts, clock: PhaseClock) -> TrainResult:
    """The artifact folder, written as a whole; its stamp records its size and the run's timings
    once complete."""
    progress.stage("saving the artifact to %s", out)
    with clock.phase("save"):
        with atomic_dir(out) as tmp:
            model.save(str(tmp))
            write_json_atomic(tmp / STAMP, stamp.to_dict())
        stamp = replace(stamp, artifact_bytes=folder_bytes(out))
    timings = clock.to_dict()
    stamp = replace(stamp, timings=timings)
    write_json_atomic(out / STAMP, stamp.to_dict())
    progress.stage("%s", timings_line(timings))
    assert stamp.method is not None and stamp.dev_history is not None and stamp.artifact_bytes is not None
    return TrainResult(artifact=out, method=stamp.method, best_dev_ndcg=stamp.best_dev_ndcg,
                       history=stamp.dev_history, train_seconds=facts.trained.seconds,
                       peak_memory_mb=facts.trained.peak_memory_mb, trainable_params=facts.parameters[0],
                       total_params=facts.parameters[1], artifact_bytes=stamp.artifact_bytes, stamp=stamp,
                       timings=timings)


def _final_model(job: TrainingJob, trainer: Any, base_length: int) -> SentenceTransformer:
    """The model the artifact holds: the best checkpoint's (loaded at the end), at the base's length
    limit. For query-side methods that is the query side alone (its weights, or its LoRA adapter):
    the document side is the base, which loading finds through the stamp (models.load_model)."""
    final = trainer.model
    if job.config.max_seq_length is not None:
        final.max_seq_length = base_length  # the training limit does not travel into the artifact
    return final


def _world_record(world: World, schedule: Schedule, loss: Any, batch_size: int) -> dict[str, Any]:
    """The stamp's `distributed`: how many processes trained, and whether negatives were gathered."""
    gathered = gathers_across_devices(loss)
    if world.size > 1:
        logger.info("%d processes (%s): global batch %d = %d x %d per process; in-batch negatives %s",
                    world.size, world.backend, schedule.global_batch, world.size, batch_size,
                    "gathered across processes" if gathered else "per process")
    return {"world_size": world.size, "backend": world.backend, "global_batch_size": schedule.global_batch,
            "negatives_gathered": gathered}


def finetune(
    model: str | SentenceTransformer,
    data: IRDataset | str | Path,
    config: TrainConfig | None = None,
    out: str | Path = "tuned",
    *,
    encode: EncodeConfig | None = None,
    resume: bool = False,
    unknown_ids: UnknownIds | str = UnknownIds.ERROR,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Fine-tune `model` on `data`'s train split with `config.method`; write the artifact to `out`.

    `data` is a dataset (its `train` judgments make the pairs) or a pair/triplet file (anchor,
    positive, optional negative columns; see data/pairs.py).

    `resume` continues from the last checkpoint in `out/checkpoints`; `callbacks` are passed to the
    transformers Trainer. `encode.progress` decides the progress display (see progress.py). A
    SentenceTransformer given as `model` is trained in place (no copy of it is made).

    The result's `timings` (also in the stamp, and logged as one `time:` line) say where the run's
    wall time went, phase by phase (timing.PHASES).

    Under torchrun or accelerate launch every process calls this with the same arguments and trains
    its share of each global batch (`config.batch_size` per process). Rank 0 alone writes
    checkpoints and the artifact; every process returns rank 0's result once the artifact is written.
    """
    clock = PhaseClock()
    config = config or TrainConfig()
    encode = encode or EncodeConfig()
    show_bars = shows_bars(encode.progress)
    with progress.library_bars(show_bars), frozen_heap():
        with clock.phase("load"):
            use_cpu, precision = _device_and_precision(config, encode)
            world = join_world(encode.device)
            resume_from = checkpoint_to_resume(Path(out), resume, world)
        with clock.phase("data"):
            dataset, explicit, tdata = _read_data(data, config, unknown_ids)
        _seed_everything(config.seed)
        with clock.phase("load"):
            base = Encoder(model, encode)
        with clock.phase("data"):  # hashing the data and the base's weights
            settings = _run_settings(config, precision, base, dataset)
            if resume_from is not None:
                check_same_run(Path(out) / CHECKPOINTS, settings)
            n_pages = _page_count(dataset, base)
        job = TrainingJob(config, encode, world, precision, use_cpu, show_bars, Path(out), resume_from, dataset, base,
                          settings, n_pages, clock)
        return _tune(job, tdata, explicit, callbacks)


def _tune(job: TrainingJob, tdata: TrainingData, explicit: dict[tuple[str, str], list[str]],
          callbacks: list[Any] | None) -> TrainResult:
    """Negatives, dev set, the method's set-up, training, the stamp, and the artifact written once."""
    config, clock = job.config, job.clock
    prepared = _prepare(job, tdata, explicit)
    negs, dev_docs, setup, watched = prepared.negatives, prepared.dev_docs, prepared.setup, prepared.watched
    with clock.phase("data"):
        train_set = training_set(setup.rows)
        parameters = parameter_counts(setup.train_model)
        schedule = schedule_of(config, job.world, train_set, setup.sampler)
    with clock.phase("load"):
        trainer = build_trainer(job, setup, schedule, train_set, callbacks)
    progress.stage("training %s: %d pairs, %d steps (dev: %s), %d of %d parameters trainable",
                    config.method.value, len(train_set), schedule.total_steps, negs.tdata.dev_source, *parameters)
    distributed = _world_record(job.world, schedule, setup.loss, config.batch_size)
    trained = train(job, trainer, functools.partial(hold_last, watched) if watched is not None else None)
    clock.add("steps", trained.seconds - trained.evaluations - trained.checkpoints)
    clock.add("evaluations", trained.evaluations)
    clock.add("checkpoints", trained.checkpoints)
    clock.add("selection", trained.reload_seconds)
    check_steps(trainer.state.global_step, schedule.total_steps)
    with clock.phase("selection"):
        history = _dev_history(trainer, setup.evaluator)
        guard = None
        if watched is not None:
            guard = record(watched, config, blend(job, watched, trainer, history))
    with clock.phase("save"):
        final = _final_model(job, trainer, prepared.base_length)
        facts = _Facts(len(train_set), len(dev_docs), parameters, distributed, trained)
        stamp = _artifact_stamp(job, negs, setup, trainer, facts, history, guard)
    # one artifact, written once: rank 0 writes it (the Trainer's checkpoints are rank 0's too);
    # the others wait until it is complete, then report rank 0's run
    return written_by_main(job.world, lambda: _write(job.out, final, stamp, facts, clock))


@dataclass(frozen=True)
class _Prepared:
    negatives: Negatives
    dev_docs: list[str]
    setup: MethodSetup  # its model at the training length
    watched: Watch | None  # guard samples and the blend, the base measured on them
    base_length: int  # the model's own length limit, which the artifact keeps


def _prepare(job: TrainingJob, tdata: TrainingData, explicit: dict[tuple[str, str], list[str]]) -> _Prepared:
    """Negatives, the dev set, the method's set-up and what the run watches besides dev NDCG@10."""
    from .dev_eval import dev_corpus, dev_top_documents, load_metrics

    config, clock = job.config, job.clock
    with clock.phase("mining"):
        negs = _negatives(job, tdata, explicit)
    with clock.phase("dev_set"):
        dev_docs = dev_corpus(negs.tdata.dev_qrels, list(job.dataset.corpus), config.dev_corpus_size, config.seed,
                              dev_top_documents(config, job.base, job.dataset, negs.tdata.dev_qrels, negs.corpus_vectors))
    progress.stage("dev set: %d queries (%s), %d documents", len(negs.tdata.dev_qrels), negs.tdata.dev_source,
                    len(dev_docs))
    with clock.phase("load"):
        setup = (query_only_setup if config.method.query_side else shared_towers_setup)(job, negs, dev_docs)
    base_length = setup.train_model.max_seq_length
    if config.max_seq_length is not None:
        setup.train_model.max_seq_length = config.max_seq_length
    # guard sets and the blend with the base, where asked: dev NDCG@10 is measured at the training
    # length, guard samples at the artifact's (what users will evaluate it at)
    with clock.phase("dev_set"):
        watched = watch(job, setup, guard_length=base_length)
    with clock.phase("metric_library"):  # before training: the first evaluation would load it mid-training
        load_metrics()
    if watched is not None:
        with clock.phase("evaluations"):
            measure_base(watched, setup.train_model)
    return _Prepared(negs, dev_docs, setup, watched, base_length)


# -- helpers ------------------------------------------------------------------------------------
def _dev_history(trainer: Any, evaluator: Any) -> list[dict[str, Any]]:
    """Dev NDCG@10 (and guard samples, selection) per evaluation, from the trainer's log (which
    survives a resume)."""
    history = [h for h in map(history_entry, trainer.state.log_history) if h is not None]
    return history or list(evaluator.history)
