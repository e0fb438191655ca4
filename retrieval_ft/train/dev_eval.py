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

from ..encode import Item, default_batch_size, encode_items
from ..metrics import evaluate_run
from .rows import DEV_METRIC

logger = logging.getLogger(__name__)

_DEPTH = 100  # documents ranked per dev query


def dev_corpus(dev_qrels: Mapping[str, Mapping[str, int]], doc_ids: Sequence[str], size: int, seed: int) -> list[str]:
    """Every document judged for a dev query, then random others up to `size` (seeded)."""
    rng = random.Random(seed)
    docs = list(dict.fromkeys(d for judged in dev_qrels.values() for d in judged))
    judged_dev = set(docs)
    others = [d for d in doc_ids if d not in judged_dev]
    return docs + rng.sample(others, max(0, min(len(others), size - len(docs))))


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
