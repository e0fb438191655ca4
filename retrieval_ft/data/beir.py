"""BEIR folders: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv` (TREC qrels files also read)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .build import UnknownIds, build_corpus, build_qrels, build_queries
from .dataset import Document, IRDataset
from .records import read_jsonl, read_qrels

QRELS_SUFFIXES = (".tsv", ".txt", ".trec", ".qrels")


def is_beir(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file()


def qrels_files(folder: Path) -> dict[str, Path]:
    """split name -> judgments file, from `folder/qrels/<split>.<tsv|txt|trec|qrels>`."""
    qdir = folder / "qrels"
    if not qdir.is_dir():
        raise DataError(
            f"{folder}: no qrels/ folder; a BEIR dataset keeps judgments in qrels/<split>.tsv "
            "(header: query-id, corpus-id, score)."
        )
    files: dict[str, Path] = {}
    for f in sorted(qdir.iterdir()):
        if f.is_file() and f.suffix.lower() in QRELS_SUFFIXES and not f.name.startswith("."):
            if f.stem in files:
                raise DataError(f"{qdir}: two judgment files for split {f.stem!r} ({files[f.stem].name}, {f.name}); keep one.")
            files[f.stem] = f
    if not files:
        raise DataError(f"{qdir}: no judgment files; expected qrels/<split>.tsv, e.g. qrels/test.tsv.")
    return files


def load_beir(folder: str | Path, unknown_ids: UnknownIds | str = UnknownIds.ERROR) -> IRDataset:
    folder = Path(folder)
    if not (folder / "queries.jsonl").is_file():
        raise DataError(f"{folder}: corpus.jsonl found but queries.jsonl is missing; a BEIR folder needs both.")
    corpus_path = folder / "corpus.jsonl"
    return with_queries_and_qrels(folder, build_corpus(read_jsonl(corpus_path), corpus_path), unknown_ids)


def with_queries_and_qrels(folder: Path, corpus: dict[str, Document],
                           unknown_ids: UnknownIds | str = UnknownIds.ERROR) -> IRDataset:
    """A dataset from `corpus` plus the folder's BEIR `queries.jsonl` and `qrels/<split>.tsv` files."""
    queries = build_queries(read_jsonl(folder / "queries.jsonl"), folder / "queries.jsonl")
    qrels, dropped = {}, 0
    for split, path in qrels_files(folder).items():
        qrels[split], n = build_qrels(read_qrels(path), path, corpus, queries, UnknownIds(unknown_ids))
        dropped += n
    return IRDataset(corpus=corpus, queries=queries, qrels=qrels, source=str(folder), dropped_judgments=dropped)
