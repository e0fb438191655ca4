"""The argument parser: one function per command. Options that set a config field come from the
field (`options.add_field`); only the flags that are not settings (paths, switches of the command
itself) are declared here."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any

from .. import __version__
from ..config import (
    DEFAULT_PART_SIZE,
    BenchConfig,
    CompareConfig,
    EvalConfig,
    IndexConfig,
    Method,
    RunConfig,
    ServeConfig,
    TrainConfig,
)
from ..config.base import field_default
from .options import CACHE_FIELDS, add_encode_args, add_field, choices

MODEL_HELP = "model folder, hub id, or all-MiniLM-L6-v2 (bundled)"
UNKNOWN_IDS_HELP = "drop judgments naming unknown query/document ids instead of refusing the dataset"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrieval-ft",
        description="Fine-tune embedding models for retrieval and measure whether tuning helped.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-v", "--verbose", action="store_true", help="log more detail (libraries' INFO lines too)")
    talk.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only (no stage lines)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_run, _bench, _evaluate, _train, _merge, _compare, _gate, _demo_data, _encode, _index,
                _serve):
        add(sub)
    return parser


def _evaluate(sub: Any) -> None:
    ev = sub.add_parser(
        "evaluate", help="evaluate an encoder on a dataset split (NDCG@10, recall, MRR)",
        description="Encode the corpus (cached), build a FAISS index, retrieve for each judged query "
                    "and score with ranx. NDCG is the linear-gain (trec_eval / BEIR) variant.",
    )
    ev.add_argument("--model", required=True, help=MODEL_HELP)
    ev.add_argument("--data", required=True, help="BEIR folder, dataset spec YAML, HF save_to_disk or parquet folder")
    for name in ("split", "metrics", "k"):
        add_field(ev, EvalConfig, name)
    add_field(ev, IndexConfig, "kind", "--index")
    ev.add_argument("--out", help="write the result JSON here")
    ev.add_argument("--save-run", help="write the ranked results as a TREC run file")
    ev.add_argument("--save-index", help="save the FAISS index and its sidecar into this folder")
    ev.add_argument("--drop-unknown-judgments", action="store_true", help=UNKNOWN_IDS_HELP)
    pages = ev.add_mutually_exclusive_group()
    pages.add_argument("--check-images", action="store_true",
                       help="decode every page image first; stop at the first bad one, naming it")
    pages.add_argument("--skip-bad-images", action="store_true",
                       help="decode every page image first; drop bad pages and their judgments, and count them")
    add_encode_args(ev)


def _train(sub: Any) -> None:
    tr = sub.add_parser(
        "train", help="fine-tune an encoder: " + ", ".join(choices(Method)),
        description="Fine-tune on the dataset's train split (query, relevant document) pairs with the "
                    "sentence-transformers Trainer; keep the checkpoint with the best dev NDCG@10.",
    )
    tr.add_argument("--model", required=True, help="base " + MODEL_HELP)
    tr.add_argument("--data", required=True,
                    help="dataset with a train split (see evaluate --help), or a pair/triplet file "
                         "(.jsonl/.csv/.tsv/.parquet with anchor, positive and optional negative columns)")
    tr.add_argument("--out", required=True, help="artifact folder (checkpoints go to OUT/checkpoints)")
    tr.add_argument("--config", help="YAML with training settings (TrainConfig fields); flags override it")
    for name in ("method", "epochs", "lr", "batch_size", "seed", "max_steps", "batching"):
        add_field(tr, TrainConfig, name)
    tr.add_argument("--hard-negatives", type=int, metavar="N", dest="negatives",
                    help="mine N hard negatives per pair with the base model")
    tr.add_argument("--guard", action="append", metavar="NAME=PATH", dest="guard_sets",
                    help="a guard set watched while training (a general-domain dataset the model must not get "
                         "worse on; its test split); repeat for several. Replaces the config's train.guards")
    add_field(tr, TrainConfig, "max_guard_drop")
    add_field(tr, TrainConfig, "interpolate", metavar="auto|A|off")
    tr.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    tr.add_argument("--drop-unknown-judgments", action="store_true", help=UNKNOWN_IDS_HELP)
    # batch size and precision are the training's own (precision also encodes); the cache is evaluate's
    add_encode_args(tr, exclude=("batch_size", "similarity", "precision", *CACHE_FIELDS), prefix="encode_")
    add_field(tr, TrainConfig, "precision")
    add_field(tr, TrainConfig, "gradient_checkpointing")


def _merge(sub: Any) -> None:
    mg = sub.add_parser("merge", help="merge a LoRA/hybrid adapter into its base model",
                        description="Write a plain model folder whose embeddings equal the adapter's.")
    mg.add_argument("adapter", help="adapter folder written by `retrieval-ft train --method lora|hybrid`")
    mg.add_argument("--out", required=True, help="folder for the merged model")
    mg.add_argument("--alpha", type=float, metavar="A",
                    help="blend with the base, weights = base + A x (tuned - base), A in [0, 1] (default: the "
                         "artifact's own alpha); a full artifact is blended with its base")


def _encode(sub: Any) -> None:
    en = sub.add_parser("encode", help="encode a corpus, or one shard of it, into vector files (resumable)",
                        description="Encode shard I of N of the corpus (contiguous slices in corpus order) into "
                                    "OUT/shard-<I>-of-<N>/, one .npy file per part, each written as soon as it is "
                                    "done: run one shard per process or machine, and run a killed shard again to "
                                    "finish it. Then build one index with `retrieval-ft index --shards OUT`.")
    en.add_argument("--model", required=True, help=MODEL_HELP)
    en.add_argument("--data", required=True,
                    help="corpus to encode: a BEIR folder or corpus .jsonl (no queries or judgments needed), "
                         "or any dataset (see evaluate --help)")
    en.add_argument("--shard", metavar="I/N",
                    help="encode shard I of N, counted from 0 (default: under torchrun, this process's "
                         "RANK/WORLD_SIZE, on its own GPU; else 0/1, the whole corpus)")
    en.add_argument("--out", required=True, help="folder for the shards (the same for every shard)")
    en.add_argument("--part-size", type=int,
                    help=f"documents per part file: the most a killed run loses (default: {DEFAULT_PART_SIZE})")
    en.add_argument("--drop-unknown-judgments", action="store_true", help=UNKNOWN_IDS_HELP)
    add_encode_args(en, exclude=CACHE_FIELDS)  # the part files are encode's own record


def _index(sub: Any) -> None:
    ix = sub.add_parser("index", help="build one FAISS index from encoded shards",
                        description="Check that every shard in SHARDS is there and was encoded by the same model "
                                    "from the same corpus, then build one index (see --kind); IVF and IVF-PQ are "
                                    "trained on a sample and filled one part at a time. Approximate kinds are "
                                    "calibrated to reach --target-recall.")
    ix.add_argument("--shards", required=True, help="folder written by `retrieval-ft encode --shard I/N --out`")
    ix.add_argument("--out", required=True, help="index folder to write (index.faiss + index.json)")
    add_field(ix, IndexConfig, "kind")
    add_field(ix, IndexConfig, "target_recall")
    add_field(ix, IndexConfig, "ivf_nlist", "--nlist")
    add_field(ix, IndexConfig, "ivf_nprobe", "--nprobe")
    add_field(ix, IndexConfig, "pq_m")


def _run(sub: Any) -> None:
    rn = sub.add_parser("run", help="the main job: base -> tune -> tuned -> guard sets -> gate -> report",
                        description="Run a config: evaluate the base model, fine-tune it, evaluate the tuned model "
                                    "and the guard sets, gate the comparison and write report.json/.md/.html. "
                                    "Exit 0 when the gate passes, 1 when it flags a regression, 2 for bad input.")
    rn.add_argument("config", help="run config YAML (see configs/)")
    add_field(rn, RunConfig, "out", help="output folder (default: the config's out)")
    rn.add_argument("--resume", action="store_true", help="continue an interrupted tuning run")


def _bench(sub: Any) -> None:
    bn = sub.add_parser("bench", help="benchmark tuning methods over several seeds (eval/results/NAME.md/.json)",
                        description="Run base and every method of a benchmark config with each seed; write "
                                    "NAME.json, NAME.md and a quality-vs-cost NAME.svg into the config's out folder.")
    bn.add_argument("config", help="benchmark config YAML (see eval/configs/)")
    add_field(bn, BenchConfig, "data", help="benchmark another collection (BEIR layout with train and test "
                                            "judgments) with the same settings; results are named after its folder")
    add_field(bn, BenchConfig, "name", help="results name (default: the config's, or the --data folder's)")
    bn.add_argument("--seeds", help="comma-separated seeds (default: the config's)")
    bn.add_argument("--methods", help="comma-separated contenders of the config to run (default: all of them)")
    add_field(bn, BenchConfig, "out", help="results folder (default: the config's out)")
    add_field(bn, BenchConfig, "work", help="folder for tuned models and finished (method, seed) records "
                                            "(default: the config's work)")


def _serve(sub: Any) -> None:
    sv = sub.add_parser("serve", help="serve search over HTTP: the base model's index, with adapters swapped per request",
                        description="Load the base model and its index (a saved index folder, or a corpus encoded "
                                    "and indexed at start) and the config's adapters, then answer POST /search "
                                    "({queries, k, adapter}), GET /adapters, PUT and DELETE /adapters/NAME and GET "
                                    "/health with JSON. Needs the serve extra: pip install 'retrieval-ft[serve]'.")
    sv.add_argument("config", help="serve config YAML: model, data or index, adapters, encode, host, port, "
                                   "max_k, max_queries (see help(retrieval_ft.config.ServeConfig))")
    fields = {f.name: f for f in dataclasses.fields(ServeConfig)}
    for name in ("host", "port"):
        text = f"{fields[name].metadata['help']} (default: the config's, else {field_default(fields[name])})"
        add_field(sv, ServeConfig, name, help=text)


def _add_output_args(p: argparse.ArgumentParser, what: str, md_note: str) -> None:
    """The outputs and the --force and --allow-missing-queries switches that compare and gate share."""
    p.add_argument("--json", dest="json_out", help=f"write the {what} as JSON")
    p.add_argument("--md", dest="md_out", help=f"write the {what} as Markdown{md_note}")
    p.add_argument("--force", action="store_true",
                   help="compare results computed on different data, or that do not record which data")
    p.add_argument("--allow-missing-queries", action="store_true",
                   help="compare over the queries both results scored when one lacks some (the output counts "
                        "them); by default that is an error, since dropping queries can hide the worst ones")


def _compare(sub: Any) -> None:
    cp = sub.add_parser("compare", help="compare two result files: deltas, significance, per-query losses",
                        description="Compare a baseline and a candidate result (from evaluate, or the base/tuned "
                                    "parts of a run report). Exits 0 unless the input is bad (2).")
    cp.add_argument("baseline")
    cp.add_argument("candidate")
    add_field(cp, CompareConfig, "metrics", "--metric", action="append", metavar="METRIC")
    add_field(cp, CompareConfig, "test")
    _add_output_args(cp, "comparison", "")


def _gate(sub: Any) -> None:
    from .. import config

    rules = config.GateRules()  # the defaults are said as GateRules has them, never repeated here
    default = f"fail on a significant drop of {', '.join(rules.metrics)} (alpha {rules.alpha:g})"
    if rules.max_drop_any is not None:
        default += f" or any drop over {rules.max_drop_any:g}"
    gt = sub.add_parser("gate", help="fail (exit 1) when the candidate regresses against the baseline",
                        description="Compare and apply rules (gate.yaml); print one line per failed rule. "
                                    f"Default: {default}.")
    gt.add_argument("--baseline", required=True)
    gt.add_argument("--candidate", required=True)
    gt.add_argument("--rules", help="gate rules YAML")
    gt.add_argument("--guard", nargs=3, action="append", default=[], metavar=("NAME", "BASELINE", "CANDIDATE"),
                    help="a guard set's result files (repeatable); run reports bring their own")
    _add_output_args(gt, "verdict", " (e.g. for $GITHUB_STEP_SUMMARY)")


def _defaults(function: Any) -> dict[str, Any]:
    return {n: p.default for n, p in inspect.signature(function).parameters.items() if p.default is not p.empty}


def _demo_data(sub: Any) -> None:
    from ..data.demo import write_demo
    from ..data.demo_pages import write_demo_pages

    products, pages = _defaults(write_demo), _defaults(write_demo_pages)
    demo = sub.add_parser("demo-data", help="write a generated demo dataset (product catalog, or document pages)",
                          description="Write the seeded demo product-search dataset (products.csv, "
                                      "queries.jsonl, qrels/{train,dev,test}.tsv and dataset.yaml), or with --pages "
                                      "the generated document pages (corpus.jsonl with image paths, images/*.png, "
                                      "queries.jsonl, qrels/).")
    demo.add_argument("--out", help="folder to write (default: out/demo-data, or out/demo-pages)")
    demo.add_argument("--pages", action="store_true", help="write the generated document pages instead")
    demo.add_argument("--pages-per-combination", type=int, metavar="N",
                      help="with --pages: pages per company x kind x variant (150 combinations; "
                           f"default {pages['pages_per_combo']})")
    demo.add_argument("--products", type=int, help=f"catalog size (default {products['n_products']})")
    demo.add_argument("--queries", type=int, help=f"number of queries (default {products['n_queries']})")
    demo.add_argument("--seed", type=int,
                      help=f"generator seed (default {products['seed']} for products, {pages['seed']} for pages)")
