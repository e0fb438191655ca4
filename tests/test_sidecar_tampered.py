"""A catalogue of hand-edited index sidecars (index.json): each is refused with DataError naming
the file and the field, never a raw TypeError/KeyError and never wrong hits."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval_ft.config import Similarity
from retrieval_ft.errors import DataError
from retrieval_ft.index import VectorIndex, build_index

N, DIM = 20, 8


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(sidecar: dict[str, Any]) -> Any:
        sidecar[key] = value
        return sidecar
    return edit


def _drop(key: str) -> Callable[[dict[str, Any]], Any]:
    def edit(sidecar: dict[str, Any]) -> Any:
        del sidecar[key]
        return sidecar
    return edit


def _ids(change: Callable[[list[Any]], list[Any]]) -> Callable[[dict[str, Any]], Any]:
    def edit(sidecar: dict[str, Any]) -> Any:
        sidecar["ids"] = change(list(sidecar["ids"]))
        sidecar["n_docs"] = len(sidecar["ids"])
        return sidecar
    return edit


def _encoder(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(sidecar: dict[str, Any]) -> Any:
        sidecar["encoder"][key] = value
        return sidecar
    return edit


# (case, edit of the parsed sidecar -> what to write (a str is written as is), field the message names)
CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str | None]] = [
    ("not JSON", lambda s: '{"format": 1, "ids": [', None),
    ("not UTF-8", lambda s: b"\xff\xfe{}", None),
    ("a list, not a mapping", lambda s: [s], None),
    ("null", lambda s: None, None),
    ("a string", lambda s: "index", None),
    ("missing similarity", _drop("similarity"), "similarity"),
    ("unknown similarity", _set("similarity", "manhattan"), "similarity"),
    ("similarity not a string", _set("similarity", ["cosine"]), "similarity"),
    ("similarity the index does not score by", _set("similarity", "euclidean"), "similarity"),
    ("missing kind", _drop("kind"), "kind"),
    ("unknown kind", _set("kind", "annoy"), "kind"),
    ("kind auto (never built)", _set("kind", "auto"), "kind"),
    ("kind not the FAISS index's", _set("kind", "hnsw"), "kind"),
    ("missing format", _drop("format"), "format"),
    ("unknown format", _set("format", 2), "format"),
    ("format a string", _set("format", "1"), "format"),
    ("missing ids", _drop("ids"), "ids"),
    ("ids not a list", _set("ids", "d0 d1"), "ids"),
    ("ids a mapping", _set("ids", {"d0": 0}), "ids"),
    ("duplicate ids", _ids(lambda ids: [ids[1]] + ids[1:]), "ids"),
    ("non-string id", _ids(lambda ids: ids[:3] + [3] + ids[4:]), "ids"),
    ("null id", _ids(lambda ids: [None] + ids[1:]), "ids"),
    ("fewer ids than vectors", _ids(lambda ids: ids[:-1]), "ids"),
    ("more ids than vectors", _ids(lambda ids: ids + ["extra"]), "ids"),
    ("n_docs not the number of ids", _set("n_docs", N + 1), "n_docs"),
    ("missing dim", _drop("dim"), "dim"),
    ("dim a string", _set("dim", "8"), "dim"),
    ("dim a bool", _set("dim", True), "dim"),
    ("dim a float", _set("dim", 8.0), "dim"),
    ("dim zero", _set("dim", 0), "dim"),
    ("dim not the index's", _set("dim", 16), "dim"),
    ("params not a mapping", _set("params", []), "params"),
    ("missing params", _drop("params"), "params"),
    ("encoder not a mapping", _set("encoder", "m"), "encoder"),
    ("encoder fingerprint not a string", _encoder("fingerprint", 123), "encoder.fingerprint"),
    ("encoder path not a string", _encoder("path", ["m"]), "encoder.path"),
    ("encoder query prompt not a string", _encoder("query_prompt", {"q": 1}), "encoder.query_prompt"),
    ("encoder max length a string", _encoder("max_seq_length", "128"), "encoder.max_seq_length"),
    ("normalized not a bool", _set("normalized", "yes"), "normalized"),
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vectors = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    index = build_index(vectors, [f"d{i}" for i in range(N)], Similarity.COSINE,
                        encoder={"name": "m", "path": None, "fingerprint": "abc123", "query_prompt": ""})
    return index.save(tmp_path_factory.mktemp("sidecar") / "idx")


def _tamper(saved: Path, folder: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    folder.mkdir()
    (folder / "index.faiss").write_bytes((saved / "index.faiss").read_bytes())
    written = edit(json.loads((saved / "index.json").read_text()))
    if isinstance(written, bytes):
        (folder / "index.json").write_bytes(written)
    elif isinstance(written, str) and written.startswith("{"):
        (folder / "index.json").write_text(written)
    else:
        (folder / "index.json").write_text(json.dumps(written))
    return folder


def test_the_untampered_sidecar_loads(saved: Path):
    assert len(VectorIndex.load(saved, expect_fingerprint="abc123")) == N


@pytest.mark.parametrize(("case", "edit", "field"), CASES, ids=[c[0] for c in CASES])
def test_a_tampered_sidecar_is_refused_naming_file_and_field(saved: Path, tmp_path: Path, case: str,
                                                               edit: Callable[[dict[str, Any]], Any], field: str | None):
    folder = _tamper(saved, tmp_path / "idx", edit)
    with pytest.raises(DataError) as caught:
        VectorIndex.load(folder)
    message = str(caught.value)
    assert str(folder / "index.json") in message
    if field is not None:
        assert f"(field {field!r})" in message
    assert "\n" not in message


@pytest.mark.parametrize("case", ["duplicate ids", "similarity the index does not score by", "dim not the index's"])
def test_retriever_load_refuses_a_tampered_sidecar_before_loading_a_model(saved: Path, tmp_path: Path, case: str):
    from retrieval_ft.search import Retriever

    edit = next(e for c, e, _ in CASES if c == case)
    folder = _tamper(saved, tmp_path / "idx", edit)
    with pytest.raises(DataError, match="index.json"):
        Retriever.load(folder, model="no/such-model")



json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
FIELDS = ["format", "kind", "similarity", "dim", "ids", "n_docs", "params", "encoder", "normalized", "chosen",
          "encoder.fingerprint", "encoder.document_fingerprint", "encoder.name", "encoder.max_seq_length"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(FIELDS), value=json_values)
def test_any_value_in_any_field_is_refused_or_searches_as_built(saved: Path, key: str, value: Any):
    """Fuzzed: a sidecar with any JSON value in any field raises DataError, or loads and returns the
    hits the untampered index returns (never other hits, never another error)."""
    queries = np.random.default_rng(1).standard_normal((3, DIM)).astype(np.float32)
    expected = VectorIndex.load(saved).search(queries, 5)

    def edit(sidecar: dict[str, Any]) -> Any:
        parent, _, name = key.rpartition(".")
        (sidecar[parent] if parent else sidecar)[name] = value
        return sidecar

    with tempfile.TemporaryDirectory() as tmp:
        folder = _tamper(saved, Path(tmp) / "idx", edit)
        try:
            loaded = VectorIndex.load(folder)
        except DataError as exc:
            assert str(folder / "index.json") in str(exc)
            return
        assert loaded.search(queries, 5) == expected
