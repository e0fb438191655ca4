"""Low-level readers that turn files into numbered records, with errors naming file and line.

Line-oriented formats (JSONL, CSV/TSV, qrels) are read here with the standard library rather than
through `datasets`, because validation must name the exact line of a bad record; Hugging Face
datasets on disk and parquet files are read with `datasets` (see hf.py).
"""

from __future__ import annotations

import csv
import io
import json
import reprlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError, where

Record = tuple[int, dict[str, Any]]  # (line or row number, fields)

MAX_LINE_BYTES = 64 * 1024 * 1024


def _open_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded line) with BOM and CRLF handled; undecodable bytes name the line."""
    if not path.is_file():
        raise DataError(f"{path}: file not found." if not path.exists() else f"{path}: not a regular file.")
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(f"{where(path, lineno)}: line longer than {MAX_LINE_BYTES} bytes; is this a text file?")
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{where(path, lineno)}: not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8."
                ) from None
            if "\x00" in text:
                raise DataError(f"{where(path, lineno)}: contains NUL bytes; is this a binary file?")
            yield lineno, text.rstrip("\r\n")


def read_jsonl(path: str | Path) -> Iterator[Record]:
    path = Path(path)
    for lineno, line in _open_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where(path, lineno)}: invalid JSON ({exc.msg} at column {exc.colno}).") from None
        if not isinstance(obj, dict):
            raise DataError(
                f"{where(path, lineno)}: expected a JSON object per line, got {type(obj).__name__}."
            )
        yield lineno, obj


def read_table(path: str | Path, delimiter: str | None = None) -> Iterator[Record]:
    """CSV/TSV with a header row; `delimiter` defaults from the extension (.tsv = tab)."""
    path = Path(path)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    lines = _open_lines(path)
    # csv needs the whole stream to handle quoted newlines; we feed it decoded lines and keep numbers.
    buffer = io.StringIO("\n".join(line for _, line in lines))
    reader = csv.reader(buffer, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file; expected a header row naming the columns.") from None
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{where(path, 1)}: duplicate column names {dupes} in the header.")
    try:
        for row in reader:
            lineno = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{where(path, lineno)}: {len(row)} columns, but the header has {len(header)} "
                    f"({', '.join(header)}); quote fields that contain {delimiter!r}."
                )
            yield lineno, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise DataError(f"{where(path, reader.line_num)}: malformed CSV ({exc}).") from None


QRELS_HEADER = ("query-id", "corpus-id", "score")


def read_qrels(path: str | Path) -> Iterator[tuple[int, str, str, str]]:
    """Judgments as (line, query id, doc id, grade text) from a BEIR TSV (header
    `query-id corpus-id score`), a headerless 3-column file, or TREC qrels (`qid iter docid grade`)."""
    path = Path(path)
    for lineno, line in _open_lines(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        cols = [c.strip() for c in cols]
        if lineno == 1 and [c.lower().replace("_", "-") for c in cols[:3]] == list(QRELS_HEADER):
            continue
        if len(cols) == 3:
            qid, did, grade = cols
        elif len(cols) == 4:
            qid, _iteration, did, grade = cols
        else:
            raise DataError(
                f"{where(path, lineno)}: expected 3 columns (query-id, corpus-id, score) or 4 (TREC: "
                f"qid iter docid grade), found {len(cols)}."
            )
        yield lineno, qid, did, grade


def json_field(data: Mapping[str, Any], name: str, types: tuple[type, ...], expected: str, *, path: str | Path,
               fix: str, label: str | None = None) -> Any:
    """`data[name]` when present and one of `types` (a bool is not an int), else a DataError naming
    `path` and the field (`label`, when the field is nested) and ending with `fix`."""
    loc = where(path, field=label or name)
    if name not in data:
        raise DataError(f"{loc}: missing; {fix}.")
    value = data[name]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise DataError(f"{loc}: expected {expected}, got {reprlib.repr(value)}; {fix}.")
    return value


def json_ids(data: Mapping[str, Any], name: str, *, path: str | Path, fix: str) -> list[str]:
    """`data[name]` when it is a list of unique strings (document ids), else a DataError as `json_field`'s."""
    ids = json_field(data, name, (list,), "a list of document ids", path=path, fix=fix)
    bad = next((n for n, i in enumerate(ids) if not isinstance(i, str)), None)
    if bad is not None:
        raise DataError(f"{where(path, field=name)}: every id must be a string, found {reprlib.repr(ids[bad])} at "
                        f"position {bad}; {fix}.")
    check_unique_ids(ids, where(path, field=name), fix)
    return ids


def check_unique_ids(ids: Sequence[str], what: str, fix: str = "document ids must be unique") -> None:
    """Raise DataError naming the first id that `ids` repeats; `what` says whose ids they are."""
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise DataError(f"{what}: id {i!r} appears more than once; {fix}.")
        seen.add(i)
