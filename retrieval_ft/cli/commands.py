"""The commands: each builds a config from its flags, makes one API call and maps the outcome to an
exit code. Heavy libraries (torch, transformers, faiss) are imported inside them, so `--help` is fast."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex

from .._launch import launch_env
from ..config import (
    DEFAULT_PART_SIZE,
    BenchConfig,
    EvalConfig,
    ImageCheck,
    IndexConfig,
    TrainConfig,
    did_you_mean,
    from_dict,
)
from ..config.base import resolver
from ..errors import ConfigError
from .options import config_values, encode_config

EXIT_OK, EXIT_GATE_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _unknown_ids(args: argparse.Namespace) -> str:
    return "drop" if args.drop_unknown_judgments else "error"


def _cmd_evaluate(args: argparse.Namespace) -> int:
    images = ImageCheck.CHECK if args.check_images else ImageCheck.SKIP if args.skip_bad_images else None
    config = from_dict(EvalConfig, {**config_values(args, EvalConfig), "encode": encode_config(args),
                                    "index": from_dict(IndexConfig, config_values(args, IndexConfig)),
                                    **({"images": images} if images else {})})
    from ..encode import Encoder
    from ..pipeline import evaluate
    from ..report import evaluation_table

    encoder = Encoder(args.model, config.encode)
    result = evaluate(encoder, args.data, config, unknown_ids=_unknown_ids(args),
                      save_run=args.save_run, save_index=args.save_index)
    if args.out:
        result.save(args.out)
    print(evaluation_table(result))
    if args.out:
        print(f"results written to {args.out}")
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from ..config import load_yaml

    values = load_yaml(args.config) if args.config else {}
    if isinstance(values.get("guards"), list) and args.config:  # paths relative to the config file
        rel = resolver(args.config)
        values["guards"] = [{**g, "data": rel(g.get("data"))} if isinstance(g, dict) else g for g in values["guards"]]
    values.update(config_values(args, TrainConfig))
    if args.guard_sets:
        values["guards"] = [_guard_flag(text) for text in args.guard_sets]
    if args.negatives is not None:
        values["hard_negatives"] = {**values.get("hard_negatives", {}), "enabled": args.negatives > 0,
                                    "num": max(1, args.negatives)}
    config = from_dict(TrainConfig, values, args.config or "")
    encode = encode_config(args, "encode_", precision=args.precision)
    from ..train import finetune

    result = finetune(args.model, args.data, config, args.out, encode=encode, resume=args.resume,
                      unknown_ids=_unknown_ids(args))
    if launch_env().rank != 0:  # every process returns the same result: rank 0 reports it
        return EXIT_OK
    best = f"{result.best_dev_ndcg:.4f}" if result.best_dev_ndcg is not None else "n/a"
    print(f"{result.method} tuning done: {result.artifact}")
    print(f"  best dev ndcg@10 {best} ({result.stamp.data.dev}); steps {result.stamp.steps}; "
          f"{result.train_seconds:.0f} s; peak memory {result.peak_memory_mb:.0f} MB")
    print(f"  trainable parameters {result.trainable_params:,} of {result.total_params:,}; "
          f"artifact {result.artifact_bytes / 2**20:.1f} MB")
    guard = result.stamp.guard
    if guard is not None and guard.base:
        changes = ", ".join(f"{n} {guard.base[n]:.4f} -> {v:.4f} ({v - guard.base[n]:+.4f})"
                            for n, v in (guard.final or {}).items())
        print(f"  guard samples (max drop {guard.max_drop:g}): {changes}")
    if guard is not None:
        print(f"  blend with the base: {guard.reason}")
    return EXIT_OK


def _guard_flag(text: str) -> dict[str, str]:
    """`--guard NAME=PATH` as a guard set entry, or a one-line error naming the flag."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigError(f"--guard {text!r}: expected NAME=PATH, e.g. --guard cranfield=data/cranfield.")
    if not os.path.exists(path):
        raise ConfigError(f"--guard {text!r}: {path} does not exist; give the folder of a dataset with a test split.")
    return {"name": name.strip(), "data": path}


def _cmd_merge(args: argparse.Namespace) -> int:
    from ..models import merge_adapter

    out = merge_adapter(args.adapter, args.out, alpha=args.alpha)
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
    from ..shards import encode_shard, launched_shard

    launched = launched_shard()
    if launched and args.shard:
        raise ConfigError(f"--shard {args.shard} under a launcher of {launched.n_shards} processes would have every "
                          "process encode the same shard; leave --shard out (each process takes its RANK's shard) "
                          "or run without the launcher.")
    shard, n_shards = _parse_shard(args.shard) if args.shard else (launched.shard, launched.n_shards) if launched else (0, 1)
    # one GPU per process, as torchrun means
    config = encode_config(args, device=args.device or (launched.device if launched else None))
    from ..data import load_corpus
    from ..encode import Encoder

    dataset = load_corpus(args.data, _unknown_ids(args))
    part_size = DEFAULT_PART_SIZE if args.part_size is None else args.part_size
    info = encode_shard(Encoder(args.model, config), dataset, shard, n_shards, args.out, part_size=part_size)
    where = f"shard {shard}/{n_shards}: {info.rows:,} documents, {info.dim}-d, {info.parts} parts in {info.folder}"
    if info.already_complete:
        print(f"{where}: already encoded, nothing to do")
    else:
        resumed = f"{info.resumed_parts} resumed, " if info.resumed_parts else ""
        print(f"{where} ({resumed}{info.encoded_parts} encoded in {info.seconds:.1f} s)")
    return EXIT_OK


def _cmd_index(args: argparse.Namespace) -> int:
    config = from_dict(IndexConfig, config_values(args, IndexConfig))
    from ..shards import build_index_from_shards

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
    from ..config import load_run_config
    from ..pipeline import run

    config = load_run_config(args.config, {"out": args.out})
    report = run(config, resume=args.resume)
    base, tuned = report.base.metrics, report.tuned.metrics
    for name in base:
        print(f"{name:<12} base {base[name]:.4f}  tuned {tuned[name]:.4f}  ({tuned[name] - base[name]:+.4f})")
    headline = config.headline_metric
    main = report.verdict.comparisons["main"].metrics.get(headline)
    if main is not None:
        print(f"{headline} change {main.delta:+.4f}, 95% CI [{main.ci_low:+.4f}, {main.ci_high:+.4f}], "
              f"p={main.p_value:.3g}")
    for name, parts in report.guards.items():
        b, t = parts["base"].metrics[headline], parts["tuned"].metrics[headline]
        print(f"guard {name}: {headline} base {b:.4f}  tuned {t:.4f}  ({t - b:+.4f})")
    print(f"report: {report.out / 'report.html'} (also report.md, report.json)")
    return _verdict_exit(report.verdict)


def _verdict_exit(verdict) -> int:  # verdict: gate.Verdict
    if verdict.passed:
        print("gate passed")
    for reason in verdict.reasons:
        print(f"FAILED: {reason}")
    for warning in verdict.warnings:  # beside the verdict; the exit code follows the rules only
        print(f"WARNING: {warning}")
    return EXIT_OK if verdict.passed else EXIT_GATE_FAILED


def _some_methods(config: BenchConfig, methods: str | None) -> BenchConfig:
    """The bench with only the contenders `--methods` names (all of them without the flag)."""
    if not methods:
        return config
    wanted = [m.strip() for m in methods.split(",") if m.strip()]
    names = [m.name for m in config.methods]
    unknown = [m for m in wanted if m not in names]
    if unknown or not wanted:
        raise ConfigError(f"--methods: {unknown[0] if unknown else methods!r} is not a contender of {config.name} "
                          f"({', '.join(names)})." + (did_you_mean(unknown[0], names) if unknown else ""))
    return dataclasses.replace(config, methods=tuple(m for m in config.methods if m.name in wanted))


def _cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import run_bench
    from ..config import load_bench_config

    seeds = None
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--seeds: expected comma-separated integers, got {args.seeds!r}.") from None
    given = {k: getattr(args, k) for k in ("data", "name", "seeds", "out", "work", "methods")}
    config = _some_methods(load_bench_config(args.config, {**given, "seeds": seeds, "methods": None}), args.methods)
    command = " ".join(["retrieval-ft bench", shlex.quote(args.config)]
                       + [f"--{k} {shlex.quote(str(v))}" for k, v in given.items() if v])
    results = run_bench(config, command)
    first = config.eval.metrics[0]
    for name, entry in results["methods"].items():
        stats = entry["metrics"][first]
        delta = "" if name == "base" else f"  delta {entry['delta'][first]:+.4f} (p={entry['p_value'][first]:.3g})"
        print(f"{name:<12} {first} {stats['mean']:.4f} ± {stats['std']:.4f}{delta}")
    print(f"results: {config.out}/{config.name}.md (and .json, .svg)")
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from .._io import write_json_atomic, write_text_atomic
    from ..compare import compare
    from ..config import CompareConfig, from_dict
    from ..report import comparison_markdown
    from ..results import load_result_file

    config = from_dict(CompareConfig, config_values(args, CompareConfig))
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
    from .._io import write_json_atomic, write_text_atomic
    from ..config import load_gate_config
    from ..gate import gate, pair_guards
    from ..report import verdict_markdown
    from ..results import load_result_file

    config = load_gate_config(args.rules)
    baseline, base_guards = load_result_file(args.baseline, "base")
    candidate, cand_guards = load_result_file(args.candidate, "tuned")
    guards, unpaired = pair_guards(base_guards, cand_guards)
    for name, base_path, cand_path in args.guard:
        guards[name] = (load_result_file(base_path, "base")[0], load_result_file(cand_path, "tuned")[0])
    verdict = gate(baseline, candidate, config, guards, force=args.force, allow_missing=args.allow_missing_queries,
                   unpaired=unpaired)
    if args.json_out:
        write_json_atomic(args.json_out, verdict.to_dict())
    if args.md_out:
        write_text_atomic(args.md_out, verdict_markdown(verdict))
    for line in verdict.checked:
        print(f"checked: {line}")
    return _verdict_exit(verdict)


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from ..data import load_dataset

    given = {"seed": args.seed}
    if args.pages:
        from ..data.demo_pages import write_demo_pages

        if args.pages_per_combination is not None and args.pages_per_combination < 1:
            raise ConfigError(f"--pages-per-combination must be at least 1, got {args.pages_per_combination}.")
        given["pages_per_combo"] = args.pages_per_combination
        folder = write_demo_pages(args.out or "out/demo-pages", **{k: v for k, v in given.items() if v is not None})
        unit = "pages"
    else:
        from ..data.demo import write_demo

        given.update(n_products=args.products, n_queries=args.queries)
        folder = write_demo(args.out or "out/demo-data", **{k: v for k, v in given.items() if v is not None})
        unit = "products"
    dataset = load_dataset(folder)
    splits = ", ".join(f"{s}: {len(dataset.split(s))} queries" for s in dataset.splits)
    print(f"demo dataset written to {folder} ({len(dataset.corpus)} {unit}; {splits})")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from ..config import load_serve_config

    config = load_serve_config(args.config, {"host": args.host, "port": args.port})
    from ..serve.app import serve  # fastapi and uvicorn only now: --help stays fast

    serve(config)
    return EXIT_OK


COMMANDS = {"run": _cmd_run, "bench": _cmd_bench, "evaluate": _cmd_evaluate, "train": _cmd_train, "merge": _cmd_merge,
            "compare": _cmd_compare, "gate": _cmd_gate, "demo-data": _cmd_demo_data, "encode": _cmd_encode,
            "index": _cmd_index, "serve": _cmd_serve}
