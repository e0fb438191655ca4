"""Property-based fuzzing of the dataset loaders: no input makes them raise anything but DataError."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval_ft.data import load_dataset
from retrieval_ft.errors import DataError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID_CORPUS = b'{"_id": "d1", "title": "t", "text": "x"}\n'
VALID_QUERIES = b'{"_id": "q1", "text": "y"}\n'
VALID_QRELS = b"query-id\tcorpus-id\tscore\nq1\td1\t1\n"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
records = st.dictionaries(st.sampled_from(["_id", "title", "text", "image", "other"]), json_values, max_size=4)


def _load_raise(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "qrels").mkdir()
        for name, content in files.items():
            (folder / name).write_bytes(content)
        load_dataset(folder)


def _load(files: dict[str, bytes]) -> None:
    """Load; DataError (bad data, said in one line) is fine, anything else fails the property."""
    with contextlib.suppress(DataError):
        _load_raise(files)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"]))
def test_random_bytes_in_any_beir_file(junk: bytes, target: str):
    files = {"corpus.jsonl": VALID_CORPUS, "queries.jsonl": VALID_QUERIES, "qrels/test.tsv": VALID_QRELS}
    files[target] = junk
    _load(files)


@FUZZ
@given(st.lists(records, max_size=5))
def test_json_records_of_any_shape(rows):
    corpus = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    _load({"corpus.jsonl": corpus, "queries.jsonl": VALID_QUERIES, "qrels/test.tsv": VALID_QRELS})


@FUZZ
@given(st.lists(st.lists(st.text(max_size=8), min_size=0, max_size=5), max_size=6))
def test_qrels_rows_of_any_shape(rows):
    text = "query-id\tcorpus-id\tscore\n" + "\n".join("\t".join(r) for r in rows)
    _load({"corpus.jsonl": VALID_CORPUS, "queries.jsonl": VALID_QUERIES, "qrels/test.tsv": text.encode("utf-8", "surrogatepass")})


@FUZZ
@given(st.text(max_size=200), st.text(max_size=60))
def test_csv_catalog_and_template(csv_text: str, template: str):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "products.csv").write_text(csv_text, encoding="utf-8", errors="surrogatepass")
        (folder / "queries.jsonl").write_bytes(VALID_QUERIES)
        (folder / "qrels.tsv").write_bytes(VALID_QRELS)
        spec = {"corpus": {"path": "products.csv", "id": "_id", "template": template},
                "queries": "queries.jsonl", "qrels": {"test": "qrels.tsv"}}
        (folder / "dataset.yaml").write_text(json.dumps(spec))  # JSON is YAML
        with contextlib.suppress(DataError):
            load_dataset(folder)


def test_fuzzing_sees_errors_it_allows():
    """The property tests would pass vacuously if loading never failed; it does, with DataError."""
    try:
        _load_raise({"corpus.jsonl": b"\xff\xfe", "queries.jsonl": VALID_QUERIES, "qrels/test.tsv": VALID_QRELS})
    except DataError as exc:
        assert "not valid UTF-8" in str(exc)
    else:
        raise AssertionError("expected a DataError")



@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["corpus.parquet", "queries.parquet", "qrels/test.parquet"]))
def test_random_bytes_as_parquet(junk: bytes, target: str):
    import datasets

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "qrels").mkdir()
        datasets.Dataset.from_list([{"_id": "d1", "title": "", "text": "x"}]).to_parquet(str(folder / "corpus.parquet"))
        datasets.Dataset.from_list([{"_id": "q1", "text": "y"}]).to_parquet(str(folder / "queries.parquet"))
        datasets.Dataset.from_list([{"query-id": "q1", "corpus-id": "d1", "score": 1}]).to_parquet(
            str(folder / "qrels" / "test.parquet"))
        (folder / target).write_bytes(junk)
        with contextlib.suppress(DataError):
            load_dataset(folder)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["corpus", "queries", "qrels"]))
def test_random_bytes_in_saved_hf_datasets(junk: bytes, part: str):
    import datasets

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        datasets.Dataset.from_list([{"_id": "d1", "title": "", "text": "x"}]).save_to_disk(str(folder / "corpus"))
        datasets.Dataset.from_list([{"_id": "q1", "text": "y"}]).save_to_disk(str(folder / "queries"))
        datasets.DatasetDict({"test": datasets.Dataset.from_list([{"query-id": "q1", "corpus-id": "d1", "score": 1}])}
                             ).save_to_disk(str(folder / "qrels"))
        victims = sorted(p for p in (folder / part).rglob("*") if p.is_file())
        victims[len(junk) % len(victims)].write_bytes(junk)
        with contextlib.suppress(DataError):
            load_dataset(folder)


@FUZZ
@given(st.lists(st.dictionaries(st.sampled_from(["anchor", "positive", "negative", "negative_2", "x"]), json_values,
                                max_size=4), max_size=5))
def test_pair_files_of_any_shape(rows):
    from retrieval_ft.data.pairs import load_pairs

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        with contextlib.suppress(DataError):
            load_pairs(path)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_pdf_pages(junk: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pages").mkdir()
        (folder / "qrels").mkdir()
        (folder / "pages" / "doc.pdf").write_bytes(junk)
        (folder / "queries.jsonl").write_bytes(VALID_QUERIES)
        (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tdoc.pdf#p1\t1\n")
        with contextlib.suppress(DataError):
            load_dataset(folder)
