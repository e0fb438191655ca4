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
from .config import BenchConfig, BenchMethod, CompareConfig, Method, to_dict
from .data import IRDataset, load_dataset
from .encode import Encoder
from .errors import ConfigError
from .pipeline import evaluate
from .results import EvaluationResult, library_versions

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


def _seed_run(config: BenchConfig, spec: BenchMethod, seed: int, dataset: IRDataset,
              guards: dict[str, tuple[IRDataset, str]], base_encoder: Encoder,
              ) -> tuple[EvaluationResult, dict[str, EvaluationResult], dict[str, Any]]:
    """Tune one method with one seed and evaluate it on the test split and every guard set.

    The outcome is kept in WORK/NAME/<method>-<seed>.json, keyed by everything that decides it
    (base model fingerprint, data, training and evaluation settings): a rerun after a crash or a
    stop reuses finished (method, seed) pairs, and an interrupted training resumes from its last
    checkpoint."""
    from .train import finetune

    train_config = spec.train_config(seed)
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
                        {n: EvaluationResult.from_dict(r, str(record)) for n, r in saved["guards"].items()}, saved["cost"])
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
    trained = finetune(config.model, dataset, train_config, artifact, encode=config.eval.encode,
                       resume=resume)
    tuned_encoder = Encoder(str(trained.artifact), config.eval.encode)
    result = evaluate(tuned_encoder, dataset, config.eval)
    guard_results = {n: evaluate(tuned_encoder, d, replace(config.eval, split=s)) for n, (d, s) in guards.items()}
    cost = {"train_seconds": trained.train_seconds, "peak_memory_mb": trained.peak_memory_mb,
            "trainable_params": trained.trainable_params, "artifact_bytes": trained.artifact_bytes,
            "reencode_seconds": result.timings.get("encode_corpus", 0.0), "resumed": resume,
            "wall_seconds": time.perf_counter() - start}  # tune + test + guard evaluations
    write_json_atomic(record, {"key": key, "method": spec.name, "seed": seed, "test": result.to_dict(),
                               "guards": {n: r.to_dict() for n, r in guard_results.items()}, "cost": cost})
    pending.unlink(missing_ok=True)
    return result, guard_results, cost


def run_bench(config: BenchConfig, command: str | None = None) -> dict[str, Any]:
    """Run every method with every seed; write <out>/<name>.json, .md and .svg; return the JSON.
    Finished (method, seed) pairs are kept in the work folder and reused by a rerun. `command` (the
    command line that reproduces the run) is written into the results."""
    from .pipeline import generated_inputs
    from .train import training_data

    started = time.perf_counter()
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
    base_encoder = Encoder(config.model, config.eval.encode)
    base = evaluate(base_encoder, dataset, config.eval)
    base_guards = {n: evaluate(base_encoder, d, replace(config.eval, split=s))
                   for n, (d, s) in guards.items()}
    metrics = list(config.eval.metrics)
    base_seconds = time.perf_counter() - started
    out: dict[str, Any] = {"name": config.name, "config": to_dict(config), "versions": library_versions(),
                           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
                           "data": {"documents": len(dataset.corpus), "test_queries": len(base.per_query[config.eval.metrics[0]]),
                                    "train_test_overlap": overlap},
                           "methods": {"base": {"metrics": {m: _summary([base.metrics[m]]) for m in metrics},
                                                "guards": {n: {m: r.metrics[m] for m in metrics} for n, r in base_guards.items()}}}}
    cmp = CompareConfig(metrics=tuple(metrics))
    pairs: list[dict[str, Any]] = []  # wall time, encoding time and cache use of each (method, seed)
    for spec in config.methods:
        runs, guard_runs, costs = [], {n: [] for n in guards}, []
        for seed in config.seeds:
            result, guard_results, cost = _seed_run(config, spec, seed, dataset, guards, base_encoder)
            runs.append(result)
            for n, r in guard_results.items():
                guard_runs[n].append(r)
            costs.append(cost)
            evaluated = [result, *guard_results.values()]
            pairs.append({"pair": f"{spec.name}-{seed}", "wall": cost.get("wall_seconds", 0.0),
                          "reencodes": spec.method is not Method.QUERY_ONLY,
                          "cached": any(r.cache.get("hit") for r in evaluated),
                          "encode": sum(r.timings.get("encode_corpus", 0.0) for r in evaluated)})
        main = compare(base, _seed_mean(runs, base), cmp).metrics
        # re-index cost: seconds to re-encode the collection, over the seeds that did (not from the cache)
        cold = [c["reencode_seconds"] for c, r in zip(costs, runs, strict=True) if not r.cache.get("hit")]
        entry: dict[str, Any] = {
            "method": spec.method.value, "train": spec.train,
            "metrics": {m: _summary([r.metrics[m] for r in runs]) for m in metrics},
            "delta": {m: main[m].delta for m in metrics},
            "p_value": {m: main[m].p_value for m in metrics},
            "ci": {m: [main[m].ci_low, main[m].ci_high] for m in metrics},
            "guards": {},
            "cost": {
                "train_seconds": statistics.fmean(c["train_seconds"] for c in costs),
                "peak_memory_mb": max(c["peak_memory_mb"] for c in costs),
                "trainable_params": costs[0]["trainable_params"],
                "artifact_bytes": costs[0]["artifact_bytes"],
                "documents_reencoded": 0 if spec.method is Method.QUERY_ONLY else len(dataset.corpus),
                "reencode_seconds": statistics.fmean(cold) if cold else None,
            },
        }
        for n, results in guard_runs.items():
            g = compare(base_guards[n], _seed_mean(results, base_guards[n]), cmp).metrics
            entry["guards"][n] = {m: {"delta": g[m].delta, "p_value": g[m].p_value} for m in metrics}
        out["methods"][spec.name] = entry
    # the wall time of this invocation, and what a run from scratch takes (base + every pair as recorded)
    out["timing"] = _timing(time.perf_counter() - started, base_seconds,
                            any(r.cache.get("hit") for r in [base, *base_guards.values()]), pairs)
    folder = Path(config.out)
    write_json_atomic(folder / f"{config.name}.json", out)
    write_text_atomic(folder / f"{config.name}.svg", quality_cost_svg(out, metrics[0]))
    write_text_atomic(folder / f"{config.name}.md", bench_markdown(out, metrics))
    return out


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


def bench_markdown(out: dict[str, Any], metrics: list[str]) -> str:
    seeds = out["config"]["seeds"]
    lines = [f"# Benchmark `{out['name']}`", "",
             f"Model `{out['config']['model']}`, data `{out['config']['data']}`, seeds {seeds}; mean ± std over seeds. "
             "Delta, p-value (paired t-test) and 95 % CI compare per-query values averaged over seeds with the base.", ""]
    head = "| method | " + " | ".join(metrics) + " | delta " + metrics[0] + " | p | 95% CI | train s | peak MB | trainable | artifact MB | docs re-encoded | re-encode s |"
    lines += [head, "|" + "---|" * (len(metrics) + 10)]
    for name, e in out["methods"].items():
        cells = [f"{e['metrics'][m]['mean']:.4f} ± {e['metrics'][m]['std']:.4f}" for m in metrics]
        if name == "base":
            lines.append("| base | " + " | ".join(cells) + " |" + " |" * 9)
            continue
        c, m0 = e["cost"], metrics[0]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {e['delta'][m0]:+.4f} | {e['p_value'][m0]:.3g} | "
                     f"[{e['ci'][m0][0]:+.4f}, {e['ci'][m0][1]:+.4f}] | {c['train_seconds']:.0f} | {c['peak_memory_mb']:.0f} | "
                     f"{c['trainable_params']:,} | {c['artifact_bytes'] / 2**20:.1f} | {c['documents_reencoded']} | "
                     f"{'' if c.get('reencode_seconds') is None else format(c['reencode_seconds'], '.0f')} |")
    guard_names = sorted(out["methods"]["base"]["guards"])
    if guard_names:
        lines += ["", f"Guard sets ({metrics[0]} delta, p):", "", "| method | " + " | ".join(guard_names) + " |",
                  "|" + "---|" * (len(guard_names) + 1)]
        for name, e in out["methods"].items():
            if name == "base":
                continue
            lines.append(f"| {name} | " + " | ".join(
                f"{e['guards'][g][metrics[0]]['delta']:+.4f} (p={e['guards'][g][metrics[0]]['p_value']:.3g})" for g in guard_names) + " |")
    lines += ["", "Goals:", ""] + [f"- {g}" for g in bench_goals(out, metrics[0])]
    timing = out.get("timing") or {}
    if timing:
        lines += ["", f"Wall time: {timing['from_scratch_seconds'] / 60:.0f} min from scratch (base evaluation plus every "
                      f"(method, seed) pair as recorded); this invocation took {timing['elapsed_seconds'] / 60:.0f} min."]
        if timing.get("cached"):
            added = timing.get("encode_seconds_added")
            lines[-1] += (f" Embeddings for {', '.join(timing['cached'])} came from the embedding cache; "
                          + (f"the from-scratch figure adds {added / 60:.0f} min for encoding them (the mean of the pairs "
                             "that encoded)." if added is not None else "no pair encoded, so that time is not counted."))
    if out.get("command"):
        lines += ["", "Reproduce (from the project root):", "", "```", out["command"], "```"]
    v = out.get("versions") or {}
    if v:
        lines += ["", "Versions: " + ", ".join(f"{k} {val}" for k, val in sorted(v.items())) + "."]
    lines += ["", f"![quality vs training cost]({out['name']}.svg)", ""]
    return "\n".join(lines)


def bench_goals(out: dict[str, Any], metric: str, alpha: float = 0.05, lora_gap: float = 0.01,
                guard_drop: float = 0.01) -> list[str]:
    """The benchmark's goals, each stated as met or not met with its numbers: every method
    significantly above base, LoRA within `lora_gap` of full, no guard set dropping by more than
    `guard_drop`."""
    methods = {n: e for n, e in out["methods"].items() if n != "base"}
    lines = []
    for name, e in methods.items():
        ok = e["delta"][metric] > 0 and e["p_value"][metric] < alpha
        lines.append(f"{'met' if ok else 'NOT met'}: {name} above base ({metric} {e['delta'][metric]:+.4f}, "
                     f"p={e['p_value'][metric]:.3g}, threshold p<{alpha})")
    if "full" in methods and "lora" in methods:
        gap = methods["full"]["metrics"][metric]["mean"] - methods["lora"]["metrics"][metric]["mean"]
        lines.append(f"{'met' if gap <= lora_gap else 'NOT met'}: lora within {lora_gap} of full "
                     f"(full - lora = {gap:+.4f})")
    for name, e in methods.items():
        worst = min(((g, d[metric]["delta"]) for g, d in e["guards"].items()), key=lambda t: t[1], default=None)
        if worst is not None:
            lines.append(f"{'met' if worst[1] >= -guard_drop else 'NOT met'}: {name} drops no guard set by more than "
                         f"{guard_drop} (worst: {worst[0]} {worst[1]:+.4f})")
    return lines


def quality_cost_svg(out: dict[str, Any], metric: str, width: int = 560, height: int = 320) -> str:
    """Each method's mean metric against its training seconds (log scale), as an inline-able SVG."""
    import math

    from .report import _esc

    points = [(n, e["cost"]["train_seconds"], e["metrics"][metric]["mean"]) for n, e in out["methods"].items() if n != "base"]
    base = out["methods"]["base"]["metrics"][metric]["mean"]
    if not points:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    xs = [math.log10(max(p[1], 1e-3)) for p in points]
    ys = [p[2] for p in points] + [base]
    x0, x1 = min(xs) - 0.2, max(xs) + 0.2
    y0, y1 = min(ys) - 0.01, max(ys) + 0.01
    pad = 50

    def sx(v: float) -> float:
        return pad + (v - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(v: float) -> float:
        return height - pad - (v - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<line x1="{pad}" y1="{sy(base):.1f}" x2="{width - pad}" y2="{sy(base):.1f}" stroke="#999" stroke-dasharray="4"/>',
             f'<text x="{pad + 4}" y="{sy(base) - 4:.1f}" fill="#666">base {base:.4f}</text>',
             f'<text x="{width / 2:.0f}" y="{height - 10}" text-anchor="middle">training seconds (log scale)</text>',
             f'<text x="14" y="{height / 2:.0f}" transform="rotate(-90 14 {height / 2:.0f})" text-anchor="middle">{_esc(metric)}</text>']
    for (name, seconds, value), lx in zip(points, xs, strict=True):
        parts.append(f'<circle cx="{sx(lx):.1f}" cy="{sy(value):.1f}" r="5" fill="#1565c0"/>'
                     f'<text x="{sx(lx) + 8:.1f}" y="{sy(value) + 4:.1f}">{_esc(name)} ({seconds:.0f} s)</text>')
    parts.append("</svg>")
    return "".join(parts)
