"""FAISS indexes (exact vs approximate, save/load, encoder checks) and the Retriever."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval_ft.config import EncodeConfig, IndexConfig, IndexKind, Similarity
from retrieval_ft.data import load_dataset
from retrieval_ft.encode import Encoder
from retrieval_ft.errors import ConfigError, DataError, IndexMismatchError
from retrieval_ft.index import VectorIndex, build_index, new_index
from retrieval_ft.search import Retriever


def _vectors(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    """Vectors around 30 centres, as embeddings of a corpus with topics are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, d))
    x = (centres[rng.integers(0, 30, n)] + 0.4 * rng.standard_normal((n, d))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_equals_brute_force():
    docs, queries = _vectors(500), _vectors(20, seed=1)
    ids = [f"d{i}" for i in range(500)]
    hits = build_index(docs, ids, Similarity.COSINE).search(queries, 10)
    exact = queries @ docs.T
    for q, row in enumerate(hits):
        expected = np.sort(exact[q])[::-1][:10]
        np.testing.assert_allclose([s for _, s in row], expected, rtol=1e-5)
        for doc_id, score in row:
            assert exact[q, int(doc_id[1:])] == pytest.approx(score, abs=1e-5)


def test_euclidean_scores_are_negative_squared_distances():
    docs, queries = _vectors(100), _vectors(3, seed=2)
    hits = build_index(docs, [str(i) for i in range(100)], Similarity.EUCLIDEAN).search(queries, 5)
    d2 = ((queries[:, None, :] - docs[None]) ** 2).sum(-1)
    for q, row in enumerate(hits):
        np.testing.assert_allclose([-s for _, s in row], np.sort(d2[q])[:5], rtol=1e-4)


def _recall(approx: list, exact: list) -> float:
    return float(np.mean([len({d for d, _ in a} & {d for d, _ in e}) / 10 for a, e in zip(approx, exact, strict=True)]))


@pytest.mark.parametrize("kind", [IndexKind.HNSW, IndexKind.IVF])
def test_approximate_indexes_are_calibrated_to_the_target_recall(kind: IndexKind, tmp_path: Path):
    both = _clustered(3100, seed=3)
    docs, queries = both[:3000], both[3000:]
    ids = [str(i) for i in range(3000)]
    exact = build_index(docs, ids, Similarity.COSINE).search(queries, 10)
    approx = build_index(docs, ids, Similarity.COSINE, IndexConfig(kind=kind, target_recall=0.98))
    calibration = approx.meta["calibration"]
    assert calibration["reached"] and calibration["recall@10"] >= 0.98
    # the smallest value that reaches the target: one less was measured and missed it
    assert calibration["recall@10_lower95"] >= 0.98
    lower = {value: low for value, _mean, low in calibration["curve"]}
    value = calibration["value"]
    assert approx.meta["params"][calibration["param"]] == value
    assert min(lower) == value or lower[value - 1] < 0.98
    # calibrated on corpus rows, held-out queries land a little lower; calibrated on queries like
    # them, they reach the target
    assert _recall(approx.search(queries[50:], 10), exact[50:]) >= 0.9
    on_queries = build_index(docs, ids, Similarity.COSINE, IndexConfig(kind=kind), queries=queries[:50])
    assert on_queries.meta["calibration"]["queries_from"] == "queries"
    assert on_queries.meta["calibration"]["queries"] == 50
    assert _recall(on_queries.search(queries[50:], 10), exact[50:]) >= 0.95
    # the chosen setting survives a save and load
    approx.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx")
    assert loaded.meta["calibration"] == calibration
    assert loaded.search(queries, 10) == approx.search(queries, 10)


def test_a_fixed_search_parameter_is_kept_and_its_recall_reported():
    docs = _clustered(2000, seed=5)
    index = build_index(docs, [str(i) for i in range(2000)], Similarity.COSINE, IndexConfig(kind="ivf", ivf_nprobe=1))
    calibration = index.meta["calibration"]
    assert (index.index.nprobe, calibration["value"], calibration["fixed"]) == (1, 1, True)
    assert calibration["curve"] == [[1, calibration["recall@10"], calibration["recall@10_lower95"]]]
    assert calibration["recall@10_lower95"] < calibration["recall@10"]


def test_auto_is_exact_for_small_corpora_and_ivf_beyond(caplog: pytest.LogCaptureFixture):
    docs = _clustered(2000, seed=6)
    ids = [str(i) for i in range(2000)]
    small = build_index(docs, ids, Similarity.COSINE)
    assert small.meta["kind"] == "flat" and "calibration" not in small.meta
    assert small.meta["chosen"] == "auto: 2,000 documents <= exact_max_docs 100,000"
    large = build_index(docs, ids, Similarity.COSINE, IndexConfig(exact_max_docs=500))
    assert large.meta["kind"] == "ivf" and large.meta["calibration"]["reached"]
    assert large.meta["chosen"] == "auto: 2,000 documents > exact_max_docs 500"


def test_ivfpq_reports_the_recall_its_codes_allow(caplog: pytest.LogCaptureFixture):
    docs = _clustered(3000, seed=7)
    with caplog.at_level("WARNING"):
        index = build_index(docs, [str(i) for i in range(3000)], Similarity.COSINE, IndexConfig(kind="ivfpq", pq_m=4))
    calibration = index.meta["calibration"]
    assert index.meta["params"]["pq_m"] == 4 and index.index.pq.M == 4
    # 4-byte codes of 32-d vectors cannot reach 0.98: said, and stopped at the plateau instead of
    # searching every cell
    assert not calibration["reached"] and "reaches only" in caplog.text
    assert calibration["value"] < index.meta["params"]["nlist"]
    with pytest.raises(ConfigError, match=r"pq_m=5 must divide the vector dimension 32; choose one of \[1, 2, 4, 8, 16, 32\]"):
        build_index(docs, [str(i) for i in range(3000)], Similarity.COSINE, IndexConfig(kind="ivfpq", pq_m=5))
    with pytest.raises(ConfigError, match="needs at least 256 documents .* this corpus has 100: use 'ivf' or 'flat'"):
        build_index(docs[:100], [str(i) for i in range(100)], Similarity.COSINE, IndexConfig(kind="ivfpq"))


def test_save_load_roundtrip_and_fingerprint_check(tmp_path: Path):
    docs, queries = _vectors(50), _vectors(4, seed=4)
    index = build_index(docs, [f"x{i}" for i in range(50)], Similarity.COSINE,
                        encoder={"name": "m", "fingerprint": "abc123"})
    index.save(tmp_path / "idx")
    sidecar = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert sidecar["encoder"]["fingerprint"] == "abc123"
    assert (sidecar["dim"], sidecar["similarity"], sidecar["normalized"], sidecar["ids"][:2]) == (32, "cosine", True, ["x0", "x1"])
    loaded = VectorIndex.load(tmp_path / "idx", expect_fingerprint="abc123")
    assert loaded.search(queries, 5) == index.search(queries, 5)
    with pytest.raises(IndexMismatchError, match="built by encoder 'm'"):
        VectorIndex.load(tmp_path / "idx", expect_fingerprint="zzz999")
    with pytest.raises(DataError, match="not an index folder"):
        VectorIndex.load(tmp_path)
    # saving again replaces the folder as a whole
    build_index(docs[:10], [f"y{i}" for i in range(10)], Similarity.COSINE).save(tmp_path / "idx")
    assert len(VectorIndex.load(tmp_path / "idx")) == 10


def test_retriever_build_search_save_load(tiny_model, tiny_model_path, beir_dir: Path, tmp_path: Path):
    dataset = load_dataset(beir_dir)
    encoder = Encoder(tiny_model, EncodeConfig(query_prompt="q: "))
    retriever = Retriever.build(encoder, dataset.corpus)
    hits = retriever.search(["star galaxy planet", "flour sugar"], k=5)
    assert [len(h) for h in hits] == [5, 5]
    assert all(a.score >= b.score for h in hits for a, b in zip(h, h[1:], strict=False))
    retriever.save(tmp_path / "idx")

    reloaded = Retriever.load(tmp_path / "idx")  # encoder and query prompt come from the sidecar
    assert reloaded.encoder.query_prompt == "q: "
    assert Path(reloaded.encoder.path) == Path(tiny_model_path).resolve()
    again = reloaded.search(["star galaxy planet", "flour sugar"], k=5)
    assert [[h.doc_id for h in row] for row in again] == [[h.doc_id for h in row] for row in hits]

    from .conftest import build_tiny_model

    other = Encoder(str(build_tiny_model(tmp_path / "other", seed=5)))
    with pytest.raises(IndexMismatchError, match="rebuild the index with this encoder"):
        Retriever.load(tmp_path / "idx", model=other.model)


def test_equal_scores_are_ordered_by_doc_id():
    docs = _vectors(6)
    docs[[1, 3, 5]] = docs[0]  # four copies of one vector, whose ids sort differently from their rows
    ids = ["d", "b", "x", "a", "y", "c"]
    hits = build_index(docs, ids, Similarity.COSINE, IndexConfig(kind="flat")).search(docs[:1], 6)[0]
    assert [d for d, _ in hits[:4]] == ["a", "b", "c", "d"]
    assert hits[0][1] == hits[3][1] > hits[4][1]


def test_rows_tied_with_the_kth_exact_score_count_as_found():
    # every vector five times: which copies fill the last places of a top-10 is arbitrary
    unique = _clustered(400, seed=11)
    docs = np.repeat(unique, 5, axis=0)
    index = build_index(docs, [str(i) for i in range(len(docs))], Similarity.COSINE, IndexConfig(kind="ivf"))
    calibration = index.meta["calibration"]
    assert calibration["reached"] and calibration["value"] < index.meta["params"]["nlist"]
    # by hand: documents a, b, b (a copy); the exact top-2 holds a and one b, the approximate one the other b
    from retrieval_ft.index import exact_neighbors, per_query_recall, true_scores

    a, b = _vectors(2, seed=12)
    docs = np.stack([a, b, b])
    query = (a + 0.5 * b)[None]
    scores, truth = exact_neighbors(query, docs, 2, Similarity.DOT)
    approx = np.array([[0, 3 - truth[0, 1]]])  # a, then the b the exact search did not return
    assert per_query_recall(approx, truth, None, 2).tolist() == [0.5]
    approx_scores = true_scores(query, approx, docs.__getitem__, Similarity.DOT)
    assert per_query_recall(approx, truth, None, 2, approx_scores, scores).tolist() == [1.0]


def test_build_index_refuses_bad_input_with_the_projects_errors():
    """Plain ValueErrors escaped the CLI's handler before (a traceback, exit 1); now DataError, exit 2."""
    docs = _vectors(5)
    with pytest.raises(DataError, match=r"vectors of shape \(5, 32\) under 4 document ids"):
        build_index(docs, ["a", "b", "c", "d"], Similarity.COSINE)
    with pytest.raises(DataError, match="id 'b' appears more than once"):
        build_index(docs, ["a", "b", "c", "b", "e"], Similarity.COSINE)
    with pytest.raises(ConfigError, match="resolve 'auto' first"):
        new_index(IndexKind.AUTO, 32, Similarity.COSINE, IndexConfig(), n_docs=5)
