"""Encoding a corpus in shards (resumable, refused when mixed) and building one index from them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval_ft import shards
from retrieval_ft.cli import main
from retrieval_ft.config import EncodeConfig, IndexConfig
from retrieval_ft.data import load_dataset
from retrieval_ft.encode import Encoder, document_inputs
from retrieval_ft.errors import ConfigError, DataError
from retrieval_ft.index import build_index
from retrieval_ft.search import Retriever
from retrieval_ft.shards import build_index_from_shards, encode_shard

from .conftest import build_tiny_model, write_beir


def _encoder(model, **settings) -> Encoder:
    # float32: the shard-vs-whole comparison allows float reassociation only, not bf16 rounding
    return Encoder(model, EncodeConfig(progress=False, precision="fp32", **settings))


def _vectors(folder: Path) -> tuple[list[str], np.ndarray]:
    """Ids and vectors of every shard in `folder`, read back through the manifests."""
    ids, parts = [], []
    for manifest in sorted(folder.glob("shard-*/manifest.json")):
        m = json.loads(manifest.read_text())
        assert m["versions"]["faiss-cpu"] and m["versions"]["sentence-transformers"] and m["written"].endswith("Z")
        ids += m["ids"]
        parts += [np.load(manifest.parent / p["file"]) for p in m["parts"]]
    return ids, np.concatenate(parts)


def _clustered(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, d))
    x = (centres[rng.integers(0, 30, n)] + 0.4 * rng.standard_normal((n, d))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _fake_part_encoder(monkeypatch: pytest.MonkeyPatch, vectors: np.ndarray) -> None:
    """Parts 'encode' to the next rows of `vectors`: shards encoded in order get them in corpus order."""
    taken = [0]

    def encode_part(encoder, items, desc):
        start = taken[0]
        taken[0] += len(items)
        return vectors[start:taken[0]]

    monkeypatch.setattr(shards, "_encode_part", encode_part)


def test_shards_concatenate_to_the_whole_corpus(tiny_model, tmp_path: Path):
    dataset = load_dataset(write_beir(tmp_path / "beir", n_docs=41))
    encoder = _encoder(tiny_model)
    infos = [encode_shard(encoder, dataset, i, 3, tmp_path / "shards", part_size=5) for i in range(3)]
    assert [i.rows for i in infos] == [14, 14, 13] and [i.parts for i in infos] == [3, 3, 3]
    assert all(i.encoded_parts == i.parts and i.resumed_parts == 0 and i.dim == 32 for i in infos)

    ids, vectors = _vectors(tmp_path / "shards")
    assert ids == list(dataset.corpus)
    whole = encoder.encode_documents(document_inputs(list(dataset.corpus.values()), dataset.root))
    assert vectors.dtype == np.float32 and np.abs(vectors - whole).max() < 1e-5

    manifest = json.loads(infos[1].manifest.read_text())
    assert (manifest["shard"], manifest["n_shards"], manifest["start"], manifest["stop"]) == (1, 3, 14, 28)
    assert (manifest["rows"], manifest["dim"], manifest["dtype"]) == (14, 32, "float32")
    assert manifest["corpus"]["fingerprint"] == dataset.corpus_fingerprint
    assert manifest["encoder"] == encoder.describe()
    assert [p["file"] for p in manifest["parts"]] == ["part-00000.npy", "part-00001.npy", "part-00002.npy"]

    with pytest.raises(ConfigError, match="numbered from 0"):
        encode_shard(encoder, dataset, 3, 3, tmp_path / "shards")
    with pytest.raises(ConfigError, match="at most 41 shards"):
        encode_shard(encoder, dataset, 0, 50, tmp_path / "other")


def test_a_killed_shard_resumes_and_a_corrupt_part_is_encoded_again(tiny_model, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch, caplog):
    dataset = load_dataset(write_beir(tmp_path / "beir", n_docs=40))
    encoder = _encoder(tiny_model)
    real = shards._encode_part
    calls = {"n": 0, "fail_at": 2}

    def flaky(encoder, items, desc):
        calls["n"] += 1
        if calls["n"] == calls["fail_at"]:
            raise RuntimeError("killed")
        return real(encoder, items, desc)

    monkeypatch.setattr(shards, "_encode_part", flaky)
    out = tmp_path / "shards"
    with pytest.raises(RuntimeError, match="killed"):
        encode_shard(encoder, dataset, 0, 1, out, part_size=10)
    folder = out / "shard-00000-of-00001"
    assert (folder / "part-00000.npy").is_file() and not (folder / "manifest.json").exists()
    with pytest.raises(DataError, match="shard 0/1 is unfinished"):
        build_index_from_shards(out)

    calls.update(n=0, fail_at=0)
    with caplog.at_level("INFO", logger="retrieval_ft.shards"):
        info = encode_shard(encoder, dataset, 0, 1, out, part_size=10)
    assert calls["n"] == 3 and (info.resumed_parts, info.encoded_parts) == (1, 3)
    assert "1 of 4 parts already encoded" in caplog.text
    ids, resumed = _vectors(out)
    monkeypatch.setattr(shards, "_encode_part", real)
    encode_shard(encoder, dataset, 0, 1, tmp_path / "uninterrupted", part_size=10)
    np.testing.assert_array_equal(resumed, _vectors(tmp_path / "uninterrupted")[1])
    assert ids == list(dataset.corpus)

    monkeypatch.setattr(shards, "_encode_part", flaky)
    calls.update(n=0)
    again = encode_shard(encoder, dataset, 0, 1, out, part_size=10)
    assert calls["n"] == 0 and again.already_complete and again.resumed_parts == 4
    (folder / "manifest.json").unlink()  # killed after the last part, before the manifest
    again = encode_shard(encoder, dataset, 0, 1, out, part_size=10)
    assert calls["n"] == 0 and not again.already_complete and (folder / "manifest.json").is_file()

    part = folder / "part-00002.npy"
    data = bytearray(part.read_bytes())
    data[-8:] = b"\x00\x00\xc0\x7f" * 2  # two NaNs in place of the last floats: same size, other bytes
    part.write_bytes(bytes(data))
    with pytest.raises(DataError, match="part-00002.npy: its checksum does not match"):
        build_index_from_shards(out)
    with caplog.at_level("WARNING", logger="retrieval_ft.shards"):
        repaired = encode_shard(encoder, dataset, 0, 1, out, part_size=10)
    assert calls["n"] == 1 and repaired.encoded_parts == 1 and "part-00002.npy is unusable" in caplog.text
    np.testing.assert_array_equal(_vectors(out)[1], resumed)


def test_mixed_shard_folders_are_refused(tiny_model, tmp_path: Path):
    dataset = load_dataset(write_beir(tmp_path / "beir", n_docs=20))
    encoder = _encoder(tiny_model)
    out = tmp_path / "shards"
    encode_shard(encoder, dataset, 0, 2, out, part_size=4)
    with pytest.raises(DataError, match=r"shard 1/2 missing .*retrieval-ft encode --shard 1/2"):
        build_index_from_shards(out)
    with pytest.raises(DataError, match=r"encoded with document_prompt='' \(this run: 'passage: '\).*another --out"):
        encode_shard(_encoder(tiny_model, document_prompt="passage: "), dataset, 1, 2, out)
    other = _encoder(str(build_tiny_model(tmp_path / "other", seed=1)))
    with pytest.raises(DataError, match=r"encoded with encoder .*fingerprint"):
        encode_shard(other, dataset, 1, 2, out)
    with pytest.raises(DataError, match=r"2 shards \(this run: 3\)"):
        encode_shard(encoder, dataset, 0, 3, out)
    with pytest.raises(DataError, match=r"the corpus of .* 20 documents"):
        encode_shard(encoder, load_dataset(write_beir(tmp_path / "beir2", n_docs=22)), 1, 2, out)
    with pytest.raises(DataError, match="pass part_size 4"):
        encode_shard(encoder, dataset, 0, 2, out, part_size=5)
    # nothing was written by the refused runs; the right one completes the folder
    encode_shard(encoder, dataset, 1, 2, out, part_size=4)
    assert len(build_index_from_shards(out)) == 20


def test_flat_index_from_shards_equals_build_index_and_loads(tiny_model, tmp_path: Path):
    dataset = load_dataset(write_beir(tmp_path / "beir", n_docs=40))
    encoder = _encoder(tiny_model, query_prompt="q: ")
    for i in range(3):
        encode_shard(encoder, dataset, i, 3, tmp_path / "shards", part_size=6)
    index = build_index_from_shards(tmp_path / "shards")
    ids, vectors = _vectors(tmp_path / "shards")
    reference = build_index(vectors, ids, encoder.similarity, encoder=encoder.describe())
    queries = encoder.encode_queries(["star galaxy planet", "flour sugar oven", "penalty goal"])
    assert index.ids == list(dataset.corpus)
    assert index.search(queries, 10) == reference.search(queries, 10)
    assert {k: index.meta[k] for k in reference.meta} == reference.meta
    assert index.meta["kind"] == "flat" and "calibration" not in index.meta

    index.save(tmp_path / "idx")
    retriever = Retriever.load(tmp_path / "idx")
    assert retriever.encoder.query_prompt == "q: "
    hits = retriever.search(["star galaxy planet"], k=5)[0]
    assert [h.doc_id for h in hits] == [d for d, _ in reference.search(queries[:1], 5)[0]]


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_ivf_from_shards_is_trained_on_a_sample_filled_part_by_part_and_calibrated(
        kind: str, tiny_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    dataset = load_dataset(write_beir(tmp_path / "beir", n_docs=600))
    vectors = _clustered(600, seed=3)
    _fake_part_encoder(monkeypatch, vectors)
    encoder = _encoder(tiny_model)
    for i in range(3):
        encode_shard(encoder, dataset, i, 3, tmp_path / "shards", part_size=64)
    read = []
    real_read = shards._read_part
    monkeypatch.setattr(shards, "_read_part", lambda part, folder: read.append(part.rows) or real_read(part, folder))

    config = IndexConfig(kind=kind)
    index = build_index_from_shards(tmp_path / "shards", config)
    assert read == [64, 64, 64, 8] * 3 and len(index) == 600  # one part in memory at a time
    calibration = index.meta["calibration"]
    assert calibration["queries_from"] == "corpus sample" and calibration["queries"] == 500
    if kind == "ivf":
        assert calibration["reached"] and calibration["recall@10"] >= config.target_recall
    assert index.meta["params"][calibration["param"]] == calibration["value"] == index.index.nprobe
    # the same seeded sample and calibration queries as building from the concatenated vectors
    reference = build_index(vectors, list(dataset.corpus), encoder.similarity, config, encoder.describe())
    assert index.meta["calibration"] == reference.meta["calibration"]
    assert index.meta["params"] == reference.meta["params"]
    queries = _clustered(20, seed=9)
    assert index.search(queries, 10) == reference.search(queries, 10)


def test_cli_encode_shards_then_index(capsys, tiny_model_path: Path, tmp_path: Path):
    beir = write_beir(tmp_path / "beir", n_docs=30)
    out, idx = tmp_path / "shards", tmp_path / "idx"
    common = ["--model", str(tiny_model_path), "--data", str(beir), "--out", str(out), "--no-progress",
              "--part-size", "8", "--precision", "fp32"]
    for i in range(2):
        assert main(["encode", *common, "--shard", f"{i}/2"]) == 0
    printed = capsys.readouterr().out
    assert "shard 0/2: 15 documents, 32-d, 2 parts" in printed and "2 encoded" in printed
    assert main(["encode", *common, "--shard", "1/2"]) == 0
    assert "already encoded, nothing to do" in capsys.readouterr().out

    assert main(["index", "--shards", str(out), "--out", str(idx)]) == 0
    printed = capsys.readouterr().out
    assert "flat index of 30 vectors (32-d, 2 shards): exact search" in printed
    assert json.loads((idx / "index.json").read_text())["built_from"]["n_shards"] == 2
    assert main(["index", "--shards", str(out), "--out", str(idx), "--kind", "hnsw", "--target-recall", "0.9"]) == 0
    printed = capsys.readouterr().out
    assert "hnsw index of 30 vectors" in printed and "calibrated: recall@10" in printed and "target 0.9" in printed
    assert len(Retriever.load(idx).search(["star galaxy"], k=3)[0]) == 3


@pytest.mark.parametrize(("shard", "message"), [
    ("3/3", "with N=3 use I from 0 to 2"),
    ("a/b", "expected I/N with whole numbers"),
    ("0/0", "N must be at least 1"),
    ("2", "expected I/N"),
])
def test_cli_bad_shard_exits_2(capsys, shard: str, message: str, tmp_path: Path):
    code = main(["encode", "--model", "M", "--data", "D", "--out", str(tmp_path), "--shard", shard])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_cli_index_names_the_missing_shard(capsys, tiny_model_path: Path, tmp_path: Path):
    beir = write_beir(tmp_path / "beir", n_docs=12)
    assert main(["encode", "--model", str(tiny_model_path), "--data", str(beir), "--out", str(tmp_path / "s"),
                 "--shard", "1/3", "--no-progress"]) == 0
    assert main(["index", "--shards", str(tmp_path / "s"), "--out", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err
    assert "shards 0/3, 2/3 missing (2 of 3)" in err and not (tmp_path / "idx").exists()


def test_under_a_launcher_each_process_takes_its_rank_s_shard(capsys, monkeypatch: pytest.MonkeyPatch,
                                                              tiny_model_path: Path, tmp_path: Path):
    import torch

    from retrieval_ft.shards import LaunchedShard, launched_shard

    assert launched_shard() is None  # launched alone
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert launched_shard() == LaunchedShard(1, 2, "cuda:1")  # its own GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    beir = write_beir(tmp_path / "beir", n_docs=10)
    assert main(["encode", "--model", str(tiny_model_path), "--data", str(beir), "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 0
    assert "shard 1/2: 5 documents" in capsys.readouterr().out
    assert (tmp_path / "s" / "shard-00001-of-00002" / "manifest.json").is_file()


def test_an_explicit_shard_under_a_launcher_is_refused(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code = main(["encode", "--model", "M", "--data", "D", "--out", str(tmp_path), "--shard", "0/2"])
    assert code == 2 and "every process encode the same shard" in capsys.readouterr().err


def test_encode_needs_only_a_corpus(capsys, tiny_model_path: Path, tmp_path: Path):
    beir = write_beir(tmp_path / "beir", n_docs=12)
    alone = tmp_path / "corpus-only"
    alone.mkdir()
    (alone / "corpus.jsonl").write_text((beir / "corpus.jsonl").read_text())
    common = ["--model", str(tiny_model_path), "--no-progress", "--precision", "fp32"]
    assert main(["encode", *common, "--data", str(alone), "--out", str(tmp_path / "a")]) == 0
    assert main(["encode", *common, "--data", str(alone / "corpus.jsonl"), "--out", str(tmp_path / "b")]) == 0
    assert main(["encode", *common, "--data", str(beir), "--out", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.count("shard 0/1: 12 documents") == 3
    parts = [np.load(tmp_path / x / "shard-00000-of-00001" / "part-00000.npy") for x in "abc"]
    assert np.array_equal(parts[0], parts[1]) and np.array_equal(parts[0], parts[2])


def _edit(key: str, value):
    def edit(manifest):
        manifest[key] = value
        return manifest
    return edit


def _edit_in(key: str, sub: str, value):
    def edit(manifest):
        if isinstance(manifest[key], list):
            manifest[key][0] = value if sub == "" else {**manifest[key][0], sub: value}
        else:
            manifest[key][sub] = value
        return manifest
    return edit


# (case, edit of shard 0's manifest -> what to write, the field the message names)
TAMPERED_MANIFESTS = [
    ("not JSON", lambda m: '{"shard": 0, ', None),
    ("a list", lambda m: [m], None),
    ("missing ids", lambda m: {k: v for k, v in m.items() if k != "ids"}, "ids"),
    ("ids not a list", _edit("ids", "d0"), "ids"),
    ("duplicate ids", lambda m: {**m, "ids": [m["ids"][1]] + m["ids"][1:]}, "ids"),
    ("non-string id", lambda m: {**m, "ids": [7] + m["ids"][1:]}, "ids"),
    ("dim a string", _edit("dim", "32"), "dim"),
    ("shard a string", _edit("shard", "0"), "shard"),
    ("parts not a list", _edit("parts", {"file": "part-00000.npy"}), "parts"),
    ("a part not a mapping", _edit_in("parts", "", "part-00000.npy"), "parts[0]"),
    ("a part file outside the shard", _edit_in("parts", "file", "../../x.npy"), "parts[0].file"),
    ("a part's rows a string", _edit_in("parts", "rows", "8"), "parts[0].rows"),
    ("corpus not a mapping", _edit("corpus", "beir"), "corpus"),
    ("corpus n_docs missing", lambda m: {**m, "corpus": {"fingerprint": m["corpus"]["fingerprint"]}}, "corpus.n_docs"),
    ("encoder not a mapping", _edit("encoder", None), "encoder"),
    ("unknown similarity", _edit_in("encoder", "similarity", "manhattan"), "encoder.similarity"),
]


@pytest.fixture(scope="module")
def encoded_shards(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tampered-shards")
    dataset = load_dataset(write_beir(root / "beir", n_docs=12))
    for i in range(2):
        encode_shard(_encoder(tiny_model), dataset, i, 2, root / "shards", part_size=4)
    return root / "shards"


@pytest.mark.parametrize(("case", "edit", "field"), TAMPERED_MANIFESTS, ids=[c[0] for c in TAMPERED_MANIFESTS])
def test_a_tampered_manifest_fails_the_index_command_in_one_line(encoded_shards: Path, tmp_path: Path, capsys,
                                                                  case, edit, field):
    """Hand-edited manifests raised KeyError/TypeError/AttributeError (a traceback, exit 1)."""
    import shutil

    out = tmp_path / "shards"
    shutil.copytree(encoded_shards, out)
    manifest = out / "shard-00000-of-00002" / "manifest.json"
    written = edit(json.loads(manifest.read_text()))
    manifest.write_text(written if isinstance(written, str) else json.dumps(written))
    with pytest.raises(DataError) as caught:
        build_index_from_shards(out)
    assert str(manifest) in str(caught.value) and "\n" not in str(caught.value)
    if field is not None:
        assert f"(field {field!r})" in str(caught.value)
    capsys.readouterr()
    assert main(["index", "--shards", str(out), "--out", str(tmp_path / "idx")]) == 2
    assert str(manifest) in capsys.readouterr().err


def test_a_tampered_plan_is_refused_when_encoding_again(tiny_model, encoded_shards: Path, tmp_path: Path):
    import shutil

    out = tmp_path / "shards"
    shutil.copytree(encoded_shards, out)
    plan = out / "shard-00001-of-00002" / "plan.json"
    plan.write_text(json.dumps({**json.loads(plan.read_text()), "encoder": ["m"]}))
    dataset = load_dataset(encoded_shards.parent / "beir")
    with pytest.raises(DataError, match=r"plan.json \(field 'encoder'\): expected a mapping"):
        encode_shard(_encoder(tiny_model), dataset, 0, 2, out, part_size=4)
