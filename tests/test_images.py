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
