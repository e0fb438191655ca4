"""The training losses: sentence-transformers' in-batch-negative losses for shared towers, and
FixedDocumentsMNRL for query-only tuning against fixed document vectors.

Imports torch and sentence-transformers: only training imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers.util import all_gather, get_rank
from torch import nn

from ..config import Loss, TrainConfig
from ..errors import ConfigError


class FixedDocumentsMNRL(nn.Module):
    """MultipleNegativesRankingLoss against fixed document vectors (query-only tuning).

    Each example is a query text plus `label` = row indices in `doc_vectors` of its positive
    (first) and hard negatives (-1: none, for a pair that found fewer); with `relevant`, the label
    starts with the query's index in `relevant`, the rows judged relevant to each query, and none of
    those is counted as a negative for it (else only the query's own positive is masked).

    Every document of the batch is a candidate for every query; with `corpus_negatives`, every
    document of `doc_vectors` is (the positive is the target, the query's other relevant documents
    masked). With `gather_across_devices` the batch is the global one of every training process.
    """

    def __init__(self, model: Any, doc_vectors: np.ndarray, normalize: bool, scale: float = 20.0,
                 gather_across_devices: bool = False, relevant: Sequence[Sequence[int]] | None = None,
                 corpus_negatives: bool = False) -> None:
        super().__init__()
        if corpus_negatives and relevant is None:
            raise ValueError("corpus_negatives needs the relevant rows of each query")
        self.model = model
        self.normalize = normalize
        self.scale = scale
        self.gather_across_devices = gather_across_devices
        self.corpus_negatives = corpus_negatives
        self.register_buffer("docs", torch.from_numpy(np.ascontiguousarray(doc_vectors, dtype=np.float32)),
                             persistent=False)  # (n_docs, dim)
        self.relevant = None if relevant is None else _Rows(relevant)

    def forward(self, sentence_features: list[dict[str, Any]], labels: torch.Tensor) -> torch.Tensor:
        q = self.model(sentence_features[0])["sentence_embedding"]
        if self.normalize:
            q = F.normalize(q, dim=-1)
        labels = labels.long().view(q.shape[0], -1)  # (batch, [query,] positive + negatives)
        queries, labels = (labels[:, 0], labels[:, 1:]) if self.relevant is not None else (None, labels)
        if self.corpus_negatives:
            assert queries is not None and self.relevant is not None
            scores = q @ self.docs.to(q.device).T * self.scale  # (batch, n_docs)
            target = labels[:, 0]
            others = self.relevant.mask(queries, self.docs.shape[0])
            others[torch.arange(q.shape[0]), target] = False
            return F.cross_entropy(scores.masked_fill(others.to(q.device), float("-inf")), target)
        return self._in_batch(q, labels, queries)

    def _in_batch(self, q: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor | None) -> torch.Tensor:
        batch_labels, offset = labels, 0
        if self.gather_across_devices:
            # Every process holds all the (fixed) document vectors, and they take no gradient, so
            # there are no document embeddings to gather as MultipleNegativesRankingLoss does;
            # gathering the candidates' row indices (integers) is enough for each query to be
            # scored against the documents of the whole global batch.
            batch_labels = all_gather(labels)  # (world x batch, 1 + negatives), rank order
            offset = get_rank() * q.shape[0]
        cand = batch_labels.reshape(-1)  # (world x batch x (1 + negatives),)
        d = self.docs.to(q.device)[cand.clamp(min=0)]
        scores = q @ d.T * self.scale  # (batch, candidates)
        target = (torch.arange(q.shape[0], device=q.device) + offset) * labels.shape[1]
        if queries is None or self.relevant is None:
            masked = cand.unsqueeze(0) == labels[:, :1]  # (batch, candidates): the query's positive
        else:
            masked = self.relevant.mask_among(queries, cand.cpu()).to(q.device)
        masked = masked | (cand < 0).unsqueeze(0)  # padding: no negative
        masked[torch.arange(q.shape[0]), target] = False
        return F.cross_entropy(scores.masked_fill(masked, float("-inf")), target)

    @property
    def citation(self) -> str:
        return ""


class _Rows:
    """Row indices per query (ragged), kept as offsets and values: (n_queries + 1,), (total,)."""

    def __init__(self, rows: Sequence[Sequence[int]]) -> None:
        self.offsets = torch.tensor([0, *np.cumsum([len(r) for r in rows], dtype=np.int64)], dtype=torch.long)
        self.values = torch.tensor([i for r in rows for i in r], dtype=torch.long)

    def _flat(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(position in `queries`, row) for every row of every query."""
        queries = queries.cpu()
        starts = self.offsets[queries]
        counts = self.offsets[queries + 1] - starts
        position = torch.repeat_interleave(torch.arange(len(queries)), counts)
        first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        return position, self.values[first + torch.arange(int(counts.sum()))]

    def mask(self, queries: torch.Tensor, n_docs: int) -> torch.Tensor:
        """(len(queries), n_docs) booleans: True where the document is one of the query's rows."""
        position, rows = self._flat(queries)
        out = torch.zeros(len(queries), n_docs, dtype=torch.bool)
        out[position, rows] = True
        return out

    def mask_among(self, queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(len(queries), len(candidates)) booleans: True where the candidate is one of the query's rows."""
        position, rows = self._flat(queries)
        hits = (rows.unsqueeze(1) == candidates.unsqueeze(0)).long()  # (rows of the batch's queries, candidates)
        out = torch.zeros(len(queries), len(candidates), dtype=torch.long)
        return out.index_add_(0, position, hits) > 0


def shared_towers_loss(model: Any, config: TrainConfig, gather_across_devices: bool = False) -> nn.Module:
    """The loss for `config` when queries and documents share the model; with
    `gather_across_devices` (several processes) its in-batch negatives span the global batch.
    MatryoshkaLoss calls the wrapped loss per dimension, so it gathers too."""
    from sentence_transformers.sentence_transformer import losses

    if config.loss is Loss.CACHED_MNRL:
        loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size,
                                                         gather_across_devices=gather_across_devices)
    else:
        loss = losses.MultipleNegativesRankingLoss(model, gather_across_devices=gather_across_devices)
    if config.matryoshka_dims:
        dim = model.get_embedding_dimension()
        bad = [d for d in config.matryoshka_dims if d > (dim or 0)]
        if bad:
            raise ConfigError(f"matryoshka_dims {bad} exceed the model's dimension {dim}.")
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=list(config.matryoshka_dims))
    return loss
