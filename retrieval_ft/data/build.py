"""Validated construction of corpus, queries and judgments from numbered records.

Every reader (BEIR, tables, Hugging Face datasets) funnels through here, so each format gets the
same checks and the same error wording: file, line, field, and how to fix it.
"""

from __future__ import annotations

import enum
import logging
import math
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError, where
from .dataset import Document, PageRef, Qrels

logger = logging.getLogger(__name__)


class UnknownIds(str, enum.Enum):
    """What to do with judgments that name a query or document the dataset does not have."""

    ERROR = "error"  # refuse the dataset (default): such judgments usually mean mismatched files
    DROP = "drop"  # drop them, count them in `IRDataset.dropped_judgments`, and log a warning


@dataclass(frozen=True)
class Fields:
    """Which record fields hold a document's or query's id, text, title and image.

    `text` may name one field or several (joined by a space); `template` (a `str.format` pattern over
    the record's fields, e.g. "{title}. Brand: {brand}. {description}") overrides `text`.
    """

    id: str = "_id"
    text: str | tuple[str, ...] = "text"
    title: str | None = "title"
    template: str | None = None
    image: str | None = "image"

    def __post_init__(self) -> None:
        if self.template is not None:
            try:
                names = [f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None]
            except ValueError as exc:
                raise ConfigError(f"template {self.template!r} is not a valid format string ({exc}).") from None
            if not names:
                raise ConfigError(f"template {self.template!r} names no field; write fields as {{name}}.")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], defaults: Fields) -> Fields:
        text = mapping.get("text", defaults.text)
        if isinstance(text, list):
            text = tuple(text)
        return cls(
            id=mapping.get("id", defaults.id),
            text=text,
            title=mapping.get("title", defaults.title),
            template=mapping.get("template", defaults.template),
            image=mapping.get("image", defaults.image),
        )


CORPUS_FIELDS = Fields()
QUERY_FIELDS = Fields(title=None, image=None)


def _scalar(value: Any, path: Path, line: int, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(
            f"{where(path, line, field)}: expected a string, got {type(value).__name__} {value!r:.60}."
        )
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _record_id(rec: Mapping[str, Any], fields: Fields, path: Path, line: int) -> str:
    if fields.id not in rec:
        raise DataError(
            f"{where(path, line)}: missing id field {fields.id!r} (fields present: {', '.join(map(str, rec)) or 'none'})."
            " Map the id column with id=... if it has another name."
        )
    rid = _scalar(rec[fields.id], path, line, fields.id).strip()
    if not rid:
        raise DataError(f"{where(path, line, fields.id)}: empty id.")
    return rid


_SPACES = re.compile(r"\s+")


def _record_text(rec: Mapping[str, Any], fields: Fields, path: Path, line: int, required: bool) -> str:
    if fields.template is not None:
        values = _TemplateValues(rec, path, line)
        return _SPACES.sub(" ", fields.template.format_map(values)).strip()
    names = (fields.text,) if isinstance(fields.text, str) else fields.text
    parts = []
    for name in names:
        if name not in rec:
            if required:
                raise DataError(
                    f"{where(path, line)}: missing text field {name!r} (fields present: {', '.join(map(str, rec))})."
                    " Map the text column with text=... or a template."
                )
            continue
        parts.append(_scalar(rec[name], path, line, name).strip())
    return " ".join(p for p in parts if p)


class _TemplateValues(dict):
    def __init__(self, rec: Mapping[str, Any], path: Path, line: int) -> None:
        super().__init__()
        self._rec, self._path, self._line = rec, path, line

    def __missing__(self, key: str) -> str:
        if key not in self._rec:
            raise DataError(
                f"{where(self._path, self._line)}: the template names field {key!r}, which this record lacks "
                f"(fields present: {', '.join(map(str, self._rec))})."
            )
        return _scalar(self._rec[key], self._path, self._line, key).strip()


def _check_image_path(image: str, root: Path, path: Path, line: int, field: str) -> None:
    """An image path must be relative, stay inside the dataset folder, and name an existing file
    (`file.pdf#pN` names page N of a PDF). Files are opened only when encoded."""
    file = PageRef.file_of(image)
    if Path(file).is_absolute() or not (root / file).resolve().is_relative_to(root.resolve()):
        raise DataError(
            f"{where(path, line, field)}: image path {image!r} leaves the dataset folder {root}; "
            "image paths must be relative to it and stay inside."
        )
    if not (root / file).is_file():
        raise DataError(f"{where(path, line, field)}: image {root / file} not found; fix the path or add the file.")


def _check_unique(kind: str, rid: str, first_line: dict[str, int], path: Path, line: int) -> None:
    if rid in first_line:
        raise DataError(
            f"{where(path, line)}: duplicate {kind} id {rid!r} (first seen on line {first_line[rid]}); ids must be unique."
        )
    first_line[rid] = line


def build_corpus(records: Iterable[tuple[int, Mapping[str, Any]]], path: Path, fields: Fields = CORPUS_FIELDS) -> dict[str, Document]:
    """Documents from records; image paths are bounded by the corpus file's folder (the dataset folder)."""
    corpus: dict[str, Document] = {}
    first_line: dict[str, int] = {}
    for line, rec in records:
        did = _record_id(rec, fields, path, line)
        _check_unique("document", did, first_line, path, line)
        image = None
        if fields.image is not None and rec.get(fields.image) not in (None, ""):
            image = _scalar(rec[fields.image], path, line, fields.image)
            _check_image_path(image, path.parent, path, line, fields.image)
        text = _record_text(rec, fields, path, line, required=image is None and fields.template is None)
        title = ""
        if fields.title is not None and fields.template is None and fields.title in rec:
            title = _scalar(rec[fields.title], path, line, fields.title).strip()
        corpus[did] = Document(id=did, text=text, title=title, image=image)
    if not corpus:
        raise DataError(f"{path}: the corpus is empty; a dataset needs at least one document.")
    return corpus


def build_queries(records: Iterable[tuple[int, Mapping[str, Any]]], path: Path, fields: Fields = QUERY_FIELDS) -> dict[str, str]:
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line, rec in records:
        qid = _record_id(rec, fields, path, line)
        _check_unique("query", qid, first_line, path, line)
        text = _record_text(rec, fields, path, line, required=True)
        if not text:
            raise DataError(f"{where(path, line, str(fields.text))}: empty query text.")
        queries[qid] = text
    return queries


def parse_grade(value: Any, path: Path, line: int) -> int:
    """A judgment grade: a non-negative integer (1.0 is read as 1)."""
    try:
        grade = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where(path, line, 'score')}: grade {value!r} is not a number; grades are integers >= 0.") from None
    if not math.isfinite(grade) or not grade.is_integer() or grade < 0:
        raise DataError(f"{where(path, line, 'score')}: grade {value!r} must be an integer >= 0 (0 = not relevant).")
    return int(grade)


def build_qrels(
    judgments: Iterable[tuple[int, str, str, Any]],
    path: Path,
    corpus: Mapping[str, Document],
    queries: Mapping[str, str],
    unknown_ids: UnknownIds = UnknownIds.ERROR,
) -> tuple[Qrels, int]:
    """Judgments of one split; returns (qrels, number dropped for naming unknown ids)."""
    qrels: Qrels = {}
    seen_line: dict[tuple[str, str], int] = {}
    unknown_q: dict[str, int] = {}
    unknown_d: dict[str, int] = {}
    dropped = 0
    for line, qid, did, raw_grade in judgments:
        qid, did = str(qid).strip(), str(did).strip()
        if not qid or not did:
            raise DataError(f"{where(path, line)}: empty query id or document id.")
        grade = parse_grade(raw_grade, path, line)
        if qid not in queries or did not in corpus:
            if qid not in queries:
                unknown_q.setdefault(qid, line)
            if did not in corpus:
                unknown_d.setdefault(did, line)
            dropped += 1
            continue
        previous = qrels.setdefault(qid, {}).get(did)
        if previous is not None and previous != grade:
            raise DataError(
                f"{where(path, line)}: query {qid!r} / document {did!r} judged {grade} here but {previous} "
                f"on line {seen_line[(qid, did)]}; keep one judgment per pair."
            )
        qrels[qid][did] = grade
        seen_line[(qid, did)] = line
    if dropped:
        details = []
        if unknown_q:
            ex = ", ".join(f"{q!r} (line {n})" for q, n in list(unknown_q.items())[:3])
            details.append(f"{len(unknown_q)} unknown query ids, e.g. {ex}")
        if unknown_d:
            ex = ", ".join(f"{d!r} (line {n})" for d, n in list(unknown_d.items())[:3])
            details.append(f"{len(unknown_d)} unknown document ids, e.g. {ex}")
        summary = f"{path}: {dropped} judgments name ids the dataset does not have ({'; '.join(details)})"
        if UnknownIds(unknown_ids) is UnknownIds.ERROR:
            raise DataError(
                summary + ". Fix the ids, or drop such judgments with --drop-unknown-judgments "
                "(unknown_ids='drop')."
            )
        logger.warning("%s; dropped them (unknown_ids='drop').", summary)
    return qrels, dropped
