"""Page images: the real ViDoRe sample opens; missing, corrupt and truncated pages name the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from retrieval_ft.data import load_dataset
from retrieval_ft.data.images import image_path, load_image, verify_images
from retrieval_ft.errors import DataError

from .conftest import shared_dataset


@pytest.fixture
def pages(tmp_path: Path) -> Path:
    folder = tmp_path / "vidore"
    shutil.copytree(shared_dataset("vidore_arxivqa_sample"), folder)
    for f in folder.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    return folder


def test_real_pages_load_lazily(pages: Path):
    ds = load_dataset(pages)
    assert len(ds.corpus) == 10 and all(d.image for d in ds.corpus.values())
    img = load_image(image_path(ds, ds.corpus["0"]))
    assert img.mode == "RGB" and min(img.size) > 100
    assert verify_images(ds) == (ds, [])


@pytest.mark.parametrize("damage", ["random-bytes", "truncated", "empty"])
def test_bad_pages_name_the_file_or_are_skipped(pages: Path, damage: str):
    target = pages / "images" / "3.png"
    if damage == "random-bytes":
        target.write_bytes(b"not a png at all" * 10)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 3])
    else:
        target.write_bytes(b"")
    ds = load_dataset(pages)
    with pytest.raises(DataError, match=r"images/3.png: unreadable image"):
        verify_images(ds)
    kept, skipped = verify_images(ds, skip_bad=True)
    assert skipped == ["3"] and "3" not in kept.corpus and len(kept.corpus) == 9
    assert all("3" not in docs for split in kept.qrels.values() for docs in split.values())


def _page_folder(tmp_path: Path, pdf_bytes: bytes | None = None) -> Path:
    from PIL import Image, ImageDraw

    folder = tmp_path / "pages-ds"
    (folder / "pages").mkdir(parents=True)
    (folder / "qrels").mkdir()
    for i in range(2):
        img = Image.new("RGB", (160, 220), "white")
        ImageDraw.Draw(img).text((10, 10), f"invoice {i}", fill="black")
        img.save(folder / "pages" / f"scan{i}.png")
    sheets = [Image.new("RGB", (160, 220), c) for c in ("white", "lightgray", "white")]
    if pdf_bytes is None:
        sheets[0].save(folder / "pages" / "report.pdf", save_all=True, append_images=sheets[1:])
    else:
        (folder / "pages" / "report.pdf").write_bytes(pdf_bytes)
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "second page of the report"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\treport.pdf#p2\t1\n")
    return folder


def test_page_folder_with_images_and_pdf_pages(tmp_path: Path):
    ds = load_dataset(_page_folder(tmp_path))
    assert list(ds.corpus) == ["report.pdf#p1", "report.pdf#p2", "report.pdf#p3", "scan0.png", "scan1.png"]
    assert ds.split("test") == {"q1": {"report.pdf#p2": 1}}
    page = load_image(image_path(ds, ds.corpus["report.pdf#p2"]), pdf_scale=1.0)
    assert page.size == (160, 220) and page.getpixel((5, 5)) == (211, 211, 211)  # the light-gray sheet
    assert verify_images(ds) == (ds, [])


@pytest.mark.parametrize("content", [b"%PDF-1.4 truncated", b"not a pdf", b""])
def test_corrupt_pdfs_name_the_file(tmp_path: Path, content: bytes):
    with pytest.raises(DataError, match=r"report.pdf: unreadable PDF"):
        load_dataset(_page_folder(tmp_path, pdf_bytes=content))


def test_missing_image_is_refused_at_load(pages: Path):
    (pages / "images" / "4.png").unlink()
    with pytest.raises(DataError, match=r"corpus.jsonl:5 \(field 'image'\): image .*images/4.png not found"):
        load_dataset(pages)


def test_evaluate_can_skip_bad_pages(pages: Path, tiny_clip: Path, tmp_path: Path, capsys):
    from retrieval_ft.cli import main

    (pages / "images" / "3.png").write_bytes(b"broken")
    out = tmp_path / "res.json"
    args = ["evaluate", "--model", str(tiny_clip), "--data", str(pages), "--no-progress", "--k", "5",
            "--metrics", "ndcg@5", "--out", str(out)]
    assert main([*args, "--check-images"]) == 2
    assert "images/3.png: unreadable image" in capsys.readouterr().err
    assert main([*args, "--skip-bad-images"]) == 0
    import json

    assert json.loads(out.read_text())["dataset"]["skipped_pages"] == ["3"]


@pytest.mark.parametrize(("text", "path", "page"), [
    ("report.pdf#p1", "report.pdf", 1),
    ("pages/sub dir/report.pdf#p12", "pages/sub dir/report.pdf", 12),
    ("Scan.PDF#p3", "Scan.PDF", 3),  # the extension in any case, as files are named
    ("a.pdf#p2.pdf#p7", "a.pdf#p2.pdf", 7),  # the last `#p` counts
    ("/abs/x.pdf#p0", "/abs/x.pdf", 0),  # parsed; rendering says the PDF has no page 0
])
def test_page_ref_parses_pdf_pages(text: str, path: str, page: int):
    from retrieval_ft.data import PageRef

    ref = PageRef.parse(text)
    assert ref == PageRef(path, page)
    assert PageRef.parse(Path(text)) == ref
    assert str(ref) == text and PageRef.parse(str(ref)) == ref
    assert PageRef.file_of(text) == path


@pytest.mark.parametrize("text", [
    "scan0.png", "report.pdf", "report.pdf#p", "report.pdf#pX", "report.pdf#p-1", "report.pdf#p1.5",
    "report.pdf#P1", "report.pdf#p²", "report.pdf#p١", "report.txt#p1", ".pdf#p1", "report.pdf #p1", "report.pdf#p1 ",
])
def test_page_ref_leaves_other_paths_as_files(text: str):
    """Not a page reference: the text names a file (and an unparsable page number is never int()'d)."""
    from retrieval_ft.data import PageRef

    assert PageRef.parse(text) is None
    assert PageRef.file_of(text) == text


def test_every_page_reader_uses_the_same_page_ref(tmp_path: Path):
    """The corpus check, the fingerprint, the encoder's cache key and the loader agree on what
    `x.pdf#pN` names (they parsed it five ways before)."""
    from retrieval_ft.data.images import page_file
    from retrieval_ft.encode import Page, _page_signature

    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(DataError, match="image not found"):
        load_image(tmp_path / "doc.pdf#p²")  # unicode digits: a file name, not int("²") raising ValueError
    with pytest.raises(DataError, match="unreadable PDF"):
        load_image(f"{pdf}#p1")
    with pytest.raises(DataError, match="PDF not found"):
        page_file(tmp_path / "gone.pdf#p1")
    assert page_file(tmp_path / "scan.png") == str(tmp_path / "scan.png")
    same = _page_signature(Page(f"{pdf}#p1"))
    assert same.startswith("page:") and not same.startswith("page:missing") and same.endswith(":1")
    assert _page_signature(Page(f"{pdf}#p2")) != same
