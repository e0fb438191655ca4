"""Hard negatives for training: documents the base encoder ranks high for a query that are not
judged relevant to it, mined from cached embeddings with an exact index.

Scores are those of the index (index.py): inner products, or negative squared distances for
euclidean; nothing here knows about models or training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..config import IndexConfig, IndexKind, Similarity
from ..index import build_index, true_scores


def score_ceiling(positive_score: float, relative_margin: float, similarity: Similarity) -> float:
    """The score a negative must stay below: `relative_margin` less similar than the positive.
    For inner products that is (1 - margin) x a positive score (a score at or below 0 has no margin
    to take); for euclidean, whose scores are negative squared distances, a negative must lie
    (1 + margin) x the positive's squared distance away."""
    if similarity is Similarity.EUCLIDEAN:
        return positive_score * (1 + relative_margin)
    return positive_score * (1 - relative_margin) if positive_score > 0 else positive_score


def mine_hard_negatives(pairs: Sequence[tuple[str, str]], qrels: Mapping[str, Mapping[str, int]],
                        query_vectors: Mapping[str, np.ndarray], doc_ids: list[str], doc_vectors: np.ndarray,
                        num: int, range_max: int, relative_margin: float,
                        similarity: Similarity | str) -> list[list[str]]:
    """For each (query, positive): up to `num` documents among the base encoder's top `range_max`
    that are not judged relevant for the query and score below the positive's `score_ceiling`
    (those above are likely unjudged positives), best first; as sentence-transformers'
    mine_hard_negatives does, but over cached embeddings. `doc_vectors`: (n_docs, dim)."""
    similarity = Similarity(similarity)
    # exact search, as sentence-transformers' mining: an approximate index is calibrated for the
    # top 10, not for the depth mining reads
    index = build_index(doc_vectors, doc_ids, similarity, IndexConfig(kind=IndexKind.FLAT))
    row = {d: i for i, d in enumerate(doc_ids)}
    qids = sorted({q for q, _ in pairs})
    hits = dict(zip(qids, index.search(np.stack([query_vectors[q] for q in qids]), range_max + 1), strict=True))
    # the positives' scores as the index scores the candidates, so the margin means the same for every similarity
    positives = true_scores(np.stack([query_vectors[q] for q, _ in pairs]), np.array([[row[d]] for _, d in pairs]),
                            lambda rows: np.asarray(doc_vectors)[rows], similarity)[:, 0]  # (n_pairs,)
    out = []
    for (q, _), pos_score in zip(pairs, positives, strict=True):
        ceiling = score_ceiling(float(pos_score), relative_margin, similarity)
        judged = {d for d, g in qrels[q].items() if g > 0}
        out.append([d for d, s in hits[q] if d not in judged and s < ceiling][:num])
    return out
