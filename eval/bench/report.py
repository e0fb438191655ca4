"""Compose eval/results/performance.md from the JSON each speed benchmark wrote into
eval/results/perf/ (encode, train, index, metrics, startup, pages, serve); `--run` runs them first, one at a
time (the machine has two cores: benchmarks side by side would measure each other).

    .venv/bin/python eval/bench/report.py [--run]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _common import RESULTS, ROOT

BENCHES = ["encode", "train", "index", "metrics", "startup", "pages", "serve"]
OUT = ROOT / "eval" / "results" / "performance.md"


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
             "| impl | method | precision | steps/s | end to end s | peak RSS MB |", "|---|---|---|---:|---:|---:|"]
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


ORDER = {"encode": ["plain fp32", "plain + bf16 autocast"], "startup": [
    "python (interpreter alone)", "import sentence_transformers (plain stack)", "retrieval-ft --help"]}


SECTIONS = {"encode": encode_section, "train": train_section, "index": index_section, "metrics": metrics_section,
            "startup": startup_section, "pages": pages_section, "serve": serve_section}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run every benchmark first")
    args = parser.parse_args()
    if args.run:
        for name in BENCHES:
            subprocess.run([sys.executable, str(Path(__file__).with_name(f"{name}.py"))], check=True, cwd=ROOT)
    records = {name: _load(name) for name in BENCHES}
    present = [r for r in records.values() if r]
    if not present:
        sys.exit(f"no results in {RESULTS}; run with --run")
    lines = ["# Performance against the plain stack", "",
             "Each figure is measured side by side with its plain-stack twin in the same run (the machine is "
             "noisy): plain sentence-transformers `encode`, the plain `SentenceTransformerTrainer`, a bare "
             "FAISS index, ranx called directly, the plain import. Written by `eval/bench/report.py` from "
             "`eval/results/perf/*.json`.", "", f"Machine: {_machine(present[0])}.", "",
             "Precision matters most on this machine: its CPU computes bf16 natively (bf16 matmul about 4x the "
             "float32 one, measured below), so `auto` encodes and trains in bf16. On CPUs without native bf16 "
             "(AVX2 only) bf16 autocast was reported about 5x slower than float32, and `auto` stays in float32 "
             "there; that case is not measured here.", ""]
    lines += summary(records)
    for name in BENCHES:
        if records[name]:
            lines += SECTIONS[name](records[name])
            lines.insert(len(lines) - 1, f"Measured {records[name]['when']}.")
        else:
            lines += [f"### {name}", "", "Not run yet.", ""]
    lines += quality_section()
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
