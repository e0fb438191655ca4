"""Settings for encoding, indexing and evaluation (the stages up to metrics)."""

from __future__ import annotations

import difflib
import enum
import re
from dataclasses import dataclass, field

from ..errors import ConfigError
from .base import _enum, _positive


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


@dataclass(frozen=True)
class EncodeConfig:
    batch_size: int | None = None  # None: measured per input kind (encode.default_batch_size)
    max_seq_length: int | None = None  # None keeps the model's own limit
    query_prompt: str | None = None  # None uses the model's saved "query" prompt, if any
    document_prompt: str | None = None  # None uses the model's saved "document"/"passage" prompt, if any
    similarity: Similarity | None = None
    device: str | None = None  # None lets sentence-transformers pick (CUDA when available)
    cache: bool = True  # reuse corpus embeddings keyed by encoder fingerprint + corpus hash
    cache_dir: str | None = None  # default: $RETRIEVAL_FT_CACHE/embeddings or ~/.cache/retrieval-ft/embeddings
    progress: bool | None = None  # None shows progress bars on a terminal only
    trust_remote_code: bool = False  # run a hub model's own Python code (only for models you trust)
    allow_pickle: bool = False  # load pickle-based weights (.bin/.pt), which can run code when loaded
    precision: Precision = Precision.AUTO  # auto: bf16 autocast where the hardware has it, else fp32

    def __post_init__(self) -> None:
        _enum(self, "similarity", Similarity)
        _enum(self, "precision", Precision)
        if self.batch_size is not None:
            _positive(self, "batch_size")
        if self.max_seq_length is not None:
            _positive(self, "max_seq_length")


@dataclass(frozen=True)
class IndexConfig:
    kind: IndexKind = IndexKind.AUTO
    # auto: exact search up to this many documents, IVF beyond. Exact search over 100,000 384-d
    # vectors takes 5-6 ms a query on 2 cores (eval/results/performance.md), and grows linearly
    exact_max_docs: int = 100_000
    # approximate kinds: search parameters left unset are raised until recall@10 against exact
    # search reaches this, on a sample of the corpus used as queries (reported in the sidecar)
    target_recall: float = 0.98
    calibration_queries: int = 500
    hnsw_m: int = 32  # graph degree
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int | None = None  # None: calibrated
    ivf_nlist: int | None = None  # None: about 4 * sqrt(n_docs)
    ivf_nprobe: int | None = None  # None: calibrated
    pq_m: int | None = None  # ivfpq bytes per vector; None: the largest divisor of dim up to dim / 4

    def __post_init__(self) -> None:
        _enum(self, "kind", IndexKind)
        for name in ("exact_max_docs", "calibration_queries", "hnsw_m", "hnsw_ef_construction"):
            _positive(self, name)
        for name in ("hnsw_ef_search", "ivf_nlist", "ivf_nprobe", "pq_m"):
            if getattr(self, name) is not None:
                _positive(self, name)
        if not 0 < self.target_recall <= 1:
            raise ConfigError(f"target_recall: {self.target_recall!r} must be in (0, 1], e.g. 0.98.")


DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
# ranx metric names we accept; "ndcg" is Jarvelin & Kekalainen's linear-gain NDCG (as trec_eval's
# ndcg_cut and BEIR), "ndcg_burges" the exponential-gain variant.
METRIC_NAMES = ("ndcg", "ndcg_burges", "recall", "precision", "mrr", "map", "hit_rate", "f1", "r-precision")
_METRIC = re.compile(r"^([a-z_-]+)(?:@(\d+))?$")


def check_metrics(names: tuple[str, ...] | list[str], k: int) -> tuple[str, ...]:
    """Normalise metric names ("NDCG@10" -> "ndcg@10") and check each is known and fits in k results."""
    out = []
    for raw in names:
        name = str(raw).strip().lower()
        m = _METRIC.match(name)
        if not m or m.group(1) not in METRIC_NAMES:
            close = difflib.get_close_matches(name.split("@")[0], METRIC_NAMES, n=1)
            hint = f" Did you mean {close[0] + (name[name.index('@'):] if '@' in name else '')!r}?" if close else ""
            raise ConfigError(
                f"unknown metric {raw!r}.{hint} Known: {', '.join(METRIC_NAMES)}, each optionally with @cutoff."
            )
        if m.group(2) is not None:
            cutoff = int(m.group(2))
            if cutoff <= 0:
                raise ConfigError(f"metric {raw!r}: the cutoff must be positive.")
            if cutoff > k:
                raise ConfigError(f"metric {raw!r} looks at {cutoff} results but only k={k} are retrieved; raise k.")
        if name not in out:
            out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class EvalConfig:
    split: str = "test"
    metrics: tuple[str, ...] = DEFAULT_METRICS
    k: int = 100  # documents retrieved per query
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    images: ImageCheck = ImageCheck.LAZY

    def __post_init__(self) -> None:
        _enum(self, "images", ImageCheck)
        _positive(self, "k")
        if not self.metrics:
            raise ConfigError("metrics: name at least one metric, e.g. ndcg@10.")
        object.__setattr__(self, "metrics", check_metrics(self.metrics, self.k))
