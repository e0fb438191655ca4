"""The user's wait from "tune" to "new metrics" on SciFact, whole processes: ours (each method with
its defaults) against plain sentence-transformers (full tuning with its defaults, then re-encoding
the corpus and scoring), in one run.

Ours is what a user types: `retrieval-ft train --model M --data D --method X --out T` then
`retrieval-ft evaluate --model T --data D --split test`, each a fresh process, timed from start to
exit. The user already has the base model's metrics and its document embeddings: a base
`retrieval-ft evaluate` warms the embedding cache first (a fresh cache folder for the run, so tuned
models never find embeddings of an earlier run) and is reported apart, not counted. Query-side
methods (query-only, query-lora) train against those cached document embeddings and evaluate
without re-encoding the corpus; full, LoRA and hybrid re-encode it. numba's compiled ranx code is
in a folder shared by every process, compiled during the warm-up for both sides.

Plain is one process of a script using only sentence-transformers, datasets, faiss, numpy and
ranx: SentenceTransformerTrainer + MultipleNegativesRankingLoss with the Trainer's defaults (3
epochs, batch 8, learning rate 5e-5, float32) on every judged train pair, save the model, encode
the corpus and the test queries with it, exact inner-product search (top 100), ranx NDCG@10.
Goal: query-only and query-lora at least 10x faster than the plain path, with NDCG@10 beside it.

    .venv/bin/python eval/bench/tune_reeval.py [--data ../shared/data/scifact]
        [--methods full,lora,hybrid,query-only,query-lora] [--max-steps N | --epochs E] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, SHARED, save

METHODS = ("full", "lora", "hybrid", "query-only", "query-lora")
QUERY_SIDE = ("query-only", "query-lora")
SPEEDUP_GOAL = 10.0
METRIC = "ndcg@10"
WORK = ROOT / "out" / "bench-tune-reeval"


# -- the plain path, one process: sentence-transformers + faiss + ranx, nothing of ours ------------
def read_beir(folder: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, dict[str, int]]]]:
    """(document id -> "title text", query id -> text, split -> qrels) from a BEIR folder."""
    corpus, queries, qrels = {}, {}, {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            corpus[str(d["_id"])] = f"{d.get('title', '')} {d['text']}".strip()
    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    for path in sorted((folder / "qrels").glob("*.tsv")):
        split: dict[str, dict[str, int]] = {}
        for row in path.read_text(encoding="utf-8").splitlines()[1:]:
            qid, did, score = row.split("\t")
            split.setdefault(qid, {})[did] = int(score)
        qrels[path.stem] = split
    return corpus, queries, qrels


def plain(spec: dict[str, Any]) -> dict[str, Any]:
    """Tune with the plain Trainer's defaults, then encode, search and score: the figures of each phase."""
    import datasets
    import faiss
    import numpy as np
    from ranx import Qrels, Run, evaluate
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    times, start = {}, time.perf_counter()
    corpus, queries, qrels = read_beir(Path(spec["data"]))
    pairs = [(q, d) for q, docs in qrels["train"].items() for d, g in docs.items() if g > 0]
    train = datasets.Dataset.from_dict({"anchor": [queries[q] for q, _ in pairs], "positive": [corpus[d] for _, d in pairs]})
    model = SentenceTransformer(spec["model"])
    limits = {k: v for k, v in (("max_steps", spec.get("max_steps")), ("num_train_epochs", spec.get("epochs"))) if v}
    args = SentenceTransformerTrainingArguments(output_dir=spec["out"] + "/checkpoints", report_to="none", **limits)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=MultipleNegativesRankingLoss(model))
    trainer.train()
    model.save(spec["out"] + "/model")
    times["train"] = time.perf_counter() - start
    t = time.perf_counter()
    ids = list(corpus)
    docs = model.encode([corpus[d] for d in ids], normalize_embeddings=True, convert_to_numpy=True)
    times["encode_corpus"] = time.perf_counter() - t
    t = time.perf_counter()
    test = {q: {d: g for d, g in docs_.items() if g > 0} for q, docs_ in qrels["test"].items()}
    test = {q: d for q, d in test.items() if d}
    qids = list(test)
    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(np.asarray(docs, dtype=np.float32))
    scores, rows = index.search(model.encode([queries[q] for q in qids], normalize_embeddings=True), 100)
    run = Run({q: {ids[r]: float(s) for s, r in zip(ss, rr, strict=True) if r >= 0}
               for q, ss, rr in zip(qids, scores, rows, strict=True)})
    value = float(evaluate(Qrels(test), run, METRIC))
    times["search_and_score"] = time.perf_counter() - t
    return {METRIC: value, "phases": times, "steps": trainer.state.global_step, "pairs": len(pairs),
            "epochs": args.num_train_epochs, "batch_size": args.per_device_train_batch_size,
            "learning_rate": args.learning_rate}


def warm_ranx(data: Path) -> None:
    """Compile ranx's numba code for plain's `ranx.evaluate` into the shared numba cache (once per
    user in real life, so not counted). numba compiles per argument type, and the types follow the
    data (a toy qrels compiles other signatures), so it scores the collection's own test judgments
    against a run of random documents, built as `plain` builds its run."""
    import random

    from ranx import Qrels, Run, evaluate

    corpus, _, qrels = read_beir(data)
    test = {q: {d: g for d, g in docs.items() if g > 0} for q, docs in qrels["test"].items()}
    test = {q: d for q, d in test.items() if d}
    ids, rng = list(corpus), random.Random(0)
    run = Run({q: {d: float(rng.random()) for d in rng.sample(ids, min(100, len(ids)))} for q in test})
    evaluate(Qrels(test), run, METRIC)


# -- ours: the CLI, a process per command --------------------------------------------------------
def _environment(work: Path) -> dict[str, str]:
    """The run's embedding cache in its own folder; numba's cache beside the runs, kept between them."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT),
            "RETRIEVAL_FT_CACHE": str(work / "cache"), "NUMBA_CACHE_DIR": str(work.parent / "numba")}


def timed(command: list[str], env: dict[str, str], log: Path) -> float:
    """Run `command` to its end (its output into `log`); wall seconds. Exits naming the log on failure."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run(command, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
    return seconds


def cli(*args: str) -> list[str]:
    """`retrieval-ft ARGS`, from this checkout."""
    return [sys.executable, "-m", "retrieval_ft.cli", *args]


def limit_args(max_steps: int | None, epochs: float | None) -> list[str]:
    return ([f"--max-steps={max_steps}"] if max_steps else []) + ([f"--epochs={epochs}"] if epochs else [])


def ours(method: str, args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    """`retrieval-ft train` then `retrieval-ft evaluate` on the tuned model: seconds of each, NDCG@10."""
    tuned, result = work / f"tuned-{method}", work / f"{method}.json"
    train_s = timed(cli("train", "--model", args.model, "--data", args.data, "--method", method, "--out", str(tuned),
                        *limit_args(args.max_steps, args.epochs)), env, work / f"train-{method}.log")
    eval_s = timed(cli("evaluate", "--model", str(tuned), "--data", args.data, "--split", "test", "--out", str(result)),
                   env, work / f"evaluate-{method}.log")
    stamp = json.loads((tuned / "retrieval_ft.json").read_text())
    evaluated = json.loads(result.read_text())
    return {"train_seconds": train_s, "evaluate_seconds": eval_s, "seconds": train_s + eval_s,
            METRIC: evaluated["metrics"][METRIC], "corpus_from_cache": bool(evaluated["cache"].get("hit")),
            "steps": stamp.get("steps"), "in_training_seconds": stamp.get("train_seconds"),
            "dev_eval_seconds": stamp.get("eval_seconds"), "encode_corpus_seconds": evaluated["timings"].get("encode_corpus")}


def speedups(runs: dict[str, dict[str, Any]], plain_seconds: float) -> dict[str, float]:
    """Per method: the plain path's seconds over ours (above 1: ours is faster)."""
    return {m: plain_seconds / r["seconds"] for m, r in runs.items()}


def tune_goals(speedup: dict[str, float]) -> dict[str, dict[str, Any]]:
    """The query-side methods against the goal (only those that ran)."""
    return {m: {"speedup": speedup[m], "goal": SPEEDUP_GOAL, "met": speedup[m] >= SPEEDUP_GOAL}
            for m in QUERY_SIDE if m in speedup}


def _plain_process(args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    from retrieval_ft.models import resolve_model

    spec = {"data": args.data, "model": resolve_model(args.model).location, "out": str(work / "plain"),
            "max_steps": args.max_steps, "epochs": args.epochs}
    log = work / "plain.log"
    seconds = timed([sys.executable, __file__, "--plain", json.dumps(spec)], env, log)
    line = next(ln for ln in log.read_text().splitlines() if ln.startswith("RESULT "))
    return {**json.loads(line[7:]), "seconds": seconds}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--plain":
        print("RESULT " + json.dumps(plain(json.loads(sys.argv[2]))), flush=True)
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--warm-ranx":
        warm_ranx(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "scifact"), help="a BEIR folder with train and test qrels")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--methods", default=",".join(METHODS))
    limits = parser.add_mutually_exclusive_group()
    limits.add_argument("--max-steps", type=int, help="train every path (ours and plain) for this many steps")
    limits.add_argument("--epochs", type=float, help="train every path for this many epochs")
    parser.add_argument("--work", default=str(WORK), help="folder for the tuned models, logs and the run's cache")
    parser.add_argument("--keep", action="store_true", help="keep the tuned models and the run's embedding cache")
    parser.add_argument("--json", help="write the figures here (default eval/results/perf/tune_reeval.json)")
    args = parser.parse_args()
    if not (Path(args.data) / "corpus.jsonl").is_file():
        print(f"skipped: no BEIR collection at {args.data} (SciFact belongs in ../shared/data/scifact beside the "
              "project; or pass --data)")
        return
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        sys.exit(f"--methods: unknown {unknown}; choose from {', '.join(METHODS)}")
    work = Path(args.work) / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    env = _environment(work)
    base = work / "base.json"
    warm = timed(cli("evaluate", "--model", args.model, "--data", args.data, "--split", "test", "--out", str(base)),
                 env, work / "evaluate-base.log")
    warm += timed([sys.executable, __file__, "--warm-ranx", args.data], env, work / "warm-ranx.log")
    base_metric = json.loads(base.read_text())["metrics"][METRIC]
    print(f"warm-up (not counted): base evaluation {warm:.1f} s, {METRIC} {base_metric:.4f}", flush=True)
    runs = {}
    for method in methods:
        r = runs[method] = ours(method, args, env, work)
        print(f"ours {method:<11} train {r['train_seconds']:6.1f} s + evaluate {r['evaluate_seconds']:6.1f} s = "
              f"{r['seconds']:6.1f} s  {METRIC} {r[METRIC]:.4f}  corpus {'from the cache' if r['corpus_from_cache'] else 're-encoded'}",
              flush=True)
    p = _plain_process(args, env, work)
    print(f"plain full tune + re-encode {p['seconds']:6.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in p['phases'].items())})"
          f"  {METRIC} {p[METRIC]:.4f}", flush=True)
    speedup = speedups(runs, p["seconds"])
    for method, s in speedup.items():
        print(f"{method:<11} {s:6.1f}x faster than plain" + (f" (goal >= {SPEEDUP_GOAL:g}x)" if method in QUERY_SIDE else ""))
    if not args.keep:  # the run's cache (corpus vectors) and the tuned models: hundreds of MB
        for folder in [work / "cache", work / "plain", *(work / f"tuned-{m}" for m in methods)]:
            shutil.rmtree(folder, ignore_errors=True)
    save("tune_reeval", {"data": args.data, "model": args.model, "max_steps": args.max_steps, "epochs": args.epochs,
                         "warmup": {"seconds": warm, METRIC: base_metric}, "ours": runs, "plain": p,
                         "speedup": speedup, "goals": tune_goals(speedup), "work": str(work)}, args.json)


if __name__ == "__main__":
    main()
