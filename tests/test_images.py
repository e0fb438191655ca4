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


@pytest.mark.parametrize("damage", ["missing", "random-bytes", "truncated", "empty"])
def test_bad_pages_name_the_file_or_are_skipped(pages: Path, damage: str):
    target = pages / "images" / "3.png"
    if damage == "missing":
        target.unlink()
    elif damage == "random-bytes":
        target.write_bytes(b"not a png at all" * 10)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 3])
    else:
        target.write_bytes(b"")
    ds = load_dataset(pages)
    with pytest.raises(DataError, match=r"images/3.png: (image not found|unreadable image)"):
        verify_images(ds)
    kept, skipped = verify_images(ds, skip_bad=True)
    assert skipped == ["3"] and "3" not in kept.corpus and len(kept.corpus) == 9
    assert all("3" not in docs for split in kept.qrels.values() for docs in split.values())
