"""Explicit training pairs and triplets: a JSONL/CSV/TSV/parquet file with `anchor`, `positive` and
optional `negative` (or `negative_1`, `negative_2`, ...) columns holding texts.

The file becomes an IRDataset (each distinct anchor a query, each distinct passage a document, one
`train` judgment per pair) plus the explicit negatives of each pair, so pair files go through the
same training path as judged datasets (held-out dev queries, query-only tuning, hard negatives).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError, where
from .build import _scalar
from .dataset import Document, IRDataset
from .tables import read_records

PAIR_SUFFIXES = {".jsonl", ".ndjson", ".csv", ".tsv", ".tab", ".parquet"}
_NEGATIVE = re.compile(r"^negative(_\d+)?$")


def is_pair_file(path: str | Path) -> bool:
    path = Path(path)
    return path.is_file() and path.suffix.lower() in PAIR_SUFFIXES


def load_pairs(path: str | Path) -> tuple[IRDataset, dict[tuple[str, str], list[str]]]:
    """(dataset with a `train` split, explicit negatives per (query id, positive doc id))."""
    path = Path(path)
    doc_ids: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    negatives: dict[tuple[str, str], list[str]] = {}
    n_neg: int | None = None

    def doc(text: str) -> str:
        return doc_ids.setdefault(text, f"pair-doc-{len(doc_ids)}")

    for line, rec in read_records(path):
        for column in ("anchor", "positive"):
            if column not in rec:
                raise DataError(
                    f"{where(path, line)}: missing column {column!r} (present: {', '.join(map(str, rec))}); a pair file "
                    "needs anchor and positive columns, and may add negative or negative_1, negative_2, ..."
                )
        anchor = _scalar(rec["anchor"], path, line, "anchor").strip()
        positive = _scalar(rec["positive"], path, line, "positive").strip()
        if not anchor or not positive:
            raise DataError(f"{where(path, line)}: empty anchor or positive text.")
        neg_columns = sorted((c for c in rec if _NEGATIVE.match(str(c))), key=lambda c: (len(c), c))
        negs = [_scalar(rec[c], path, line, c).strip() for c in neg_columns if _scalar(rec[c], path, line, c).strip()]
        if n_neg is None:
            n_neg = len(negs)
        elif len(negs) != n_neg:
            raise DataError(f"{where(path, line)}: {len(negs)} negatives, but earlier rows have {n_neg}; "
                            "give every row the same number of negatives.")
        qid = query_ids.setdefault(anchor, f"pair-q-{len(query_ids)}")
        did = doc(positive)
        qrels.setdefault(qid, {})[did] = 1
        negatives[(qid, did)] = [doc(n) for n in negs]
    if not qrels:
        raise DataError(f"{path}: no pairs; a pair file needs rows with anchor and positive texts.")
    corpus = {did: Document(did, text) for text, did in doc_ids.items()}
    queries = {qid: text for text, qid in query_ids.items()}
    return IRDataset(corpus=corpus, queries=queries, qrels={"train": qrels}, source=str(path)), negatives
