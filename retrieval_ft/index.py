"""FAISS indexes over document vectors, saved with a JSON sidecar that says what built them.

The sidecar (`index.json`) holds the encoder's name, fingerprint and settings, the dimension,
metric, normalisation, index parameters and the document ids in index order; loading an index for
a different encoder is refused, and so is a sidecar that is not what `save` wrote or does not
describe the FAISS file beside it (`Sidecar`). This module does not encode: it takes vectors.
"""

from __future__ import annotations

import json
import logging
import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_dir, read_json_object
from .config import IndexConfig, IndexKind, Similarity
from .data.records import check_unique_ids, json_field, json_ids
from .errors import ConfigError, DataError, IndexMismatchError, where

logger = logging.getLogger(__name__)

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
        # FAISS returns each row best first; only rows with equal scores need sorting (by doc id)
        tied = (scores[:, 1:] == scores[:, :-1]).any(axis=1) if k > 1 else np.zeros(len(scores), dtype=bool)
        ids, out = self.ids, []
        for row_scores, row_pos, row_tied in zip(scores.tolist(), positions.tolist(), tied.tolist(), strict=True):
            hits = [(ids[p], s) for s, p in zip(row_scores, row_pos, strict=True) if p >= 0]
            if row_tied:
                hits.sort(key=lambda h: (-h[1], h[0]))
            out.append(hits)
        return out

    def save(self, folder: str | Path) -> Path:
        """Write `index.faiss` and `index.json` into `folder`, replacing it as a whole (atomic)."""
        folder = Path(folder)
        faiss = _faiss()
        with atomic_dir(folder) as tmp:
            faiss.write_index(self.index, str(tmp / INDEX_FILE))
            sidecar = Sidecar.from_dict({**self.meta, "format": FORMAT, "n_docs": len(self.ids), "dim": int(self.index.d),
                                         "ids": self.ids}, folder / SIDECAR)  # only what `load` accepts
            (tmp / SIDECAR).write_text(json.dumps(sidecar.to_dict(), sort_keys=True) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path, expect_fingerprint: str | None = None) -> VectorIndex:
        """Read an index; `expect_fingerprint` (an encoder's document fingerprint) must match its builder's.

        A sidecar that is not what `save` writes, or that does not describe the FAISS file beside it,
        raises DataError naming the file and the field (see `Sidecar`)."""
        folder = Path(folder)
        sidecar_path, index_file = folder / SIDECAR, folder / INDEX_FILE
        if not sidecar_path.is_file() or not index_file.is_file():
            raise DataError(f"{folder}: not an index folder (needs {INDEX_FILE} and {SIDECAR}); build one with Retriever.save().")
        sidecar = Sidecar.from_dict(read_json_object(sidecar_path, _REBUILD, what="retrieval-ft index sidecar"),
                                   sidecar_path)
        if expect_fingerprint is not None:
            check_built_by(sidecar.encoder, expect_fingerprint, f"{folder}: ")
        try:
            index = _faiss().read_index(str(index_file))
        except RuntimeError as exc:
            raise DataError(f"{index_file}: cannot be read as a FAISS index ({str(exc).splitlines()[0]}); rebuild it.") from None
        sidecar.check_describes(index, sidecar_path)
        return cls(index=index, ids=sidecar.ids, meta=sidecar.meta())


_REBUILD = "rebuild the index (Retriever.save, `retrieval-ft evaluate --save-index` or `retrieval-ft index`)"
_OPTIONAL_STR = (str, type(None))
# encoder fields that loading reads, and the JSON types each may hold
_ENCODER_FIELDS: dict[str, tuple[type, ...]] = {
    "name": _OPTIONAL_STR, "path": _OPTIONAL_STR, "fingerprint": _OPTIONAL_STR, "document_fingerprint": _OPTIONAL_STR,
    "query_prompt": _OPTIONAL_STR, "document_prompt": _OPTIONAL_STR, "max_seq_length": (int, type(None)),
}
_KINDS = {IndexKind.FLAT: "IndexFlat", IndexKind.HNSW: "IndexHNSWFlat", IndexKind.IVF: "IndexIVFFlat",
          IndexKind.IVFPQ: "IndexIVFPQ"}  # the FAISS class each kind of index is built as


def _field(data: dict[str, Any], name: str, types: tuple[type, ...], path: Path, expected: str,
           label: str | None = None) -> Any:
    return json_field(data, name, types, expected, path=path, fix=_REBUILD, label=label)


def _choice(data: dict[str, Any], name: str, choices: list[str], path: Path) -> str:
    value = _field(data, name, (str,), path, f"one of {', '.join(choices)}")
    if value not in choices:
        raise DataError(f"{where(path, field=name)}: unknown {name} {reprlib.repr(value)}; expected one of "
                        f"{', '.join(choices)}; {_REBUILD}.")
    return value


@dataclass(frozen=True)
class Sidecar:
    """`index.json`, what `VectorIndex.save` writes beside `index.faiss`: what built the index and
    its document ids in index order. The JSON keys are the ones users read; `extra` keeps the
    others (chosen, calibration, built_from) as they were written."""

    kind: IndexKind
    similarity: Similarity
    dim: int
    ids: list[str]
    params: dict[str, Any]
    encoder: dict[str, Any]
    normalized: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        """Every key but `ids`: `VectorIndex.meta`."""
        return {**self.extra, "format": FORMAT, "kind": self.kind.value, "similarity": self.similarity.value,
                "dim": self.dim, "n_docs": len(self.ids), "params": self.params, "encoder": self.encoder,
                "normalized": self.normalized}

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta(), "ids": self.ids}

    @classmethod
    def from_dict(cls, data: object, path: Path) -> Sidecar:
        """The sidecar read from `path`; anything `save` would not have written raises DataError
        naming `path` and the field."""
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object (the index sidecar), got {type(data).__name__}; {_REBUILD}.")
        fmt = _field(data, "format", (int,), path, f"format {FORMAT}")
        if fmt != FORMAT:
            raise DataError(f"{where(path, field='format')}: unknown format {fmt!r}; this version reads format "
                            f"{FORMAT}; {_REBUILD}.")
        kind = IndexKind(_choice(data, "kind", [k.value for k in _KINDS], path))
        similarity = Similarity(_choice(data, "similarity", [s.value for s in Similarity], path))
        dim = _field(data, "dim", (int,), path, "the vector dimension, a positive integer")
        if dim < 1:
            raise DataError(f"{where(path, field='dim')}: expected a positive integer, got {dim}; {_REBUILD}.")
        ids = json_ids(data, "ids", path=path, fix=_REBUILD)
        if _field(data, "n_docs", (int,), path, "the number of ids") != len(ids):
            raise DataError(f"{where(path, field='n_docs')}: says {data['n_docs']} documents but 'ids' lists "
                            f"{len(ids)}; {_REBUILD}.")
        encoder = _field(data, "encoder", (dict,), path, "a mapping describing the encoder")
        for name, types in _ENCODER_FIELDS.items():
            if name in encoder:
                _field(encoder, name, types, path, "a string" if types is _OPTIONAL_STR else "an integer", f"encoder.{name}")
        known = {"format", "kind", "similarity", "dim", "ids", "n_docs", "params", "encoder", "normalized"}
        return cls(kind=kind, similarity=similarity, dim=dim, ids=ids,
                   params=_field(data, "params", (dict,), path, "a mapping of index parameters"), encoder=encoder,
                   normalized=_field(data, "normalized", (bool,), path, "true or false"),
                   extra={k: v for k, v in data.items() if k not in known})

    def check_describes(self, index: Any, path: Path) -> None:
        """Raise DataError unless this sidecar describes the FAISS `index` read beside it: as many
        vectors as ids, of `dim`, in an index of `kind` scored by `similarity`'s metric."""
        faiss = _faiss()
        if index.ntotal != len(self.ids):
            raise DataError(f"{where(path, field='ids')}: lists {len(self.ids)} ids but {INDEX_FILE} holds "
                            f"{index.ntotal} vectors; {_REBUILD}.")
        if index.d != self.dim:
            raise DataError(f"{where(path, field='dim')}: says {self.dim}-d vectors but {INDEX_FILE} holds "
                            f"{index.d}-d; {_REBUILD}.")
        if not isinstance(index, getattr(faiss, _KINDS[self.kind])):
            raise DataError(f"{where(path, field='kind')}: says {self.kind.value!r} but {INDEX_FILE} is a "
                            f"{type(index).__name__}; {_REBUILD}.")
        if index.metric_type != faiss_metric(self.similarity):
            raise DataError(f"{where(path, field='similarity')}: says {self.similarity.value!r}, which {INDEX_FILE} "
                            f"does not score by; {_REBUILD}.")


def check_built_by(built_by: dict[str, Any], fingerprint: str, prefix: str = "", name: str = "the encoder given") -> None:
    """Raise IndexMismatchError unless the encoder an index records (`built_by`, its sidecar's
    `encoder`) has the document `fingerprint` of the encoder about to search it. An index that
    records no fingerprint is not checked."""
    recorded = built_by.get("document_fingerprint") or built_by.get("fingerprint")
    if recorded is not None and recorded != fingerprint:
        raise IndexMismatchError(
            f"{prefix}this index was built by encoder {built_by.get('name')!r} (document fingerprint {recorded[:12]}), "
            f"not by {name} ({fingerprint[:12]}); rebuild the index with this encoder, or search with the encoder "
            "that built it."
        )


def resolve_kind(config: IndexConfig, n_docs: int) -> IndexKind:
    """The index kind to build for `n_docs` documents: `auto` is exact search up to
    `config.exact_max_docs`, IVF beyond."""
    if config.kind is not IndexKind.AUTO:
        return config.kind
    return IndexKind.FLAT if n_docs <= config.exact_max_docs else IndexKind.IVF


def faiss_metric(similarity: Similarity) -> int:
    """The FAISS metric that scores `similarity`: L2 for euclidean, inner product otherwise."""
    faiss = _faiss()
    return faiss.METRIC_L2 if similarity is Similarity.EUCLIDEAN else faiss.METRIC_INNER_PRODUCT


def default_nlist(n_docs: int) -> int:
    """About 4 * sqrt(n) cells, with at least 39 training vectors a cell (FAISS's minimum)."""
    return max(1, min(int(4 * math.sqrt(n_docs)), n_docs // 39))


def default_pq_m(dim: int) -> int:
    """The largest divisor of `dim` up to dim / 4: codes of at most dim / 4 bytes, 16x smaller than float32."""
    return max(m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0)


def new_index(kind: IndexKind, dim: int, similarity: Similarity, config: IndexConfig, *, n_docs: int,
              train_sample: np.ndarray | None = None) -> tuple[Any, dict[str, Any]]:
    """An empty FAISS index of `kind` (not auto), trained on `train_sample` (n, dim) when it needs
    training, and its build parameters. Vectors are added by the caller, in one go or shard by shard."""
    faiss = _faiss()
    metric = faiss_metric(similarity)
    if kind is IndexKind.FLAT:
        return faiss.IndexFlat(dim, metric), {}
    if kind is IndexKind.HNSW:
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, metric)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        index.hnsw.efSearch = config.hnsw_ef_search or 128
        return index, {"m": config.hnsw_m, "ef_construction": config.hnsw_ef_construction}
    if kind not in (IndexKind.IVF, IndexKind.IVFPQ):
        raise ConfigError(f"cannot build an index of kind {kind.value!r}; resolve 'auto' first (resolve_kind).")
    if train_sample is None or len(train_sample) == 0:
        raise ConfigError(f"a {kind.value} index needs documents to train on; this corpus has none.")
    nlist = min(config.ivf_nlist or default_nlist(n_docs), len(train_sample))
    quantizer = faiss.IndexFlat(dim, metric)
    params: dict[str, Any] = {"nlist": nlist, "trained_on": int(len(train_sample))}
    if kind is IndexKind.IVF:
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
    else:
        pq_m = config.pq_m or default_pq_m(dim)
        if dim % pq_m:
            divisors = [m for m in range(1, dim + 1) if dim % m == 0]
            raise ConfigError(f"pq_m={pq_m} must divide the vector dimension {dim}; choose one of {divisors}.")
        if len(train_sample) < 256:
            raise ConfigError(f"an ivfpq index learns 256 codes per sub-vector and needs at least 256 documents "
                              f"(about 10,000 for good codes); this corpus has {len(train_sample)}: use 'ivf' or 'flat'.")
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, 8, metric)
        params["pq_m"] = pq_m
    index.train(np.ascontiguousarray(train_sample, dtype=np.float32))
    index.nprobe = min(config.ivf_nprobe or 16, nlist)
    return index, params


def training_sample_size(kind: IndexKind, config: IndexConfig, n_docs: int) -> int:
    """How many vectors to train an IVF quantiser on: 64 a cell, at least 256 a PQ code."""
    nlist = config.ivf_nlist or default_nlist(n_docs)
    want = 64 * nlist if kind is IndexKind.IVF else max(64 * nlist, 256 * 256)
    return min(n_docs, want)


def exact_neighbors(queries: np.ndarray, vectors: np.ndarray, k: int,
                    similarity: Similarity) -> tuple[np.ndarray, np.ndarray]:
    """(scores, positions), each (n_queries, k): each query's exact top-k rows of `vectors` (n, dim),
    best first; scores are higher-is-better (negative squared distances for euclidean)."""
    faiss = _faiss()
    scores, positions = faiss.knn(np.ascontiguousarray(queries, dtype=np.float32),
                                  np.ascontiguousarray(vectors, dtype=np.float32), k, metric=faiss_metric(similarity))
    return (-scores if similarity is Similarity.EUCLIDEAN else scores), positions


def true_scores(queries: np.ndarray, positions: np.ndarray, rows: Callable[[np.ndarray], np.ndarray],
                similarity: Similarity) -> np.ndarray:
    """(n_queries, depth) exact higher-is-better scores of the rows at `positions` (-1: -inf)."""
    wanted = np.unique(positions[positions >= 0])
    out = np.full(positions.shape, -np.inf, dtype=np.float64)
    if not len(wanted):
        return out
    vectors = rows(wanted).astype(np.float64)  # (len(wanted), dim), in `wanted` order
    where = np.searchsorted(wanted, np.where(positions >= 0, positions, wanted[0]))
    for i, q in enumerate(np.asarray(queries, dtype=np.float64)):
        picked = vectors[where[i]]
        scores = -((picked - q) ** 2).sum(axis=1) if similarity is Similarity.EUCLIDEAN else picked @ q
        out[i] = np.where(positions[i] >= 0, scores, -np.inf)
    return out


def per_query_recall(approx: np.ndarray, truth: np.ndarray, exclude: np.ndarray | None, k: int,
                     approx_scores: np.ndarray | None = None, truth_scores: np.ndarray | None = None,
                     tolerance: float = 1e-5) -> np.ndarray:
    """(n_queries,) share of each query's exact top-k (positions) that the approximate top-k found,
    leaving out its own row `exclude` (sample queries that are corpus vectors trivially find
    themselves). With exact scores for both lists, a returned row that scores as high as the k-th
    exact one (within `tolerance`) counts as found: among equal scores, which rows fill the last
    places is arbitrary (duplicates), as in faiss's contrib/evaluation."""
    out = np.ones(len(truth))
    for i in range(len(truth)):
        skip = -1 if exclude is None else exclude[i]
        keep_t = [j for j, p in enumerate(truth[i]) if p != skip and p >= 0][:k]
        keep_a = [j for j, p in enumerate(approx[i]) if p != skip and p >= 0][:k]
        if not keep_t:
            continue
        exact = {int(truth[i][j]) for j in keep_t}
        if approx_scores is None or truth_scores is None:
            found = sum(int(approx[i][j]) in exact for j in keep_a)
        else:
            kth = truth_scores[i][keep_t[-1]]
            found = sum(int(approx[i][j]) in exact or approx_scores[i][j] >= kth - tolerance * max(1.0, abs(kth))
                        for j in keep_a)
        out[i] = min(found, len(keep_t)) / len(keep_t)
    return out


def recall_at(approx: np.ndarray, truth: np.ndarray, exclude: np.ndarray | None, k: int,
              approx_scores: np.ndarray | None = None, truth_scores: np.ndarray | None = None) -> float:
    """Mean recall@k of the approximate results against the exact ones (see `per_query_recall`)."""
    if not len(truth):
        return 1.0
    return float(per_query_recall(approx, truth, exclude, k, approx_scores, truth_scores).mean())


def _set_search_param(index: Any, kind: IndexKind, value: int) -> None:
    if kind is IndexKind.HNSW:
        index.hnsw.efSearch = value
    else:
        index.nprobe = value


def calibrate_search(index: Any, kind: IndexKind, queries: np.ndarray, truth: np.ndarray, *,
                     exclude: np.ndarray | None = None, target: float = 0.98, k: int = 10,
                     fixed: int | None = None, truth_scores: np.ndarray | None = None,
                     rows: Callable[[np.ndarray], np.ndarray] | None = None,
                     similarity: Similarity = Similarity.COSINE) -> dict[str, Any]:
    """Set the search parameter (HNSW efSearch, IVF nprobe) to the smallest value whose recall@k
    against the exact `truth` (n_queries, >= k positions) reaches `target`, and return what was
    measured. The target must be reached by the lower end of the 95 % interval of the mean (mean
    - 1.96 standard errors over the queries), so that other queries like these reach it too: on
    SciFact, values chosen on the mean alone gave 0.963-0.974 on held-out queries. With `fixed`,
    that value is kept and only its recall is measured. With `truth_scores` and `rows` (positions
    -> vectors), rows that tie the k-th exact score count as found (see `per_query_recall`)."""
    param = "ef_search" if kind is IndexKind.HNSW else "nprobe"
    limit = 4096 if kind is IndexKind.HNSW else index.nlist
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    depth = truth.shape[1]
    measured: dict[int, tuple[float, float]] = {}  # value -> (mean recall, lower end of its 95 % interval)

    def recall(value: int) -> float:
        """The lower end, which decides."""
        if value not in measured:
            _set_search_param(index, kind, value)
            _, approx = index.search(queries, depth)
            scored = truth_scores is not None and rows is not None
            approx_scores = true_scores(queries, approx, rows, similarity) if scored else None
            per_query = per_query_recall(approx, truth, exclude, k, approx_scores, truth_scores)
            spread = 1.96 * per_query.std(ddof=1) / np.sqrt(len(per_query)) if len(per_query) > 1 else 0.0
            measured[value] = (float(per_query.mean()), float(per_query.mean() - spread))
        return measured[value][1]

    if fixed is not None:
        value = fixed if kind is IndexKind.HNSW else min(fixed, limit)  # nprobe cannot exceed nlist
        reached = recall(value) >= target
    else:
        # HNSW searches max(efSearch, k) candidates, so values below k are not worth trying
        floor = k - 1 if kind is IndexKind.HNSW else 0
        low, value = floor, min(floor + 1, limit)
        while recall(value) < target and value < limit:  # double, then bisect between the last miss and the first hit
            if low > floor and measured[value][0] - measured[low][0] < 0.001:
                value = low  # a plateau (PQ codes cap recall): searching more cells buys nothing
                break
            low, value = value, min(value * 2, limit)
        reached = recall(value) >= target
        while reached and value - low > 1:
            mid = (low + value) // 2
            if recall(mid) >= target:
                value = mid
            else:
                low = mid
    _set_search_param(index, kind, value)
    mean, lower = measured[value]
    if not reached:
        logger.warning("%s index: recall@%d reaches only %.3f (95 %% interval from %.3f; target %.2f) at %s=%d.",
                       kind.value, k, mean, lower, target, param, value)
    return {"param": param, "value": int(value), f"recall@{k}": round(mean, 4), f"recall@{k}_lower95": round(lower, 4),
            "target": target, "reached": bool(reached), "queries": int(len(queries)), "fixed": fixed is not None,
            "curve": [[v, round(m, 4), round(lo, 4)] for v, (m, lo) in sorted(measured.items())]}


def finish_index(index: Any, kind: IndexKind, params: dict[str, Any], similarity: Similarity, config: IndexConfig,
                 ids: list[str], encoder: dict[str, Any] | None, *, rng: np.random.Generator,
                 rows: Callable[[np.ndarray], np.ndarray],
                 neighbors: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
                 queries: np.ndarray | None = None) -> VectorIndex:
    """Wrap a filled FAISS index as a VectorIndex, calibrating an approximate one first.

    `rows(positions)` returns the corpus rows at sorted `positions` (n, dim) and
    `neighbors(queries, depth)` the queries' exact top-`depth` (scores, positions), so vectors held in memory and vectors read part by part from
    shards are calibrated the same way. The search parameter the config leaves unset is raised
    until recall@10 against exact search reaches `config.target_recall` on `queries` (real
    queries, the better sample) or else on a seeded sample of corpus rows, each leaving itself out.
    Corpus rows are easier queries than real ones, so that estimate can run high: pass real
    queries when there are some.
    """
    n = len(ids)
    meta: dict[str, Any] = {"kind": kind.value, "params": params, "similarity": similarity.value,
                            "normalized": similarity is Similarity.COSINE, "encoder": encoder or {}}
    if config.kind is IndexKind.AUTO:
        meta["chosen"] = f"auto: {n:,} documents {'<=' if kind is IndexKind.FLAT else '>'} exact_max_docs {config.exact_max_docs:,}"
    if kind is not IndexKind.FLAT and n > 1:
        k = min(10, n - 1)
        exclude: np.ndarray | None
        if queries is not None and len(queries):
            sample = np.ascontiguousarray(queries, dtype=np.float32)
            if len(sample) > config.calibration_queries:
                sample = sample[np.sort(rng.choice(len(sample), config.calibration_queries, replace=False))]
            exclude, source, depth = None, "queries", k
        else:
            exclude = np.sort(rng.choice(n, min(config.calibration_queries, n), replace=False))
            sample, source, depth = rows(exclude), "corpus sample", k + 1
        fixed = config.hnsw_ef_search if kind is IndexKind.HNSW else config.ivf_nprobe
        truth_scores, truth = neighbors(sample, depth)
        calibration = calibrate_search(index, kind, sample, truth, exclude=exclude, target=config.target_recall,
                                       k=k, fixed=fixed, truth_scores=truth_scores, rows=rows, similarity=similarity)
        calibration["queries_from"] = source
        params[calibration["param"]] = calibration["value"]
        meta["calibration"] = calibration
    return VectorIndex(index=index, ids=list(ids), meta=meta)


def build_index(vectors: np.ndarray, ids: list[str], similarity: Similarity, config: IndexConfig | None = None,
                encoder: dict[str, Any] | None = None, *, queries: np.ndarray | None = None) -> VectorIndex:
    """An index over `vectors` (n_docs, dim), whose rows are the documents `ids`; the kind resolved
    from `config` (auto: exact up to `exact_max_docs`), approximate kinds calibrated on `queries`
    (n, dim) or a sample of the documents (see `finish_index`); what was measured is kept in
    `meta["calibration"]`."""
    config = config or IndexConfig()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(ids):
        raise DataError(f"cannot index vectors of shape {vectors.shape} under {len(ids)} document ids; "
                        "pass one row (n_docs, dim) per id.")
    check_unique_ids(ids, "the document ids")
    n, dim = vectors.shape
    kind = resolve_kind(config, n)
    rng = np.random.default_rng(0)  # build_index_from_shards draws the same, so both build alike
    sample = None
    if kind in (IndexKind.IVF, IndexKind.IVFPQ):
        size = training_sample_size(kind, config, n)
        sample = vectors if size >= n else vectors[np.sort(rng.choice(n, size, replace=False))]
    index, params = new_index(kind, dim, similarity, config, n_docs=n, train_sample=sample)
    index.add(vectors)
    return finish_index(index, kind, params, similarity, config, ids, encoder, rng=rng,
                        rows=lambda positions: vectors[positions],
                        neighbors=lambda sample, depth: exact_neighbors(sample, vectors, depth, similarity),
                        queries=queries)
