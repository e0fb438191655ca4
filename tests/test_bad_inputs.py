"""The catalogue of bad inputs, each driven through the CLI: exit code 2, one line on stderr that
names the file (and line or field where there is one) and says how to fix it, never a traceback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from retrieval_ft.cli import main
from retrieval_ft.results import EvaluationResult

from .conftest import write_beir

CORPUS_OK = '{"_id": "d0", "title": "astronomy", "text": "star galaxy"}\n'


def corpus(text: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        data = text.encode() if isinstance(text, str) else text
        (root / "data" / "corpus.jsonl").write_bytes(data)
    return setup


def file_in_data(name: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        data = content.encode() if isinstance(content, str) else content
        (root / "data" / name).write_bytes(data)
    return setup


def remove(name: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        target = root / "data" / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return setup


QRELS_HEAD = "query-id\tcorpus-id\tscore\n"


def page(damage: str) -> Callable[[Path], None]:
    """Add a page-image document to the corpus, its file damaged as named."""
    def setup(root: Path) -> None:
        from PIL import Image

        data = root / "data"
        (data / "images").mkdir()
        target = data / "images" / "p.png"
        Image.new("RGB", (64, 64), "white").save(target)
        raw = target.read_bytes()
        if damage == "missing":
            target.unlink()
        elif damage == "corrupt":
            target.write_bytes(b"definitely not a png" * 4)
        elif damage == "truncated":
            target.write_bytes(raw[: len(raw) // 3])
        elif damage == "empty":
            target.write_bytes(b"")
        with open(data / "corpus.jsonl", "a") as fh:
            fh.write('{"_id": "page", "text": "", "image": "images/p.png"}\n')
    return setup


def pdf_folder(content: bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        folder = root / "pdfs"
        (folder / "pages").mkdir(parents=True)
        (folder / "qrels").mkdir()
        (folder / "pages" / "report.pdf").write_bytes(content)
        (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "report"}\n')
        (folder / "qrels" / "test.tsv").write_text(QRELS_HEAD + "q1\treport.pdf#p1\t1\n")
    return setup


def adapter_without_base(root: Path) -> None:
    folder = root / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "modules.json").write_text("[]")
    (folder / "retrieval_ft.json").write_text(json.dumps(
        {"artifact": "adapter", "method": "lora", "base": {"name": str(root / "gone"), "path": str(root / "gone")}}))
EVAL = ["evaluate", "--model", "{model}", "--data", "{data}", "--no-progress"]

# (id, setup, extra CLI args or a replacement command, expected message fragment)
CASES = [
    ("json-syntax", corpus(CORPUS_OK + '{"_id": "d1", "text": \n'), None, "corpus.jsonl:2: invalid JSON"),
    ("json-not-object", corpus(CORPUS_OK + "[1, 2]\n"), None, "corpus.jsonl:2: expected a JSON object"),
    ("json-string-line", corpus('"just a string"\n'), None, "corpus.jsonl:1: expected a JSON object"),
    ("missing-id", corpus('{"text": "x"}\n'), None, "corpus.jsonl:1: missing id field '_id'"),
    ("empty-id", corpus('{"_id": "  ", "text": "x"}\n'), None, "corpus.jsonl:1 (field '_id'): empty id"),
    ("missing-text", corpus('{"_id": "a", "body": "x"}\n'), None, "corpus.jsonl:1: missing text field 'text'"),
    ("text-is-list", corpus('{"_id": "a", "text": ["x"]}\n'), None, "corpus.jsonl:1 (field 'text'): expected a string"),
    ("text-is-object", corpus('{"_id": "a", "text": {"x": 1}}\n'), None, "corpus.jsonl:1 (field 'text'): expected a string"),
    ("id-is-bool", corpus('{"_id": true, "text": "x"}\n'), None, "corpus.jsonl:1 (field '_id'): expected a string"),
    ("duplicate-doc", corpus(CORPUS_OK + CORPUS_OK), None, "corpus.jsonl:2: duplicate document id 'd0'"),
    ("empty-corpus", corpus(""), None, "the corpus is empty"),
    ("blank-corpus", corpus("\n\n  \n"), None, "the corpus is empty"),
    ("non-utf8", corpus(b'{"_id": "a", "text": "caf\xe9"}\n'), None, "corpus.jsonl:1: not valid UTF-8"),
    ("binary-junk", corpus(b"\x00\x01\x02\xff\xfe binary"), None, "corpus.jsonl:1:"),
    ("nul-bytes", corpus('{"_id": "a", "text": "x"}\x00\n'), None, "corpus.jsonl:1: contains NUL bytes"),
    ("duplicate-query", file_in_data("queries.jsonl", '{"_id": "q", "text": "a"}\n{"_id": "q", "text": "b"}\n'), None,
     "queries.jsonl:2: duplicate query id 'q'"),
    ("empty-query", file_in_data("queries.jsonl", '{"_id": "q", "text": ""}\n'), None, "queries.jsonl:1 (field 'text'): empty query text"),
    ("grade-word", file_in_data("qrels/test.tsv", QRELS_HEAD + "test-cooking\td1\thigh\n"), None, "test.tsv:2 (field 'score'): grade 'high' is not a number"),
    ("grade-negative", file_in_data("qrels/test.tsv", QRELS_HEAD + "test-cooking\td1\t-1\n"), None, "test.tsv:2 (field 'score'): grade '-1' must be an integer >= 0"),
    ("grade-fraction", file_in_data("qrels/test.tsv", QRELS_HEAD + "test-cooking\td1\t0.5\n"), None, "test.tsv:2 (field 'score'): grade '0.5' must be an integer"),
    ("grade-nan", file_in_data("qrels/test.tsv", QRELS_HEAD + "test-cooking\td1\tnan\n"), None, "test.tsv:2 (field 'score'): grade 'nan' must be an integer"),
    ("qrels-columns", file_in_data("qrels/test.tsv", QRELS_HEAD + "test-cooking\td1\n"), None, "test.tsv:2: expected 3 columns"),
    ("qrels-conflict", file_in_data("qrels/test.tsv", QRELS_HEAD + "test-cooking\td1\t1\ntest-cooking\td1\t2\n"), None,
     "test.tsv:3: query 'test-cooking' / document 'd1' judged 2 here but 1 on line 2"),
    ("unknown-doc-id", file_in_data("qrels/test.tsv", QRELS_HEAD + "test-cooking\tghost\t1\n"), None,
     "1 judgments name ids the dataset does not have"),
    ("unknown-query-id", file_in_data("qrels/test.tsv", QRELS_HEAD + "ghost\td1\t1\n"), None, "1 unknown query ids, e.g. 'ghost'"),
    ("no-queries-file", remove("queries.jsonl"), None, "queries.jsonl is missing"),
    ("no-corpus-file", remove("corpus.jsonl"), None, "corpus.jsonl is missing"),
    ("no-qrels-folder", remove("qrels"), None, "no qrels/ folder"),
    ("empty-qrels-folder", lambda r: [f.unlink() for f in (r / "data" / "qrels").iterdir()], None, "no judgment files"),
    ("no-judged-split", None, ["--split", "dev"], "no judgments for split 'dev'"),
    ("dataset-missing", None, ["--data", "{root}/nowhere"], "dataset not found"),
    ("dataset-is-file", None, ["--data", "{data}/corpus.jsonl"], "a single file is not a dataset"),
    ("image-escape", corpus('{"_id": "a", "text": "", "image": "../../etc/passwd"}\n'), None, "leaves the dataset folder"),
    ("model-missing", None, ["--model", "{root}/no-model"], "model folder not found"),
    ("model-not-a-model", None, ["--model", "{data}"], "not a model folder"),
    ("model-is-file", None, ["--model", "{data}/corpus.jsonl"], "a model must be a folder"),
    ("model-offline-hub", None, ["--model", "some-org/not-here"], "HF_HUB_OFFLINE=1"),
    ("bad-metric", None, ["--metrics", "ndgc@10"], "unknown metric 'ndgc@10'. Did you mean 'ndcg@10'"),
    ("metric-beyond-k", None, ["--k", "5", "--metrics", "recall@10"], "'recall@10' looks at 10 results but only k=5"),
    ("bad-batch-size", None, ["--batch-size", "-3"], "batch_size must be a positive integer"),
    ("spec-unknown-key", file_in_data("dataset.yaml", "corpus: {path: c.csv, idd: sku}\nqueries: q.jsonl\nqrels: {test: t.tsv}\n"),
     ["--data", "{data}/dataset.yaml"], "unknown key 'idd' in corpus. Did you mean 'id'"),
    ("spec-not-yaml", file_in_data("dataset.yaml", "corpus: [unclosed\n"), ["--data", "{data}/dataset.yaml"], "not a valid YAML dataset spec"),
    ("csv-missing-column", lambda r: _catalog(r, "sku,name\np1,shoe\n"), ["--data", "{root}/catalog"], "missing text field 'description'"),
    ("image-missing", page("missing"), None, "images/p.png not found"),
    ("image-corrupt", page("corrupt"), ["--check-images", ""], "images/p.png: unreadable image"),
    ("image-truncated", page("truncated"), ["--check-images", ""], "images/p.png: unreadable image"),
    ("image-empty", page("empty"), ["--check-images", ""], "images/p.png: unreadable image"),
    ("pdf-corrupt", pdf_folder(b"not a pdf"), ["--data", "{root}/pdfs"], "report.pdf: unreadable PDF"),
    ("pdf-truncated", pdf_folder(b"%PDF-1.4\n1 0 obj"), ["--data", "{root}/pdfs"], "report.pdf: unreadable PDF"),
    ("adapter-missing-base", adapter_without_base, ["--model", "{root}/adapter"], "this adapter needs its base model"),
    ("csv-ragged-row", lambda r: _catalog(r, "sku,description\np1,shoe,extra\n"), ["--data", "{root}/catalog"], "products.csv:2: 3 columns, but the header has 2"),
]

GATE_CASES = [
    ("results-other-dataset", "pass --force"),
    ("results-not-json", "not valid JSON"),
    ("results-not-a-result", "neither an evaluate result"),
    ("gate-rules-unknown-key", "Did you mean 'max_drop'"),
    ("index-other-encoder", "rebuild the index with this encoder"),
    ("train-config-wrong-type", "epochs: expected float, got str"),
    ("run-config-unknown-key", "unknown key 'trian'. Did you mean 'train'"),
    ("merge-not-adapter", "not an adapter artifact (lora, hybrid or query-lora); nothing to merge"),
]


def _catalog(root: Path, csv_text: str) -> None:
    folder = root / "catalog"
    folder.mkdir()
    (folder / "products.csv").write_text(csv_text)
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "shoe"}\n')
    (folder / "qrels.tsv").write_text(QRELS_HEAD + "q1\tp1\t1\n")
    (folder / "dataset.yaml").write_text("corpus: {path: products.csv, id: sku, text: description}\n"
                                         "queries: queries.jsonl\nqrels: {test: qrels.tsv}\n")


def _check(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert err.startswith("retrieval-ft: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert fragment in err, err


@pytest.mark.parametrize(("setup", "extra", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_through_evaluate(tmp_path: Path, tiny_model_path: Path, capsys, setup, extra, fragment):
    write_beir(tmp_path / "data")
    if setup is not None:
        setup(tmp_path)
    args = list(EVAL)
    if extra:
        for i in range(0, len(extra), 2):
            if extra[i] in args:
                args[args.index(extra[i]) + 1] = extra[i + 1]
            else:
                args += [a for a in extra[i:i + 2] if a]  # "" pairs a flag that takes no value
    fill = {"{model}": str(tiny_model_path), "{data}": str(tmp_path / "data"), "{root}": str(tmp_path)}
    args = [next((a.replace(k, v) for k, v in fill.items() if k in a), a) for a in args]
    code = main(args)
    _check(code, capsys.readouterr().err, fragment)


def _result(fingerprint: str) -> EvaluationResult:
    return EvaluationResult(metrics={"ndcg@10": 0.5}, per_query={"ndcg@10": {"q": 0.5}}, model={"name": "m"},
                            dataset={"fingerprint": fingerprint})


@pytest.mark.parametrize(("case", "fragment"), GATE_CASES, ids=[c[0] for c in GATE_CASES])
def test_bad_input_through_other_commands(tmp_path: Path, tiny_model_path: Path, capsys, case: str, fragment: str):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _result("one").save(a)
    _result("two" if case == "results-other-dataset" else "one").save(b)
    args = ["gate", "--baseline", str(a), "--candidate", str(b)]
    if case == "results-not-json":
        b.write_text("{not json")
    elif case == "results-not-a-result":
        b.write_text(json.dumps({"hello": 1}))
    elif case == "gate-rules-unknown-key":
        (tmp_path / "g.yaml").write_text("max_dorp: 0.1\nmetrics: [ndcg@10]\n")
        args += ["--rules", str(tmp_path / "g.yaml")]
    elif case == "index-other-encoder":
        from retrieval_ft.config import EncodeConfig
        from retrieval_ft.data import load_dataset
        from retrieval_ft.encode import Encoder
        from retrieval_ft.search import Retriever

        from .conftest import build_tiny_model

        data = write_beir(tmp_path / "data")
        Retriever.build(Encoder(str(tiny_model_path), EncodeConfig(progress=False)), load_dataset(data).corpus).save(tmp_path / "idx")
        other = build_tiny_model(tmp_path / "other", seed=3)
        from retrieval_ft.errors import IndexMismatchError

        with pytest.raises(IndexMismatchError, match=fragment):
            Retriever.load(tmp_path / "idx", model=str(other))
        return
    elif case == "train-config-wrong-type":
        data = write_beir(tmp_path / "data")
        (tmp_path / "t.yaml").write_text("epochs: many\n")
        args = ["train", "--model", str(tiny_model_path), "--data", str(data), "--out", str(tmp_path / "o"),
                "--config", str(tmp_path / "t.yaml")]
    elif case == "run-config-unknown-key":
        (tmp_path / "r.yaml").write_text("model: m\ndata: d\ntrian: {}\n")
        args = ["run", str(tmp_path / "r.yaml")]
    elif case == "merge-not-adapter":
        args = ["merge", str(tiny_model_path), "--out", str(tmp_path / "m")]
    _check(main(args), capsys.readouterr().err, fragment)


def test_the_catalogue_has_at_least_40_cases():
    assert len(CASES) + len(GATE_CASES) >= 40
