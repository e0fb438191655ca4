"""Encode throughput of retrieval-ft's Encoder against plain `SentenceTransformer.encode`, and the
share of a measured matmul ceiling each reaches.

The same texts, model and batch size, interleaved and repeated in one process (the machine is
noisy). Four ways: plain encode (float32, what the plain stack does by default), plain encode
inside `torch.autocast(bfloat16)` (what a user could hand-write), our Encoder forced to fp32 (our
overhead over the plain stack) and our Encoder with its default precision ("auto": bf16 where
the CPU has it natively). Prints docs/s, tokens/s, achieved GFLOP/s as a share of the matmul
ceiling of the same dtype, and the ratios against plain float32.

    .venv/bin/python eval/bench/encode.py [--model all-MiniLM-L6-v2] [--n 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common
import numpy as np


def encoder_flops(model, token_counts: list[int]) -> float:
    """FLOPs of one forward pass over sequences of these lengths (BERT-style: linear layers plus
    attention scores and mixing), from the transformers config."""
    cfg = model.transformers_model.config
    d, inner, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    linear = 2 * (4 * d * d + 2 * d * inner)  # per token per layer
    return float(sum(layers * (n * linear + 4 * n * n * d) for n in token_counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32, help="the plain stack's batch (its default: 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the figures here (default eval/results/perf/encode.json)")
    args = parser.parse_args()

    import torch

    from retrieval_ft.config import EncodeConfig
    from retrieval_ft.encode import Encoder, default_batch_size

    texts = _common.scifact_texts(args.n)
    # ours with its defaults (precision and batch size), and in float32 at the plain batch size and at ours
    ours_auto = Encoder(args.model, EncodeConfig(progress=False, device="cpu", cache=False))
    ours_fp32 = Encoder(ours_auto.model, EncodeConfig(batch_size=args.batch_size, progress=False, cache=False,
                                                      precision="fp32"))
    ours_fp32_default = Encoder(ours_auto.model, EncodeConfig(progress=False, cache=False, precision="fp32"))
    default_bs = default_batch_size(ours_auto.model, "document")
    model = ours_auto.model
    tokens = [len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]]
    flops = encoder_flops(model, tokens)
    ceiling = {"fp32": _common.matmul_ceiling("float32"), "bf16": _common.matmul_ceiling("bfloat16")}
    print(f"model {args.model}, {len(texts)} SciFact texts, {sum(tokens):,} tokens, plain batch {args.batch_size}, "
          f"max_seq_length {model.max_seq_length}, torch threads {torch.get_num_threads()}, "
          f"our auto precision: {ours_auto.precision.value}")
    print(f"matmul ceiling: fp32 {ceiling['fp32']:.0f} GFLOP/s, bf16 {ceiling['bf16']:.0f} GFLOP/s")

    def plain() -> np.ndarray:
        return model.encode(texts, batch_size=args.batch_size, normalize_embeddings=ours_auto.normalize,
                            convert_to_numpy=True, show_progress_bar=False)

    def plain_bf16() -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return plain()

    ways = {"plain fp32": (plain, "fp32"), "plain + bf16 autocast": (plain_bf16, "bf16"),
            f"ours fp32, batch {args.batch_size}": (lambda: ours_fp32.encode_documents(texts), "fp32"),
            f"ours fp32, default batch {default_bs}": (lambda: ours_fp32_default.encode_documents(texts), "fp32"),
            f"ours defaults ({ours_auto.precision.value}, batch {default_bs})": (lambda: ours_auto.encode_documents(texts),
                                                                            ours_auto.precision.value)}
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in ways}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, (fn, _dtype) in ways.items():
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    rows = {}
    base = statistics.median(times["plain fp32"])
    print(f"\n{'way':<24} {'docs/s':>8} {'tokens/s':>9} {'GFLOP/s':>8} {'of ceiling':>10} {'vs plain fp32':>13} {'min cos':>8}")
    for name, (_fn, dtype) in ways.items():
        t = statistics.median(times[name])
        cos = float(np.min(np.sum(outputs[name] * outputs["plain fp32"], axis=1)))
        rows[name] = {"seconds": t, "docs_per_s": len(texts) / t, "tokens_per_s": sum(tokens) / t,
                      "gflops": flops / t / 1e9, "ceiling_share": flops / t / 1e9 / ceiling[dtype],
                      "ratio_vs_plain_fp32": base / t, "min_cosine_to_plain_fp32": cos, "dtype": dtype}
        r = rows[name]
        print(f"{name:<24} {r['docs_per_s']:8.1f} {r['tokens_per_s']:9.0f} {r['gflops']:8.1f} "
              f"{r['ceiling_share']:10.0%} {r['ratio_vs_plain_fp32']:12.2f}x {cos:8.5f}")
    overhead = statistics.median(times["plain fp32"]) / statistics.median(times[f"ours fp32, batch {args.batch_size}"])
    fp32_default = statistics.median(times["plain fp32"]) / statistics.median(times[f"ours fp32, default batch {default_bs}"])
    print(f"\nours fp32 vs plain fp32, both at batch {args.batch_size} (our overhead): {overhead:.3f}x")
    print(f"ours fp32 at our default batch {default_bs} vs plain fp32 at its default {args.batch_size}: {fp32_default:.3f}x (goal >= 1.0)")

    # adapters: a LoRA model encoded through peft's layers (unmerged) against the same weights merged,
    # which is how evaluate/Retriever load a LoRA or hybrid artifact
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer

    from retrieval_ft.models import _linear_module_names, resolve_model

    lora_model = SentenceTransformer(resolve_model(args.model).location, device="cpu")
    peft_model = get_peft_model(lora_model[0].model, LoraConfig(
        r=16, lora_alpha=32, target_modules=_linear_module_names(lora_model[0].model), init_lora_weights=False))
    lora_model[0].model = peft_model
    adapter_texts = texts[:256]
    unmerged_enc = Encoder(lora_model, EncodeConfig(batch_size=args.batch_size, progress=False, cache=False))
    start = time.perf_counter()
    unmerged_vecs = unmerged_enc.encode_documents(adapter_texts)
    unmerged = len(adapter_texts) / (time.perf_counter() - start)
    lora_model[0].model = peft_model.merge_and_unload()
    merged_enc = Encoder(lora_model, EncodeConfig(batch_size=args.batch_size, progress=False, cache=False))
    start = time.perf_counter()
    merged_vecs = merged_enc.encode_documents(adapter_texts)
    merged = len(adapter_texts) / (time.perf_counter() - start)
    adapter = {"texts": len(adapter_texts), "unmerged_docs_per_s": unmerged, "merged_docs_per_s": merged,
               "speedup": merged / unmerged,
               "min_cosine": float(np.min(np.sum(unmerged_vecs * merged_vecs, axis=1)))}
    print(f"LoRA (r=16, all linear layers): unmerged {unmerged:.1f} docs/s, merged {merged:.1f} docs/s "
          f"({merged / unmerged:.2f}x), min cosine {adapter['min_cosine']:.5f}")

    # the defaults: batch size and torch threads, ours with its default precision, on the first 256 texts
    sweep_texts = texts[:256]
    queries = _common.scifact_queries(1000)  # short texts, for which larger batches pay
    batches, query_batches = {}, {}
    for bs in (8, 16, 32, 64, 128):
        enc = Encoder(model, EncodeConfig(batch_size=bs, progress=False, cache=False))
        start = time.perf_counter()
        enc.encode_documents(sweep_texts)
        batches[bs] = len(sweep_texts) / (time.perf_counter() - start)
        start = time.perf_counter()
        enc.encode_queries(queries)
        query_batches[bs] = len(queries) / (time.perf_counter() - start)
    threads = {}
    default_threads = torch.get_num_threads()
    for n in sorted({1, default_threads}):
        torch.set_num_threads(n)
        start = time.perf_counter()
        ours_auto.encode_documents(sweep_texts)
        threads[n] = len(sweep_texts) / (time.perf_counter() - start)
    torch.set_num_threads(default_threads)
    print("docs/s by batch size: " + ", ".join(f"{bs}: {v:.1f}" for bs, v in batches.items()))
    print(f"queries/s by batch size ({len(queries)} SciFact queries): " + ", ".join(f"{bs}: {v:.0f}" for bs, v in query_batches.items()))
    print("docs/s by torch threads: " + ", ".join(f"{n}: {v:.1f}" for n, v in threads.items()))
    _common.save("encode", {"texts": len(texts), "tokens": sum(tokens), "batch_size": args.batch_size,
                            "repeats": args.repeats, "model": args.model, "ceiling_gflops": ceiling, "ways": rows,
                            "auto_precision": ours_auto.precision.value, "ours_fp32_vs_plain_fp32": overhead,
                            "ours_fp32_default_batch_vs_plain_fp32": fp32_default, "default_batch_size": default_bs,
                            "docs_per_s_by_batch_size": batches, "docs_per_s_by_threads": threads,
                            "queries_per_s_by_batch_size": query_batches, "sweep_queries": len(queries),
                            "sweep_texts": len(sweep_texts), "adapter": adapter},
                 args.json)


if __name__ == "__main__":
    main()
