"""Training cost against a plain sentence-transformers Trainer: each method on all-MiniLM-L6-v2
(--part methods), and by model size (--part sizes); the default runs both.

Every configuration runs in its own process on the same (query, document) pairs, batch size and
number of steps. "plain" is SentenceTransformerTrainer + MultipleNegativesRankingLoss written
directly (with peft's LoRA added by hand for lora and hybrid: the same targets, rank, alpha and
dropout as ours' defaults, and its no-duplicates batches); ours is `retrieval_ft.finetune` with dev
evaluation only at the end, batching as plain does (`batching: no-duplicates`).
Steps/s is timed from the first to the last optimizer step with the same callback on both sides (so
set-up, checkpoints and dev evaluations are left out). Peak memory is the child's VmHWM from
/proc/self/status, its window restarted just before training on both sides (ours restarts it
itself), read once the model is saved; on a GPU, torch.cuda.max_memory_allocated is reported too.

methods (eval/results/perf/train.json): full, LoRA and hybrid in float32 on both sides (our
overhead) and, on a machine where our default precision ("auto": bf16 mixed precision on CPUs with
native bf16) is not float32, in it against plain bf16 and plain float32 (what users get). Query-only
has no plain twin: it is compared with plain full training, which it is meant to beat. Goal: ours /
plain >= 0.95x in steps/s.

sizes (eval/results/perf/train_sizes.json): encoders with the shapes of MiniLM-L6 (22M parameters),
BERT-base (110M) and BERT-large (335M), random weights and the MiniLM tokenizer, built once into
out/bench-train-sizes/ as sentence-transformers models (Transformer + mean Pooling + Normalize);
full, LoRA and hybrid, with and without gradient checkpointing, ours and plain, in float32 by
default, at batch 8 x 64 tokens. End to end is the whole training call (data, model, training,
saving) less ours' dev evaluations and the metric library they score with (ranx, loaded once
before training), which are reported apart. Goals: LoRA peak memory <= 0.9x
full's at MiniLM size, the ratio falling with size, <= 0.6x at BERT-large; LoRA steps/s >= full's
at BERT-base and BERT-large; ours end to end <= 1.15x plain.

    .venv/bin/python eval/bench/train.py [--part methods|sizes] [--data out/demo/data] [--steps 12]
        [--sizes MiniLM-L6,BERT-base,BERT-large] [--size-steps N] [--checkpointing off,on] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, save
from serve import status_mb

SIZES_CACHE = ROOT / "out" / "bench-train-sizes"
MEMORY_GOALS = {"MiniLM-L6": 0.9, "BERT-large": 0.6}  # LoRA / full peak memory, at most
STEPS_GOAL_SIZES = ("BERT-base", "BERT-large")  # LoRA / full steps/s >= 1 there
END_TO_END_GOAL = 1.15  # ours / plain, at most


@dataclasses.dataclass(frozen=True)
class Size:
    """An encoder shape of the sweep, the steps it trains for (few where steps are slow) and how many
    times each configuration runs (the median is kept: more where runs are short and noisy)."""

    name: str
    nominal_params_m: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    steps: int
    repeats: int


SIZES = (Size("MiniLM-L6", 22, 384, 6, 12, 1536, 8, 3), Size("BERT-base", 110, 768, 12, 12, 3072, 5, 1),
         Size("BERT-large", 335, 1024, 24, 16, 4096, 4, 1))
SWEEP_METHODS = ("full", "lora", "hybrid")


class StepClock:
    """Trainer callback: wall time at the end of each step, so steps/s excludes set-up, checkpoint
    writes and dev evaluations; and the seconds from each dev evaluation's end to the checkpoint
    written after it."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.evaluated: float | None = None
        self.checkpoint_seconds = 0.0

    def __getattr__(self, name):  # other callback events are no-ops
        return lambda *args, **kwargs: None

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())

    def on_evaluate(self, args, state, control, **kwargs):
        self.evaluated = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        if self.evaluated is not None:  # the Trainer saves right after it evaluates
            self.checkpoint_seconds += time.perf_counter() - self.evaluated
            self.evaluated = None

    def steps_per_s(self) -> float:
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


# -- one configuration, in a child process -------------------------------------------------------
def _seed() -> None:
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def _memory(rss_before: float) -> dict[str, float]:
    """Peak resident memory since the window restarted (VmHWM), what the work added over the process
    before it (imports done), and on a GPU the peak of CUDA allocations."""
    import torch

    peak = status_mb("VmHWM")
    out = {"peak_mb": peak, "rss_before_mb": rss_before, "added_mb": peak - rss_before}
    if torch.cuda.is_available():
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def child_ours(spec: dict[str, Any]) -> dict[str, Any]:
    from retrieval_ft.config import EncodeConfig, TrainConfig
    from retrieval_ft.train import finetune

    extra = {"gradient_checkpointing": True} if spec.get("checkpointing") else {}
    if "batching" in spec:
        extra["batching"] = spec["batching"]
    # one small dev evaluation, at the end: it is reported apart, not compared
    config = TrainConfig(method=spec["method"], max_steps=spec["steps"], batch_size=spec["batch_size"], evals_per_epoch=1,
                         max_dev_queries=4, dev_corpus_size=50, warmup_ratio=0.0, precision=spec["precision"], **extra)
    clock, rss_before = StepClock(), status_mb("VmRSS")
    start = time.perf_counter()
    res = finetune(spec["model"], spec["data"], config, Path(tempfile.mkdtemp()) / "out",
                   encode=EncodeConfig(progress=False, max_seq_length=spec["max_seq_length"]), callbacks=[clock])
    total = time.perf_counter() - start
    return {"steps_per_s": clock.steps_per_s(), "seconds": res.train_seconds, "total_seconds": total,
            # dev evaluations, with the metric library they score with (loaded once, before training)
            "eval_seconds": (res.stamp.eval_seconds or 0.0) + res.timings["metric_library"],
            "metric_library_seconds": res.timings["metric_library"], "checkpoint_seconds": clock.checkpoint_seconds,
            "steps": res.stamp.steps, "timings": res.timings, **_memory(rss_before)}


def _plain_lora(model: Any, method: str) -> Any:
    """peft LoRA as a plain user adds it to a BERT: every linear layer but the pooler; for hybrid,
    the last layer trains fully instead (modules_to_save). Rank, alpha and dropout are ours' defaults."""
    import torch
    from peft import LoraConfig

    from retrieval_ft.config import LoraSettings

    tm = model.transformers_model
    full = [f"encoder.layer.{tm.config.num_hidden_layers - 1}"] if method == "hybrid" else []
    targets = [n for n, m in tm.named_modules() if isinstance(m, torch.nn.Linear) and not n.startswith("pooler")
               and not any(n.startswith(f + ".") for f in full)]
    lora = LoraSettings()
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                      modules_to_save=full or None, bias="none")


def _checkpointing_args() -> dict[str, Any]:
    """Activation checkpointing, non-reentrant (LoRA's frozen inputs need it), under the name this
    transformers knows (5.23 renamed gradient_checkpointing to activation_checkpointing)."""
    from sentence_transformers import SentenceTransformerTrainingArguments

    known = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments)}
    name = "activation_checkpointing" if "activation_checkpointing" in known else "gradient_checkpointing"
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}}


def child_plain(spec: dict[str, Any]) -> dict[str, Any]:
    import datasets
    import torch
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from retrieval_ft.config import TrainConfig
    from retrieval_ft.data import load_dataset
    from retrieval_ft.models import resolve_model
    from retrieval_ft.train import training_data
    from retrieval_ft.train.measure import reset_peak_memory

    rss_before = status_mb("VmRSS")
    start = time.perf_counter()
    ds = load_dataset(spec["data"])
    pairs = training_data(ds, TrainConfig()).pairs
    train = datasets.Dataset.from_dict({"anchor": [ds.queries[q] for q, _ in pairs],
                                        "positive": [ds.corpus[d].full_text for _, d in pairs]})
    model = SentenceTransformer(resolve_model(spec["model"]).location)
    model.max_seq_length = spec["max_seq_length"]
    if spec["method"] in ("lora", "hybrid"):
        model.add_adapter(_plain_lora(model, spec["method"]))
    out = tempfile.mkdtemp()
    args = SentenceTransformerTrainingArguments(
        output_dir=out, max_steps=spec["steps"], per_device_train_batch_size=spec["batch_size"],
        learning_rate=TrainConfig(method=spec["method"]).learning_rate, warmup_steps=0.0, seed=42, data_seed=42,
        batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(), logging_steps=1000, bf16=spec["precision"] == "bf16",
        **(_checkpointing_args() if spec.get("checkpointing") else {}))
    clock = StepClock()
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                         loss=MultipleNegativesRankingLoss(model), callbacks=[clock])
    reset_peak_memory()  # ours restarts the window at the same point
    train_start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - train_start
    model.save(str(Path(out) / "model"))
    total = time.perf_counter() - start
    return {"steps_per_s": clock.steps_per_s(), "seconds": seconds, "total_seconds": total, "eval_seconds": 0.0,
            "checkpoint_seconds": 0.0, "steps": trainer.state.global_step, **_memory(rss_before)}


def child_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Build the size's encoder (random weights, the MiniLM tokenizer) into spec["folder"]."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from retrieval_ft.models import resolve_model

    size = Size(**spec["size"])
    folder = Path(spec["folder"])
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2").location)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=size.hidden, num_hidden_layers=size.layers,
                        num_attention_heads=size.heads, intermediate_size=size.intermediate, max_position_embeddings=512)
    BertModel(config).save_pretrained(tmp / "hf")
    tokenizer.save_pretrained(tmp / "hf")
    transformer = Transformer(str(tmp / "hf"), max_seq_length=256)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"),
                                         Normalize()], device="cpu")
    model.save(str(tmp / "model"))
    params = sum(p.numel() for p in model.parameters())
    (tmp / "model" / "bench_size.json").write_text(json.dumps({**spec["size"], "params": params}, sort_keys=True))
    shutil.rmtree(tmp / "hf")
    shutil.rmtree(folder, ignore_errors=True)
    (tmp / "model").rename(folder)
    shutil.rmtree(tmp)
    return {"params": params}


CHILDREN = {"ours": child_ours, "plain": child_plain, "build": child_build}


def run_child(spec: dict[str, Any], label: str) -> dict[str, Any]:
    """Run one configuration in a fresh process; its figures, and the process's wall seconds."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, cwd=ROOT)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{label} failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(line[7:]), "process_seconds": time.perf_counter() - start}


# -- part methods: each method against the plain Trainer on all-MiniLM-L6-v2 -----------------------
def methods_part(args: argparse.Namespace) -> None:
    from retrieval_ft.precision import resolve_precision

    auto = resolve_precision("auto", "cpu").value
    # (impl, method, precision): plain fp32 is the plain stack's default; each method runs at the same
    # precision on both sides (our overhead), in fp32 and, where it differs, in ours' "auto" (plain's
    # twin written by hand); query-only has no plain twin
    precisions = list(dict.fromkeys(["fp32", auto]))
    runs = [(impl, m, p) for m in ("full", "lora", "hybrid") for p in precisions for impl in ("plain", "ours")]
    runs.append(("ours", "query-only", auto))
    results = {}
    for impl, method, precision in dict.fromkeys(runs):
        # ours batches as plain does (no duplicates in a batch), as in the sizes part
        spec = {"impl": impl, "method": method, "model": args.model, "data": args.data, "steps": args.steps,
                "batch_size": args.batch_size, "max_seq_length": args.max_seq_length, "precision": precision,
                "batching": "no-duplicates"}
        r = results[(impl, method, precision)] = run_child(spec, f"{impl} {method} {precision}")
        print(f"{impl:<6} {method:<11} {precision:<5} {r['steps_per_s']:6.3f} steps/s  training {r['seconds']:6.1f} s  "
              f"peak {r['peak_mb']:7.0f} MB", flush=True)
    print(f"\n{args.steps} steps, batch {args.batch_size}, max_seq_length {args.max_seq_length}, data {args.data}; "
          f"auto precision here: {auto}")
    ratios = []
    # the same method and precision on both sides; ours' auto against plain's default (what users
    # get), where auto is not fp32; query-only against plain full tuning, which it is meant to beat
    pairs = [(m, p, m, p) for m in ("full", "lora", "hybrid") for p in precisions]
    pairs += [(m, auto, m, "fp32") for m in ("full", "lora", "hybrid") if auto != "fp32"]
    for method, ours_p, plain_m, plain_p in [*pairs, ("query-only", auto, "full", "fp32")]:
        ours, plain = results[("ours", method, ours_p)], results[("plain", plain_m, plain_p)]
        ratio = {"method": method, "ours": ours_p, "plain": f"{plain_m} {plain_p}",
                 "steps_ratio": ours["steps_per_s"] / plain["steps_per_s"], "memory_ratio": ours["peak_mb"] / plain["peak_mb"]}
        ratios.append(ratio)
        print(f"ours {method:<10} {ours_p:<5} vs plain {plain_m:<4} {plain_p:<5}: steps/s {ratio['steps_ratio']:5.2f}x "
              f"(goal >= 0.95), peak memory {ratio['memory_ratio']:5.2f}x")
    save("train", {"steps": args.steps, "batch_size": args.batch_size, "max_seq_length": args.max_seq_length,
                   "data": args.data, "auto_precision": auto, "ratios": ratios,
                   "runs": [{"impl": i, "method": m, "precision": p, **r} for (i, m, p), r in results.items()]}, args.json)


# -- part sizes: full / LoRA / hybrid by model size ------------------------------------------------
def size_folder(size: Size) -> Path:
    """Where the size's encoder is cached: keyed by its shape and the tokenizer it borrows."""
    from retrieval_ft.models import resolve_model

    shape = {k: v for k, v in dataclasses.asdict(size).items() if k != "repeats"}
    key = json.dumps({**shape, "steps": None, "seed": 0,
                      "tokenizer": resolve_model("all-MiniLM-L6-v2").location}, sort_keys=True)
    return SIZES_CACHE / f"{size.name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def size_model(size: Size) -> tuple[Path, int]:
    """The size's encoder folder (built in a child process the first time) and its parameter count."""
    folder = size_folder(size)
    if not (folder / "bench_size.json").is_file():
        print(f"building a random {size.name} encoder into {folder}", flush=True)
        run_child({"impl": "build", "size": dataclasses.asdict(size), "folder": str(folder)}, f"building {size.name}")
    return folder, json.loads((folder / "bench_size.json").read_text())["params"]


def sweep_configurations(sizes: list[Size], methods: list[str], checkpointing: list[bool],
                         repeats: int | None = None) -> list[tuple[str, str, str, bool]]:
    """(size, impl, method, checkpointing) in the order they run: size by size, plain before ours; a
    size's configurations run `repeats` times (default: the size's own) in rounds, one after another,
    so that a slow spell of the machine touches every configuration alike."""
    return [(s.name, impl, m, c) for s in sizes for _ in range(repeats or s.repeats)
            for m in methods for c in checkpointing for impl in ("plain", "ours")]


def median_run(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's figures over its repeats: the median of each number, the repeats' count,
    and their end to end seconds (to show the spread)."""
    import statistics

    def median(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):  # e.g. ours' timings by phase
            return {k: median([v[k] for v in values]) for k in first}
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            return statistics.median(values)
        return first

    out = {key: median([r[key] for r in repeats]) for key in repeats[0]}
    return {**out, "repeats": len(repeats), "end_to_end_each": [round(_ours_total(r), 2) for r in repeats]}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _ours_total(run: dict[str, Any]) -> float:
    """End to end less dev evaluations and their metric library (reported apart)."""
    return run["total_seconds"] - run["eval_seconds"]


def size_ratios(runs: list[dict[str, Any]], size: str) -> dict[str, Any]:
    """The ratios of one size: LoRA and hybrid against full (ours, without checkpointing) in peak
    memory, added memory and steps/s; what checkpointing changes for each method; and ours against
    plain for each (method, checkpointing) run. A ratio whose runs are missing is None."""
    at = {(r["impl"], r["method"], r["checkpointing"]): r for r in runs if r["size"] == size}

    def fig(impl: str, method: str, ckpt: bool, key: str) -> float | None:
        run = at.get((impl, method, ckpt))
        return None if run is None else (_ours_total(run) if key == "end_to_end" else run[key])

    out: dict[str, Any] = {"size": size}
    for method in ("lora", "hybrid"):
        for key, name in (("peak_mb", "memory"), ("added_mb", "added_memory"), ("steps_per_s", "steps")):
            out[f"{method}_full_{name}"] = _ratio(fig("ours", method, False, key), fig("ours", "full", False, key))
    out["checkpointing"] = {m: {"memory": _ratio(fig("ours", m, True, "peak_mb"), fig("ours", m, False, "peak_mb")),
                                "steps": _ratio(fig("ours", m, True, "steps_per_s"), fig("ours", m, False, "steps_per_s"))}
                            for m in SWEEP_METHODS if ("ours", m, True) in at}
    out["ours_plain"] = [{"method": m, "checkpointing": c,
                          "end_to_end": _ratio(fig("ours", m, c, "end_to_end"), fig("plain", m, c, "end_to_end")),
                          "steps": _ratio(fig("ours", m, c, "steps_per_s"), fig("plain", m, c, "steps_per_s")),
                          "memory": _ratio(fig("ours", m, c, "peak_mb"), fig("plain", m, c, "peak_mb"))}
                         for (impl, m, c) in at if impl == "ours" and ("plain", m, c) in at]
    return out


def size_goals(ratios: list[dict[str, Any]]) -> dict[str, Any]:
    """Each goal with its figures and whether it is met (None where the sweep lacks the sizes)."""
    by = {r["size"]: r for r in ratios}
    memory = [(r["size"], r["lora_full_memory"]) for r in ratios if r["lora_full_memory"] is not None]
    goals: dict[str, Any] = {"memory": {name: {"ratio": by[name]["lora_full_memory"], "goal": goal,
                                               "met": by[name]["lora_full_memory"] <= goal}
                                        for name, goal in MEMORY_GOALS.items()
                                        if name in by and by[name]["lora_full_memory"] is not None}}
    values = [v for _, v in memory]
    goals["memory_falls"] = all(a > b for a, b in zip(values, values[1:], strict=False)) if len(values) > 1 else None
    goals["steps"] = {name: {"ratio": by[name]["lora_full_steps"], "goal": 1.0, "met": by[name]["lora_full_steps"] >= 1.0}
                      for name in STEPS_GOAL_SIZES if name in by and by[name]["lora_full_steps"] is not None}
    pairs = [(r["size"], q) for r in ratios for q in r["ours_plain"] if q["end_to_end"] is not None]
    if pairs:
        size, worst = max(pairs, key=lambda p: p[1]["end_to_end"])
        goals["end_to_end"] = {"worst": worst["end_to_end"], "size": size, "method": worst["method"],
                               "checkpointing": worst["checkpointing"], "goal": END_TO_END_GOAL,
                               "met": worst["end_to_end"] <= END_TO_END_GOAL}
    return goals


def _label(size: str, impl: str, method: str, ckpt: bool) -> str:
    return f"{size} {method}{' +ckpt' if ckpt else ''} {impl}"


def _print_run(i: int, n: int, label: str, r: dict[str, Any]) -> None:
    gpu = f", GPU peak {r['gpu_peak_mb']:.0f} MB" if "gpu_peak_mb" in r else ""
    print(f"[{i}/{n}] {label:<34} {r['steps_per_s']:7.3f} steps/s  end to end {_ours_total(r):6.1f} s (dev evaluation "
          f"{r['eval_seconds']:.1f} s)  peak {r['peak_mb']:6.0f} MB (+{r['added_mb']:.0f}){gpu}", flush=True)


def _print_ratios(q: dict[str, Any]) -> None:
    def x(v: float | None) -> str:
        return "  -  " if v is None else f"{v:5.2f}x"

    print(f"{q['size']}: LoRA/full peak memory {x(q['lora_full_memory'])} (added {x(q['lora_full_added_memory'])}), "
          f"steps/s {x(q['lora_full_steps'])}; hybrid/full memory {x(q['hybrid_full_memory'])}, steps/s "
          f"{x(q['hybrid_full_steps'])}")
    for p in q["ours_plain"]:
        print(f"   ours/plain {p['method']:<6}{' +ckpt' if p['checkpointing'] else '      '} end to end {x(p['end_to_end'])} "
              f"(goal <= {END_TO_END_GOAL}), steps/s {x(p['steps'])}, peak memory {x(p['memory'])}")


def sizes_part(args: argparse.Namespace) -> None:
    import torch

    chosen = [s for s in SIZES if s.name in args.sizes.split(",")]
    if not chosen:
        sys.exit(f"--sizes {args.sizes}: none of {', '.join(s.name for s in SIZES)}")
    methods = args.size_methods.split(",")
    checkpointing = [{"off": False, "on": True}[c] for c in args.checkpointing.split(",")]
    built = {s.name: size_model(s) for s in chosen}
    configurations = sweep_configurations(chosen, methods, checkpointing, args.repeats)
    measured: dict[tuple[str, str, str, bool], list[dict[str, Any]]] = {}
    for i, (name, impl, method, ckpt) in enumerate(configurations, 1):
        size = next(s for s in chosen if s.name == name)
        # ours batches as plain does (no duplicates in a batch), so both train on the same kind of
        # batches; ours' default per-query batching is a choice about the data, not overhead
        spec = {"impl": impl, "method": method, "model": str(built[name][0]), "data": args.data,
                "steps": args.size_steps or size.steps, "batch_size": args.size_batch_size,
                "max_seq_length": args.size_max_seq_length, "precision": args.size_precision, "checkpointing": ckpt,
                "batching": "no-duplicates"}
        r = run_child(spec, _label(name, impl, method, ckpt))
        measured.setdefault((name, impl, method, ckpt), []).append(r)
        _print_run(i, len(configurations), _label(name, impl, method, ckpt), r)
    runs = [{"size": name, "impl": impl, "method": method, "checkpointing": ckpt, **median_run(each)}
            for (name, impl, method, ckpt), each in measured.items()]
    ratios = [size_ratios(runs, s.name) for s in chosen]
    print(f"\nbatch {args.size_batch_size}, max_seq_length {args.size_max_seq_length}, {args.size_precision}, data {args.data}")
    for q in ratios:
        _print_ratios(q)
    goals = size_goals(ratios)
    print("goals: " + json.dumps(goals, sort_keys=True))
    save("train_sizes", {
        "batch_size": args.size_batch_size, "max_seq_length": args.size_max_seq_length, "precision": args.size_precision,
        "data": args.data, "quick": args.quick, "gpu": torch.cuda.is_available(),
        "sizes": [{**dataclasses.asdict(s), "steps": args.size_steps or s.steps, "params": built[s.name][1]} for s in chosen],
        "runs": runs, "ratios": ratios, "goals": goals}, args.sizes_json)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        spec = json.loads(sys.argv[2])
        if spec["impl"] != "build":
            _seed()
        print("RESULT " + json.dumps(CHILDREN[spec["impl"]](spec)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["methods", "sizes"], help="run one part (default: both)")
    parser.add_argument("--data", default=str(ROOT / "out" / "demo" / "data"))
    methods = parser.add_argument_group("methods")
    methods.add_argument("--model", default="all-MiniLM-L6-v2")
    methods.add_argument("--steps", type=int, default=12)
    methods.add_argument("--batch-size", type=int, default=16)
    methods.add_argument("--max-seq-length", type=int, default=128)
    methods.add_argument("--json", help="write the figures here (default eval/results/perf/train.json)")
    sizes = parser.add_argument_group("sizes")
    sizes.add_argument("--sizes", default=",".join(s.name for s in SIZES))
    sizes.add_argument("--size-methods", default=",".join(SWEEP_METHODS))
    sizes.add_argument("--checkpointing", default="off,on", help="gradient checkpointing: off, on or off,on")
    sizes.add_argument("--size-steps", type=int, help="steps at every size (default: each size's own, "
                       + ", ".join(f"{s.name} {s.steps}" for s in SIZES) + ")")
    sizes.add_argument("--repeats", type=int, help="runs of each configuration, the median kept (default: each size's "
                       "own, " + ", ".join(f"{s.name} {s.repeats}" for s in SIZES) + ")")
    sizes.add_argument("--size-batch-size", type=int, default=8)
    sizes.add_argument("--size-max-seq-length", type=int, default=64)
    sizes.add_argument("--size-precision", default="fp32", choices=["fp32", "bf16"])
    sizes.add_argument("--sizes-json", help="write the figures here (default eval/results/perf/train_sizes.json)")
    sizes.add_argument("--quick", action="store_true",
                       help="a smoke run: the sizes part only, MiniLM-L6 shape, 2 steps, batch 4 x 32 tokens")
    args = parser.parse_args()
    if args.quick:
        args.part, args.sizes, args.size_steps, args.size_batch_size, args.size_max_seq_length = "sizes", "MiniLM-L6", 2, 4, 32
        args.repeats = 1
    if not Path(args.data).exists():
        subprocess.run([sys.executable, "-m", "retrieval_ft.cli", "demo-data", "--out", args.data], check=True, cwd=ROOT)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.part in (None, "methods"):
        methods_part(args)
    if args.part in (None, "sizes"):
        sizes_part(args)


if __name__ == "__main__":
    main()
