"""FAISS indexes over document vectors, saved with a JSON sidecar that says what built them.

The sidecar (`index.json`) holds the encoder's name, fingerprint and settings, the dimension,
metric, normalisation, index parameters and the document ids in index order; loading an index for
a different encoder is refused. This module does not encode: it takes vectors.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_dir
from .config import IndexConfig, IndexKind, Similarity
from .errors import DataError, IndexMismatchError

INDEX_FILE = "index.faiss"
SIDECAR = "index.json"
FORMAT = 1


def _faiss() -> Any:
    import faiss

    return faiss


@dataclass
class VectorIndex:
    index: Any  # a faiss.Index
    ids: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def similarity(self) -> Similarity:
        return Similarity(self.meta["similarity"])

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top-k (doc id, score) per query vector, best first; equal scores are ordered by doc id.

        `vectors`: (n_queries, dim). Scores are inner products (cosine, dot) or negative squared L2
        distances (euclidean), so higher is always better.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.index.d:
            raise IndexMismatchError(f"query vectors have shape {vectors.shape}; this index holds {self.index.d}-d vectors.")
        k = min(k, len(self.ids))
        scores, positions = self.index.search(vectors, k)  # (n_queries, k) each
        if self.similarity is Similarity.EUCLIDEAN:
            scores = -scores
        out = []
        for row_scores, row_pos in zip(scores, positions, strict=True):
            hits = [(self.ids[p], float(s)) for s, p in zip(row_scores, row_pos, strict=True) if p >= 0]
            hits.sort(key=lambda h: (-h[1], h[0]))
            out.append(hits)
        return out

    def save(self, folder: str | Path) -> Path:
        """Write `index.faiss` and `index.json` into `folder`, replacing it as a whole (atomic)."""
        folder = Path(folder)
        faiss = _faiss()
        with atomic_dir(folder) as tmp:
            faiss.write_index(self.index, str(tmp / INDEX_FILE))
            sidecar = {**self.meta, "format": FORMAT, "n_docs": len(self.ids), "dim": int(self.index.d), "ids": self.ids}
            (tmp / SIDECAR).write_text(json.dumps(sidecar, sort_keys=True) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path, expect_fingerprint: str | None = None) -> VectorIndex:
        """Read an index; `expect_fingerprint` (an encoder's document fingerprint) must match its builder's."""
        folder = Path(folder)
        sidecar, index_file = folder / SIDECAR, folder / INDEX_FILE
        if not sidecar.is_file() or not index_file.is_file():
            raise DataError(f"{folder}: not an index folder (needs {INDEX_FILE} and {SIDECAR}); build one with Retriever.save().")
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            ids = meta.pop("ids")
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as exc:
            raise DataError(f"{sidecar}: corrupt index sidecar ({exc}); rebuild the index.") from None
        built_by = meta.get("encoder", {})
        if expect_fingerprint is not None and (built_by.get("document_fingerprint") or built_by.get("fingerprint")) != expect_fingerprint:
            raise IndexMismatchError(
                f"{folder}: this index was built by encoder {built_by.get('name')!r} (fingerprint "
                f"{str(built_by.get('fingerprint'))[:12]}), not by the encoder given (fingerprint {expect_fingerprint[:12]}). "
                "Rebuild the index with this encoder, or search with the encoder that built it."
            )
        try:
            index = _faiss().read_index(str(index_file))
        except RuntimeError as exc:
            raise DataError(f"{index_file}: cannot be read as a FAISS index ({str(exc).splitlines()[0]}); rebuild it.") from None
        if index.ntotal != len(ids):
            raise DataError(f"{folder}: the index holds {index.ntotal} vectors but the sidecar lists {len(ids)} ids; rebuild it.")
        return cls(index=index, ids=ids, meta=meta)


def build_index(vectors: np.ndarray, ids: list[str], similarity: Similarity, config: IndexConfig | None = None,
                encoder: dict[str, Any] | None = None) -> VectorIndex:
    """An index over `vectors` (n_docs, dim), whose rows are the documents `ids`."""
    config = config or IndexConfig()
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(ids):
        raise ValueError(f"vectors {vectors.shape} do not match {len(ids)} ids")
    if len(set(ids)) != len(ids):
        raise ValueError("document ids must be unique")
    n, dim = vectors.shape
    metric = faiss.METRIC_L2 if similarity is Similarity.EUCLIDEAN else faiss.METRIC_INNER_PRODUCT
    params: dict[str, Any] = {}
    if config.kind is IndexKind.FLAT:
        index = faiss.IndexFlat(dim, metric)
    elif config.kind is IndexKind.HNSW:
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, metric)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        index.hnsw.efSearch = config.hnsw_ef_search
        params = {"m": config.hnsw_m, "ef_construction": config.hnsw_ef_construction, "ef_search": config.hnsw_ef_search}
    else:
        nlist = config.ivf_nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
        nlist = min(nlist, n)
        quantizer = faiss.IndexFlat(dim, metric)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
        index.train(vectors)
        index.nprobe = min(config.ivf_nprobe, nlist)
        params = {"nlist": nlist, "nprobe": index.nprobe}
    index.add(vectors)
    meta = {"kind": config.kind.value, "params": params, "similarity": similarity.value,
            "normalized": similarity is Similarity.COSINE, "encoder": encoder or {}}
    return VectorIndex(index=index, ids=list(ids), meta=meta)
