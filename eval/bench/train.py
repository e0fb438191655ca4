"""Training throughput and peak memory of each method against a plain sentence-transformers Trainer.

Every configuration runs in its own process on the same (query, document) pairs, batch size and
number of steps. "plain" is SentenceTransformerTrainer + MultipleNegativesRankingLoss written
directly (with peft's LoRA added by hand for lora); ours is `retrieval_ft.finetune` with dev
evaluation only at the end. Steps/s is timed from the first to the last optimizer step with the
same callback on both sides (so set-up, checkpoints and dev evaluations are left out); end-to-end
time is printed too. Each method runs in float32 on both sides (our overhead) and in our default
precision ("auto": bf16 mixed precision on CPUs with native bf16) against plain float32 (what
users get) and plain bf16. Query-only has no plain twin: it is compared with plain full training,
which it is meant to beat. Goal: ours / plain >= 0.95x in steps/s.

    .venv/bin/python eval/bench/train.py [--data out/demo/data] [--steps 12] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, save


class StepClock:
    """Trainer callback: wall time at the end of each step, so steps/s excludes set-up, checkpoint
    writes and dev evaluations (reported separately as end-to-end time)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __getattr__(self, name):  # other callback events are no-ops
        return lambda *args, **kwargs: None

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())

    def steps_per_s(self) -> float:
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def child(spec: dict) -> dict:
    """Run one configuration and report steps/s, end-to-end seconds and peak RSS (MB)."""
    import random

    import numpy as np
    import torch

    from retrieval_ft.config import EncodeConfig, TrainConfig
    from retrieval_ft.data import load_dataset

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    steps, bs = spec["steps"], spec["batch_size"]
    if spec["impl"] == "ours":
        from retrieval_ft.train import finetune

        config = TrainConfig(method=spec["method"], max_steps=steps, batch_size=bs, evals_per_epoch=1, dev_corpus_size=200,
                             warmup_ratio=0.0, precision=spec["precision"])
        clock = StepClock()
        res = finetune(spec["model"], spec["data"], config, Path(tempfile.mkdtemp()) / "out",
                       encode=EncodeConfig(progress=False, max_seq_length=spec["max_seq_length"]), callbacks=[clock])
        return {"steps_per_s": clock.steps_per_s(), "seconds": res.train_seconds, "peak_mb": res.peak_memory_mb}

    import datasets
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from retrieval_ft.models import resolve_model

    ds = load_dataset(spec["data"])
    from retrieval_ft.train import training_data

    pairs = training_data(ds, TrainConfig()).pairs
    train = datasets.Dataset.from_dict({"anchor": [ds.queries[q] for q, _ in pairs],
                                        "positive": [ds.corpus[d].full_text for _, d in pairs]})
    model = SentenceTransformer(resolve_model(spec["model"]).location, device="cpu")
    model.max_seq_length = spec["max_seq_length"]
    if spec["method"] == "lora":
        from peft import LoraConfig

        from retrieval_ft.models import _linear_module_names

        model.add_adapter(LoraConfig(r=16, lora_alpha=32, lora_dropout=0.1,
                                     target_modules=_linear_module_names(model.transformers_model)))
    args = SentenceTransformerTrainingArguments(
        output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=bs, learning_rate=2e-5,
        warmup_steps=0.0, seed=42, data_seed=42, batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=True, logging_steps=1000, bf16=spec["precision"] == "bf16")
    clock = StepClock()
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                         loss=MultipleNegativesRankingLoss(model), callbacks=[clock])
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"steps_per_s": clock.steps_per_s(), "seconds": seconds, "peak_mb": peak}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print("RESULT " + json.dumps(child(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--data", default=str(ROOT / "out" / "demo" / "data"))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--json", help="write the figures here (default eval/results/perf/train.json)")
    args = parser.parse_args()
    if not Path(args.data).exists():
        subprocess.run([sys.executable, "-m", "retrieval_ft.cli", "demo-data", "--out", args.data], check=True, cwd=ROOT)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from retrieval_ft.precision import resolve_precision

    auto = resolve_precision("auto", "cpu").value
    # (impl, method, precision): plain fp32 is the plain stack's default; "ours fp32" measures our
    # overhead at the same numerics; "ours auto" is what users get; plain bf16 is the hand-written twin
    runs = [("plain", "full", "fp32"), ("ours", "full", "fp32"), ("plain", "full", "bf16"), ("ours", "full", auto),
            ("plain", "lora", "fp32"), ("ours", "lora", "fp32"), ("plain", "lora", "bf16"), ("ours", "lora", auto),
            ("ours", "hybrid", auto), ("ours", "query-only", auto)]
    results = {}
    for impl, method, precision in dict.fromkeys(runs):
        spec = {"impl": impl, "method": method, "model": args.model, "data": args.data, "steps": args.steps,
                "batch_size": args.batch_size, "max_seq_length": args.max_seq_length, "precision": precision}
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, cwd=ROOT)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{impl} {method} {precision} failed:\n{proc.stderr[-3000:]}")
        r = results[(impl, method, precision)] = json.loads(line[7:])
        print(f"{impl:<6} {method:<11} {precision:<5} {r['steps_per_s']:6.3f} steps/s  end to end {r['seconds']:6.1f} s  "
              f"peak {r['peak_mb']:7.0f} MB", flush=True)
    print(f"\n{args.steps} steps, batch {args.batch_size}, max_seq_length {args.max_seq_length}, data {args.data}; "
          f"auto precision here: {auto}")
    ratios = []
    for method, ours_p, plain_m, plain_p in [
            ("full", "fp32", "full", "fp32"), ("full", auto, "full", "fp32"), ("full", auto, "full", auto),
            ("lora", "fp32", "lora", "fp32"), ("lora", auto, "lora", "fp32"), ("lora", auto, "lora", auto),
            ("hybrid", auto, "lora", "fp32"), ("query-only", auto, "full", "fp32")]:
        ours, plain = results[("ours", method, ours_p)], results[("plain", plain_m, plain_p)]
        ratio = {"method": method, "ours": ours_p, "plain": f"{plain_m} {plain_p}",
                 "steps_ratio": ours["steps_per_s"] / plain["steps_per_s"], "memory_ratio": ours["peak_mb"] / plain["peak_mb"]}
        ratios.append(ratio)
        print(f"ours {method:<10} {ours_p:<5} vs plain {plain_m:<4} {plain_p:<5}: steps/s {ratio['steps_ratio']:5.2f}x "
              f"(goal >= 0.95), peak memory {ratio['memory_ratio']:5.2f}x")
    save("train", {"steps": args.steps, "batch_size": args.batch_size, "max_seq_length": args.max_seq_length,
                   "data": args.data, "auto_precision": auto, "ratios": ratios,
                   "runs": [{"impl": i, "method": m, "precision": p, **r} for (i, m, p), r in results.items()]}, args.json)


if __name__ == "__main__":
    main()
