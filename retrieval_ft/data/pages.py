"""Page folders: `pages/` holding page images and PDFs, beside `queries.jsonl` and `qrels/<split>.tsv`.

Each image is one document (id: its path under pages/); each PDF page is one document with id
`<file>#p<N>` (N from 1), rendered only when an encoder asks for it. Judgments name these ids.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, MissingExtraError
from .beir import with_queries_and_qrels
from .build import UnknownIds
from .dataset import Document, IRDataset, PageRef

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def is_page_folder(path: Path) -> bool:
    return path.is_dir() and (path / "pages").is_dir() and not (path / "corpus.jsonl").exists()


def pdf_page_count(path: Path) -> int:
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise MissingExtraError("PDF pages need pypdfium2: pip install 'retrieval-ft[images]'") from None
    try:
        pdf = pdfium.PdfDocument(str(path))
    except Exception as exc:  # pypdfium2 raises PdfiumError for corrupt or truncated files
        raise DataError(f"{path}: unreadable PDF ({exc}); replace the file or remove it from pages/.") from None
    try:
        return len(pdf)
    finally:
        pdf.close()


def load_page_folder(folder: str | Path, unknown_ids: UnknownIds | str = UnknownIds.ERROR) -> IRDataset:
    folder = Path(folder)
    pages = folder / "pages"
    corpus: dict[str, Document] = {}
    for f in sorted(p for p in pages.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = f.relative_to(pages).as_posix()
        suffix = f.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            corpus[rel] = Document(id=rel, text="", image=f"pages/{rel}")
        elif suffix == ".pdf":
            n = pdf_page_count(f)
            if n == 0:
                raise DataError(f"{f}: the PDF has no pages.")
            for ref in (PageRef(rel, page) for page in range(1, n + 1)):
                corpus[str(ref)] = Document(id=str(ref), text="", image=f"pages/{ref}")
    if not corpus:
        raise DataError(f"{pages}: no page images or PDFs ({', '.join(sorted(IMAGE_SUFFIXES))}, .pdf).")
    if not (folder / "queries.jsonl").is_file():
        raise DataError(f"{folder}: pages/ found but queries.jsonl is missing.")
    return with_queries_and_qrels(folder, corpus, unknown_ids)
