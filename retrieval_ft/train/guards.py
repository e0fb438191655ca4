"""Guard sets while training: a seeded sample of each general-domain collection, its NDCG@10
measured for the base once and at every dev evaluation, and the selection score that keeps the
checkpoint with the best dev NDCG@10 among those whose guard drops stay within `max_guard_drop`.

A guard sample is a slice of the collection (up to `guard_queries` judged queries, their judged
documents plus random others up to `guard_corpus_size`) so that watching it costs a few seconds per
evaluation; its figures are reported as sample figures, never as the collection's.

Imports sentence-transformers (through dev_eval): only training imports this module.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

from .._progress import progress
from ..config import GuardSet, Precision, TrainConfig
from ..data import load_dataset
from ..encode import Encoder, Item, document_inputs
from ..errors import DataError
from ..precision import autocast
from .dev_eval import DevNDCG, dev_corpus
from .rows import DEV_METRIC

GUARD_PREFIX = "guard:"  # metric keys of guard sets: dev_guard:NAME (eval_dev_guard:NAME in the Trainer's log)
SELECTION = "selection"  # the metric checkpoints are kept by when guard sets are watched
_TOLERANCE = 1e-9  # a drop equal to the limit is within it, whatever the float rounding


@dataclass(frozen=True)
class GuardSample:
    """A seeded slice of a guard set: queries, their judgments and the documents ranked among."""

    guard: GuardSet
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    doc_ids: list[str]
    doc_items: list[Item]

    def info(self) -> dict[str, Any]:
        """What the stamp records of it."""
        return {"name": self.guard.name, "data": self.guard.data, "split": self.guard.split,
                "queries": len(self.queries), "documents": len(self.doc_ids)}


def guard_samples(guards: Sequence[GuardSet], config: TrainConfig) -> list[GuardSample]:
    """Each guard set's sample, seeded by `config.seed`; a set without judged queries is refused."""
    samples = []
    for guard in guards:
        dataset = load_dataset(guard.data)
        if guard.split not in dataset.qrels:
            raise DataError(f"guard set {guard.name!r} ({guard.data}): no '{guard.split}' split (splits: "
                            f"{', '.join(dataset.splits) or 'none'}); name one with split: in its entry.")
        judged = dataset.judged_queries(guard.split)
        if not judged:
            raise DataError(f"guard set {guard.name!r} ({guard.data}): split '{guard.split}' has no query with a "
                            "relevant judgment; it cannot guard anything.")
        qids = sorted(random.Random(config.seed).sample(judged, min(len(judged), config.guard_queries)))
        qrels = {q: dict(dataset.split(guard.split)[q]) for q in qids}
        doc_ids = dev_corpus(qrels, list(dataset.corpus), config.guard_corpus_size, config.seed)
        items = document_inputs([dataset.corpus[d] for d in doc_ids], dataset.root)
        samples.append(GuardSample(guard, {q: dataset.queries[q] for q in qids}, qrels, doc_ids, items))
    return samples


def guard_drops(values: Mapping[str, float], base: Mapping[str, float]) -> dict[str, float]:
    """How much each guard set lost against the base (positive: worse)."""
    return {name: base[name] - v for name, v in values.items()}


def within(values: Mapping[str, float], base: Mapping[str, float], max_drop: float) -> bool:
    """Whether every guard set lost at most `max_drop`."""
    return all(d <= max_drop + _TOLERANCE for d in guard_drops(values, base).values())


def selection_score(dev: float, values: Mapping[str, float], base: Mapping[str, float], max_drop: float) -> float:
    """The score checkpoints are kept by: dev NDCG@10 (in [0, 1]) where every guard set is within
    `max_drop`; else minus the worst excess, so that any checkpoint within the limit beats every one
    beyond it, and among those beyond it the one that oversteps least wins."""
    if within(values, base, max_drop):
        return dev
    return -(max(guard_drops(values, base).values()) - max_drop)


def select(history: Sequence[Mapping[str, Any]], base: Mapping[str, float], max_drop: float) -> Mapping[str, Any]:
    """The entry of a dev history (`ndcg@10` and `guards` per evaluation) that selection keeps: the
    first with the highest selection score, as the Trainer keeps the first best checkpoint."""
    if not history:
        raise ValueError("select: empty history")
    scores = [selection_score(h[DEV_METRIC], h.get("guards", {}), base, max_drop) for h in history]
    return history[int(np.argmax(scores))]


class GuardedDevNDCG(SentenceEvaluator):
    """The dev evaluator plus a DevNDCG per guard sample; reports `ndcg@10`, `guard:NAME` per set and
    `selection` (see selection_score), which the Trainer keeps the best checkpoint by.

    `fixed_guard_vectors` (query-only tuning): the base's vectors of each sample's documents, so only
    queries are re-encoded; else the documents are re-encoded at every evaluation.

    `guard_length`: the token limit guard samples are encoded at, the one the artifact keeps (the
    base's), where training truncates shorter (train.max_seq_length). A guard drop is a promise about
    the model as it will be evaluated: measured at the training limit instead, CISI's long abstracts
    lost 0.011-0.017 NDCG@10 on the collection while their sample, at 128 tokens, showed 0.004-0.010.
    Dev NDCG@10 stays at the training limit: it ranks checkpoints and blends against each other."""

    def __init__(self, dev: DevNDCG, samples: Sequence[GuardSample], max_drop: float,
                 fixed_guard_vectors: Mapping[str, np.ndarray] | None = None,
                 precision: Precision = Precision.FP32, guard_length: int | None = None) -> None:
        super().__init__()
        self.dev, self.samples, self.max_drop, self.precision = dev, list(samples), max_drop, precision
        self.guard_length = guard_length
        self.guards = {
            s.guard.name: DevNDCG(s.queries, s.qrels, s.doc_ids,
                                  None if fixed_guard_vectors is not None else s.doc_items,
                                  fixed_guard_vectors[s.guard.name] if fixed_guard_vectors is not None else None,
                                  dev.query_prompt, dev.document_prompt, dev.normalize, dev.batch_size)
            for s in self.samples}
        self.name = dev.name
        self.primary_metric = SELECTION if self.guards else DEV_METRIC
        self.base: dict[str, float] | None = None  # guard NDCG@10 of the base, set by measure_base
        self.base_dev: float | None = None
        self.history: list[dict[str, Any]] = []

    def point(self, model: Any) -> tuple[float, dict[str, float]]:
        """(dev NDCG@10, {guard: NDCG@10}) of `model` as it is now, encoded in the training's precision
        (bf16 autocast where training uses it: every figure compared is measured the same way)."""
        with autocast(self.precision, model.device):
            dev = self.dev(model)[f"{self.name}_{DEV_METRIC}"]
            with token_limit(model, self.guard_length):
                return dev, {name: g(model)[f"{g.name}_{DEV_METRIC}"] for name, g in self.guards.items()}

    def measure_base(self, model: Any) -> None:
        """The base's figures (`model` before any step), which guard drops are measured against."""
        self.base_dev, self.base = self.point(model)
        shown = ", ".join(f"{n} {v:.4f}" for n, v in self.base.items())
        progress.info("base: dev %s %.4f%s", DEV_METRIC, self.base_dev, f"; guard samples: {shown}" if shown else "")

    def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        if self.base is None:
            raise RuntimeError("GuardedDevNDCG: measure_base must run before training")
        dev, values = self.point(model)
        metrics: dict[str, float] = {DEV_METRIC: dev, **{GUARD_PREFIX + n: v for n, v in values.items()}}
        if self.guards:
            metrics[SELECTION] = selection_score(dev, values, self.base, self.max_drop)
        self.history.append({"step": int(steps), "epoch": float(epoch), DEV_METRIC: dev, "guards": values})
        return self.prefix_name_to_metrics(metrics, self.name)


@contextmanager
def token_limit(model: Any, length: int | None) -> Iterator[None]:
    """`model` encodes up to `length` tokens inside the block (None: as it is), its own limit after."""
    if length is None or length == model.max_seq_length:
        yield
        return
    before = model.max_seq_length
    model.max_seq_length = length
    try:
        yield
    finally:
        model.max_seq_length = before


def fixed_guard_vectors(base: Encoder, samples: Sequence[GuardSample]) -> dict[str, np.ndarray]:
    """The base's document vectors of each guard sample (query-only tuning never re-encodes them)."""
    return {s.guard.name: base.encode_documents(s.doc_items, desc=f"Encoding guard sample {s.guard.name}")
            for s in samples}
