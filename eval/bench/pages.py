"""Peak memory while encoding page corpora: does it stay bounded as the corpus grows?

Each measurement runs in its own process (peak RSS is per process): the tiny CLIP encodes a
corpus of generated pages through `Encoder.encode_corpus` (pages decoded one batch at a time),
at a small and a large corpus size. The baseline, in the same run, is the naive way: decode every
page of the large corpus into memory first, then encode. Prints peak RSS, its growth over the
process after model loading, pages/s, and the ratios.

    .venv/bin/python eval/bench/pages.py [--small 500] [--large 5000] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import save

COMBINATIONS = 150  # of the page generator


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(mode: str, data: str, model: str, n: int, batch_size: int) -> None:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from retrieval_ft.config import EncodeConfig
    from retrieval_ft.data import load_dataset
    from retrieval_ft.encode import Encoder, document_inputs

    dataset = load_dataset(data)
    docs = list(dataset.corpus.values())[:n]
    encoder = Encoder(model, EncodeConfig(batch_size=batch_size, cache=False, progress=False))
    encoder.encode_queries(["warm up"])
    before = _rss_mb()
    start = time.perf_counter()
    if mode == "lazy":
        vectors = encoder.encode_corpus(docs, root=dataset.root).vectors
    else:  # eager: every page decoded first, then encoded
        from retrieval_ft.data.images import load_image

        images = [load_image(item.path) for item in document_inputs(docs, dataset.root)]
        vectors = encoder.model.encode(images, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
    seconds = time.perf_counter() - start
    print(json.dumps({"mode": mode, "pages": len(docs), "dim": int(vectors.shape[1]), "seconds": seconds,
                      "rss_before_mb": before, "peak_rss_mb": _rss_mb()}))


def _measure(mode: str, data: Path, model: Path, n: int, batch_size: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(data), str(model), str(n), str(batch_size)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the figures here (default eval/results/perf/pages.json)")
    args = parser.parse_args()
    if args.child:
        mode, data, model, n, bs = args.child
        _child(mode, data, model, int(n), int(bs))
        return

    from retrieval_ft.data.demo_pages import write_demo_pages
    from retrieval_ft.tiny_clip import build_tiny_clip

    with tempfile.TemporaryDirectory() as tmp:
        per_combo = -(-args.large // COMBINATIONS)
        start = time.perf_counter()
        data = write_demo_pages(Path(tmp) / "pages", pages_per_combo=per_combo)
        model = build_tiny_clip(Path(tmp) / "tiny-clip")
        print(f"generated {per_combo * COMBINATIONS} pages in {time.perf_counter() - start:.1f} s", flush=True)
        rows = [_measure("lazy", data, model, args.small, args.batch_size),
                _measure("lazy", data, model, args.large, args.batch_size),
                _measure("eager", data, model, args.large, args.batch_size)]
        # the batch size for pages: throughput and memory at the small size
        by_batch = {bs: _measure("lazy", data, model, args.small, bs) for bs in (8, 16, 32, 64, 128)}
    print(f"\n{'how':<28}{'pages':>7}{'peak RSS MB':>13}{'growth MB':>11}{'pages/s':>9}")
    for r in rows:
        how = "retrieval-ft (lazy batches)" if r["mode"] == "lazy" else "baseline: decode all first"
        print(f"{how:<28}{r['pages']:>7}{r['peak_rss_mb']:>13.0f}{r['peak_rss_mb'] - r['rss_before_mb']:>11.0f}"
              f"{r['pages'] / r['seconds']:>9.0f}")
    small, large, eager = rows
    growth = [max(1.0, r["peak_rss_mb"] - r["rss_before_mb"]) for r in rows]
    vectors_mb = large["pages"] * large["dim"] * 4 / 2**20
    print(f"\npeak RSS, {large['pages']} vs {small['pages']} pages (lazy): {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x "
          f"(growth {growth[1]:.0f} vs {growth[0]:.0f} MB; the {large['pages']} output vectors take {vectors_mb:.1f} MB)")
    print(f"peak RSS at {large['pages']} pages, lazy / decode-all baseline: {large['peak_rss_mb'] / eager['peak_rss_mb']:.2f}x "
          f"(growth {growth[1]:.0f} vs {growth[2]:.0f} MB)")
    print(f"throughput at {large['pages']} pages, lazy / baseline: "
          f"{(large['pages'] / large['seconds']) / (eager['pages'] / eager['seconds']):.2f}x")
    print(f"\nby batch size ({args.small} pages): " + ", ".join(
        f"{bs}: {r['pages'] / r['seconds']:.0f} pages/s, +{r['peak_rss_mb'] - r['rss_before_mb']:.0f} MB" for bs, r in by_batch.items()))
    save("pages", {"rows": rows, "by_batch_size": {str(bs): r for bs, r in by_batch.items()}, "batch_size": args.batch_size,
                   "model": "tiny CLIP (retrieval_ft.tiny_clip), untrained"}, args.json)


if __name__ == "__main__":
    main()
