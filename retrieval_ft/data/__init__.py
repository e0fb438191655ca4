"""Dataset readers: every supported layout becomes one `IRDataset` (corpus, queries, graded qrels)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .build import Fields, UnknownIds
from .dataset import Document, IRDataset, PageRef, Qrels

__all__ = ["Document", "Fields", "IRDataset", "PageRef", "Qrels", "UnknownIds", "load_corpus", "load_dataset"]

SPEC_NAMES = ("retrieval-ft-data.yaml", "dataset.yaml")

LAYOUTS = (
    "a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); "
    "a dataset spec YAML for JSONL/CSV/TSV/parquet tables (or a folder holding dataset.yaml); "
    "a folder of Hugging Face datasets saved with save_to_disk (corpus/, queries/, qrels/); "
    "a folder with corpus.parquet, queries.parquet and qrels/<split>.parquet; "
    "or a page folder (pages/ with images or PDFs, queries.jsonl, qrels/<split>.tsv)"
)


def load_corpus(path: str | Path, unknown_ids: UnknownIds | str = UnknownIds.ERROR) -> IRDataset:
    """The documents alone, for encoding: a BEIR folder's `corpus.jsonl` (queries and judgments not
    needed), a corpus `.jsonl` file, or else any dataset `load_dataset` reads (whose queries and
    judgments come along)."""
    from .beir import is_beir
    from .build import build_corpus
    from .records import read_jsonl

    path = Path(path)
    corpus_file = path / "corpus.jsonl" if is_beir(path) else path if path.is_file() and path.suffix.lower() == ".jsonl" else None
    if corpus_file is None:
        return load_dataset(path, unknown_ids)
    return IRDataset(corpus=build_corpus(read_jsonl(corpus_file), corpus_file), queries={}, qrels={},
                     source=str(path))


def load_dataset(path: str | Path, unknown_ids: UnknownIds | str = UnknownIds.ERROR) -> IRDataset:
    """Read a retrieval dataset from any supported layout, detected from what the path holds.

    `unknown_ids`: "error" (default) refuses judgments naming ids missing from the corpus or queries,
    with their count and first examples; "drop" drops them and counts them in `dropped_judgments`.
    """
    from . import beir, hf, pages, tables

    try:
        unknown_ids = UnknownIds(unknown_ids)
    except ValueError:
        raise DataError(f"unknown_ids must be 'error' or 'drop', got {unknown_ids!r}.") from None
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: dataset not found. Expected {LAYOUTS}.")
    if path.is_file():
        if path.suffix.lower() in {".yaml", ".yml"}:
            return tables.load_spec_file(path, unknown_ids)
        raise DataError(f"{path}: a single file is not a dataset. Expected {LAYOUTS}.")
    if beir.is_beir(path):
        return beir.load_beir(path, unknown_ids)
    for name in SPEC_NAMES:
        if (path / name).is_file():
            return tables.load_spec_file(path / name, unknown_ids)
    if hf.is_hf_on_disk(path):
        return hf.load_hf_on_disk(path, unknown_ids)
    if hf.is_parquet_folder(path):
        return hf.load_parquet_folder(path, unknown_ids)
    if pages.is_page_folder(path):
        return pages.load_page_folder(path, unknown_ids)
    if (path / "queries.jsonl").is_file():
        raise DataError(f"{path}: queries.jsonl found but corpus.jsonl is missing; a BEIR folder needs both.")
    raise DataError(f"{path}: no dataset layout recognised. Expected {LAYOUTS}.")
