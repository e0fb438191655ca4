"""Settings for encoding, indexing and evaluation (the stages up to metrics)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ..errors import ConfigError
from .base import _enum, _positive, did_you_mean, documented, option


class Similarity(str, enum.Enum):
    """How query and document vectors are scored; `None` in EncodeConfig follows the model's own setting."""

    COSINE = "cosine"  # vectors L2-normalised, inner-product index
    DOT = "dot"  # raw inner product
    EUCLIDEAN = "euclidean"  # L2 distance; scores are negative distances


class ImageCheck(str, enum.Enum):
    """What evaluation does with page images before encoding."""

    LAZY = "lazy"  # open each page only when it is encoded (default)
    CHECK = "check"  # decode every page first; a bad one stops with an error naming the file
    SKIP = "skip"  # decode every page first; bad pages (and their judgments) are dropped and counted


class Precision(str, enum.Enum):
    """The float type encoding and training compute in (weights stay float32)."""

    AUTO = "auto"  # native bf16 when the device has it (fp16 on CUDA without bf16), else fp32
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class IndexKind(str, enum.Enum):
    AUTO = "auto"  # exact up to IndexConfig.exact_max_docs documents, IVF beyond (default)
    FLAT = "flat"  # exact search
    HNSW = "hnsw"  # graph-based approximate search
    IVF = "ivf"  # inverted lists over k-means cells, approximate
    IVFPQ = "ivfpq"  # IVF over product-quantised codes: pq_m bytes a vector, for corpora that outgrow memory


@documented
@dataclass(frozen=True)
class EncodeConfig:
    """How texts and page images become vectors (the `encode` section, and the encoding flags)."""

    batch_size: int | None = option(None, "texts or pages per forward pass (default: chosen per input kind and "
                                          "device, encode.default_batch_size)")
    max_seq_length: int | None = option(None, "truncate texts to this many tokens (default: the model's own limit)")
    query_prompt: str | None = option(None, "text prepended to queries (default: the model's saved 'query' prompt)")
    document_prompt: str | None = option(None, "text prepended to documents (default: the model's saved "
                                               "'document'/'passage' prompt)")
    similarity: Similarity | None = option(None, "scoring function (default: the model's own, usually cosine)")
    device: str | None = option(None, "cpu, cuda, cuda:1, mps (default: best available)")
    cache: bool = option(True, "reuse corpus embeddings keyed by encoder fingerprint and corpus hash")
    cache_dir: str | None = option(None, "where corpus embeddings are cached (default: $RETRIEVAL_FT_CACHE/embeddings "
                                         "or ~/.cache/retrieval-ft/embeddings)")
    progress: bool | None = option(None, "show progress bars (default: on a terminal only)")
    trust_remote_code: bool = option(False, "allow models that run their own code from the hub (only models you trust)")
    allow_pickle: bool = option(False, "load pickle-based weights (.bin/.pt); they can run code when loaded")
    precision: Precision = option(Precision.AUTO, "compute type; auto: bf16 autocast where the CPU/GPU computes it "
                                                  "natively, fp16 on CUDA without bf16, else fp32 "
                                                  "($RETRIEVAL_FT_PRECISION overrides auto)")

    def __post_init__(self) -> None:
        _enum(self, "similarity", Similarity)
        _enum(self, "precision", Precision)
        if self.batch_size is not None:
            _positive(self, "batch_size")
        if self.max_seq_length is not None:
            _positive(self, "max_seq_length")


@documented
@dataclass(frozen=True)
class IndexConfig:
    """The FAISS index searched (the `index` section)."""

    kind: IndexKind = option(IndexKind.AUTO, "FAISS index; auto: exact search up to exact_max_docs documents, else "
                                             "IVF with nprobe raised until recall@10 against exact search reaches "
                                             "target_recall on a sample")
    # Exact search over 100,000 384-d vectors takes 5-6 ms a query on 2 cores
    # (eval/results/performance.md), and grows linearly
    exact_max_docs: int = option(100_000, "auto: exact search up to this many documents, IVF beyond")
    target_recall: float = option(0.98, "recall@10 against exact search that approximate kinds are tuned to reach, "
                                        "on a sample of the corpus used as queries (reported in the sidecar)")
    calibration_queries: int = option(500, "sample size for that calibration")
    hnsw_m: int = option(32, "hnsw graph degree")
    hnsw_ef_construction: int = option(200, "hnsw build-time search width")
    hnsw_ef_search: int | None = option(None, "hnsw search width (default: calibrated)")
    ivf_nlist: int | None = option(None, "IVF cells (default: about 4 * sqrt(documents))")
    ivf_nprobe: int | None = option(None, "IVF cells searched (default: calibrated)")
    pq_m: int | None = option(None, "ivfpq bytes a vector (default: the largest divisor of dim up to dim / 4)")

    def __post_init__(self) -> None:
        _enum(self, "kind", IndexKind)
        for name in ("exact_max_docs", "calibration_queries", "hnsw_m", "hnsw_ef_construction"):
            _positive(self, name)
        for name in ("hnsw_ef_search", "ivf_nlist", "ivf_nprobe", "pq_m"):
            if getattr(self, name) is not None:
                _positive(self, name)
        if not 0 < self.target_recall <= 1:
            raise ConfigError(f"target_recall: {self.target_recall!r} must be in (0, 1], e.g. 0.98.")


DEFAULT_PART_SIZE = 10_000  # `encode`: documents per part file, the most a killed run loses
DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
# ranx metric names we accept; "ndcg" is Jarvelin & Kekalainen's linear-gain NDCG (as trec_eval's
# ndcg_cut and BEIR), "ndcg_burges" the exponential-gain variant.
METRIC_NAMES = ("ndcg", "ndcg_burges", "recall", "precision", "mrr", "map", "hit_rate", "f1", "r-precision")
_METRIC = re.compile(r"^([a-z_-]+)(?:@(\d+))?$")


def _metric_hint(name: str) -> str:
    """A suggestion for an unknown metric: the nearest known name, with the cutoff when it is a whole
    number (`ndgc@10` -> `ndcg@10`, `ndcg@abc` -> `ndcg@10`); never the name itself."""
    _head, at, cutoff = name.partition("@")
    cutoff = cutoff if cutoff.isdigit() else "10" if at else ""
    return did_you_mean(name, [f"{m}@{cutoff}" if cutoff else m for m in METRIC_NAMES])


def check_metrics(names: tuple[str, ...] | list[str], k: int) -> tuple[str, ...]:
    """Normalise metric names ("NDCG@10" -> "ndcg@10") and check each is known and fits in k results."""
    out = []
    for raw in names:
        name = str(raw).strip().lower()
        m = _METRIC.match(name)
        if not m or m.group(1) not in METRIC_NAMES:
            raise ConfigError(f"unknown metric {raw!r}.{_metric_hint(name)} Known: {', '.join(METRIC_NAMES)}, "
                              "each optionally with @cutoff (a whole number).")
        if m.group(2) is not None:
            cutoff = int(m.group(2))
            if cutoff <= 0:
                raise ConfigError(f"metric {raw!r}: the cutoff must be positive.")
            if cutoff > k:
                raise ConfigError(f"metric {raw!r} looks at {cutoff} results but only k={k} are retrieved; raise k.")
        if name not in out:
            out.append(name)
    return tuple(out)


@documented
@dataclass(frozen=True)
class EvalConfig:
    """What an evaluation scores (the `eval` section)."""

    split: str = option("test", "judgments to evaluate on")
    metrics: tuple[str, ...] = option(DEFAULT_METRICS, "comma-separated ranx metrics (ndcg is the linear-gain "
                                                       "trec_eval / BEIR variant)")
    k: int = option(100, "documents retrieved per query")
    encode: EncodeConfig = option(default_factory=EncodeConfig, help="encoding settings")
    index: IndexConfig = option(default_factory=IndexConfig, help="index settings")
    images: ImageCheck = option(ImageCheck.LAZY, "page images: lazy (open each when encoded), check (decode all "
                                                 "first, stop at a bad one) or skip (decode all first, drop bad ones)")

    def __post_init__(self) -> None:
        _enum(self, "images", ImageCheck)
        _positive(self, "k")
        if not self.metrics:
            raise ConfigError("metrics: name at least one metric, e.g. ndcg@10.")
        object.__setattr__(self, "metrics", check_metrics(self.metrics, self.k))
