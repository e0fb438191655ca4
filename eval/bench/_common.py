"""What the speed benchmarks share: the machine's description, a measured matmul ceiling, real
texts from ../shared/data, and writing each benchmark's figures as JSON for performance.md."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "eval" / "results" / "perf"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, the CPU's bf16 support and library versions."""
    import faiss
    import torch

    from retrieval_ft.precision import cpu_has_native_bf16

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 2**20, 1),
            "torch_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
            "faiss": faiss.__version__, "cuda": torch.cuda.is_available()}


def matmul_ceiling(dtype_name: str = "float32", n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a square torch matmul on this CPU: the ceiling encoding is measured against."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(n, n).to(dtype)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return repeats * 2 * n**3 / (time.perf_counter() - start) / 1e9


def scifact_texts(n: int | None = None) -> list[str]:
    """SciFact documents (title + text), the first `n`; the bundled demo catalog when absent."""
    path = SHARED / "scifact" / "corpus.jsonl"
    texts: list[str] = []
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                texts.append(f"{doc.get('title', '')} {doc['text']}".strip())
                if n is not None and len(texts) == n:
                    break
        return texts
    from retrieval_ft.data.demo import generate_demo

    _, dataset = generate_demo(n_products=n or 2000)
    return [d.full_text for d in dataset.corpus.values()]


def scifact_queries(n: int) -> list[str]:
    """The first `n` SciFact queries (short texts); the demo catalog's queries when absent."""
    path = SHARED / "scifact" / "queries.jsonl"
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line)["text"] for line, _ in zip(fh, range(n), strict=False)]
    from retrieval_ft.data.demo import generate_demo

    _, dataset = generate_demo()
    return list(dataset.queries.values())[:n]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save(name: str, figures: dict[str, Any], out: str | None = None) -> Path:
    """Write `figures` (with the machine and the command) to eval/results/perf/NAME.json."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    script = Path(sys.argv[0]).resolve()
    script_name = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else sys.argv[0]
    record = {"benchmark": name, "command": " ".join(["python", script_name, *sys.argv[1:]]), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine(), **figures}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    print(f"wrote {path}")
    return path
