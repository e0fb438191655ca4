"""Dataset readers: every layout gives the same IRDataset; bad input names file, line and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval_ft.data import load_dataset
from retrieval_ft.errors import DataError

from .conftest import shared_dataset, write_beir


def test_beir_folder(beir_dir: Path):
    ds = load_dataset(beir_dir)
    assert ds.splits == ["test", "train"]
    assert len(ds.corpus) == 40
    assert ds.corpus["d0"].full_text.startswith(ds.corpus["d0"].title + " ")
    qrels = ds.split("test")
    assert sorted(qrels) == [f"test-{t}" for t in sorted(["astronomy", "cooking", "football", "medicine", "finance"])]
    assert sorted({g for docs in qrels.values() for g in docs.values()}) == [1, 2]
    assert len(ds.judged_queries("test")) == 5
    assert ds.skipped_queries("test") == ["orphan"]  # train queries are not counted against test


def test_fingerprint_follows_content(tmp_path: Path):
    a = load_dataset(write_beir(tmp_path / "a"))
    b = load_dataset(write_beir(tmp_path / "b"))
    assert a.fingerprint("test") == b.fingerprint("test")
    assert a.fingerprint("test") != a.fingerprint("train")
    qrels = tmp_path / "b" / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text().replace("\t2\n", "\t3\n", 1))
    assert load_dataset(tmp_path / "b").fingerprint("test") != a.fingerprint("test")


def test_trec_qrels_and_crlf_bom(tmp_path: Path):
    folder = write_beir(tmp_path / "trec")
    lines = (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]
    trec = "".join(f"{q} 0 {d} {g}\r\n" for q, d, g in (line.split("\t") for line in lines))
    (folder / "qrels" / "test.tsv").unlink()
    (folder / "qrels" / "test.txt").write_bytes(trec.encode())
    corpus = folder / "corpus.jsonl"
    corpus.write_bytes(b"\xef\xbb\xbf" + corpus.read_bytes().replace(b"\n", b"\r\n"))
    ds = load_dataset(folder)
    assert ds.split("test") == load_dataset(write_beir(tmp_path / "ref")).split("test")


def test_cisi_queries_without_judgments_are_counted():
    ds = load_dataset(shared_dataset("cisi"))
    assert len(ds.judged_queries("test")) == 76
    assert len(ds.skipped_queries("test")) == 36


def _catalog(tmp_path: Path) -> Path:
    (tmp_path / "products.csv").write_text(
        "sku,name,brand,color,description\n"
        'p1,Trail runner,Acme,red,"Light shoe, for trails"\n'
        "p2,Road runner,Zoom,blue,Cushioned road shoe\n"
        "p3,Rain jacket,Acme,,Waterproof shell\n"
    )
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"qid": "q1", "query": "red trail shoes"}) + "\n" + json.dumps({"qid": "q2", "query": "rain coat"}) + "\n"
    )
    (tmp_path / "judgments.csv").write_text("qid,sku,grade\nq1,p1,3\nq1,p2,1\nq2,p3,2\n")
    (tmp_path / "dataset.yaml").write_text(
        "corpus:\n  path: products.csv\n  id: sku\n  template: '{name}. Brand: {brand}. Color: {color}. {description}'\n"
        "queries: {path: queries.jsonl, id: qid, text: query}\n"
        "qrels:\n  test: {path: judgments.csv, query_id: qid, doc_id: sku, score: grade}\n"
    )
    return tmp_path


def test_csv_catalog_with_template(tmp_path: Path):
    ds = load_dataset(_catalog(tmp_path))  # the folder holds dataset.yaml
    assert ds.corpus["p1"].text == "Trail runner. Brand: Acme. Color: red. Light shoe, for trails"
    assert ds.corpus["p3"].text == "Rain jacket. Brand: Acme. Color: . Waterproof shell"
    assert ds.queries == {"q1": "red trail shoes", "q2": "rain coat"}
    assert ds.split("test") == {"q1": {"p1": 3, "p2": 1}, "q2": {"p3": 2}}


def test_spec_errors(tmp_path: Path):
    folder = _catalog(tmp_path)
    spec = folder / "dataset.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("template:", "templte:"))
    with pytest.raises(DataError, match="unknown key 'templte' in corpus. Did you mean 'template'"):
        load_dataset(spec)
    spec.write_text(text.replace("{color}", "{colour}"))
    with pytest.raises(DataError, match=r"products.csv:2: the template names field 'colour'"):
        load_dataset(spec)
    spec.write_text(text.replace("{name}.", "{name"))
    with pytest.raises(DataError, match="dataset.yaml: corpus.template .* not a valid format string"):
        load_dataset(spec)


def _hf_dataset(tmp_path: Path, beir: Path) -> Path:
    import datasets

    ds = load_dataset(beir)
    out = tmp_path / "hf"
    datasets.Dataset.from_list([{"_id": d.id, "title": d.title, "text": d.text} for d in ds.corpus.values()]
                               ).save_to_disk(str(out / "corpus"))
    datasets.Dataset.from_list([{"_id": q, "text": t} for q, t in ds.queries.items()]).save_to_disk(str(out / "queries"))
    datasets.DatasetDict({
        split: datasets.Dataset.from_list([{"query-id": q, "corpus-id": d, "score": g}
                                           for q, docs in ds.split(split).items() for d, g in docs.items()])
        for split in ds.splits
    }).save_to_disk(str(out / "qrels"))
    return out


def test_hf_save_to_disk_and_parquet_match_beir(tmp_path: Path, beir_dir: Path):
    ref = load_dataset(beir_dir)
    hf = _hf_dataset(tmp_path, beir_dir)
    from_hf = load_dataset(hf)
    assert from_hf.fingerprint("test") == ref.fingerprint("test")
    assert from_hf.qrels == ref.qrels

    import datasets

    pq = tmp_path / "pq"
    (pq / "qrels").mkdir(parents=True)
    datasets.load_from_disk(str(hf / "corpus")).to_parquet(str(pq / "corpus.parquet"))
    datasets.load_from_disk(str(hf / "queries")).to_parquet(str(pq / "queries.parquet"))
    for split, part in datasets.load_from_disk(str(hf / "qrels")).items():
        part.to_parquet(str(pq / "qrels" / f"{split}.parquet"))
    from_pq = load_dataset(pq)
    assert from_pq.fingerprint("train") == ref.fingerprint("train")


# -- bad input ----------------------------------------------------------------------------------
def _corrupt(beir_dir: Path, name: str, content: bytes | str) -> None:
    path = beir_dir / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("corpus.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "b", "text": \n', r"corpus.jsonl:2: invalid JSON"),
        ("corpus.jsonl", '{"_id": "a", "text": "x"}\n["b"]\n', r"corpus.jsonl:2: expected a JSON object"),
        ("corpus.jsonl", '{"_id": "a", "text": "x"}\n{"text": "y"}\n', r"corpus.jsonl:2: missing id field '_id'"),
        ("corpus.jsonl", '{"_id": "a", "body": "x"}\n', r"corpus.jsonl:1: missing text field 'text'"),
        ("corpus.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n',
         r"corpus.jsonl:2: duplicate document id 'a' \(first seen on line 1\)"),
        ("corpus.jsonl", '{"_id": "a", "text": ["x"]}\n', r"corpus.jsonl:1 \(field 'text'\): expected a string"),
        ("corpus.jsonl", b'{"_id": "a", "text": "caf\xe9"}\n', r"corpus.jsonl:1: not valid UTF-8"),
        ("corpus.jsonl", "", r"the corpus is empty"),
        ("queries.jsonl", '{"_id": "q", "text": "x"}\n{"_id": "q", "text": "y"}\n', r"queries.jsonl:2: duplicate query id 'q'"),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\ntest-cooking\td1\thigh\n", r"test.tsv:2 \(field 'score'\): grade 'high' is not a number"),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\ntest-cooking\td1\t-1\n", r"test.tsv:2 \(field 'score'\): grade '-1' must be an integer >= 0"),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\ntest-cooking\td1\n", r"test.tsv:2: expected 3 columns"),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\ntest-cooking\td1\t1\ntest-cooking\td1\t2\n",
         r"test.tsv:3: query 'test-cooking' / document 'd1' judged 2 here but 1 on line 2"),
    ],
)
def test_bad_files_name_file_and_line(beir_dir: Path, name: str, content: str | bytes, message: str):
    _corrupt(beir_dir, name, content)
    with pytest.raises(DataError, match=message):
        load_dataset(beir_dir)


def test_unknown_ids_refused_or_dropped(tmp_path: Path):
    extra = "test-cooking\tnope1\t1\nghost\td1\t1\ntest-cooking\tnope2\t1\n"
    folder = write_beir(tmp_path / "x", extra_qrels=extra)
    with pytest.raises(DataError, match=r"test.tsv: 3 judgments name ids the dataset does not have \(1 unknown query ids, "
                                        r"e.g. 'ghost' \(line \d+\); 2 unknown document ids.*--drop-unknown-judgments"):
        load_dataset(folder)
    ds = load_dataset(folder, unknown_ids="drop")
    assert ds.dropped_judgments == 6  # three per split
    assert "ghost" not in ds.split("test")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: (p / "queries.jsonl").unlink(), "queries.jsonl is missing"),
        (lambda p: [f.unlink() for f in (p / "qrels").iterdir()], "no judgment files"),
        (lambda p: (p / "corpus.jsonl").unlink(), "corpus.jsonl is missing"),
    ],
)
def test_incomplete_folders(beir_dir: Path, setup, message: str):
    setup(beir_dir)
    with pytest.raises(DataError, match=message):
        load_dataset(beir_dir)


def test_missing_path_and_split(tmp_path: Path, beir_dir: Path):
    with pytest.raises(DataError, match="dataset not found. Expected a BEIR folder"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"no judgments for split 'dev' \(splits with judgments: test, train\)"):
        load_dataset(beir_dir).split("dev")


def test_spec_paths_cannot_leave_the_spec_folder(tmp_path: Path):
    (tmp_path / "inside").mkdir()
    folder = _catalog(tmp_path / "inside")
    spec = folder / "dataset.yaml"
    spec.write_text(spec.read_text().replace("path: products.csv", "path: ../../outside.csv"))
    with pytest.raises(DataError, match="corpus path '../../outside.csv' leaves the dataset folder"):
        load_dataset(spec)


@pytest.mark.parametrize(("corpus", "message"), [
    ({"template": "{"}, r"corpus.template '\{' is not a valid format string"),
    ({"template": ""}, "corpus.template '' names no field"),
    ({"template": 5}, "corpus.template must be a format string; got 5"),
    ({"id": ["sku"]}, r"corpus.id must be a column name; got \['sku'\]"),
    ({"text": {"a": 1}}, "corpus.text must be a column name or a list of them"),
    ({"text": []}, "corpus.text must be a column name or a list of them"),
    ({"delimiter": ";;"}, "corpus.delimiter must be one character"),
])
def test_bad_column_settings_in_a_spec_are_data_errors(tmp_path: Path, corpus: dict, message: str):
    """They raised ConfigError (or TypeError) from inside the loader; the spec file is data: DataError."""
    (tmp_path / "products.csv").write_text("_id,text\nd1,x\n")
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "y"}\n')
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    spec = {"corpus": {"path": "products.csv", **corpus}, "queries": "queries.jsonl", "qrels": {"test": "qrels.tsv"}}
    (tmp_path / "dataset.yaml").write_text(json.dumps(spec))
    with pytest.raises(DataError, match=f"dataset.yaml: {message}"):
        load_dataset(tmp_path)
