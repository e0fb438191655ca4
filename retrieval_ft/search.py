"""`Retriever`: an encoder plus the index of its corpus; the object search pipelines hold.

It refuses an index built by another encoder, and when loaded from disk it takes the query-side
settings (prompt, similarity, max length) from the index sidecar, so they are never repeated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import EncodeConfig, IndexConfig
from .data import IRDataset
from .encode import CorpusEmbeddings, Encoder
from .errors import IndexMismatchError
from .index import VectorIndex, build_index, check_built_by

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .data import Document


@dataclass(frozen=True)
class Hit:
    doc_id: str
    score: float


class Retriever:
    def __init__(self, encoder: Encoder, index: VectorIndex) -> None:
        check_built_by(index.meta.get("encoder", {}), encoder.document_fingerprint, name=repr(encoder.name))
        if index.similarity is not encoder.similarity:
            raise IndexMismatchError(
                f"this index scores by {index.similarity.value} but the encoder uses {encoder.similarity.value}."
            )
        self.encoder = encoder
        self.index = index

    @classmethod
    def from_embeddings(cls, encoder: Encoder, embeddings: CorpusEmbeddings,
                        index_config: IndexConfig | None = None, *, queries: np.ndarray | None = None) -> Retriever:
        """`queries` (n, dim), when given, calibrate an approximate index (see `build_index`)."""
        index = build_index(embeddings.vectors, embeddings.ids, encoder.similarity, index_config, encoder.describe(),
                            queries=queries)
        return cls(encoder, index)

    @classmethod
    def build(cls, encoder: Encoder, docs: IRDataset | Sequence[Document] | Mapping[str, Document],
              index_config: IndexConfig | None = None, *, root: str | Path | None = None) -> Retriever:
        """Encode `docs` (through the embedding cache) and index them. Pass the IRDataset (or the
        dataset folder as `root`) when documents are page images."""
        if not isinstance(docs, IRDataset):
            docs = dict(docs) if isinstance(docs, Mapping) else list(docs)
        return cls.from_embeddings(encoder, encoder.encode_corpus(docs, root=root), index_config)

    def save(self, folder: str | Path) -> Path:
        return self.index.save(folder)

    @classmethod
    def load(cls, folder: str | Path, model: SentenceTransformer | str | None = None,
             config: EncodeConfig | None = None) -> Retriever:
        """Load a saved index and its encoder. Without `model`, the encoder recorded in the sidecar
        is loaded from its path; query settings come from the sidecar unless `config` sets them."""
        index = VectorIndex.load(folder)
        built_by = index.meta.get("encoder", {})
        config = config or EncodeConfig()
        config = replace(
            config,
            query_prompt=config.query_prompt if config.query_prompt is not None else built_by.get("query_prompt"),
            document_prompt=config.document_prompt if config.document_prompt is not None else built_by.get("document_prompt"),
            similarity=config.similarity or index.similarity,
            max_seq_length=config.max_seq_length or built_by.get("max_seq_length"),
        )
        if model is None:
            model = built_by.get("path") or built_by.get("name")
            if not model:
                raise IndexMismatchError(f"{folder}: the sidecar names no encoder; pass the model that built the index.")
        encoder = Encoder(model, config)
        return cls(encoder, index)

    def search(self, queries: str | Sequence[str], k: int = 10) -> list[list[Hit]]:
        """Top-k hits per query, best first (equal scores ordered by doc id)."""
        if isinstance(queries, str):
            queries = [queries]
        vectors = self.encoder.encode_queries(list(queries))
        return [[Hit(d, s) for d, s in hits] for hits in self.index.search(vectors, k)]

    def run(self, queries: Mapping[str, str], k: int = 100) -> dict[str, dict[str, float]]:
        """A run: query id -> {doc id: score} in rank order, for evaluation."""
        qids = list(queries)
        vectors = self.encoder.encode_queries([queries[q] for q in qids])
        return {qid: dict(hits) for qid, hits in zip(qids, self.index.search(vectors, k), strict=True)}
