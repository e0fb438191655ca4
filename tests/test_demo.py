"""The generated demo catalog: seeded, graded, split, and readable through the table reader."""

from __future__ import annotations

from pathlib import Path

from retrieval_ft.cli import main
from retrieval_ft.data import load_dataset
from retrieval_ft.data.demo import generate_demo


def test_demo_is_seeded_graded_and_split(tmp_path: Path, capsys):
    assert main(["demo-data", "--out", str(tmp_path / "demo"), "--products", "300", "--queries", "80"]) == 0
    assert "300 products" in capsys.readouterr().out
    ds = load_dataset(tmp_path / "demo")
    assert ds.splits == ["dev", "test", "train"]
    split_queries = [set(ds.split(s)) for s in ds.splits]
    assert sum(len(s) for s in split_queries) == 80 and not (split_queries[0] & split_queries[1])
    grades = {g for s in ds.splits for docs in ds.split(s).values() for g in docs.values()}
    assert grades == {0, 1, 2, 3}
    assert all(any(g == 3 for g in docs.values()) for docs in ds.split("test").values())
    _, again = generate_demo(300, 80)
    assert again.corpus_fingerprint == ds.corpus_fingerprint
    assert again.fingerprint("test") == ds.fingerprint("test")
    _, other = generate_demo(300, 80, seed=14)
    assert other.corpus_fingerprint != ds.corpus_fingerprint
