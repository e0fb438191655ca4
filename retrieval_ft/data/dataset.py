"""The one in-memory form of a retrieval dataset: corpus, queries and graded judgments per split.

This module knows nothing of file formats (see the readers beside it) or of models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .._io import file_digest, hash_strings
from ..errors import DataError

# split -> query id -> document id -> grade (a higher grade is more relevant; 0 = judged not relevant)
Qrels = dict[str, dict[str, int]]

_PAGE_REF = re.compile(r"(?P<path>.+\.[pP][dD][fF])#p(?P<page>[0-9]+)", re.DOTALL)


@dataclass(frozen=True)
class PageRef:
    """`file.pdf#pN`: page N (from 1) of a PDF, as a document's `image` and a page folder's ids
    write it. The one parser of that form: anything else names a plain file (an image)."""

    path: str  # the PDF, as written (relative or not)
    page: int

    @classmethod
    def parse(cls, text: str | Path) -> PageRef | None:
        """The page `text` refers to: a path ending in `.pdf` (any case) then `#p` and ASCII digits;
        None when `text` names a plain file."""
        match = _PAGE_REF.fullmatch(str(text))
        return cls(match["path"], int(match["page"])) if match else None

    @classmethod
    def file_of(cls, text: str | Path) -> str:
        """The file that holds `text`'s page: the PDF of a page reference, else `text` itself."""
        ref = cls.parse(text)
        return ref.path if ref is not None else str(text)

    def __str__(self) -> str:
        return f"{self.path}#p{self.page}"


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""
    image: str | None = None  # path of a page image, relative to the dataset folder

    @property
    def full_text(self) -> str:
        """Title and text joined by a space, as BEIR and MTEB encode documents."""
        if self.title and self.text:
            return f"{self.title} {self.text}"
        return self.title or self.text


@dataclass
class IRDataset:
    """A corpus, its queries, and judgments per split (`qrels[split][query_id][doc_id] = grade`)."""

    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, Qrels]
    source: str = "<memory>"
    # Judgments dropped on load because they named unknown ids (policy unknown_ids="drop").
    dropped_judgments: int = 0
    _cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    @property
    def root(self) -> Path:
        """The folder that document image paths are relative to."""
        path = Path(self.source)
        return path.parent if path.is_file() else path

    def __post_init__(self) -> None:
        if not self.corpus:
            raise DataError(f"{self.source}: the corpus is empty; a dataset needs at least one document.")

    @property
    def splits(self) -> list[str]:
        return sorted(self.qrels)

    def split(self, name: str) -> Qrels:
        if name not in self.qrels:
            have = ", ".join(self.splits) or "none"
            raise DataError(
                f"{self.source}: no judgments for split {name!r} (splits with judgments: {have}). "
                "Pick one of those with --split."
            )
        return self.qrels[name]

    def judged_queries(self, split: str) -> list[str]:
        """Queries of `split` with at least one relevant (grade > 0) judgment, in file order."""
        qrels = self.split(split)
        return [qid for qid in self.queries if any(g > 0 for g in qrels.get(qid, {}).values())]

    def skipped_queries(self, split: str) -> list[str]:
        """Queries left out of `split`'s mean: judged in that split with no relevant document, or judged
        in no split at all (queries of other splits are not counted)."""
        qrels = self.split(split)
        judged_elsewhere = {q for name, other in self.qrels.items() if name != split for q in other}
        out = []
        for qid in self.queries:
            if qid in qrels:
                if not any(g > 0 for g in qrels[qid].values()):
                    out.append(qid)
            elif qid not in judged_elsewhere:
                out.append(qid)
        return out

    @cached_property
    def corpus_fingerprint(self) -> str:
        """Hash of every document id, title, text, image path and page file content, in corpus order."""
        parts = (
            (d.id, d.title, d.text, d.image or "") if d.image is None else (d.id, d.title, d.text, d.image, self._page_digest(d))
            for d in self.corpus.values()
        )  # text documents hash as they always have, so earlier results stay comparable
        return hash_strings(s for p in parts for s in p)

    def _page_digest(self, doc: Document) -> str:
        try:
            return file_digest(PageRef.file_of(self.root / doc.image))
        except OSError:
            return "missing"

    def fingerprint(self, split: str) -> str:
        """Hash of the corpus, the split's judged queries and its judgments: two results are comparable
        exactly when their fingerprints are equal."""
        qrels = self.split(split)
        parts = [self.corpus_fingerprint]
        for qid in sorted(qrels):
            parts.append(qid)
            parts.append(self.queries.get(qid, ""))
            for did in sorted(qrels[qid]):
                parts.extend((did, str(qrels[qid][did])))
        return hash_strings(parts)
