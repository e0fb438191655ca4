"""Large corpora: a corpus encoded shard by shard into resumable part files, and one index built from
every shard without holding all vectors at once. It computes no vectors (`encode` does) and picks no
index parameters (`index` does).

A shard folder `OUT/shard-00001-of-00003/` holds `plan.json` (written first: shard, encoder,
corpus fingerprint), `part-00000.npy` with its `part-00000.json` (rows, checksum) for each part of
`part_size` documents, and `manifest.json`, written last, once every part is done. A shard without
its manifest is unfinished; running it again encodes only the parts that are missing or corrupt.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._io import read_json_object, write_json_atomic
from ._launch import launch_env
from ._progress import progress_display
from .config import DEFAULT_PART_SIZE, IndexConfig, IndexKind, Similarity
from .data import Document, IRDataset, load_dataset
from .data.records import check_unique_ids, json_field, json_ids
from .encode import EmbeddingCache, Encoder, Item, document_inputs
from .errors import ConfigError, DataError, ModelError, where
from .index import VectorIndex, faiss_metric, finish_index, new_index, resolve_kind, training_sample_size
from .results import library_versions

logger = logging.getLogger(__name__)

FORMAT = 1
PLAN, MANIFEST = "plan.json", "manifest.json"
_SHARD_DIR = re.compile(r"^shard-(\d+)-of-(\d+)$")
# encoder fields that name where the weights were loaded from, not what they compute
_LOCATION_KEYS = ("name", "path")


@dataclass(frozen=True)
class ShardInfo:
    """What `encode_shard` left on disk: one shard's vectors, `rows` x `dim` float32, in `parts` files."""

    shard: int
    n_shards: int
    folder: Path  # this shard's folder, holding manifest.json
    rows: int
    dim: int
    parts: int
    resumed_parts: int  # finished by an earlier run, checked and kept
    encoded_parts: int  # encoded by this call
    seconds: float  # time spent encoding in this call
    already_complete: bool  # the shard was finished before this call, which changed nothing

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST


@dataclass(frozen=True)
class LaunchedShard:
    """The shard a launcher (torchrun, accelerate launch) assigns this process: RANK of WORLD_SIZE,
    on the GPU numbered LOCAL_RANK when there are GPUs."""

    shard: int
    n_shards: int
    device: str | None


def launched_shard() -> LaunchedShard | None:
    """This process's shard when a launcher started several processes; None otherwise."""
    launch = launch_env()
    if launch.world_size <= 1:
        return None
    import torch

    return LaunchedShard(launch.rank, launch.world_size, f"cuda:{launch.local_rank}" if torch.cuda.is_available() else None)


def shard_name(shard: int, n_shards: int) -> str:
    return f"shard-{shard:05d}-of-{n_shards:05d}"


def shard_bounds(n_docs: int, shard: int, n_shards: int) -> tuple[int, int]:
    """[start, stop) of shard `shard` (0-based) of `n_shards` contiguous slices of `n_docs`
    documents; the first `n_docs % n_shards` shards hold one document more than the rest."""
    size, extra = divmod(n_docs, n_shards)
    start = shard * size + min(shard, extra)
    return start, start + size + (1 if shard < extra else 0)


def check_shard(shard: int, n_shards: int, n_docs: int | None = None) -> None:
    """Raise ConfigError unless `shard` of `n_shards` names a shard that exists (and holds documents)."""
    if n_shards < 1:
        raise ConfigError(f"shard {shard}/{n_shards}: the number of shards must be at least 1, e.g. 0/4.")
    if not 0 <= shard < n_shards:
        raise ConfigError(f"shard {shard}/{n_shards}: shards are numbered from 0 (as torchrun's RANK), "
                          f"so with {n_shards} shards use 0 to {n_shards - 1}.")
    if n_docs is not None and n_shards > n_docs:
        raise ConfigError(f"shard {shard}/{n_shards}: {n_shards} shards of a {n_docs}-document corpus would leave "
                          f"some empty; use at most {n_docs} shards.")


def _read_json(path: Path) -> dict[str, Any]:
    """A shard's plan or manifest, after checking that every field this module reads has its type:
    a hand-edited or truncated file is a DataError naming the file and the field."""
    fix = f"delete its shard folder ({path.parent}) and encode that shard again"
    data = read_json_object(path, fix, what=f"shard {path.stem}")

    def need(record: dict[str, Any], name: str, types: tuple[type, ...], expected: str, label: str | None = None) -> Any:
        return json_field(record, name, types, expected, path=path, fix=fix, label=label)

    for name in ("shard", "n_shards", "start", "stop", "part_size"):
        need(data, name, (int,), "an integer")
    corpus, encoder = need(data, "corpus", (dict,), "a mapping"), need(data, "encoder", (dict,), "a mapping")
    need(corpus, "fingerprint", (str,), "a string", "corpus.fingerprint")
    need(corpus, "n_docs", (int,), "an integer", "corpus.n_docs")
    for name in ("fingerprint", "document_fingerprint", "similarity"):
        need(encoder, name, (str,), "a string", f"encoder.{name}")
    if encoder["similarity"] not in {s.value for s in Similarity}:
        raise DataError(f"{where(path, field='encoder.similarity')}: unknown similarity {encoder['similarity']!r}; {fix}.")
    if path.name == MANIFEST:
        need(data, "dim", (int,), "an integer")
        json_ids(data, "ids", path=path, fix=fix)
        for n, part in enumerate(need(data, "parts", (list,), "a list of parts")):
            if not isinstance(part, dict):
                raise DataError(f"{where(path, field=f'parts[{n}]')}: expected a mapping, got {part!r}; {fix}.")
            if Path(need(part, "file", (str,), "a file name", f"parts[{n}].file")).name != part["file"]:
                raise DataError(f"{where(path, field=f'parts[{n}].file')}: {part['file']!r} is not a file in the "
                                f"shard folder; {fix}.")
            need(part, "rows", (int,), "an integer", f"parts[{n}].rows")
            need(part, "sha256", (str,), "a string", f"parts[{n}].sha256")
    return data


def _differences(have: dict[str, Any], want: dict[str, Any], *, same_shard: bool) -> list[str]:
    """What differs between an existing shard's plan and this run's, in words."""
    out = []
    if have.get("n_shards") != want["n_shards"]:
        out.append(f"{have.get('n_shards')} shards (this run: {want['n_shards']})")
    h_corpus, w_corpus = have.get("corpus", {}), want["corpus"]
    if h_corpus.get("fingerprint") != w_corpus["fingerprint"]:
        out.append(f"the corpus of {h_corpus.get('source')!r}, {h_corpus.get('n_docs')} documents, fingerprint "
                   f"{str(h_corpus.get('fingerprint'))[:12]} (this run: {w_corpus['source']!r}, {w_corpus['n_docs']} "
                   f"documents, {w_corpus['fingerprint'][:12]})")
    h_enc, w_enc = have.get("encoder", {}), want["encoder"]
    if (h_enc.get("fingerprint"), h_enc.get("document_fingerprint")) != (w_enc["fingerprint"], w_enc["document_fingerprint"]):
        out.append(f"encoder {h_enc.get('name')!r} (fingerprint {str(h_enc.get('fingerprint'))[:12]}; this run: "
                   f"{w_enc['name']!r}, {w_enc['fingerprint'][:12]})")
    for key in sorted((set(h_enc) | set(w_enc)) - {"fingerprint", "document_fingerprint", *_LOCATION_KEYS}):
        if h_enc.get(key) != w_enc.get(key):
            out.append(f"{key}={h_enc.get(key)!r} (this run: {w_enc.get(key)!r})")
    if same_shard and have.get("part_size") != want["part_size"]:
        out.append(f"part_size={have.get('part_size')} (this run: {want['part_size']})")
    return out


def _check_folder(out: Path, plan: dict[str, Any], own: Path) -> None:
    """Refuse when any shard already in `out` was encoded from another corpus, encoder, settings or
    number of shards: one folder holds one encoding of one corpus."""
    if not out.is_dir():
        return
    for folder in sorted(p for p in out.iterdir() if _SHARD_DIR.match(p.name) and (p / PLAN).is_file()):
        have = _read_json(folder / PLAN)
        diffs = _differences(have, plan, same_shard=folder == own)
        if diffs == [f"part_size={have.get('part_size')} (this run: {plan['part_size']})"]:
            raise DataError(f"{folder} was started with {diffs[0]}; pass part_size {have.get('part_size')} "
                            f"(--part-size) to resume it, or delete {folder} to encode it again.")
        if diffs:
            raise DataError(
                f"{folder} was encoded with {'; '.join(diffs)}. A shard folder holds one encoding of one corpus: "
                f"pass another --out, or delete {out} to encode from scratch."
            )


def _part_key(index: int) -> str:
    return f"part-{index:05d}"  # part-00000.npy with its record part-00000.json


def _part_ok(folder: Path, index: int, rows: int, ids: Sequence[str]) -> dict[str, Any] | None:
    """The record of finished part `index` when its file is intact (rows, ids and checksum as
    recorded), else None (missing, or corrupt and to be encoded again)."""
    parts = EmbeddingCache(folder)
    if not parts.meta_path(_part_key(index)).is_file() or not parts.array_path(_part_key(index)).is_file():
        return None
    try:
        _, record = parts.read(_part_key(index), rows)
        if record["first_id"] != ids[0] or record["last_id"] != ids[-1]:
            raise ValueError(f"it holds rows from {record['first_id']!r}, expected from {ids[0]!r}")
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        logger.warning("%s is unusable (%s); encoding it again.", parts.array_path(_part_key(index)), exc)
        return None
    return record


def _encode_part(encoder: Encoder, items: Sequence[Item], desc: str) -> np.ndarray:
    """(len(items), dim) float32 vectors of one part's documents."""
    return encoder.encode_documents(items, desc=desc)


def _save_part(folder: Path, index: int, vecs: np.ndarray, ids: Sequence[str]) -> dict[str, Any]:
    """Write the part and then its record, each atomically: a part without its record is redone."""
    return EmbeddingCache(folder).save(_part_key(index), vecs, {
        "part": index, "rows": int(vecs.shape[0]), "dim": int(vecs.shape[1]), "dtype": "float32",
        "first_id": ids[0], "last_id": ids[-1]})


def _encode_missing(encoder: Encoder, docs: Sequence[Document], root: Path, bounds: list[tuple[int, int]],
                    records: list[dict[str, Any] | None], folder: Path, desc: str) -> float:
    """Encode and save each part whose record is None (filling in its record), one bar over the
    shard's documents; returns the seconds spent encoding."""
    seconds = 0.0
    initial = sum(b - a for p, (a, b) in enumerate(bounds) if records[p] is not None)
    with progress_display(encoder.config.progress, desc, len(docs), initial=initial, unit="doc") as bar:
        for p in [p for p, r in enumerate(records) if r is None]:
            a, b = bounds[p]
            t0 = time.perf_counter()
            vecs = _encode_part(encoder, document_inputs(docs[a:b], root), f"Part {p + 1}/{len(bounds)}")
            seconds += time.perf_counter() - t0
            vecs = np.ascontiguousarray(vecs, dtype=np.float32)
            if vecs.ndim != 2 or vecs.shape[0] != b - a:
                raise ModelError(f"the encoder returned vectors of shape {vecs.shape} for {b - a} documents; "
                                 "it must return one row per document.")
            records[p] = _save_part(folder, p, vecs, [d.id for d in docs[a:b]])
            if bar is not None:
                bar.update(b - a)
    return seconds


def _write_manifest(folder: Path, plan: dict[str, Any], ids: list[str], records: list[dict[str, Any] | None]) -> int:
    """Write the finished shard's manifest (last, atomically: the shard is complete once it exists);
    returns the vectors' dimension."""
    dims = {int(r["dim"]) for r in records if r is not None}
    if len(dims) != 1:
        raise DataError(f"{folder}: its parts hold vectors of different sizes {sorted(dims)}; delete the folder "
                        "and encode the shard again.")
    dim = dims.pop()
    manifest = {**plan, "rows": len(ids), "dim": dim, "dtype": "float32", "ids": ids,
                "versions": library_versions(), "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "parts": [{"file": f"{_part_key(p)}.npy", "rows": r["rows"], "sha256": r["sha256"]}  # type: ignore[index]
                          for p, r in enumerate(records)]}
    write_json_atomic(folder / MANIFEST, manifest)
    return dim


def encode_shard(encoder: Encoder, dataset: IRDataset | str | Path, shard: int, n_shards: int, out: str | Path,
                 *, part_size: int = DEFAULT_PART_SIZE) -> ShardInfo:
    """Encode shard `shard` of `n_shards` (0-based, so torchrun's RANK and WORLD_SIZE fit as they are)
    of the corpus into `out/shard-<i>-of-<n>/`, in parts of `part_size` documents.

    Shards are contiguous slices of the corpus in its order whose sizes differ by at most one. Each
    part is written as soon as it is encoded, so a killed run loses at most one part: running it
    again keeps the finished parts (after checking their checksums) and encodes the rest. Every
    shard of one folder must come from the same corpus, encoder, settings and number of shards.
    """
    if part_size < 1:
        raise ConfigError(f"part_size must be a positive number of documents, got {part_size!r}.")
    dataset = dataset if isinstance(dataset, IRDataset) else load_dataset(dataset)
    docs = list(dataset.corpus.values())
    check_shard(shard, n_shards, len(docs))
    start, stop = shard_bounds(len(docs), shard, n_shards)
    docs = docs[start:stop]
    ids = [d.id for d in docs]
    out = Path(out)
    folder = out / shard_name(shard, n_shards)
    plan = {"format": FORMAT, "shard": shard, "n_shards": n_shards, "start": start, "stop": stop,
            "part_size": part_size, "encoder": encoder.describe(),
            "corpus": {"fingerprint": dataset.corpus_fingerprint, "n_docs": len(dataset.corpus), "source": dataset.source}}
    _check_folder(out, plan, folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / PLAN).is_file():
        write_json_atomic(folder / PLAN, plan)

    bounds = [(a, min(a + part_size, len(docs))) for a in range(0, len(docs), part_size)]
    records: list[dict[str, Any] | None] = [_part_ok(folder, p, b - a, ids[a:b]) for p, (a, b) in enumerate(bounds)]
    todo = [p for p, r in enumerate(records) if r is None]
    if not todo and (folder / MANIFEST).is_file():
        logger.info("shard %d/%d: all %d parts already encoded in %s", shard, n_shards, len(bounds), folder)
        return ShardInfo(shard, n_shards, folder, len(docs), int(records[0]["dim"]), len(bounds),  # type: ignore[index]
                         len(bounds), 0, 0.0, True)
    (folder / MANIFEST).unlink(missing_ok=True)  # a repaired shard is incomplete until its manifest is rewritten
    done = len(bounds) - len(todo)
    if not todo:
        logger.info("shard %d/%d: all %d parts already encoded; writing its manifest", shard, n_shards, len(bounds))
    elif done:
        logger.info("shard %d/%d: resuming; %d of %d parts already encoded, encoding parts %s",
                    shard, n_shards, done, len(bounds), ", ".join(str(p) for p in todo))

    seconds = _encode_missing(encoder, docs, dataset.root, bounds, records, folder, f"Shard {shard}/{n_shards}")
    dim = _write_manifest(folder, plan, ids, records)
    return ShardInfo(shard, n_shards, folder, len(docs), dim, len(bounds), done, len(todo), seconds, False)


# -- one index from every shard ------------------------------------------------------------------

@dataclass(frozen=True)
class _Part:
    path: Path
    rows: int
    sha256: str
    offset: int  # position of its first row in the whole index
    shard: int
    n_shards: int


def _redo(shard: int, n_shards: int, folder: Path) -> str:
    return (f"run `retrieval-ft encode --shard {shard}/{n_shards} --out {folder}` (with the same --model and "
            "--data) to finish or repair it")


def _load_manifests(folder: Path) -> list[dict[str, Any]]:
    """Every shard's manifest, in shard order, after checking they form one complete encoding."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; encode shards into it with `retrieval-ft encode --shard i/n --out {folder}`.")
    found: dict[int, set[int]] = {}
    for p in folder.iterdir():
        m = _SHARD_DIR.match(p.name)
        if m and p.is_dir():
            found.setdefault(int(m.group(2)), set()).add(int(m.group(1)))
    if not found:
        raise DataError(f"{folder}: holds no shard folders (shard-<i>-of-<n>); encode them with "
                        f"`retrieval-ft encode --shard i/n --out {folder}`.")
    if len(found) > 1:
        kinds = ", ".join(f"{len(v)} of {n}" for n, v in sorted(found.items()))
        raise DataError(f"{folder}: holds shards of different splits ({kinds}); keep the shards of one "
                        "--shard i/n split and delete the others.")
    n_shards = next(iter(found))
    missing = [i for i in range(n_shards) if i not in found[n_shards]]
    if missing:
        names = ", ".join(f"{i}/{n_shards}" for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"{folder}: shard{'s' if len(missing) > 1 else ''} {names} missing ({len(missing)} of "
                        f"{n_shards}); {_redo(missing[0], n_shards, folder)}.")
    manifests = []
    for i in range(n_shards):
        shard_dir = folder / shard_name(i, n_shards)
        if not (shard_dir / MANIFEST).is_file():
            parts = len(list(shard_dir.glob("part-*.json")))
            raise DataError(f"{shard_dir}: shard {i}/{n_shards} is unfinished ({parts} parts encoded, no "
                            f"{MANIFEST}); {_redo(i, n_shards, folder)}.")
        manifests.append(_read_json(shard_dir / MANIFEST))
    first = manifests[0]
    for i, m in enumerate(manifests):
        shard_dir = folder / shard_name(i, n_shards)
        diffs = _differences(m, first, same_shard=False)
        if diffs:
            raise DataError(f"{shard_dir}: shard {i}/{n_shards} differs from shard 0/{n_shards}: {'; '.join(diffs)}. "
                            f"Encode every shard with the same model, settings and data.")
        if (m.get("shard"), m.get("dim")) != (i, first.get("dim")):
            raise DataError(f"{shard_dir / MANIFEST}: says shard {m.get('shard')} with {m.get('dim')}-d vectors, "
                            f"expected shard {i} with {first.get('dim')}-d; {_redo(i, n_shards, folder)}.")
        expect = shard_bounds(first["corpus"]["n_docs"], i, n_shards)
        if (m.get("start"), m.get("stop")) != expect or len(m.get("ids", ())) != expect[1] - expect[0]:
            raise DataError(f"{shard_dir / MANIFEST}: covers documents {m.get('start')}-{m.get('stop')}, expected "
                            f"{expect[0]}-{expect[1]}; {_redo(i, n_shards, folder)}.")
    return manifests


def _parts(folder: Path, manifests: list[dict[str, Any]]) -> list[_Part]:
    """The part files in index order, each checked to exist with the shape its manifest records."""
    out, offset = [], 0
    for m in manifests:
        shard, n_shards, dim = m["shard"], m["n_shards"], m["dim"]
        for entry in m["parts"]:
            path = folder / shard_name(shard, n_shards) / entry["file"]
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
                shape, dtype = array.shape, array.dtype
                del array
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: unreadable ({exc}); {_redo(shard, n_shards, folder)}.") from None
            if shape != (entry["rows"], dim) or dtype != np.float32:
                raise DataError(f"{path}: holds {dtype} {shape}, expected float32 ({entry['rows']}, {dim}); "
                                f"{_redo(shard, n_shards, folder)}.")
            out.append(_Part(path, int(entry["rows"]), entry["sha256"], offset, shard, n_shards))
            offset += int(entry["rows"])
    return out


def _read_part(part: _Part, folder: Path) -> np.ndarray:
    """(rows, dim) float32 of one part, after checking its bytes against the manifest's checksum."""
    data = part.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != part.sha256:
        raise DataError(f"{part.path}: its checksum does not match the shard's manifest (the file changed or is "
                        f"corrupt); {_redo(part.shard, part.n_shards, folder)}.")
    return np.load(io.BytesIO(data), allow_pickle=False)


def _gather(parts: list[_Part], positions: np.ndarray) -> np.ndarray:
    """(len(positions), dim) rows at sorted global `positions`, read through memory maps."""
    rows = []
    for part in parts:
        lo, hi = np.searchsorted(positions, [part.offset, part.offset + part.rows])
        if hi > lo:
            array = np.load(part.path, mmap_mode="r", allow_pickle=False)
            rows.append(np.asarray(array[positions[lo:hi] - part.offset], dtype=np.float32))
    return np.ascontiguousarray(np.concatenate(rows))


def _exact_neighbors(queries: np.ndarray, parts: list[_Part], k: int,
                     similarity: Similarity) -> tuple[np.ndarray, np.ndarray]:
    """(scores, global positions), each (n_queries, k): each query's exact top-k rows over every
    part, best first (scores higher-is-better), reading one part at a time and keeping only the
    running top-k."""
    import faiss

    euclidean = similarity is Similarity.EUCLIDEAN
    metric = faiss_metric(similarity)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_keys = np.empty((len(queries), 0), dtype=np.float32)  # lower is better
    best_pos = np.empty((len(queries), 0), dtype=np.int64)
    for part in parts:
        vectors = np.ascontiguousarray(np.load(part.path, mmap_mode="r", allow_pickle=False), dtype=np.float32)
        scores, positions = faiss.knn(queries, vectors, min(k, part.rows), metric=metric)
        keys = np.concatenate([best_keys, scores if euclidean else -scores], axis=1)
        pos = np.concatenate([best_pos, positions + part.offset], axis=1)
        order = np.lexsort((pos, keys))[:, :k]  # per row: by score, then position
        best_keys, best_pos = np.take_along_axis(keys, order, 1), np.take_along_axis(pos, order, 1)
    return -best_keys, best_pos


def build_index_from_shards(folder: str | Path, config: IndexConfig | None = None, *,
                            queries: np.ndarray | None = None) -> VectorIndex:
    """One index over every shard in `folder` (written by `encode_shard`), rows in shard then part order.

    Refuses a folder whose shards are missing, unfinished or from different encoders or corpora.
    IVF and IVF-PQ are trained on a seeded sample read through memory maps and filled one part at a
    time, so only the index and one part are ever in memory; flat and HNSW hold every vector anyway.
    Approximate kinds are calibrated as `build_index` does, with the exact neighbours computed part
    by part; `queries` (n, dim), when given, are the calibration sample instead of corpus rows.
    """
    folder = Path(folder)
    config = config or IndexConfig()
    manifests = _load_manifests(folder)
    parts = _parts(folder, manifests)
    ids = [doc_id for m in manifests for doc_id in m["ids"]]
    check_unique_ids(ids, f"{folder} (the shards' manifests)", "encode every shard from one corpus")
    first = manifests[0]
    encoder, dim, n = first["encoder"], int(first["dim"]), len(ids)
    similarity = Similarity(encoder["similarity"])
    kind = resolve_kind(config, n)
    # the same seeded draws as build_index, so shards index exactly as the concatenated vectors would
    rng = np.random.default_rng(0)
    sample = None
    if kind in (IndexKind.IVF, IndexKind.IVFPQ):
        size = training_sample_size(kind, config, n)
        sample = _gather(parts, np.arange(n) if size >= n else np.sort(rng.choice(n, size, replace=False)))
    index, params = new_index(kind, dim, similarity, config, n_docs=n, train_sample=sample)
    del sample
    for part in parts:
        index.add(_read_part(part, folder))
    built = finish_index(index, kind, params, similarity, config, ids, encoder, rng=rng,
                         rows=lambda positions: _gather(parts, positions),
                         neighbors=lambda sample, depth: _exact_neighbors(sample, parts, depth, similarity),
                         queries=queries)
    built.meta["built_from"] = {"shards": str(folder), "n_shards": len(manifests), "corpus": first["corpus"]}
    return built
