"""Command line: parse arguments, build a config, make one API call, map the outcome to an exit code.

Exit codes: 0 success, 1 the gate found a regression, 2 bad input or usage (one line on stderr,
no traceback).
Heavy libraries (torch, transformers, faiss) are imported inside the commands, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Sequence

from . import __version__
from ._launch import launch_env
from .errors import ConfigError, RetrievalFTError

EXIT_OK, EXIT_GATE_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _add_encode_args(p: argparse.ArgumentParser, *, cache: bool = True) -> None:
    """The encoding flags; `cache=False` leaves out the embedding-cache flags (for `encode`, whose
    part files are its own record)."""
    g = p.add_argument_group("encoding")
    g.add_argument("--batch-size", type=int,
                   help="texts or pages per forward pass (default: 16 documents on a CPU, else 32)")
    g.add_argument("--max-seq-length", type=int, help="truncate texts to this many tokens (default: the model's)")
    g.add_argument("--query-prompt", help="text prepended to queries (default: the model's saved 'query' prompt)")
    g.add_argument("--doc-prompt", help="text prepended to documents (default: the model's saved 'document' prompt)")
    g.add_argument("--similarity", choices=["cosine", "dot", "euclidean"],
                   help="scoring function (default: the model's own, usually cosine)")
    g.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    _add_precision_arg(g)
    if cache:
        g.add_argument("--no-cache", action="store_true", help="always re-encode the corpus")
        g.add_argument("--cache-dir", help="where corpus embeddings are cached (default ~/.cache/retrieval-ft/embeddings)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow models that run their own code from the hub (off by default)")
    g.add_argument("--allow-pickle", action="store_true",
                   help="load pickle-based weights (.bin/.pt); they can run code when loaded (off by default)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_precision_arg(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                   help="compute type (default auto: bf16 autocast where the CPU/GPU computes it natively, "
                        "fp16 on CUDA without bf16, else fp32; $RETRIEVAL_FT_PRECISION overrides auto)")


def _add_output_args(p: argparse.ArgumentParser, what: str, md_note: str) -> None:
    """The outputs and the --force and --allow-missing-queries switches that compare and gate share."""
    p.add_argument("--json", dest="json_out", help=f"write the {what} as JSON")
    p.add_argument("--md", dest="md_out", help=f"write the {what} as Markdown{md_note}")
    p.add_argument("--force", action="store_true", help="compare results computed on different data")
    p.add_argument("--allow-missing-queries", action="store_true",
                   help="compare over the queries both results scored when one lacks some (the output counts "
                        "them); by default that is an error, since dropping queries can hide the worst ones")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrieval-ft",
        description="Fine-tune embedding models for retrieval and measure whether tuning helped.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ev = sub.add_parser(
        "evaluate", help="evaluate an encoder on a dataset split (NDCG@10, recall, MRR)",
        description="Encode the corpus (cached), build a FAISS index, retrieve for each judged query "
                    "and score with ranx. NDCG is the linear-gain (trec_eval / BEIR) variant.",
    )
    ev.add_argument("--model", required=True, help="model folder, hub id, or all-MiniLM-L6-v2 (bundled)")
    ev.add_argument("--data", required=True, help="BEIR folder, dataset spec YAML, HF save_to_disk or parquet folder")
    ev.add_argument("--split", default="test", help="judgments to evaluate on (default: test)")
    ev.add_argument("--metrics", default="ndcg@10,recall@100,mrr@10,map@100",
                    help="comma-separated ranx metrics (default: ndcg@10,recall@100,mrr@10,map@100)")
    ev.add_argument("--k", type=int, default=100, help="documents retrieved per query (default 100)")
    ev.add_argument("--index", choices=["auto", "flat", "hnsw", "ivf", "ivfpq"], default="auto",
                    help="FAISS index (default auto: exact up to 100,000 documents, else IVF with nprobe raised "
                         "until recall@10 against exact search reaches 0.98 on a sample)")
    ev.add_argument("--out", help="write the result JSON here")
    ev.add_argument("--save-run", help="write the ranked results as a TREC run file")
    ev.add_argument("--save-index", help="save the FAISS index and its sidecar into this folder")
    ev.add_argument("--drop-unknown-judgments", action="store_true",
                    help="drop judgments naming unknown query/document ids instead of refusing the dataset")
    pages = ev.add_mutually_exclusive_group()
    pages.add_argument("--check-images", action="store_true",
                       help="decode every page image first; stop at the first bad one, naming it")
    pages.add_argument("--skip-bad-images", action="store_true",
                       help="decode every page image first; drop bad pages and their judgments, and count them")
    _add_encode_args(ev)

    tr = sub.add_parser(
        "train", help="fine-tune an encoder: full, lora, hybrid or query-only",
        description="Fine-tune on the dataset's train split (query, relevant document) pairs with the "
                    "sentence-transformers Trainer; keep the checkpoint with the best dev NDCG@10.",
    )
    tr.add_argument("--model", required=True, help="base model folder, hub id, or all-MiniLM-L6-v2 (bundled)")
    tr.add_argument("--data", required=True,
                    help="dataset with a train split (see evaluate --help), or a pair/triplet file "
                         "(.jsonl/.csv/.tsv/.parquet with anchor, positive and optional negative columns)")
    tr.add_argument("--method", choices=["full", "lora", "hybrid", "query-only"], help="default: full")
    tr.add_argument("--out", required=True, help="artifact folder (checkpoints go to OUT/checkpoints)")
    tr.add_argument("--config", help="YAML with training settings (TrainConfig fields); flags override it")
    tr.add_argument("--epochs", type=float, help="passes over the training pairs (default 1)")
    tr.add_argument("--lr", type=float, help="learning rate (default: 2e-5 full, 1e-3 lora, 5e-4 hybrid, 1e-4 query-only)")
    tr.add_argument("--batch-size", type=int,
                    help="pairs per step and process (default 32); under torchrun with N processes each step "
                         "takes N x this, and in-batch negatives span all of them")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--max-steps", type=int, help="stop after this many steps")
    tr.add_argument("--hard-negatives", type=int, metavar="N", help="mine N hard negatives per pair with the base model")
    tr.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    tr.add_argument("--drop-unknown-judgments", action="store_true", help="drop judgments naming unknown ids")
    g = tr.add_argument_group("encoding")
    g.add_argument("--query-prompt")
    g.add_argument("--doc-prompt")
    g.add_argument("--max-seq-length", type=int)
    g.add_argument("--device")
    _add_precision_arg(g)
    g.add_argument("--trust-remote-code", action="store_true", help="allow a hub model's own code (off by default)")
    g.add_argument("--allow-pickle", action="store_true", help="load pickle-based weights (off by default)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")

    mg = sub.add_parser("merge", help="merge a LoRA/hybrid adapter into its base model",
                        description="Write a plain model folder whose embeddings equal the adapter's.")
    mg.add_argument("adapter", help="adapter folder written by `retrieval-ft train --method lora|hybrid`")
    mg.add_argument("--out", required=True, help="folder for the merged model")

    en = sub.add_parser("encode", help="encode a corpus, or one shard of it, into vector files (resumable)",
                        description="Encode shard I of N of the corpus (contiguous slices in corpus order) into "
                                    "OUT/shard-<I>-of-<N>/, one .npy file per part, each written as soon as it is "
                                    "done: run one shard per process or machine, and run a killed shard again to "
                                    "finish it. Then build one index with `retrieval-ft index --shards OUT`.")
    en.add_argument("--model", required=True, help="model folder, hub id, or all-MiniLM-L6-v2 (bundled)")
    en.add_argument("--data", required=True,
                    help="corpus to encode: a BEIR folder or corpus .jsonl (no queries or judgments needed), "
                         "or any dataset (see evaluate --help)")
    en.add_argument("--shard", metavar="I/N",
                    help="encode shard I of N, counted from 0 (default: under torchrun, this process's "
                         "RANK/WORLD_SIZE, on its own GPU; else 0/1, the whole corpus)")
    en.add_argument("--out", required=True, help="folder for the shards (the same for every shard)")
    en.add_argument("--part-size", type=int, default=10_000,
                    help="documents per part file: the most a killed run loses (default 10000)")
    en.add_argument("--drop-unknown-judgments", action="store_true", help="drop judgments naming unknown ids")
    _add_encode_args(en, cache=False)

    ix = sub.add_parser("index", help="build one FAISS index from encoded shards",
                        description="Check that every shard in SHARDS is there and was encoded by the same model "
                                    "from the same corpus, then build one index: exact up to 100,000 documents, IVF "
                                    "beyond (auto); IVF and IVF-PQ are trained on a sample and filled one part at a "
                                    "time. Approximate kinds are calibrated to reach --target-recall.")
    ix.add_argument("--shards", required=True, help="folder written by `retrieval-ft encode --shard I/N --out`")
    ix.add_argument("--out", required=True, help="index folder to write (index.faiss + index.json)")
    ix.add_argument("--kind", choices=["auto", "flat", "hnsw", "ivf", "ivfpq"], default="auto",
                    help="index kind (default auto: flat up to 100,000 documents, ivf beyond)")
    ix.add_argument("--target-recall", type=float,
                    help="recall@10 against exact search that approximate kinds are tuned to reach (default 0.98)")
    ix.add_argument("--nlist", type=int, help="IVF cells (default about 4 * sqrt(documents))")
    ix.add_argument("--nprobe", type=int, help="IVF cells searched (default: calibrated)")
    ix.add_argument("--pq-m", type=int, help="ivfpq bytes a vector (default: the largest divisor of dim up to dim / 4)")

    rn = sub.add_parser("run", help="the main job: base -> tune -> tuned -> guard sets -> gate -> report",
                        description="Run a config: evaluate the base model, fine-tune it, evaluate the tuned model "
                                    "and the guard sets, gate the comparison and write report.json/.md/.html. "
                                    "Exit 0 when the gate passes, 1 when it flags a regression, 2 for bad input.")
    rn.add_argument("config", help="run config YAML (see configs/)")
    rn.add_argument("--out", help="output folder (default: the config's out)")
    rn.add_argument("--resume", action="store_true", help="continue an interrupted tuning run")

    bn = sub.add_parser("bench", help="benchmark tuning methods over several seeds (eval/results/NAME.md/.json)",
                        description="Run base and every method of a benchmark config with each seed; write "
                                    "NAME.json, NAME.md and a quality-vs-cost NAME.svg into the config's out folder.")
    bn.add_argument("config", help="benchmark config YAML (see eval/configs/)")
    bn.add_argument("--data", help="benchmark another collection (BEIR layout with train and test judgments) "
                                   "with the same settings; results are named after its folder")
    bn.add_argument("--name", help="results name (default: the config's, or the --data folder's)")
    bn.add_argument("--seeds", help="comma-separated seeds (default: the config's)")
    bn.add_argument("--out", help="results folder (default: the config's out)")
    bn.add_argument("--work", help="folder for tuned models and finished (method, seed) records (default: the config's work)")

    cp = sub.add_parser("compare", help="compare two result files: deltas, significance, per-query losses",
                        description="Compare a baseline and a candidate result (from evaluate, or the base/tuned "
                                    "parts of a run report). Exits 0 unless the input is bad (2).")
    cp.add_argument("baseline")
    cp.add_argument("candidate")
    cp.add_argument("--metric", action="append", dest="metrics", help="metric to compare (repeatable; default ndcg@10)")
    cp.add_argument("--test", choices=["student", "fisher"], default="student", help="paired test (default student)")
    _add_output_args(cp, "comparison", "")

    gt = sub.add_parser("gate", help="fail (exit 1) when the candidate regresses against the baseline",
                        description="Compare and apply rules (gate.yaml); print one line per failed rule. "
                                    "Default: fail on a significant drop of ndcg@10 (alpha 0.05) or any drop over 0.02.")
    gt.add_argument("--baseline", required=True)
    gt.add_argument("--candidate", required=True)
    gt.add_argument("--rules", help="gate rules YAML")
    gt.add_argument("--guard", nargs=3, action="append", default=[], metavar=("NAME", "BASELINE", "CANDIDATE"),
                    help="a guard set's result files (repeatable); run reports bring their own")
    _add_output_args(gt, "verdict", " (e.g. for $GITHUB_STEP_SUMMARY)")

    demo = sub.add_parser("demo-data", help="write a generated demo dataset (product catalog, or document pages)",
                          description="Write the seeded demo product-search dataset (products.csv, "
                                      "queries.jsonl, qrels/{train,dev,test}.tsv and dataset.yaml), or with --pages "
                                      "the generated document pages (corpus.jsonl with image paths, images/*.png, "
                                      "queries.jsonl, qrels/).")
    demo.add_argument("--out", default=None, help="folder to write (default: out/demo-data, or out/demo-pages)")
    demo.add_argument("--pages", action="store_true", help="write the generated document pages instead")
    demo.add_argument("--pages-per-combination", type=int, default=3, metavar="N",
                      help="with --pages: pages per company x kind x variant (150 combinations; default 3)")
    demo.add_argument("--products", type=int, default=2000, help="catalog size (default 2000)")
    demo.add_argument("--queries", type=int, default=600, help="number of queries (default 600)")
    demo.add_argument("--seed", type=int, default=None, help="generator seed (default 13 for products, 7 for pages)")
    return parser


def _encode_config(args: argparse.Namespace):  # -> EncodeConfig
    from .config import EncodeConfig, from_dict

    values = {
        "batch_size": args.batch_size,
        "max_seq_length": args.max_seq_length,
        "query_prompt": args.query_prompt,
        "document_prompt": args.doc_prompt,
        "similarity": args.similarity,
        "device": args.device,
        "cache": not getattr(args, "no_cache", False),
        "cache_dir": getattr(args, "cache_dir", None),
        "progress": False if args.no_progress else None,
        "trust_remote_code": args.trust_remote_code,
        "allow_pickle": args.allow_pickle,
        "precision": args.precision or "auto",
    }
    return from_dict(EncodeConfig, values)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .config import EvalConfig, IndexConfig, from_dict

    config = from_dict(EvalConfig, {
        "split": args.split,
        "metrics": args.metrics,
        "k": args.k,
        "encode": _encode_config(args),
        "index": from_dict(IndexConfig, {"kind": args.index}),
        "images": "check" if args.check_images else "skip" if args.skip_bad_images else "lazy",
    })
    from .encode import Encoder
    from .pipeline import evaluate
    from .report import evaluation_table

    encoder = Encoder(args.model, config.encode)
    result = evaluate(encoder, args.data, config,
                      unknown_ids="drop" if args.drop_unknown_judgments else "error",
                      save_run=args.save_run, save_index=args.save_index)
    if args.out:
        result.save(args.out)
    print(evaluation_table(result))
    if args.out:
        print(f"results written to {args.out}")
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import EncodeConfig, TrainConfig, from_dict, load_yaml

    values = load_yaml(args.config) if args.config else {}
    flags = {"method": args.method, "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
             "seed": args.seed, "max_steps": args.max_steps, "precision": args.precision}
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.hard_negatives is not None:
        values["hard_negatives"] = {**values.get("hard_negatives", {}), "enabled": args.hard_negatives > 0,
                                    "num": max(1, args.hard_negatives)}
    config = from_dict(TrainConfig, values, args.config or "")
    encode = from_dict(EncodeConfig, {"query_prompt": args.query_prompt, "document_prompt": args.doc_prompt,
                                      "max_seq_length": args.max_seq_length, "device": args.device,
                                      "progress": False if args.no_progress else None,
                                      "trust_remote_code": args.trust_remote_code, "allow_pickle": args.allow_pickle,
                                      "precision": args.precision or "auto"})
    from .train import finetune

    result = finetune(args.model, args.data, config, args.out, encode=encode, resume=args.resume,
                      unknown_ids="drop" if args.drop_unknown_judgments else "error")
    if launch_env().rank != 0:  # every process returns the same result: rank 0 reports it
        return EXIT_OK
    best = f"{result.best_dev_ndcg:.4f}" if result.best_dev_ndcg is not None else "n/a"
    print(f"{result.method} tuning done: {result.artifact}")
    print(f"  best dev ndcg@10 {best} ({result.stamp['data']['dev']}); steps {result.stamp['steps']}; "
          f"{result.train_seconds:.0f} s; peak memory {result.peak_memory_mb:.0f} MB")
    print(f"  trainable parameters {result.trainable_params:,} of {result.total_params:,}; "
          f"artifact {result.artifact_bytes / 2**20:.1f} MB")
    return EXIT_OK


def _cmd_merge(args: argparse.Namespace) -> int:
    from .models import merge_adapter

    out = merge_adapter(args.adapter, args.out)
    print(f"merged model written to {out}")
    return EXIT_OK


def _parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N), checked: 0 <= I < N."""
    head, sep, tail = text.partition("/")
    if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
        raise ConfigError(f"--shard {text!r}: expected I/N with whole numbers, e.g. 0/4 (shard 0 of 4), "
                          "or $RANK/$WORLD_SIZE under torchrun.")
    shard, n_shards = int(head), int(tail)
    if n_shards < 1 or shard >= n_shards:
        raise ConfigError(f"--shard {text}: shards are numbered from 0, so with N={n_shards} use I from 0 to "
                          f"{n_shards - 1}" + (" (N must be at least 1)." if n_shards < 1 else "."))
    return shard, n_shards


def _cmd_encode(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .shards import encode_shard, launched_shard

    launched = launched_shard()
    if launched and args.shard:
        raise ConfigError(f"--shard {args.shard} under a launcher of {launched.n_shards} processes would have every "
                          "process encode the same shard; leave --shard out (each process takes its RANK's shard) "
                          "or run without the launcher.")
    shard, n_shards = _parse_shard(args.shard) if args.shard else (launched.shard, launched.n_shards) if launched else (0, 1)
    config = _encode_config(args)
    if launched and config.device is None and launched.device:
        config = replace(config, device=launched.device)  # one GPU per process, as torchrun means
    from .data import load_corpus
    from .encode import Encoder

    dataset = load_corpus(args.data, "drop" if args.drop_unknown_judgments else "error")
    info = encode_shard(Encoder(args.model, config), dataset, shard, n_shards, args.out, part_size=args.part_size)
    where = f"shard {shard}/{n_shards}: {info.rows:,} documents, {info.dim}-d, {info.parts} parts in {info.folder}"
    if info.already_complete:
        print(f"{where}: already encoded, nothing to do")
    else:
        resumed = f"{info.resumed_parts} resumed, " if info.resumed_parts else ""
        print(f"{where} ({resumed}{info.encoded_parts} encoded in {info.seconds:.1f} s)")
    return EXIT_OK


def _cmd_index(args: argparse.Namespace) -> int:
    from .config import IndexConfig, from_dict

    values = {"kind": args.kind, "target_recall": args.target_recall, "ivf_nlist": args.nlist,
              "ivf_nprobe": args.nprobe, "pq_m": args.pq_m}
    config = from_dict(IndexConfig, {k: v for k, v in values.items() if v is not None})
    from .shards import build_index_from_shards

    index = build_index_from_shards(args.shards, config)
    index.save(args.out)
    params = ", ".join(f"{k}={v}" for k, v in sorted(index.meta["params"].items())) or "exact search"
    print(f"{index.meta['kind']} index of {len(index):,} vectors ({index.index.d}-d, "
          f"{index.meta['built_from']['n_shards']} shards): {params}")
    calibration = index.meta.get("calibration")
    if calibration:
        recall = next(k for k in calibration if k.startswith("recall@"))
        print(f"  calibrated: {recall} {calibration[recall]:.4f} against exact search at {calibration['param']}="
              f"{calibration['value']} (target {calibration['target']}, {calibration['queries']} "
              f"{calibration.get('queries_from', 'corpus sample')} queries)"
              + ("" if calibration["reached"] else "; target not reached"))
    print(f"index written to {args.out}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import load_run_config
    from .pipeline import run

    config = load_run_config(args.config, {"out": args.out})
    report = run(config, resume=args.resume)
    base, tuned = report.base.metrics, report.tuned.metrics
    for name in base:
        print(f"{name:<12} base {base[name]:.4f}  tuned {tuned[name]:.4f}  ({tuned[name] - base[name]:+.4f})")
    main = report.verdict.comparisons["main"].metrics.get("ndcg@10")
    if main is not None:
        print(f"ndcg@10 change {main.delta:+.4f}, 95% CI [{main.ci_low:+.4f}, {main.ci_high:+.4f}], p={main.p_value:.3g}")
    for name, parts in report.guards.items():
        b, t = parts["base"].metrics["ndcg@10"], parts["tuned"].metrics["ndcg@10"]
        print(f"guard {name}: ndcg@10 base {b:.4f}  tuned {t:.4f}  ({t - b:+.4f})")
    print(f"report: {report.out / 'report.html'} (also report.md, report.json)")
    if report.verdict.passed:
        print("gate passed")
        return EXIT_OK
    for reason in report.verdict.reasons:
        print(f"FAILED: {reason}")
    return EXIT_GATE_FAILED


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench
    from .config import load_bench_config

    seeds = None
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--seeds: expected comma-separated integers, got {args.seeds!r}.") from None
    given = {k: getattr(args, k) for k in ("data", "name", "seeds", "out", "work")}
    config = load_bench_config(args.config, {**given, "seeds": seeds})
    command = " ".join(["retrieval-ft bench", shlex.quote(args.config)]
                       + [f"--{k} {shlex.quote(str(v))}" for k, v in given.items() if v])
    out = run_bench(config, command)
    first = config.eval.metrics[0]
    for name, entry in out["methods"].items():
        stats = entry["metrics"][first]
        delta = "" if name == "base" else f"  delta {entry['delta'][first]:+.4f} (p={entry['p_value'][first]:.3g})"
        print(f"{name:<12} {first} {stats['mean']:.4f} ± {stats['std']:.4f}{delta}")
    print(f"results: {config.out}/{config.name}.md (and .json, .svg)")
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from ._io import write_json_atomic, write_text_atomic
    from .compare import compare
    from .config import CompareConfig, from_dict
    from .report import comparison_markdown
    from .results import load_result_file

    config = from_dict(CompareConfig, {"metrics": args.metrics or ["ndcg@10"], "test": args.test})
    baseline, _ = load_result_file(args.baseline, "base")
    candidate, _ = load_result_file(args.candidate, "tuned")
    comparison = compare(baseline, candidate, config, force=args.force, allow_missing=args.allow_missing_queries)
    md = comparison_markdown(comparison)
    print(md)
    if args.json_out:
        write_json_atomic(args.json_out, comparison.to_dict())
    if args.md_out:
        write_text_atomic(args.md_out, md)
    return EXIT_OK


def _cmd_gate(args: argparse.Namespace) -> int:
    from ._io import write_json_atomic, write_text_atomic
    from .config.gate import load_gate_config
    from .gate import gate, pair_guards
    from .report import verdict_markdown
    from .results import load_result_file

    config = load_gate_config(args.rules)
    baseline, base_guards = load_result_file(args.baseline, "base")
    candidate, cand_guards = load_result_file(args.candidate, "tuned")
    guards = pair_guards(base_guards, cand_guards)
    for name, base_path, cand_path in args.guard:
        guards[name] = (load_result_file(base_path, "base")[0], load_result_file(cand_path, "tuned")[0])
    verdict = gate(baseline, candidate, config, guards, force=args.force, allow_missing=args.allow_missing_queries)
    if args.json_out:
        write_json_atomic(args.json_out, verdict.to_dict())
    if args.md_out:
        write_text_atomic(args.md_out, verdict_markdown(verdict))
    for line in verdict.checked:
        print(f"checked: {line}")
    if verdict.passed:
        print("gate passed")
        return EXIT_OK
    for reason in verdict.reasons:
        print(f"FAILED: {reason}")
    return EXIT_GATE_FAILED


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from .data import load_dataset

    if args.pages:
        from .data.demo_pages import write_demo_pages

        if args.pages_per_combination < 1:
            raise ConfigError(f"--pages-per-combination must be at least 1, got {args.pages_per_combination}.")
        folder = write_demo_pages(args.out or "out/demo-pages", pages_per_combo=args.pages_per_combination,
                                  seed=7 if args.seed is None else args.seed)
        unit = "pages"
    else:
        from .data.demo import write_demo

        folder = write_demo(args.out or "out/demo-data", n_products=args.products, n_queries=args.queries,
                            seed=13 if args.seed is None else args.seed)
        unit = "products"
    dataset = load_dataset(folder)
    splits = ", ".join(f"{s}: {len(dataset.split(s))} queries" for s in dataset.splits)
    print(f"demo dataset written to {folder} ({len(dataset.corpus)} {unit}; {splits})")
    return EXIT_OK


COMMANDS = {"run": _cmd_run, "bench": _cmd_bench, "evaluate": _cmd_evaluate, "train": _cmd_train, "merge": _cmd_merge, "compare": _cmd_compare,
            "gate": _cmd_gate, "demo-data": _cmd_demo_data, "encode": _cmd_encode, "index": _cmd_index}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    rank = launch_env().rank
    # under a launcher the other processes of `train` repeat rank 0's work and its warnings about
    # the data, so they log errors only; lines of every process but rank 0 carry their rank
    level = logging.INFO if args.verbose else logging.WARNING
    if rank and args.command == "train":
        level = logging.ERROR
    logging.basicConfig(level=level,
                        format=("%(levelname)s" + (f" [rank {rank}]" if rank else "") + " %(name)s: %(message)s"))
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return COMMANDS[args.command](args)
    except RetrievalFTError as exc:
        message = " ".join(str(exc).split())
        print(f"retrieval-ft: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # unreadable input or unwritable output path
        print(f"retrieval-ft: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("retrieval-ft: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
