"""Model selection while training: NDCG@10 of dev queries over a dev corpus, scored with ranx
(through metrics) as a sentence-transformers evaluator the Trainer calls.

Imports sentence-transformers: only training imports this module.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

from ..config import TrainConfig
from ..data import IRDataset
from ..encode import Encoder, Item, default_batch_size, encode_items
from ..metrics import evaluate_run
from .rows import DEV_METRIC

logger = logging.getLogger(__name__)

_DEPTH = 100  # documents ranked per dev query
HARD_DEV_DEPTH = 20  # dev_hard: the base model's top documents per dev query, at most


def dev_corpus(dev_qrels: Mapping[str, Mapping[str, int]], doc_ids: Sequence[str], size: int, seed: int,
               top: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Every document judged for a dev query; then, with `top` (the base model's ranking per dev
    query, see `dev_top_documents`), its top-ranked ones rank by rank across the queries (every
    query's first, then every second...) while the corpus is under `size`; then random others up
    to `size` (seeded)."""
    rng = random.Random(seed)
    docs = dict.fromkeys(d for judged in dev_qrels.values() for d in judged)
    ranked = list(top.values()) if top else []
    for rank in range(max((len(r) for r in ranked), default=0)):
        for r in ranked:
            if len(docs) >= size:
                break
            if rank < len(r):
                docs.setdefault(r[rank])
    others = [d for d in doc_ids if d not in docs]
    return list(docs) + rng.sample(others, max(0, min(len(others), size - len(docs))))


def dev_top_documents(config: TrainConfig, base: Encoder, dataset: IRDataset, dev_qrels: Mapping[str, Any],
                      vectors: np.ndarray | None) -> dict[str, list[str]] | None:
    """With `config.dev_hard`, the base model's top HARD_DEV_DEPTH documents per dev query (exact
    search) from the base's corpus vectors `vectors` (n_docs, dim) when at hand, else encoded (and
    cached) now; else None."""
    from .negatives import exact_top

    if not config.dev_hard:
        return None
    if vectors is None:
        vectors = base.encode_corpus(dataset).vectors
    qids = list(dev_qrels)
    qv = base.encode_queries([dataset.queries[q] for q in qids])  # (n_queries, dim)
    hits = exact_top(qv, list(dataset.corpus), vectors, HARD_DEV_DEPTH, base.similarity)
    return {q: [d for d, _ in h] for q, h in zip(qids, hits, strict=True)}


def load_metrics() -> None:
    """Load the metric library (ranx, and its numba-compiled NDCG) before training: the first dev
    evaluation would otherwise load it in the middle of training, where its seconds would count as
    an evaluation's and its resident code (about 150 MB) as training's peak memory."""
    evaluate_run({"q": {"d": 1}}, {"q": {"d": 1.0}}, [DEV_METRIC])


class DevNDCG(SentenceEvaluator):
    """NDCG@10 of `queries` over the documents `doc_ids`: encoded from `doc_items` at every
    evaluation, or, with `fixed_doc_vectors` (query-only tuning), only the queries are re-encoded.
    `history` holds one entry per evaluation (step, epoch, ndcg@10)."""

    def __init__(self, queries: dict[str, str], qrels: dict[str, dict[str, int]], doc_ids: list[str],
                 doc_items: list[Item] | None, fixed_doc_vectors: np.ndarray | None, query_prompt: str,
                 document_prompt: str, normalize: bool, batch_size: int | None) -> None:
        super().__init__()
        if (doc_items is None) == (fixed_doc_vectors is None):
            raise ValueError("DevNDCG needs either doc_items or fixed_doc_vectors")
        self.queries, self.qrels, self.doc_ids = queries, qrels, doc_ids
        self.doc_items, self.fixed_doc_vectors = doc_items, fixed_doc_vectors  # (n_docs, dim)
        self.query_prompt, self.document_prompt = query_prompt, document_prompt
        self.normalize, self.batch_size = normalize, batch_size
        self.name = "dev"
        self.primary_metric = DEV_METRIC
        self.history: list[dict[str, float]] = []

    def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        qids = list(self.queries)
        qv = model.encode([self.queries[q] for q in qids], prompt=self.query_prompt,
                          batch_size=self.batch_size or default_batch_size(model, "query"),
                          normalize_embeddings=self.normalize, convert_to_numpy=True, show_progress_bar=False)
        if self.fixed_doc_vectors is not None:
            dv = self.fixed_doc_vectors
        else:
            assert self.doc_items is not None
            dv = encode_items(model, self.doc_items, prompt=self.document_prompt, batch_size=self.batch_size,
                              normalize=self.normalize)
        scores = np.asarray(qv, dtype=np.float32) @ np.asarray(dv, dtype=np.float32).T  # (n_queries, n_docs)
        k = min(_DEPTH, len(self.doc_ids))
        run = {}
        for qi, q in enumerate(qids):
            top = np.argpartition(-scores[qi], k - 1)[:k]
            run[q] = {self.doc_ids[j]: float(scores[qi, j]) for j in top}
        value = evaluate_run(self.qrels, run, [DEV_METRIC]).mean[DEV_METRIC]
        self.history.append({"step": int(steps), "epoch": float(epoch), DEV_METRIC: value})
        logger.debug("dev %s at step %s: %.4f", DEV_METRIC, steps, value)
        return self.prefix_name_to_metrics({DEV_METRIC: value}, self.name)
