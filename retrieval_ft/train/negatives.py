"""Hard negatives for training: documents the base encoder ranks high for a query that are not
judged relevant to it, mined from cached embeddings with an exact index.

Scores are those of the index (index.py): inner products, or negative squared distances for
euclidean; nothing here knows about models or training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


def exact_top(query_vectors: np.ndarray, doc_ids: list[str], doc_vectors: np.ndarray, k: int,
              similarity: Similarity) -> list[list[tuple[str, float]]]:
    """The top `k` (doc id, score) per query, best first, by exact search. As sentence-transformers'
    mining: an approximate index is calibrated for the top 10, not for the depth mining reads.
    `query_vectors`: (n_queries, dim), `doc_vectors`: (n_docs, dim)."""
    index = build_index(doc_vectors, doc_ids, similarity, IndexConfig(kind=IndexKind.FLAT))
    return index.search(query_vectors, min(k, len(doc_ids)))


@dataclass(frozen=True)
class MinedNegatives:
    lists: list[list[str]]  # per pair, best first
    filled: int  # pairs that took candidates beyond range_max (fill)


def mine_hard_negatives(pairs: Sequence[tuple[str, str]], qrels: Mapping[str, Mapping[str, int]],
                        query_vectors: Mapping[str, np.ndarray], doc_ids: list[str], doc_vectors: np.ndarray,
                        num: int, range_max: int, relative_margin: float,
                        similarity: Similarity | str, fill: bool = False) -> list[list[str]]:
    """For each (query, positive): up to `num` documents among the base encoder's top `range_max`
    that are not judged relevant for the query and score below the positive's `score_ceiling`
    (those above are likely unjudged positives), best first; as sentence-transformers'
    mine_hard_negatives does, but over cached embeddings. `doc_vectors`: (n_docs, dim).
    With `fill`, see `mine_negatives`."""
    return mine_negatives(pairs, qrels, query_vectors, doc_ids, doc_vectors, num, range_max, relative_margin,
                          similarity, fill).lists


def mine_negatives(pairs: Sequence[tuple[str, str]], qrels: Mapping[str, Mapping[str, int]],
                   query_vectors: Mapping[str, np.ndarray], doc_ids: list[str], doc_vectors: np.ndarray,
                   num: int, range_max: int, relative_margin: float, similarity: Similarity | str,
                   fill: bool) -> MinedNegatives:
    """`mine_hard_negatives`, and with `fill` a pair that found fewer than `num` below the margin
    takes the next-ranked documents beyond `range_max` that are not judged relevant (searched
    range_max + num + the query's judged count deep, so that there are enough unless the corpus
    itself is short of them: then the pair keeps what exists)."""
    similarity = Similarity(similarity)
    row = {d: i for i, d in enumerate(doc_ids)}
    qids = sorted({q for q, _ in pairs})
    judged = {q: {d for d, g in qrels[q].items() if g > 0} for q in qids}
    depth = range_max + 1 + (num + max(len(j) for j in judged.values()) if fill else 0)
    hits = dict(zip(qids, exact_top(np.stack([query_vectors[q] for q in qids]), doc_ids, doc_vectors, depth,
                                    similarity), strict=True))
    # the positives' scores as the index scores the candidates, so the margin means the same for every similarity
    positives = true_scores(np.stack([query_vectors[q] for q, _ in pairs]), np.array([[row[d]] for _, d in pairs]),
                            lambda rows: np.asarray(doc_vectors)[rows], similarity)[:, 0]  # (n_pairs,)
    out, filled = [], 0
    for (q, _), pos_score in zip(pairs, positives, strict=True):
        ceiling = score_ceiling(float(pos_score), relative_margin, similarity)
        ranked = hits[q]
        found = [d for d, s in ranked[: range_max + 1] if d not in judged[q] and s < ceiling][:num]
        if fill and len(found) < num:
            beyond = [d for d, _ in ranked[range_max + 1:] if d not in judged[q]]
            found += beyond[: num - len(found)]
            filled += bool(beyond)
        out.append(found)
    return MinedNegatives(out, filled)
