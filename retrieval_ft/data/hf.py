"""Hugging Face datasets saved with `save_to_disk`, and parquet files, read through `datasets`.

Layouts: a folder with `corpus/`, `queries/` and `qrels/` each written by `save_to_disk` (qrels a
DatasetDict keyed by split, or one Dataset read as split `test`), or a folder with
`corpus.parquet`, `queries.parquet` and `qrels/<split>.parquet`. Columns follow the BEIR/MTEB
names (`_id`, `title`, `text`; `query-id`, `corpus-id`, `score`); common variants are recognised.
Row numbers in errors count from 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError
from .build import CORPUS_FIELDS, QUERY_FIELDS, Fields, UnknownIds, build_corpus, build_qrels, build_queries
from .dataset import IRDataset
from .records import Record

ID_COLUMNS = ("_id", "id", "doc_id", "docid", "corpus-id", "query-id", "query_id", "qid")
QRELS_COLUMNS = {
    "query": ("query-id", "query_id", "qid", "q_id"),
    "doc": ("corpus-id", "corpus_id", "doc_id", "docid", "doc-id", "pid"),
    "score": ("score", "relevance", "label", "grade", "rel"),
}
HF_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")


def _is_saved(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in HF_MARKERS)


def is_hf_on_disk(folder: Path) -> bool:
    return all(_is_saved(folder / part) for part in ("corpus", "queries"))


def is_parquet_folder(folder: Path) -> bool:
    return (folder / "corpus.parquet").is_file() and (folder / "queries.parquet").is_file()


def _load_from_disk(path: Path) -> Any:
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot be read as a dataset saved with save_to_disk ({exc}).") from None
    except (AttributeError, TypeError, KeyError) as exc:  # datasets trusts its JSON metadata's shape
        raise DataError(f"{path}: cannot be read as a dataset saved with save_to_disk (damaged metadata: "
                        f"{type(exc).__name__}: {exc}); save it again with save_to_disk.") from None


def _single(ds: Any, path: Path) -> Any:
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise DataError(f"{path}: holds splits {sorted(ds)}; save one Dataset here (no splits).")
        ds = next(iter(ds.values()))
    return ds


def _rows(ds: Any) -> Iterator[Record]:
    yield from enumerate(ds, start=1)


def read_parquet(path: Path) -> Iterator[Record]:
    import datasets

    try:
        ds = datasets.Dataset.from_parquet(str(path))
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: cannot be read as parquet ({type(exc).__name__}: {exc}).") from None
    return _rows(ds)


def _fields_for(columns: list[str], defaults: Fields, path: Path) -> Fields:
    id_col = next((c for c in ID_COLUMNS if c in columns), None)
    if id_col is None:
        raise DataError(f"{path}: no id column (looked for {', '.join(ID_COLUMNS[:3])}; found {', '.join(columns)}).")
    return Fields(id=id_col, text=defaults.text, title=defaults.title, image=defaults.image)


def _column(columns: list[str], kind: str, path: Path) -> str:
    for name in QRELS_COLUMNS[kind]:
        if name in columns:
            return name
    raise DataError(
        f"{path}: no {kind} column in judgments (looked for {', '.join(QRELS_COLUMNS[kind])}; found {', '.join(columns)})."
    )


def _judgments(ds: Any, path: Path) -> Iterator[tuple[int, str, str, Any]]:
    cols = list(ds.column_names)
    q, d, s = (_column(cols, k, path) for k in ("query", "doc", "score"))
    for i, row in _rows(ds):
        yield i, str(row[q]), str(row[d]), row[s]


def _build(folder: Path, corpus_ds: Any, queries_ds: Any, qrels_ds: dict[str, Any],
           paths: dict[str, Path], unknown_ids: UnknownIds) -> IRDataset:
    corpus = build_corpus(_rows(corpus_ds), paths["corpus"],
                          _fields_for(list(corpus_ds.column_names), CORPUS_FIELDS, paths["corpus"]))
    queries = build_queries(_rows(queries_ds), paths["queries"],
                            _fields_for(list(queries_ds.column_names), QUERY_FIELDS, paths["queries"]))
    qrels, dropped = {}, 0
    for split, ds in qrels_ds.items():
        qrels[split], n = build_qrels(_judgments(ds, paths[split]), paths[split], corpus, queries, unknown_ids)
        dropped += n
    if not qrels:
        raise DataError(f"{folder}: no judgments found (expected qrels/).")
    return IRDataset(corpus=corpus, queries=queries, qrels=qrels, source=str(folder), dropped_judgments=dropped)


def load_hf_on_disk(folder: str | Path, unknown_ids: UnknownIds | str = UnknownIds.ERROR) -> IRDataset:
    import datasets

    folder = Path(folder)
    if not _is_saved(folder / "qrels"):
        raise DataError(f"{folder}: no qrels/ saved with save_to_disk next to corpus/ and queries/.")
    corpus_ds = _single(_load_from_disk(folder / "corpus"), folder / "corpus")
    queries_ds = _single(_load_from_disk(folder / "queries"), folder / "queries")
    qrels_obj = _load_from_disk(folder / "qrels")
    qrels_ds = dict(qrels_obj) if isinstance(qrels_obj, datasets.DatasetDict) else {"test": qrels_obj}
    paths = {"corpus": folder / "corpus", "queries": folder / "queries"}
    paths.update({split: folder / "qrels" / split for split in qrels_ds})
    return _build(folder, corpus_ds, queries_ds, qrels_ds, paths, UnknownIds(unknown_ids))


def load_parquet_folder(folder: str | Path, unknown_ids: UnknownIds | str = UnknownIds.ERROR) -> IRDataset:
    import datasets

    folder = Path(folder)
    qdir = folder / "qrels"
    files = sorted(qdir.glob("*.parquet")) if qdir.is_dir() else []
    if not files:
        raise DataError(f"{folder}: no judgments; expected qrels/<split>.parquet beside corpus.parquet.")

    def read(path: Path) -> Any:
        try:
            return datasets.Dataset.from_parquet(str(path))
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"{path}: cannot be read as parquet ({type(exc).__name__}: {exc}).") from None

    paths = {"corpus": folder / "corpus.parquet", "queries": folder / "queries.parquet"}
    paths.update({f.stem: f for f in files})
    return _build(folder, read(paths["corpus"]), read(paths["queries"]), {f.stem: read(f) for f in files},
                  paths, UnknownIds(unknown_ids))
