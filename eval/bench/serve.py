"""Serving many adapters from one base (`AdapterRetriever`) against loading each tuned model on
its own: resident memory, query throughput in mixed batches, and the cost of adapter operations.

Adapters are query-lora artifacts of the base made without training (random non-zero LoRA weights
of the default query-lora shape; the cost does not depend on the values), cached under
out/bench-serve/. Memory: each configuration in a fresh process; RSS (VmRSS, read after
malloc_trim) after loading and one batch of queries, and "model memory" = that RSS less the
process's RSS just before the first model loaded (torch, peft, faiss imported). Throughput:
queries/s over the same SciFact queries in batches of --batch-size, median of --repeats, against
the adapter merged into a separately loaded model (`Encoder(load_model(artifact))`) in the same
run; mixed batches draw each query's adapter at random among the first N of the largest count
loaded. The retriever searches a saved index of the first --docs SciFact documents, small so that
it does not dominate the memory figures.
Goals: 50 adapters on one base < 1.5x the base alone's memory; mixed batches >= 0.7x the merged
single model's queries/s.

    .venv/bin/python eval/bench/serve.py [--adapters 1,10,50] [--queries 1000] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import _common
import numpy as np

CACHE = _common.ROOT / "out" / "bench-serve"
INIT_STD = 0.02  # lora_B ~ N(0, INIT_STD): query embeddings at cosine ~0.97 to the base's, as a tuned adapter
SEED = 0
MEMORY_GOAL, MIXED_GOAL = 1.5, 0.7


def _trimmed_rss_mb() -> float:
    """VmRSS once glibc has handed freed heap back to the system (malloc_trim), so the figure is
    memory held, not the allocator's slack after transient work such as fingerprinting weights."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return status_mb()


def status_mb(field: str = "VmRSS") -> float:
    """A memory figure of this process from /proc/self/status, MB: VmRSS (resident now) or VmHWM (its
    peak). Not `_common.peak_rss_mb` (getrusage's ru_maxrss) in a child: Linux carries ru_maxrss
    across fork and exec, so a child's would start at this parent's resident memory."""
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _encode_config(batch_size: int):
    from retrieval_ft.config import EncodeConfig

    return EncodeConfig(batch_size=batch_size, progress=False, cache=False, device="cpu")


# -- the adapters and the base index, made once and cached -------------------------------------
def _cache_folder(model: str, fingerprint: str) -> Path:
    from retrieval_ft.config import LoraSettings

    key = json.dumps({"model": model, "fingerprint": fingerprint, "lora": asdict(LoraSettings()),
                      "init_std": INIT_STD, "seed": SEED}, sort_keys=True, default=str)
    return CACHE / hashlib.sha256(key.encode()).hexdigest()[:12]


def _make_adapter(base, stamp_base, encode: dict[str, Any], seed: int, out: Path) -> None:
    """A query-lora artifact of `base` with random LoRA weights, as training would write it."""
    import torch

    from retrieval_ft._io import atomic_dir, write_json_atomic
    from retrieval_ft.config import LoraSettings
    from retrieval_ft.models import parameter_counts, prepare_for_training
    from retrieval_ft.results import library_versions
    from retrieval_ft.stamp import STAMP, ArtifactKind, ArtifactStamp

    query = copy.deepcopy(base)
    torch.manual_seed(seed)  # lora_A: peft's own (kaiming) initialisation, seeded
    preparation = prepare_for_training(query, "query-lora", LoraSettings())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in query.named_parameters():
            if "lora_B" in name:  # peft starts B at zero (no change); a cost benchmark needs a real one
                p.copy_(torch.randn(p.shape, generator=generator) * INIT_STD)
    trainable, total = parameter_counts(query)
    stamp = ArtifactStamp(artifact=ArtifactKind.QUERY_ADAPTER, method="query-lora", base=stamp_base, encode=encode,
                          max_seq_length=base.max_seq_length, preparation=preparation, trainable_params=trainable,
                          total_params=total, versions=library_versions(),
                          created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with atomic_dir(out) as tmp:
        query.save(str(tmp))
        write_json_atomic(tmp / STAMP, stamp.to_dict())


def prepare(encoder, model: str, n_adapters: int, n_docs: int) -> tuple[list[Path], Path, dict[str, Any]]:
    """(artifact folders, base index folder, facts) for the base `encoder` (of `model`): made on
    the first run, reused after."""
    from retrieval_ft.config import LoraSettings
    from retrieval_ft.index import VectorIndex, build_index
    from retrieval_ft.models import resolve_model
    from retrieval_ft.stamp import BaseModelInfo, read_stamp

    base = encoder.model
    folder = _cache_folder(model, encoder.fingerprint)
    stamp_base = BaseModelInfo(name=model, path=resolve_model(model).location, fingerprint=encoder.fingerprint)
    encode = {k: v for k, v in encoder.settings().items() if k not in ("max_seq_length", "precision")}
    artifacts = [folder / f"adapter-{i:02d}" for i in range(n_adapters)]
    start, made = time.perf_counter(), 0
    for i, path in enumerate(artifacts):
        if not path.is_dir():
            _make_adapter(base, stamp_base, encode, SEED + i, path)
            made += 1
    index = folder / f"index-{n_docs}"
    if not index.is_dir():
        texts = _common.scifact_texts(n_docs)
        build_index(encoder.encode_documents(texts), [f"d{i}" for i in range(len(texts))], encoder.similarity,
                    None, encoder.describe()).save(index)
    print(f"{n_adapters} adapters ({made} made now, in {time.perf_counter() - start:.1f} s) and the index of "
          f"{n_docs} documents under {folder}", flush=True)
    adapter_bytes = sum(p.stat().st_size for p in artifacts[0].glob("adapter_model.*"))
    n_index = len(VectorIndex.load(index))
    stamp = read_stamp(artifacts[0])
    lora = {**asdict(LoraSettings()), "targets": (stamp.preparation or {}).get("lora_targets") if stamp else None}
    return artifacts, index, {"adapter_mb": adapter_bytes / 2**20, "index_docs": n_index, "lora": lora,
                              "precision": encoder.precision.value, "cache": str(folder.relative_to(_common.ROOT))}


def verify(encoder, artifact: Path, queries: list[str]) -> dict[str, float]:
    """The artifact loads alone (`load_model`) and its query embeddings differ from the base
    `encoder`'s."""
    from retrieval_ft.encode import Encoder
    from retrieval_ft.models import load_model

    tuned = Encoder(load_model(artifact, device="cpu"), encoder.config).encode_queries(queries)
    base = encoder.encode_queries(queries)
    cosine = (tuned * base).sum(axis=1)
    if cosine.min() > 0.9999:
        sys.exit(f"{artifact}: its query embeddings equal the base's (min cosine {cosine.min():.6f}); "
                 "the random LoRA weights did not take")
    return {"min_cosine_to_base": float(cosine.min()), "mean_cosine_to_base": float(cosine.mean())}


# -- memory: each configuration in its own process ---------------------------------------------
def _child(spec: dict[str, Any]) -> None:
    import faiss  # noqa: F401  (imported before the "before" figure, as every row needs them)
    import peft  # noqa: F401
    import sentence_transformers  # noqa: F401
    import torch

    from retrieval_ft.encode import Encoder
    from retrieval_ft.models import load_model
    from retrieval_ft.serve import AdapterRetriever

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    config = _encode_config(spec["batch_size"])
    queries = _common.scifact_queries(spec["batch_size"])
    artifacts = spec["artifacts"][:spec["n"]]
    before = _trimmed_rss_mb()
    start = time.perf_counter()
    if spec["kind"] == "retriever":
        held: Any = AdapterRetriever(spec["model"], index=spec["index"], encode=config,
                                     adapters={f"a{i}": p for i, p in enumerate(artifacts)})
        loaded, seconds = _trimmed_rss_mb(), time.perf_counter() - start
        names = [f"a{i % len(artifacts)}" for i in range(len(queries))] if artifacts else None
        held.encode_queries(queries, adapter=names)  # one batch, each adapter in it
    else:
        held = [load_model(p, device="cpu") for p in (artifacts if spec["kind"] == "separate" else [spec["model"]])]
        loaded, seconds = _trimmed_rss_mb(), time.perf_counter() - start
        for model in held:
            Encoder(model, config).encode_queries(queries)
    print(json.dumps({"before_mb": before, "loaded_mb": loaded, "rss_mb": _trimmed_rss_mb(),
                      "peak_mb": status_mb("VmHWM"), "load_s": seconds}))


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"memory child {spec['kind']} x{spec['n']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory(model: str, artifacts: list[Path], index: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per configuration; ratios against the base alone (`load_model(base)`)."""
    configs = [("base", 0, "base alone"), ("retriever", 0, "AdapterRetriever, no adapter")]
    configs += [("retriever", n, f"AdapterRetriever, {n} adapter{'s' * (n > 1)}") for n in args.adapters]
    configs += [("separate", n, f"{n} separately loaded model{'s' * (n > 1)}") for n in args.adapters]
    rows = []
    for kind, n, label in configs:
        spec = {"kind": kind, "n": n, "model": model, "index": str(index), "batch_size": args.batch_size,
                "threads": args.threads, "artifacts": [str(p) for p in artifacts]}
        row = {"kind": kind, "adapters": n, "label": label, **_measure(spec)}
        row["model_mb"] = row["rss_mb"] - row["before_mb"]
        rows.append(row)
        print(f"  {label}: {row['rss_mb']:.0f} MB RSS, model memory {row['model_mb']:.0f} MB", flush=True)
    base = rows[0]
    for row in rows:
        row["rss_ratio"] = row["rss_mb"] / base["rss_mb"]
        row["model_ratio"] = row["model_mb"] / base["model_mb"]
    return rows


# -- speed: in this process, interleaved ways, median of repeats -------------------------------
def _timed(ways: dict[str, Any], n: int, repeats: int) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, fn in ways.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"seconds": statistics.median(t), "queries_per_s": n / statistics.median(t)}
            for name, t in times.items()}


def _with_ratios(rows: dict[str, dict[str, Any]], labels: dict[str, str], baseline: str) -> dict[str, dict[str, Any]]:
    for key, row in rows.items():
        row["label"] = labels[key]
        row["ratio_vs_merged"] = row["queries_per_s"] / rows[baseline]["queries_per_s"]
    return rows


def throughput(served, merged, index, queries: list[str], counts: list[int], repeats: int) -> dict[str, Any]:
    """queries/s of each way (encoding alone, then encoding + top-10 search) and the ratios to the
    merged single model."""
    from retrieval_ft.search import Retriever

    rng = np.random.default_rng(SEED)
    loaded = len(served.names())
    mixed = {n: [f"a{i}" for i in rng.integers(0, n, len(queries))] for n in counts if n > 1}
    single = "a0"
    enc = {"merged": lambda: merged.encode_queries(queries), "single": lambda: served.encode_queries(queries, single)}
    enc |= {f"mixed-{n}": (lambda d=d: served.encode_queries(queries, d)) for n, d in mixed.items()}
    enc["base"] = lambda: served.encode_queries(queries, None)
    labels = {"merged": "merged single model (baseline)", "single": "AdapterRetriever, one adapter for the batch",
              "base": f"AdapterRetriever, the base (no adapter; {loaded} loaded)"}
    labels |= {f"mixed-{n}": f"AdapterRetriever, mixed: per query among {n} of {loaded} loaded" for n in mixed}
    alone = Retriever(merged, index)
    search = {"merged": lambda: alone.search(queries, 10), "single": lambda: served.search(queries, 10, single)}
    search |= {f"mixed-{n}": (lambda d=d: served.search(queries, 10, d)) for n, d in mixed.items()}
    for fn in (*enc.values(), *search.values()):  # warm-up
        fn()
    check = (served.encode_queries(queries, single) * merged.encode_queries(queries)).sum(axis=1)
    if check.min() < 0.99:
        sys.exit(f"AdapterRetriever's adapter and the merged model disagree (min cosine {check.min():.4f})")
    return {"encode": _with_ratios(_timed(enc, len(queries), repeats), labels, "merged"),
            "search": _with_ratios(_timed(search, len(queries), repeats), labels, "merged"),
            "min_cosine_served_vs_merged": float(check.min()), "loaded": loaded}


def operations(served, artifacts: list[Path], query: str, n_ops: int, repeats: int) -> dict[str, Any]:
    """Adding and removing one adapter (with the others loaded), and one query through adapter A
    then B (a switch) against A then A."""
    adds, removes = [], []
    for i in range(n_ops):
        start = time.perf_counter()
        served.add(f"op{i}", artifacts[i % len(artifacts)])
        adds.append(time.perf_counter() - start)
    for i in range(n_ops):
        start = time.perf_counter()
        served.remove(f"op{i}")
        removes.append(time.perf_counter() - start)
    a, b = served.names()[0], served.names()[-1]
    switch, same = [], []
    for _ in range(repeats):
        for second, out in ((b, switch), (a, same)):
            served.encode_queries([query], a)
            start = time.perf_counter()
            served.encode_queries([query], second)
            out.append(time.perf_counter() - start)
    ms = {"add_ms": statistics.median(adds) * 1e3, "remove_ms": statistics.median(removes) * 1e3,
          "switch_ms": statistics.median(switch) * 1e3, "same_ms": statistics.median(same) * 1e3}
    return {**ms, "switch_ratio": ms["switch_ms"] / ms["same_ms"], "operations": n_ops, "repeats": repeats,
            "loaded": len(served.names()), "distinct_adapters": a != b}


def speed(base, artifacts: list[Path], index: Path, args: argparse.Namespace) -> tuple[dict, dict]:
    """Throughput and operations, the adapters put onto `base` (the loaded base model)."""
    from retrieval_ft.encode import Encoder
    from retrieval_ft.index import VectorIndex
    from retrieval_ft.models import load_model
    from retrieval_ft.serve import AdapterRetriever

    config = _encode_config(args.batch_size)
    loaded = artifacts[:max(args.adapters)]
    served = AdapterRetriever(base, index=index, encode=config, adapters={f"a{i}": p for i, p in enumerate(loaded)})
    merged = Encoder(load_model(artifacts[0], device="cpu"), config)
    queries = _common.scifact_queries(args.queries)
    rates = throughput(served, merged, VectorIndex.load(index), queries, args.adapters, args.repeats)
    return rates, operations(served, artifacts, queries[0], args.ops, args.switches)


# -- the figures -------------------------------------------------------------------------------
def goals(rows: list[dict[str, Any]], rates: dict[str, Any]) -> dict[str, Any]:
    """The issue's two goals, each with the figure it is judged by."""
    most = max((r for r in rows if r["kind"] == "retriever"), key=lambda r: r["adapters"])
    empty = next(r for r in rows if r["kind"] == "retriever" and r["adapters"] == 0)
    per_adapter = (most["rss_mb"] - empty["rss_mb"]) / most["adapters"] if most["adapters"] else None
    out: dict[str, Any] = {"memory": {"adapters": most["adapters"], "rss_ratio": most["rss_ratio"],
                                      "per_adapter_mb": per_adapter,
                                      "model_ratio": most["model_ratio"], "goal": MEMORY_GOAL,
                                      "met_rss": most["rss_ratio"] < MEMORY_GOAL,
                                      "met_model": most["model_ratio"] < MEMORY_GOAL}}
    mixed = {k: v for k, v in rates["encode"].items() if k.startswith("mixed-")}
    if mixed:
        worst_key = min(mixed, key=lambda k: mixed[k]["ratio_vs_merged"])
        out["mixed"] = {"worst": worst_key, "ratio": mixed[worst_key]["ratio_vs_merged"], "goal": MIXED_GOAL,
                        "met": mixed[worst_key]["ratio_vs_merged"] >= MIXED_GOAL}
    return out


def show(rows: list[dict[str, Any]], rates: dict[str, Any], ops: dict[str, Any], met: dict[str, Any]) -> None:
    print(f"\n{'memory':<36}{'RSS MB':>8}{'model MB':>10}{'peak MB':>9}{'RSS vs base':>13}{'model vs base':>15}")
    for r in rows:
        print(f"{r['label']:<36}{r['rss_mb']:8.0f}{r['model_mb']:10.0f}{r['peak_mb']:9.0f}"
              f"{r['rss_ratio']:12.2f}x{r['model_ratio']:14.2f}x")
    for part in ("encode", "search"):
        print(f"\n{'queries/s, ' + part:<62}{'q/s':>8}{'vs merged':>11}")
        for r in rates[part].values():
            print(f"{r['label']:<62}{r['queries_per_s']:8.0f}{r['ratio_vs_merged']:10.2f}x")
    print(f"\nadd one adapter {ops['add_ms']:.1f} ms, remove {ops['remove_ms']:.1f} ms ({ops['loaded']} loaded); "
          f"a query after a switch {ops['switch_ms']:.2f} ms, after the same adapter {ops['same_ms']:.2f} ms "
          f"({ops['switch_ratio']:.2f}x)")
    m = met["memory"]
    print(f"goal: {m['adapters']} adapters < {m['goal']}x the base alone: RSS {m['rss_ratio']:.2f}x "
          f"({'met' if m['met_rss'] else 'not met'}), model memory {m['model_ratio']:.2f}x "
          f"({'met' if m['met_model'] else 'not met'}); each adapter adds {m['per_adapter_mb']:.1f} MB")
    if "mixed" in met:
        x = met["mixed"]
        print(f"goal: mixed batches >= {x['goal']}x the merged single model: {x['ratio']:.2f}x at {x['worst']} "
              f"({'met' if x['met'] else 'not met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--adapters", default="1,10,50", help="adapter counts, comma-separated")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=200, help="SciFact documents in the base index")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ops", type=int, default=10, help="adapters added and removed, timed one by one")
    parser.add_argument("--switches", type=int, default=50, help="repeats of the one-query switch latency")
    parser.add_argument("--threads", type=int, help="torch threads, in every process (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test: 2 adapters, 64 queries, "
                        "one thread (robust on a busy machine)")
    parser.add_argument("--json", help="write the figures here (default eval/results/perf/serve.json)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(json.loads(args.child))
        return
    if args.quick:
        args.adapters, args.queries, args.docs, args.repeats, args.ops, args.switches = "2", 64, 50, 1, 2, 3
        args.threads = args.threads or 1
    args.adapters = sorted({int(n) for n in args.adapters.split(",")})
    if args.adapters[0] < 1:
        parser.error(f"--adapters: counts of at least 1, got {args.adapters}")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from retrieval_ft.encode import Encoder
    from retrieval_ft.models import load_model

    base = Encoder(load_model(args.model, device="cpu"), _encode_config(args.batch_size))
    artifacts, index, facts = prepare(base, args.model, max(args.adapters), args.docs)
    check = verify(base, artifacts[0], _common.scifact_queries(args.batch_size))
    print(f"adapter a0 alone (load_model): query embeddings at min cosine {check['min_cosine_to_base']:.4f} "
          "to the base's\nmemory, each in a fresh process:", flush=True)
    rows = memory(args.model, artifacts, index, args)
    rates, ops = speed(base.model, artifacts, index, args)
    check["min_cosine_served_vs_merged"] = rates.pop("min_cosine_served_vs_merged")
    met = goals(rows, rates)
    show(rows, rates, ops, met)
    _common.save("serve", {"model": args.model, "adapters": args.adapters, "queries": args.queries,
                           "docs": args.docs, "batch_size": args.batch_size, "repeats": args.repeats,
                           "quick": args.quick, "threads": torch.get_num_threads(), "init_std": INIT_STD, **facts,
                           "check": check, "memory": rows, "throughput": rates, "operations": ops, "goals": met}, args.json)


if __name__ == "__main__":
    main()
