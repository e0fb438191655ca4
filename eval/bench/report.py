"""Compose eval/results/performance.md from the JSON each speed benchmark wrote into
eval/results/perf/ (encode, train and train_sizes, index, metrics, startup, pages, serve, tune_reeval) and the plot of
training cost by model size; `--run` runs them first, one at a time (the machine has two cores:
benchmarks side by side would measure each other).

    .venv/bin/python eval/bench/report.py [--run]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from _common import RESULTS, ROOT

from retrieval_ft.report._markup import axis, esc

BENCHES = ["encode", "train", "index", "metrics", "startup", "pages", "serve", "tune_reeval"]  # the scripts
RECORDS = ["encode", "train", "train_sizes", "index", "metrics", "startup", "pages", "serve", "tune_reeval"]  # their JSON
OUT = ROOT / "eval" / "results" / "performance.md"
SIZES_SVG = OUT.with_name("performance-train-sizes.svg")


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _by_number(values: dict) -> list:
    """(key, value) pairs in numeric key order (JSON keys are strings)."""
    return sorted(values.items(), key=lambda kv: float(kv[0]))


def _machine(record: dict) -> str:
    m = record["machine"]
    bf16 = "native bf16 (AVX512-BF16/AMX)" if m["native_bf16"] else "no native bf16"
    return (f"{m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), {m['memory_gb']} GB, "
            f"torch CPU capability {m['torch_capability']}, {bf16}, no GPU; Python {m['python']}, torch {m['torch']}, "
            f"faiss {m['faiss']}")


def machines_line(records: dict) -> str:
    """The machine the figures come from; where sections were measured on different machines, each
    machine with its sections."""
    machines: dict[str, list[str]] = {}
    for name in RECORDS:
        if records.get(name):
            machines.setdefault(_machine(records[name]), []).append(name)
    if len(machines) == 1:
        return f"Machine: {next(iter(machines))}."
    return "Machines, each with the sections measured on it: " + "; ".join(
        f"{m} ({', '.join(names)})" for m, names in machines.items()) + "."


def encode_section(r: dict) -> list[str]:
    lines = [f"### Encoding ({r['texts']} SciFact documents, {r['tokens']:,} tokens, plain batch {r['batch_size']}, "
             f"median of {r['repeats']})", "",
             f"Matmul ceiling measured in the same run: fp32 {r['ceiling_gflops']['fp32']:.0f} GFLOP/s, "
             f"bf16 {r['ceiling_gflops']['bf16']:.0f} GFLOP/s.", "",
             "| way | docs/s | tokens/s | GFLOP/s | share of the ceiling (same dtype) | vs plain fp32 | min cosine to plain fp32 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, w in sorted(r["ways"].items(), key=lambda kv: (ORDER["encode"] + [kv[0]]).index(kv[0])):
        lines.append(f"| {name} | {w['docs_per_s']:.1f} | {w['tokens_per_s']:.0f} | {w['gflops']:.1f} | "
                     f"{w['ceiling_share']:.0%} | **{w['ratio_vs_plain_fp32']:.2f}x** | {w['min_cosine_to_plain_fp32']:.5f} |")
    lines += ["", f"In float32 on both sides: ours at the same batch {r['ours_fp32_vs_plain_fp32']:.3f}x (our overhead), "
              f"at our default batch of {r['default_batch_size']} texts **{r['ours_fp32_default_batch_vs_plain_fp32']:.3f}x**. "
              "Default precision here: " + r["auto_precision"] + "."]
    if "adapter" in r:
        a = r["adapter"]
        lines += ["", f"Adapters ({a['texts']} texts): a LoRA model (r=16, every linear layer) encodes "
                  f"{a['unmerged_docs_per_s']:.1f} docs/s through peft's layers and {a['merged_docs_per_s']:.1f} docs/s "
                  f"merged into the weights, as `evaluate` and `Retriever` load LoRA/hybrid artifacts "
                  f"(**{a['speedup']:.2f}x**; min cosine between the two {a['min_cosine']:.5f})."]
    if "docs_per_s_by_batch_size" in r:
        lines += ["", f"Defaults, in the default precision. Documents ({r['sweep_texts']}) a second by batch size: "
                  + ", ".join(f"{bs}: {v:.1f}" for bs, v in _by_number(r["docs_per_s_by_batch_size"]))
                  + (f"; queries ({r['sweep_queries']}) a second by batch size: "
                     + ", ".join(f"{bs}: {v:.0f}" for bs, v in _by_number(r["queries_per_s_by_batch_size"]))
                     if "queries_per_s_by_batch_size" in r else "")
                  + "; documents a second by torch threads: "
                  + ", ".join(f"{n}: {v:.1f}" for n, v in _by_number(r["docs_per_s_by_threads"])) + "."]
    lines += [f"Command: `{r['command']}`", ""]
    return lines


def train_section(r: dict) -> list[str]:
    lines = [f"### Training ({r['steps']} steps, batch {r['batch_size']}, {r['max_seq_length']} tokens, "
             "one process per configuration)", "",
             "| impl | method | precision | steps/s | training s | peak RSS MB |", "|---|---|---|---:|---:|---:|"]
    for run in r["runs"]:
        lines.append(f"| {run['impl']} | {run['method']} | {run['precision']} | {run['steps_per_s']:.3f} | "
                     f"{run['seconds']:.1f} | {run['peak_mb']:.0f} |")
    lines += ["", "| ours | against plain | steps/s ratio (goal >= 0.95) | peak memory ratio |", "|---|---|---:|---:|"]
    for q in r["ratios"]:
        lines.append(f"| {q['method']} {q['ours']} | {q['plain']} | **{q['steps_ratio']:.2f}x** | {q['memory_ratio']:.2f}x |")
    lines += ["", f"Command: `{r['command']}`", ""]
    return lines


def index_section(r: dict) -> list[str]:
    lines = [f"### Index build and search (SciFact embeddings, grown by perturbed copies; {r['queries']} real "
             f"queries: {r['calibration_queries']} calibrate, the rest measure)", "",
             "| vectors | index | build s | QPS (batch) | ms / query (one at a time) | recall@10 vs exact | size MB | params | peak RSS MB |",
             "|---:|---|---:|---:|---:|---:|---:|---|---:|"]
    for row in r["rows"]:
        params = ", ".join(f"{k} {v}" for k, v in row.get("params", {}).items())
        lines.append(f"| {row['n']:,} | {row['kind']} | {row['build_s']:.1f} | {row['qps']:.0f} | {row['latency_ms']:.2f} | "
                     f"{row['recall@10']:.3f} | {row['bytes'] / 2**20:.1f} | {params} | {row['peak_rss_mb']:.0f} |")
    lines += ["", f"Command: `{r['command']}`", ""]
    return lines


def metrics_section(r: dict) -> list[str]:
    return [f"### Metrics ({r['queries']:,} queries x 100 results; {', '.join(r['metrics'])})", "",
            f"ranx.evaluate directly: {r['ranx_seconds']:.2f} s; ours (pinned tie order and no-result rule): "
            f"{r['ours_seconds']:.2f} s; ratio **{r['ratio']:.2f}x**; largest difference of a mean "
            f"{r['max_mean_difference']:.1e}.", "", f"Command: `{r['command']}`", ""]


def startup_section(r: dict) -> list[str]:
    lines = ["### Start-up (each in a fresh process)", "", "| command | seconds |", "|---|---:|"]
    ordered = sorted(r["seconds"].items(), key=lambda kv: (ORDER["startup"] + [kv[0]]).index(kv[0]))
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in ordered]
    lines += ["", f"Goals: `--help` < 0.5 s, gate cold < 5 s. Command: `{r['command']}`", ""]
    return lines


def summary(records: dict) -> list[str]:
    """The issue's goals, each with its figure from the sections below."""
    lines = ["## Summary", ""]
    enc, train, index, startup = (records.get(n) for n in ("encode", "train", "index", "startup"))
    if enc:
        auto = next(w for name, w in enc["ways"].items() if name.startswith("ours defaults"))
        lines.append(f"- Encoding, ours with its defaults against plain `encode` with its defaults: "
                     f"**{auto['ratio_vs_plain_fp32']:.2f}x** docs/s (goal >= 1.0; {enc['auto_precision']} here, as "
                     f"the CPU has native bf16). In float32 on both sides: "
                     f"**{enc['ours_fp32_default_batch_vs_plain_fp32']:.2f}x** with our default batch of "
                     f"{enc['default_batch_size']} texts, {enc['ours_fp32_vs_plain_fp32']:.2f}x at the same batch (no overhead).")
    if train:
        worst = min(train["ratios"], key=lambda q: q["steps_ratio"])
        lines.append(f"- Training steps/s against the plain Trainer: every method and precision >= "
                     f"**{worst['steps_ratio']:.2f}x** (goal >= 0.95; lowest: {worst['method']} {worst['ours']} "
                     f"against plain {worst['plain']}). Peak memory is "
                     f"{min(q['memory_ratio'] for q in train['ratios']):.2f}-{max(q['memory_ratio'] for q in train['ratios']):.2f}x "
                     "the plain run's: ours also holds the dev evaluation set and its encoded documents.")
    if index:
        big = [r for r in index["rows"] if r["n"] == max(x["n"] for x in index["rows"])]
        ivf = next((r for r in big if r["kind"] == "ours ivf"), None)
        if ivf:
            lines.append(f"- {ivf['n']:,} vectors: IVF built in {ivf['build_s']:.0f} s, {ivf['latency_ms']:.2f} ms a query, "
                         f"recall@10 **{ivf['recall@10']:.3f}** against exact search on held-out queries, peak RSS of the "
                         f"whole benchmark process {max(r['peak_rss_mb'] for r in index['rows']) / 1024:.1f} GB of 24 GB.")
    if startup:
        sec = startup["seconds"]
        lines.append(f"- `retrieval-ft --help`: {sec['retrieval-ft --help']:.2f} s (goal < 0.5 s); `gate` cold "
                     f"{sec['retrieval-ft gate, cold (empty numba cache)']:.2f} s; importing sentence-transformers alone: "
                     f"{sec['import sentence_transformers (plain stack)']:.2f} s.")
    if records.get("serve"):
        lines += serve_goals(records["serve"])
    if records.get("train_sizes"):
        lines += train_sizes_goals(records["train_sizes"])
    if records.get("tune_reeval"):
        lines += tune_reeval_goals(records["tune_reeval"])
    lines += ["- Beyond one machine: `tests/test_distributed.py` trains with 2 CPU processes (gloo) under torchrun "
              "in `make test`; `retrieval-ft encode --shard I/N` and `retrieval-ft index --shards` are tested in "
              "`tests/test_shards.py`.", ""]
    return lines


def pages_section(r: dict) -> list[str]:
    small, large, eager = r["rows"]
    lines = [f"### Page images ({r['model']}, batch {r['batch_size']}; each measurement in its own process)", "",
             "| how | pages | peak RSS MB | growth over the loaded model MB | pages/s |", "|---|---:|---:|---:|---:|"]
    for row in r["rows"]:
        how = "ours (pages decoded a batch at a time)" if row["mode"] == "lazy" else "decode every page first"
        lines.append(f"| {how} | {row['pages']} | {row['peak_rss_mb']:.0f} | {row['peak_rss_mb'] - row['rss_before_mb']:.0f} | "
                     f"{row['pages'] / row['seconds']:.0f} |")
    lines += ["", f"Peak RSS at {large['pages']} pages: ours / decode-all **{large['peak_rss_mb'] / eager['peak_rss_mb']:.2f}x**; "
              f"ours at {large['pages']} / at {small['pages']} pages {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x.", "",
              f"By batch size ({small['pages']} pages): " + ", ".join(
                  f"{bs}: {row['pages'] / row['seconds']:.0f} pages/s (+{row['peak_rss_mb'] - row['rss_before_mb']:.0f} MB)"
                  for bs, row in _by_number(r["by_batch_size"])) + ".", "", f"Command: `{r['command']}`", ""]
    return lines


def serve_goals(r: dict) -> list[str]:
    """One line per goal of the serving issue, met or not, with its figure."""
    m = r["goals"]["memory"]
    lines = [f"- {m['adapters']} adapters on one base against the base alone (goal < {m['goal']}x): process RSS "
             f"**{m['rss_ratio']:.2f}x** ({'met' if m['met_rss'] else 'not met'}); model memory (RSS less the "
             f"process before loading) **{m['model_ratio']:.2f}x** ({'met' if m['met_model'] else 'not met'}); each "
             f"adapter adds {m['per_adapter_mb']:.1f} MB over the retriever with none."]
    if "mixed" in r["goals"]:
        x = r["goals"]["mixed"]
        label = r["throughput"]["encode"][x["worst"]]["label"]
        lines.append(f"- Mixed-adapter batches against the merged single model (goal >= {x['goal']}x queries/s): "
                     f"**{x['ratio']:.2f}x** at the slowest mix ({label}): {'met' if x['met'] else 'not met'}.")
    return lines


def serve_section(r: dict) -> list[str]:
    lora = r["lora"]
    lines = [f"### Serving adapters ({r['model']}: {r['adapters'][-1]} query-lora adapters with random weights, "
             f"r {lora['r']} on {lora['targets']} layers, {r['adapter_mb']:.1f} MB each; base index of "
             f"{r['index_docs']} SciFact documents, a saved index folder)", "",
             *(["**Quick mode (tiny sizes, a smoke run): not figures to read.**", ""] if r.get("quick") else []),
             f"Memory, each configuration in a fresh process, after loading and one batch of {r['batch_size']} "
             "queries (through every adapter loaded); RSS is VmRSS read after malloc_trim; model memory = RSS less the process's RSS just before the "
             "first model loaded (torch, peft, faiss imported). A separately loaded query-lora model "
             "(`load_model(artifact)`) holds two towers: the adapter merged into a copy of the base for queries, "
             "the base for documents.", "",
             "| configuration | RSS MB | model memory MB | peak MB | RSS vs base | model memory vs base |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in r["memory"]:
        lines.append(f"| {row['label']} | {row['rss_mb']:.0f} | {row['model_mb']:.0f} | {row['peak_mb']:.0f} | "
                     f"{row['rss_ratio']:.2f}x | **{row['model_ratio']:.2f}x** |")
    enc, search = r["throughput"]["encode"], r["throughput"]["search"]
    lines += ["", f"Queries a second ({r['queries']} SciFact queries, batch {r['batch_size']}, {r['precision']}, median "
              f"of {r['repeats']}); search = encoding + FAISS top-10 on the base index. Baseline: the adapter merged "
              "into a separately loaded model.", "",
              "| way | encode q/s | vs merged | search q/s | vs merged |", "|---|---:|---:|---:|---:|"]
    def order(key: str) -> tuple[int, int]:  # JSON keys come back sorted: merged, single, mixed-N by N, base
        return ({"merged": 0, "single": 1, "base": 3}.get(key, 2), int(key.split("-")[1]) if "-" in key else 0)

    for key, row in sorted(enc.items(), key=lambda kv: order(kv[0])):
        s = search.get(key)
        found = f"{s['queries_per_s']:.0f} | {s['ratio_vs_merged']:.2f}x" if s else "- | -"
        lines.append(f"| {row['label']} | {row['queries_per_s']:.0f} | **{row['ratio_vs_merged']:.2f}x** | {found} |")
    ops = r["operations"]
    lines += ["", f"Adapter operations ({ops['loaded']} loaded, median of {ops['operations']}): add one "
              f"{ops['add_ms']:.0f} ms, remove one {ops['remove_ms']:.1f} ms. One query after switching adapters "
              f"{ops['switch_ms']:.1f} ms against {ops['same_ms']:.1f} ms after the same one "
              f"({ops['switch_ratio']:.2f}x, median of {ops['repeats']}).", "", *serve_goals(r), "",
              f"Command: `{r['command']}`", ""]
    return lines


def quality_section() -> list[str]:
    """Training precision against quality: eval/sweep.py runs recorded in precision-quality.jsonl."""
    path = RESULTS / "precision-quality.jsonl"
    if not path.is_file():
        return []
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = ["### Precision and quality (SciFact, seed 42, training at 128 tokens; test encoded in the default precision)",
             "", "| run | method | training precision | dev NDCG@10 | test NDCG@10 | train s (with dev evaluations) | peak MB |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['name']} | {r['method']} | {r['precision']} | {r['dev']:.4f} | {r['test']:.4f} | "
                     f"{r['train_seconds']} | {r['peak_memory_mb']} |")
    lines += ["", "Command: `python eval/sweep.py '{\"full-fp32\": {\"method\": \"full\", \"max_seq_length\": 128, "
              "\"dev_corpus_size\": 1000, \"precision\": \"fp32\"}, ...}'` (the same with bf16, and lora with bf16). "
              "The float32 benchmark (`eval/results/scifact.json`, seed 42) has full 0.6660 and lora 0.6691.", ""]
    return lines


def _x(value: float | None, fmt: str = ".2f") -> str:
    """A ratio as `0.83x`, or a dash where its runs are missing."""
    return "-" if value is None else f"{value:{fmt}}x"


def _met(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "not met")


def train_sizes_goals(r: dict) -> list[str]:
    """The size sweep's goals, one line each, met or not, with their figures."""
    g = r["goals"]
    lines = []
    if g["memory"]:
        lines.append("- LoRA peak memory against full's, by model size: " + "; ".join(
            f"{name} **{m['ratio']:.2f}x** (goal <= {m['goal']}: {_met(m['met'])})" for name, m in g["memory"].items())
            + "; all three: " + ", ".join(f"{q['size']} {_x(q['lora_full_memory'])}" for q in r["ratios"])
            + f" (falling with size: {_met(g['memory_falls'])}).")
    if g["steps"]:
        lines.append("- LoRA steps/s against full's: " + "; ".join(
            f"{name} **{m['ratio']:.2f}x** (goal >= 1: {_met(m['met'])})" for name, m in g["steps"].items()) + ".")
    if "end_to_end" in g:
        e = g["end_to_end"]
        lines.append(f"- Training end to end, ours against the plain Trainer for the same steps (dev evaluations left "
                     f"out): at most **{e['worst']:.2f}x** ({e['size']} {e['method']}"
                     f"{' with checkpointing' if e['checkpointing'] else ''}; goal <= {e['goal']}: {_met(e['met'])}).")
    return lines


def train_sizes_section(r: dict) -> list[str]:
    steps = ", ".join(f"{s['name']} {s['steps']}" for s in r["sizes"])
    repeats = ", ".join(f"{s['name']} {s.get('repeats', 1)}" for s in r["sizes"])
    gpu = r.get("gpu", False)
    lines = [f"### Training cost by model size (random weights; batch {r['batch_size']} x {r['max_seq_length']} tokens, "
             f"{r['precision']}; steps: {steps}; one process per configuration, run {repeats} times, the median kept)", "",
             *(["**Quick mode (the MiniLM-L6 shape only, 2 steps, tiny batches): a smoke run, not figures to read.**",
                ""] if r.get("quick") else []),
             "Encoders with the shapes of MiniLM-L6, BERT-base and BERT-large and the MiniLM tokenizer. End to end: "
             "the whole training call (data, model, training, saving), less ours' dev evaluations and the metric "
             "library (ranx) they score with, loaded once before training (their seconds beside). Both sides batch "
             "alike (no duplicate texts in a batch; ours' default per-query batching is a choice about the data, not "
             "overhead), and a size's configurations repeat in rounds. Ours evaluates once, at the last step, and writes no "
             "checkpoint there (the artifact follows). Peak: VmHWM from just before training to the end; added: peak less the process's resident "
             "memory before the work (libraries imported)." + (" GPU peak: torch.cuda.max_memory_allocated." if gpu else ""),
             "", "| size | method | checkpointing | impl | steps/s | end to end s | of which checkpoint writes s | "
             "dev evaluations and metric library s | peak MB | added MB |" + (" GPU peak MB |" if gpu else ""),
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if gpu else "")]
    for run in r["runs"]:
        lines.append(f"| {run['size']} | {run['method']} | {'on' if run['checkpointing'] else 'off'} | {run['impl']} | "
                     f"{run['steps_per_s']:.3f} | {run['total_seconds'] - run['eval_seconds']:.1f} | "
                     f"{run['checkpoint_seconds']:.1f} | {run['eval_seconds']:.1f} | {run['peak_mb']:.0f} | {run['added_mb']:.0f} |"
                     + (f" {run.get('gpu_peak_mb', 0):.0f} |" if gpu else ""))
    params = {s["name"]: s["params"] for s in r["sizes"]}
    lines += ["", "Ours, without checkpointing, against full tuning at the same size:", "",
              "| size | parameters | LoRA/full peak memory | LoRA/full added memory | LoRA/full steps/s | "
              "hybrid/full peak memory | hybrid/full steps/s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for q in r["ratios"]:
        lines.append(f"| {q['size']} | {params[q['size']] / 1e6:.0f}M | **{_x(q['lora_full_memory'])}** | "
                     f"{_x(q['lora_full_added_memory'])} | **{_x(q['lora_full_steps'])}** | {_x(q['hybrid_full_memory'])} | "
                     f"{_x(q['hybrid_full_steps'])} |")
    lines += ["", "Ours against the plain Trainer (goal: end to end <= 1.15x):", "",
              "| size | method | checkpointing | end to end | steps/s | peak memory |", "|---|---|---|---:|---:|---:|"]
    for q in r["ratios"]:
        for p in q["ours_plain"]:
            lines.append(f"| {q['size']} | {p['method']} | {'on' if p['checkpointing'] else 'off'} | "
                         f"**{_x(p['end_to_end'])}** | {_x(p['steps'])} | {_x(p['memory'])} |")
    ckpt = [f"{q['size']} {m} memory {_x(c['memory'])}, steps/s {_x(c['steps'])}"
            for q in r["ratios"] for m, c in q["checkpointing"].items()]
    if ckpt:
        lines += ["", "Gradient checkpointing against none (ours): " + "; ".join(ckpt) + "."]
    lines += ["", *train_sizes_goals(r), "", f"![LoRA against full tuning by model size]({SIZES_SVG.name})", "",
              f"Command: `{r['command']}`", ""]
    return lines


def train_sizes_svg(r: dict, width: int = 560, height: int = 320) -> str:
    """LoRA/full peak memory and steps/s (ours, without checkpointing) against the parameter count
    (log scale), with each goal: memory at most 0.9x at MiniLM-L6 and 0.6x at BERT-large, steps/s at
    least 1x at BERT-base and above."""
    params = {s["name"]: s["params"] for s in r["sizes"]}
    series = {"LoRA/full peak memory": ("lora_full_memory", "#1565c0"), "LoRA/full steps/s": ("lora_full_steps", "#ef6c00")}
    points = {label: [(math.log10(params[q["size"]]), q[key], q["size"]) for q in r["ratios"] if q[key] is not None]
              for label, (key, _) in series.items()}
    xs = [math.log10(p) for p in params.values()]
    ys = [y for pts in points.values() for _, y, _ in pts] + [0.0, 1.0]
    pad = 56
    sx = axis(min(xs) - 0.15, max(xs) + 0.15, pad, width - pad / 2)
    sy = axis(0.0, max(ys) * 1.1, height - pad, pad / 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             'font-size="11" role="img" aria-label="LoRA against full tuning by model size">',
             f'<line x1="{pad}" y1="{sy(1.0):.1f}" x2="{width - pad / 2}" y2="{sy(1.0):.1f}" stroke="#999" stroke-dasharray="4"/>',
             f'<text x="{pad + 4}" y="{sy(1.0) - 4:.1f}" fill="#666">1x (steps/s goal: at or above, from BERT-base)</text>',
             f'<text x="{width / 2:.0f}" y="{height - 8}" text-anchor="middle">parameters (log scale)</text>',
             f'<text x="14" y="{height / 2:.0f}" transform="rotate(-90 14 {height / 2:.0f})" text-anchor="middle">'
             "LoRA / full (ours)</text>"]
    for name, goal in (("MiniLM-L6", 0.9), ("BERT-large", 0.6)):
        if name in params:
            x = sx(math.log10(params[name]))
            parts.append(f'<line class="goal" x1="{x - 14:.1f}" y1="{sy(goal):.1f}" x2="{x + 14:.1f}" y2="{sy(goal):.1f}" '
                         f'stroke="#1565c0" stroke-width="2" stroke-dasharray="3"/><text x="{x - 16:.1f}" y="{sy(goal) + 4:.1f}" '
                         f'text-anchor="end" fill="#1565c0">goal {goal}</text>')
    top = max(ys) * 1.1
    parts += [f'<line x1="{pad}" y1="{sy(0):.1f}" x2="{width - pad / 2}" y2="{sy(0):.1f}" stroke="#999"/>',
              *(f'<text x="{pad - 6}" y="{sy(v) + 4:.1f}" text-anchor="end" fill="#666">{v:g}</text>'
                for v in (i * 0.5 for i in range(int(top / 0.5) + 1)))]
    for name, p in params.items():
        parts.append(f'<text x="{sx(math.log10(p)):.1f}" y="{height - pad + 16}" text-anchor="middle" fill="#666">'
                     f'{esc(name)} ({p / 1e6:.0f}M)</text>')
    for i, (label, (_, color)) in enumerate(series.items()):
        pts = points[label]
        if pts:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in pts)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"/>')
            parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{color}"/><text x="{sx(x) + 6:.1f}" '
                      f'y="{sy(y) - 6:.1f}" fill="{color}">{y:.2f}x</text>' for x, y, _ in pts]
        parts.append(f'<rect x="{pad + 200 * i}" y="8" width="10" height="3" fill="{color}"/><text x="{pad + 14 + 200 * i}" '
                     f'y="13">{esc(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def tune_reeval_goals(r: dict) -> list[str]:
    g = r["goals"]
    if not g:
        return []
    return ["- From \"tune\" to \"new metrics\" on " + Path(r["data"]).name + ", whole processes, against plain full "
            "tuning and re-encoding (goal >= 10x): " + "; ".join(
                f"{m} **{x['speedup']:.1f}x** faster ({_met(x['met'])}; NDCG@10 {r['ours'][m]['ndcg@10']:.4f} against "
                f"plain's {r['plain']['ndcg@10']:.4f})" for m, x in g.items()) + "."]


def tune_reeval_section(r: dict) -> list[str]:
    limit = (f"every path {r['max_steps']} steps" if r.get("max_steps") else
             f"every path {r['epochs']:g} epochs" if r.get("epochs") else "each path's own default length")
    w, p = r["warmup"], r["plain"]
    lines = [f"### From \"tune\" to \"new metrics\" ({Path(r['data']).name}, {r['model']}; whole processes; {limit})", "",
             "Ours: `retrieval-ft train --method M` then `retrieval-ft evaluate` on the tuned model, each a fresh "
             "process; ours' training time includes its dev evaluations (model selection). The base model's document embeddings are what a user already has: a base `evaluate` "
             f"warmed the cache first ({w['seconds']:.1f} s, NDCG@10 {w['ndcg@10']:.4f}; not counted). Plain: one "
             f"script, SentenceTransformerTrainer + MNRL with its defaults ({p['epochs']:g} epochs, batch {p['batch_size']}, "
             f"learning rate {p['learning_rate']:g}, {p['steps']} steps on {p['pairs']} pairs), then the corpus "
             "encoded with the tuned model, FAISS exact search and ranx NDCG@10.", "",
             "| path | train s | evaluate s | total s | NDCG@10 on test | corpus | faster than plain |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for m, o in sorted(r["ours"].items(), key=lambda kv: (ORDER["tune_reeval"] + [kv[0]]).index(kv[0])):
        lines.append(f"| ours {m} ({o['steps']} steps) | {o['train_seconds']:.1f} | {o['evaluate_seconds']:.1f} | "
                     f"{o['seconds']:.1f} | {o['ndcg@10']:.4f} | {'base, cached' if o['corpus_from_cache'] else 're-encoded'} | "
                     f"**{r['speedup'][m]:.1f}x** |")
    ph = p["phases"]
    lines.append(f"| plain full ({p['steps']} steps) | {ph['train']:.1f} | {ph['encode_corpus'] + ph['search_and_score']:.1f} | "
                 f"{p['seconds']:.1f} | {p['ndcg@10']:.4f} | re-encoded | 1.0x |")
    lines += ["", "Plain's total is its process from start to exit (imports, training and saving, encoding the corpus "
              f"{ph['encode_corpus']:.1f} s, searching and scoring {ph['search_and_score']:.1f} s).",
              "", *tune_reeval_goals(r), "", f"Command: `{r['command']}`", ""]
    return lines


ORDER = {"encode": ["plain fp32", "plain + bf16 autocast"], "tune_reeval": ["full", "lora", "hybrid", "query-only", "query-lora"],
         "startup": [
    "python (interpreter alone)", "import sentence_transformers (plain stack)", "retrieval-ft --help"]}


SECTIONS = {"encode": encode_section, "train": train_section, "index": index_section, "metrics": metrics_section,
            "startup": startup_section, "pages": pages_section, "serve": serve_section,
            "train_sizes": train_sizes_section, "tune_reeval": tune_reeval_section}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run every benchmark first")
    args = parser.parse_args()
    if args.run:
        for name in BENCHES:
            subprocess.run([sys.executable, str(Path(__file__).with_name(f"{name}.py"))], check=True, cwd=ROOT)
    records = {name: _load(name) for name in RECORDS}
    if not any(records.values()):
        sys.exit(f"no results in {RESULTS}; run with --run")
    lines = ["# Performance against the plain stack", "",
             "Each figure is measured side by side with its plain-stack twin in the same run (the machine is "
             "noisy): plain sentence-transformers `encode`, the plain `SentenceTransformerTrainer`, a bare "
             "FAISS index, ranx called directly, the plain import. Written by `eval/bench/report.py` from "
             "`eval/results/perf/*.json`.", "", machines_line(records), "",
             "Precision matters most: on a CPU that computes bf16 natively (bf16 matmul about 4x the float32 one "
             "where the encoding section's machine has it) `auto` encodes and trains in bf16; on CPUs without "
             "native bf16 (AVX2 only) bf16 autocast is several times slower than float32, and `auto` stays in "
             "float32, as in the sections measured on such a machine.", ""]
    lines += summary(records)
    for name in RECORDS:
        if records[name]:
            lines += SECTIONS[name](records[name])
            lines.insert(len(lines) - 1, f"Measured {records[name]['when']}.")
        else:
            lines += [f"### {name}", "", "Not run yet.", ""]
    lines += quality_section()
    if records["train_sizes"]:
        SIZES_SVG.write_text(train_sizes_svg(records["train_sizes"]) + "\n", encoding="utf-8")
        print(f"wrote {SIZES_SVG}")
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
