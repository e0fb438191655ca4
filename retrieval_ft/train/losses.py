"""The training losses: sentence-transformers' in-batch-negative losses for shared towers, and
FixedDocumentsMNRL for query-only tuning against fixed document vectors.

Imports torch and sentence-transformers: only training imports this module.
"""

from __future__ import annotations

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

    Each example is a query text plus `label` = row indices of its positive (first) and hard
    negatives in `doc_vectors`; every document of the batch is a candidate for every query, and a
    query's own positive appearing in another column is masked rather than counted as a negative.
    With `gather_across_devices` the batch is the global one of every training process.
    """

    def __init__(self, model: Any, doc_vectors: np.ndarray, normalize: bool, scale: float = 20.0,
                 gather_across_devices: bool = False) -> None:
        super().__init__()
        self.model = model
        self.normalize = normalize
        self.scale = scale
        self.gather_across_devices = gather_across_devices
        self.register_buffer("docs", torch.from_numpy(np.ascontiguousarray(doc_vectors, dtype=np.float32)),
                             persistent=False)  # (n_docs, dim)

    def forward(self, sentence_features: list[dict[str, Any]], labels: torch.Tensor) -> torch.Tensor:
        q = self.model(sentence_features[0])["sentence_embedding"]
        if self.normalize:
            q = F.normalize(q, dim=-1)
        labels = labels.long().view(q.shape[0], -1)  # (batch, 1 + negatives)
        batch_labels, offset = labels, 0
        if self.gather_across_devices:
            # Every process holds all the (fixed) document vectors, and they take no gradient, so
            # there are no document embeddings to gather as MultipleNegativesRankingLoss does;
            # gathering the candidates' row indices (integers) is enough for each query to be
            # scored against the documents of the whole global batch.
            batch_labels = all_gather(labels)  # (world x batch, 1 + negatives), rank order
            offset = get_rank() * q.shape[0]
        cand = batch_labels.reshape(-1)  # (world x batch x (1 + negatives),)
        d = self.docs.to(q.device)[cand]
        scores = q @ d.T * self.scale  # (batch, candidates)
        target = (torch.arange(q.shape[0], device=q.device) + offset) * labels.shape[1]
        same_doc = cand.unsqueeze(0) == labels[:, :1]  # (batch, candidates): the query's positive
        own = torch.zeros_like(same_doc)
        own[torch.arange(q.shape[0]), target] = True
        scores = scores.masked_fill(same_doc & ~own, float("-inf"))
        return F.cross_entropy(scores, target)

    @property
    def citation(self) -> str:
        return ""


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
