"""The method benchmark: base vs every tuning method over several seeds, with guard sets, written
as eval/results/<name>.json and .md plus a quality-vs-cost SVG.

Per method: mean, standard deviation and per-seed values of each metric; the delta to base with
the paired test and bootstrap interval of the compare module (on per-query values averaged over
seeds); guard-set deltas; and cost (training time, peak memory, trainable parameters, artifact
size, documents re-encoded to re-index).
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._io import hash_strings, write_json_atomic, write_text_atomic
from .compare import compare
from .config import BenchConfig, BenchMethod, CompareConfig, to_dict
from .data import IRDataset, load_dataset
from .encode import Encoder
from .errors import ConfigError
from .pipeline import evaluate, evaluate_guards, generated_inputs, tune_and_evaluate
from .report import bench_markdown, guard_plots, quality_cost_svg
from .results import EvaluationResult, library_versions
from .stamp import ArtifactStamp

logger = logging.getLogger(__name__)


def _seed_mean(results: list[EvaluationResult], like: EvaluationResult) -> EvaluationResult:
    """One result whose per-query values are the mean over seeds (for the paired test vs base)."""
    per_query = {m: {q: statistics.fmean(r.per_query[m][q] for r in results) for q in like.per_query[m]}
                 for m in like.per_query}
    return EvaluationResult(metrics={m: statistics.fmean(v.values()) for m, v in per_query.items()},
                            per_query=per_query, model={"name": "seed mean"}, dataset=like.dataset, queries=like.queries)


def _summary(values: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "per_seed": values}


def _tune_seed(config: BenchConfig, spec: BenchMethod, seed: int, dataset: IRDataset,
              guards: dict[str, tuple[IRDataset, str]], base_encoder: Encoder,
              ) -> tuple[EvaluationResult, dict[str, EvaluationResult], dict[str, Any], dict[str, Any]]:
    """Tune one method with one seed and evaluate it on the test split and every guard set: (test
    result, guard results, cost, tuning). A guarded method trains watching the guard sets; `tuning`
    is what its stamp says of the blend with the base and the guards (see `_tuning`).

    The outcome is kept in WORK/NAME/<method>-<seed>.json, keyed by everything that decides it
    (base model fingerprint, data, training and evaluation settings): a rerun after a crash or a
    stop reuses finished (method, seed) pairs, and an interrupted training resumes from its last
    checkpoint."""
    train_config = spec.train_config(seed, tuple(g for g in config.guards if g.name in guards))
    key = hash_strings([json.dumps({"train": to_dict(train_config), "eval": to_dict(config.eval),
                                    "guards": {n: [d.fingerprint(s), s] for n, (d, s) in guards.items()}},
                                   sort_keys=True, default=str),
                        base_encoder.fingerprint, dataset.fingerprint(config.eval.split), dataset.fingerprint(train_config.split)])
    folder = Path(config.work) / config.name
    record = folder / f"{spec.name}-{seed}.json"
    if record.is_file():
        try:
            saved = json.loads(record.read_text(encoding="utf-8"))
            if saved.get("key") == key:
                logger.info("bench %s: %s, seed %d: reusing %s", config.name, spec.name, seed, record)
                return (EvaluationResult.from_dict(saved["test"], str(record)),
                        {n: EvaluationResult.from_dict(r, str(record)) for n, r in saved["guards"].items()},
                        saved["cost"], saved.get("tuning") or {})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("bench %s: ignoring unreadable %s (%s)", config.name, record, exc)
    logger.info("bench %s: %s, seed %d", config.name, spec.name, seed)
    start = time.perf_counter()
    artifact = folder / f"{spec.name}-{seed}"
    # checkpoints are resumed only by the settings that wrote them (their key is kept beside them)
    pending = folder / f"{spec.name}-{seed}.pending"
    if artifact.exists() and not (pending.is_file() and pending.read_text(encoding="utf-8") == key):
        logger.info("bench %s: %s was made with other settings; starting it again", config.name, artifact)
        shutil.rmtree(artifact)
    write_text_atomic(pending, key)
    resume = (artifact / "checkpoints").is_dir()
    tuned = tune_and_evaluate(config.model, dataset, train_config, artifact, config.eval, guards, resume=resume)
    trained, result, guard_results = tuned.trained, tuned.result, tuned.guards
    cost = {"train_seconds": trained.train_seconds, "peak_memory_mb": trained.peak_memory_mb,
            "trainable_params": trained.trainable_params, "artifact_bytes": trained.artifact_bytes,
            "reencode_seconds": result.timings.get("encode_corpus", 0.0), "resumed": resume,
            "wall_seconds": time.perf_counter() - start}  # tune + test + guard evaluations
    tuning = _tuning(trained.stamp)
    write_json_atomic(record, {"key": key, "method": spec.name, "seed": seed, "test": result.to_dict(),
                               "guards": {n: r.to_dict() for n, r in guard_results.items()}, "cost": cost,
                               "tuning": tuning})
    pending.unlink(missing_ok=True)
    return result, guard_results, cost, tuning


def _tuning(stamp: ArtifactStamp) -> dict[str, Any]:
    """What a stamp says of the blend with the base and the guards: `alpha` (None: not blended),
    and with guard sets the `guard` record and the `dev_history` (for the guard-aware tuning plot)."""
    alpha = stamp.alpha if stamp.alpha is not None else stamp.guard.alpha if stamp.guard is not None else None
    if stamp.guard is None:
        return {"alpha": alpha}
    return {"alpha": alpha, "guard": stamp.guard.to_dict(), "dev_history": stamp.dev_history}


def _inputs(config: BenchConfig) -> tuple[BenchConfig, IRDataset, dict[str, tuple[IRDataset, str]], int]:
    """The collection, the guard sets (name -> (dataset, split)) and the number of test queries with
    training judgments, checked before any work: every split is there and no method trains on the
    split it is scored on."""
    from .train import training_data

    data_path, model = generated_inputs(config.data, config.model, Path(config.work) / config.name)
    config = replace(config, data=str(data_path), model=model)
    dataset = load_dataset(data_path)
    dataset.split(config.eval.split)  # fail now, not after the base evaluation, if a split is missing
    train_splits = set()
    for spec in config.methods:
        train_config = spec.train_config(config.seeds[0])
        if train_config.split == config.eval.split:
            raise ConfigError(f"methods.{spec.name}: trains on split {config.eval.split!r}, the split it is scored on; "
                              "train on another split (train.split) or score another (eval.split).")
        training_data(dataset, train_config)
        train_splits.add(train_config.split)
    guards = {}
    for g in config.guards:
        if Path(g.data).resolve() == Path(data_path).resolve():
            logger.warning("bench %s: guard set %r is the benchmark's own collection; left out.", config.name, g.name)
            continue
        guard = load_dataset(g.data)
        guard.split(g.split)
        guards[g.name] = (guard, g.split)
    # test queries that also have judgments in a split some method trains on
    test_queries = set(dataset.split(config.eval.split))
    overlap = len(test_queries & set().union(*(dataset.split(s) for s in train_splits)))
    if overlap:
        logger.warning("bench %s: %d test queries also have training judgments; their test figures are not "
                       "held-out.", config.name, overlap)
    return config, dataset, guards, overlap


def _method_entry(spec: BenchMethod, by_seed: list[EvaluationResult], guard_by_seed: dict[str, list[EvaluationResult]],
                  costs: list[dict[str, Any]], tunings: list[dict[str, Any]], base: EvaluationResult,
                  base_guards: dict[str, EvaluationResult],
                  metrics: list[str], n_docs: int) -> dict[str, Any]:
    """One method's figures over its seeds: metric summaries, the paired comparison with the base
    (on per-query values averaged over seeds), guard-set deltas and cost."""
    cmp = CompareConfig(metrics=tuple(metrics))
    main = compare(base, _seed_mean(by_seed, base), cmp).metrics
    # re-index cost: seconds to re-encode the collection, over the seeds that did (not from the cache)
    cold = [c["reencode_seconds"] for c, r in zip(costs, by_seed, strict=True) if not r.cache.get("hit")]
    alphas = [t["alpha"] for t in tunings if t.get("alpha") is not None]
    watched = next((t for t in tunings if t.get("guard")), None)
    entry: dict[str, Any] = {
        "method": spec.method.value, "train": spec.train, "guarded": spec.guarded,
        "alpha": _summary(alphas) if alphas else None,  # of the seeds whose artifact is a blend with the base
        # the first seed's guard-aware tuning, for its plot
        **({"guard_tuning": watched} if watched else {}),
        "metrics": {m: _summary([r.metrics[m] for r in by_seed]) for m in metrics},
        "delta": {m: main[m].delta for m in metrics},
        "p_value": {m: main[m].p_value for m in metrics},
        "ci": {m: [main[m].ci_low, main[m].ci_high] for m in metrics},
        "guards": {},
        "cost": {
            "train_seconds": statistics.fmean(c["train_seconds"] for c in costs),
            "peak_memory_mb": max(c["peak_memory_mb"] for c in costs),
            "trainable_params": costs[0]["trainable_params"],
            "artifact_bytes": costs[0]["artifact_bytes"],
            "documents_reencoded": 0 if spec.method.query_side else n_docs,
            "reencode_seconds": statistics.fmean(cold) if cold else None,
        },
    }
    for n, seed_results in guard_by_seed.items():
        g = compare(base_guards[n], _seed_mean(seed_results, base_guards[n]), cmp).metrics
        entry["guards"][n] = {m: {"delta": g[m].delta, "p_value": g[m].p_value} for m in metrics}
    return entry


def run_bench(config: BenchConfig, command: str | None = None) -> dict[str, Any]:
    """Run every method with every seed; write <out>/<name>.json, .md and .svg; return the JSON.
    Finished (method, seed) pairs are kept in the work folder and reused by a rerun. `command` (the
    command line that reproduces the run) is written into the results."""
    started = time.perf_counter()
    config, dataset, guards, overlap = _inputs(config)
    logger.info("bench %s: evaluating the base model %s on %s (%s)", config.name, config.model, config.data,
                config.eval.split)
    base_encoder = Encoder(config.model, config.eval.encode)
    base = evaluate(base_encoder, dataset, config.eval)
    base_guards = evaluate_guards(base_encoder, guards, config.eval, "base model")
    metrics = list(config.eval.metrics)
    base_seconds = time.perf_counter() - started
    results: dict[str, Any] = {
        "name": config.name, "config": to_dict(config), "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
        "data": {"documents": len(dataset.corpus), "test_queries": len(base.per_query[metrics[0]]),
                 "train_test_overlap": overlap},
        "methods": {"base": {"metrics": {m: _summary([base.metrics[m]]) for m in metrics},
                             "guards": {n: {m: r.metrics[m] for m in metrics} for n, r in base_guards.items()}}}}
    pairs: list[dict[str, Any]] = []  # wall time, encoding time and cache use of each (method, seed)
    for spec in config.methods:
        by_seed, guard_by_seed, costs, tunings = [], {n: [] for n in guards}, [], []
        for seed in config.seeds:
            result, guard_results, cost, tuning = _tune_seed(config, spec, seed, dataset, guards, base_encoder)
            tunings.append({**tuning, "seed": seed})
            by_seed.append(result)
            for n, r in guard_results.items():
                guard_by_seed[n].append(r)
            costs.append(cost)
            evaluated = [result, *guard_results.values()]
            pairs.append({"pair": f"{spec.name}-{seed}", "wall": cost.get("wall_seconds", 0.0),
                          "reencodes": not spec.method.query_side,
                          "cached": any(r.cache.get("hit") for r in evaluated),
                          "encode": sum(r.timings.get("encode_corpus", 0.0) for r in evaluated)})
        results["methods"][spec.name] = _method_entry(spec, by_seed, guard_by_seed, costs, tunings, base, base_guards, metrics,
                                                      len(dataset.corpus))
    # the wall time of this invocation, and what a run from scratch takes (base + every pair as recorded)
    results["timing"] = _timing(time.perf_counter() - started, base_seconds,
                                any(r.cache.get("hit") for r in [base, *base_guards.values()]), pairs)
    folder = Path(config.out)
    write_json_atomic(folder / f"{config.name}.json", results)
    write_text_atomic(folder / f"{config.name}.svg", quality_cost_svg(results, metrics[0]))
    for file, svg in guard_plots(results).items():
        write_text_atomic(folder / file, svg)
    write_text_atomic(folder / f"{config.name}.md", bench_markdown(results, metrics))
    logger.info("bench %s: results written to %s", config.name, folder / f"{config.name}.md")
    return results


def _timing(elapsed: float, base_seconds: float, base_cached: bool, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """How long the benchmark takes from scratch: the base evaluation plus every pair's recorded wall
    time. Where embeddings came from the cache (an earlier run made the same model), their encoding
    is missing from a wall time; it is added back as the mean encoding time of the pairs that did
    encode (base included: it encodes the same collections)."""
    cold = [p["encode"] for p in pairs if p["reencodes"] and not p["cached"]]
    fill = statistics.fmean(cold) if cold else 0.0
    filled = [p["pair"] for p in pairs if p["reencodes"] and p["cached"]] + (["base"] if base_cached else [])
    total = base_seconds + sum(p["wall"] for p in pairs) + fill * len(filled)
    return {"elapsed_seconds": elapsed, "from_scratch_seconds": total, "base_seconds": base_seconds,
            "cached": filled, "encode_seconds_added": fill * len(filled) if cold else None}
