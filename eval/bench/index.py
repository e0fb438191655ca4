"""Index build and search on real embeddings, from SciFact's 5,183 documents up to 1M vectors.

SciFact's corpus and its 1,109 queries are encoded with all-MiniLM-L6-v2 (through the embedding
cache); larger corpora repeat the documents with Gaussian perturbation (each copy renormalised,
cosine ~0.9 to its original), so neighbourhoods stay realistic and every vector is distinct. For
each size: exact search (our VectorIndex against a bare faiss.IndexFlatIP on the same vectors: the
plain stack), and the approximate kinds built by `build_index`, calibrated on half of the queries
and measured on the other half (recall@10 against exact search). Prints build seconds, QPS for a
batch of queries, single-query latency, index bytes and the process's peak RSS.

    .venv/bin/python eval/bench/index.py [--sizes 5183,100000,1000000] [--hnsw-max 100000]
"""

from __future__ import annotations

import argparse
import json
import time

import _common
import numpy as np


def real_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """(docs (5183, 384), queries (1109, 384)) for SciFact, encoded once and cached."""
    from retrieval_ft.config import EncodeConfig
    from retrieval_ft.data import load_dataset
    from retrieval_ft.encode import Encoder

    dataset = load_dataset(str(_common.SHARED / "scifact"))
    encoder = Encoder("all-MiniLM-L6-v2", EncodeConfig(progress=True))
    docs = encoder.encode_corpus(dataset).vectors
    queries = encoder.encode_queries(list(dataset.queries.values()))
    return docs, queries


def grow(docs: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`n` vectors: the originals, then perturbed copies, each unit length."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, docs.shape[1]), dtype=np.float32)
    out[: len(docs)] = docs[:n]
    for start in range(len(docs), n, len(docs)):
        stop = min(n, start + len(docs))
        block = docs[: stop - start] + rng.normal(0, 0.5 / np.sqrt(docs.shape[1]), (stop - start, docs.shape[1])).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed_search(search, queries: np.ndarray, k: int = 10) -> tuple[float, float]:
    """(QPS for the whole batch, median single-query latency in ms over 100 queries)."""
    start = time.perf_counter()
    search(queries, k)
    qps = len(queries) / (time.perf_counter() - start)
    lat = []
    for q in queries[:100]:
        start = time.perf_counter()
        search(q[None], k)
        lat.append(time.perf_counter() - start)
    return qps, float(np.median(lat) * 1000)


def index_bytes(index) -> int:
    import faiss

    return int(faiss.serialize_index(index).nbytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5183,100000,1000000")
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="largest size to build HNSW for (slow on 2 cores)")
    parser.add_argument("--ivfpq-min", type=int, default=100_000, help="smallest size to build IVF-PQ for")
    parser.add_argument("--json", help="write the figures here (default eval/results/perf/index.json)")
    args = parser.parse_args()

    import faiss

    from retrieval_ft.config import IndexConfig, Similarity
    from retrieval_ft.index import build_index, exact_neighbors, recall_at, true_scores

    docs, queries = real_embeddings()
    calib, held_out = queries[: len(queries) // 2], queries[len(queries) // 2:]
    print(f"SciFact: {len(docs)} documents, {len(queries)} queries ({len(calib)} calibrate, {len(held_out)} measure), "
          f"dim {docs.shape[1]}")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        vectors = grow(docs, n)
        ids = [str(i) for i in range(n)]
        truth_scores, truth = exact_neighbors(held_out, vectors, 10, Similarity.COSINE)

        plain = faiss.IndexFlatIP(vectors.shape[1])
        start = time.perf_counter()
        plain.add(vectors)
        plain_build = time.perf_counter() - start
        plain_qps, plain_ms = timed_search(plain.search, held_out)
        rows.append({"n": n, "kind": "faiss IndexFlatIP (plain)", "build_s": plain_build, "qps": plain_qps,
                     "latency_ms": plain_ms, "recall@10": 1.0, "bytes": index_bytes(plain), "peak_rss_mb": _common.peak_rss_mb()})
        del plain
        kinds = ["flat", "ivf"] + (["hnsw"] if n <= args.hnsw_max else []) + (["ivfpq"] if n >= args.ivfpq_min else [])
        for kind in kinds:
            start = time.perf_counter()
            built = build_index(vectors, ids, Similarity.COSINE, IndexConfig(kind=kind), queries=calib)
            build_s = time.perf_counter() - start
            qps, ms = timed_search(built.search, held_out)
            _, approx = built.index.search(held_out, 10)
            cal = built.meta.get("calibration", {})
            rows.append({"n": n, "kind": f"ours {kind}", "build_s": build_s, "qps": qps, "latency_ms": ms,
                         "recall@10": recall_at(approx, truth, None, 10,
                                                true_scores(held_out, approx, vectors.__getitem__, Similarity.COSINE),
                                                truth_scores),
                         "bytes": index_bytes(built.index),
                         "params": built.meta["params"], "calibrated_recall@10": cal.get("recall@10"),
                         "peak_rss_mb": _common.peak_rss_mb()})
            del built
        for r in rows[-len(kinds) - 1:]:
            print(f"{r['n']:>9,} {r['kind']:<26} build {r['build_s']:7.1f} s  {r['qps']:8.0f} QPS  {r['latency_ms']:7.2f} ms/query  "
                  f"recall@10 {r['recall@10']:.3f}  {r['bytes'] / 2**20:8.1f} MB  peak RSS {r['peak_rss_mb']:7.0f} MB  "
                  f"{json.dumps(r.get('params', {}))}", flush=True)
        del vectors
    _common.save("index", {"documents": len(docs), "queries": len(queries), "calibration_queries": len(calib),
                           "rows": rows}, args.json)


if __name__ == "__main__":
    main()
