"""Page images referenced by a corpus: opened lazily, one at a time, with errors that name the file.

Nothing here decodes the whole corpus at once: `load_image` opens one page when an encoder asks for
it, and `verify_images` checks every page up front (decoding each fully, then dropping it) for
callers who prefer to fail, or skip and count, before encoding starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError, MissingExtraError
from .dataset import Document, IRDataset, PageRef


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError("page images need Pillow: pip install 'retrieval-ft[images]'") from None
    return Image


def image_path(dataset: IRDataset | Path | str, doc: Document) -> Path:
    root = dataset.root if isinstance(dataset, IRDataset) else Path(dataset)
    if doc.image is None:
        raise DataError(f"document {doc.id!r} has no image.")
    return root / doc.image


def _pdf_file(ref: PageRef) -> Path:
    """The PDF holding `ref`'s page, which must exist."""
    if not Path(ref.path).is_file():
        raise DataError(f"{ref.path}: PDF not found; fix the document's path or add the file.")
    return Path(ref.path)


def _pdf_page(path: Path, page: int, scale: float) -> Any:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except Exception as exc:  # PdfiumError for corrupt or truncated files
        raise DataError(f"{path}: unreadable PDF ({exc}); replace the file or remove it.") from None
    try:
        if not 1 <= page <= len(pdf):
            raise DataError(f"{path}: no page {page} (the PDF has {len(pdf)}).")
        return pdf[page - 1].render(scale=scale).to_pil().convert("RGB")
    finally:
        pdf.close()


def load_image(path: str | Path, pdf_scale: float = 2.0) -> Any:
    """A decoded RGB PIL image; `file.pdf#pN` renders page N of a PDF. Missing, unreadable, corrupt
    or truncated files raise DataError naming the file."""
    Image = _pil()
    ref = PageRef.parse(path)
    if ref is not None:
        return _pdf_page(_pdf_file(ref), ref.page, pdf_scale)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image not found; fix the document's image path or add the file.")
    try:
        with Image.open(path) as img:
            img.load()  # decodes every byte: truncated files fail here
            return img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({type(exc).__name__}: {exc}); replace the file, or skip bad "
                        "pages with skip_bad_images=True.") from None


def verify_images(dataset: IRDataset, skip_bad: bool = False) -> tuple[IRDataset, list[str]]:
    """Decode every page once. Bad pages raise DataError, or with `skip_bad` are dropped from the
    corpus (and their judgments) and listed; returns (dataset, skipped document ids)."""
    bad: list[str] = []
    for doc in dataset.corpus.values():
        if doc.image is None:
            continue
        try:
            load_image(image_path(dataset, doc)).close()
        except DataError:
            if not skip_bad:
                raise
            bad.append(doc.id)
    if not bad:
        return dataset, []
    gone = set(bad)
    corpus = {d: doc for d, doc in dataset.corpus.items() if d not in gone}
    qrels = {s: {q: {d: g for d, g in docs.items() if d not in gone} for q, docs in split.items()}
             for s, split in dataset.qrels.items()}
    return IRDataset(corpus=corpus, queries=dataset.queries, qrels=qrels, source=dataset.source,
                     dropped_judgments=dataset.dropped_judgments), bad


def page_file(path: str | Path) -> str:
    """An image file holding the page: the path itself for an image, or for `file.pdf#pN` a PNG of
    that page rendered once into the cache (keyed by the PDF's content)."""
    ref = PageRef.parse(path)
    if ref is None:
        return str(path)
    from .._io import atomic_path, cache_dir, file_digest

    target = cache_dir("pages") / file_digest(_pdf_file(ref))[:32] / f"p{ref.page}.png"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        image = load_image(str(ref))
        with atomic_path(target) as tmp:
            image.save(tmp, format="PNG")
    return str(target)
