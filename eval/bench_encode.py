"""Encode throughput of retrieval-ft's Encoder against plain `SentenceTransformer.encode`.

Both encode the same texts with the same model, batch size and normalisation, interleaved and
repeated in one process (the machine is noisy), and the script prints docs/s for each and the
ratio plain_time / our_time (>= 1.0 means we are at least as fast).

    .venv/bin/python eval/bench_encode.py [--model all-MiniLM-L6-v2] [--n 512] [--repeats 3]

Texts: the first N documents of ../shared/data/scifact when present, else the bundled demo catalog.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_texts(n: int) -> tuple[list[str], str]:
    scifact = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
    if scifact.is_file():
        texts = []
        with open(scifact, encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                texts.append(f"{doc.get('title', '')} {doc['text']}".strip())
                if len(texts) == n:
                    break
        return texts, str(scifact)
    from retrieval_ft.data.demo import generate_demo

    _, dataset = generate_demo(n_products=n)
    return [d.full_text for d in dataset.corpus.values()], "the demo catalog"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from retrieval_ft.config import EncodeConfig
    from retrieval_ft.encode import Encoder

    texts, source = load_texts(args.n)
    encoder = Encoder(args.model, EncodeConfig(batch_size=args.batch_size, progress=False, device="cpu"))
    model = encoder.model
    print(f"model {args.model}, {len(texts)} texts from {source}, batch {args.batch_size}, "
          f"max_seq_length {model.max_seq_length}, torch threads {__import__('torch').get_num_threads()}")

    def plain() -> np.ndarray:
        return model.encode(texts, batch_size=args.batch_size, normalize_embeddings=encoder.normalize,
                            convert_to_numpy=True, show_progress_bar=False)

    def ours() -> np.ndarray:
        return encoder.encode_documents(texts)

    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    times: dict[str, list[float]] = {"plain": [], "ours": []}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in (("plain", plain), ("ours", ours)):
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    plain_t, ours_t = statistics.median(times["plain"]), statistics.median(times["ours"])
    diff = float(np.max(np.abs(outputs["plain"] - outputs["ours"])))
    print(f"plain SentenceTransformer.encode: {len(texts) / plain_t:8.1f} docs/s  (median of {args.repeats}: {plain_t:.2f} s)")
    print(f"retrieval-ft Encoder:             {len(texts) / ours_t:8.1f} docs/s  (median of {args.repeats}: {ours_t:.2f} s)")
    print(f"ratio (plain time / our time):    {plain_t / ours_t:8.3f}   (goal >= 1.0)")
    print(f"max abs difference of embeddings: {diff:.2e}")


if __name__ == "__main__":
    main()
