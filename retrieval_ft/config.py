"""Settings for each stage as frozen dataclasses, checked on construction; dicts/YAML map onto them.

A key that is not a field is an error with a "did you mean"; a value of the wrong type or out of
range is an error that echoes it. This module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import ConfigError


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


def _enum(obj: object, name: str, kind: type[enum.Enum]) -> None:
    """Accept an enum member or its string value (Python callers pass strings too)."""
    value = getattr(obj, name)
    if value is None or isinstance(value, kind):
        return
    try:
        object.__setattr__(obj, name, kind(value))
    except ValueError:
        choices = ", ".join(repr(m.value) for m in kind)
        raise ConfigError(f"{name}: {value!r} is not one of {choices}.") from None


def _positive(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}.")


T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build a config dataclass from a mapping: unknown keys suggest the nearest field, values are
    checked against the field types (enums from their string values, nested dataclasses from
    mappings, lists to tuples)."""
    data = {} if data is None else data
    prefix = f"{where}." if where else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), sorted(fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Valid keys: {', '.join(sorted(fields))}."
            raise ConfigError(f"unknown key '{prefix}{key}'.{hint}")
        kwargs[key] = _coerce(hints[key], value, f"{prefix}{key}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where + ': ' if where else ''}{exc}") from None


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of {tp}.")
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, key)  # type: ignore[arg-type]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in tp)
            raise ConfigError(f"{key}: {value!r} is not one of {choices}.") from None
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}.")
        (inner, *_rest) = typing.get_args(tp)
        return tuple(_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}.")
    return value


def to_dict(cfg: Any) -> Any:
    """A JSON-ready dict of a config (enums as their values)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, enum.Enum):
        return cfg.value
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


class Method(str, enum.Enum):
    """How a model is fine-tuned (decided in models.prepare_for_training)."""

    FULL = "full"  # every weight trains
    LORA = "lora"  # peft LoRA adapters on the transformer's linear layers; the base is frozen
    HYBRID = "hybrid"  # LoRA, plus named modules (e.g. the last layers) trained fully
    QUERY_ONLY = "query-only"  # only the query side changes; documents keep the base embeddings


class Loss(str, enum.Enum):
    MNRL = "mnrl"  # MultipleNegativesRankingLoss (in-batch negatives)
    CACHED_MNRL = "cached-mnrl"  # CachedMultipleNegativesRankingLoss: large batches in small memory


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    # None: every linear layer of the transformer (the unused BERT pooler excluded); else module
    # names, matched as peft does (a full name or its last components)
    target_modules: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _positive(self, "r")
        _positive(self, "alpha")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout!r}.")


@dataclass(frozen=True)
class HardNegatives:
    """Negatives mined with the base encoder (from its cached corpus embeddings)."""

    # None: on for query-only tuning (documents are never re-encoded there, so negatives cost almost
    # nothing), off for the others (each negative is one more document to encode per example)
    enabled: bool | None = None
    num: int = 3  # negatives per (query, positive) pair
    range_max: int = 50  # look among the top range_max documents
    # skip candidates scoring above (1 - relative_margin) * the positive's score: likely unjudged positives
    relative_margin: float = 0.05

    def __post_init__(self) -> None:
        _positive(self, "num")
        _positive(self, "range_max")
        if not 0.0 <= self.relative_margin < 1.0:
            raise ConfigError(f"hard_negatives.relative_margin must be in [0, 1), got {self.relative_margin!r}.")


# Defaults chosen on SciFact dev NDCG@10 (eval/sweep.py; figures in eval/results/scifact-sweep.md).
DEFAULT_LR = {Method.FULL: 2e-5, Method.LORA: 1e-3, Method.HYBRID: 5e-4, Method.QUERY_ONLY: 1e-4}


@dataclass(frozen=True)
class TrainConfig:
    method: Method = Method.FULL
    epochs: float = 1.0
    lr: float | None = None  # None: the method's default (DEFAULT_LR)
    batch_size: int = 32
    seed: int = 42
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    # tokens per text while training (and in dev evaluations); None keeps the model's own limit.
    # The saved model keeps the model's limit for encoding.
    max_seq_length: int | None = None
    split: str = "train"
    min_grade: int = 1  # judgments at or above this grade make training pairs
    # model selection: the "dev" split when the dataset has one, else this share of train queries
    dev_split: str = "dev"
    dev_fraction: float = 0.1
    max_dev_queries: int = 200
    dev_corpus_size: int = 2000  # dev judged documents plus random others, to keep evaluation quick
    evals_per_epoch: int = 2  # dev evaluations (and checkpoints) per epoch
    loss: Loss = Loss.MNRL
    mini_batch_size: int = 16  # for cached-mnrl
    matryoshka_dims: tuple[int, ...] | None = None  # e.g. [384, 256, 128, 64]
    lora: LoraSettings = field(default_factory=LoraSettings)
    # hybrid: module names (in the transformers model) trained fully; None = the last layer
    full_modules: tuple[str, ...] | None = None
    hard_negatives: HardNegatives = field(default_factory=HardNegatives)
    precision: Precision = Precision.AUTO  # auto: bf16 mixed precision where the hardware has it, else fp32

    def __post_init__(self) -> None:
        _enum(self, "method", Method)
        _enum(self, "loss", Loss)
        _enum(self, "precision", Precision)
        for name in ("batch_size", "max_dev_queries", "dev_corpus_size", "evals_per_epoch", "mini_batch_size", "min_grade"):
            _positive(self, name)
        for name in ("max_steps", "max_seq_length"):
            if getattr(self, name) is not None:
                _positive(self, name)
        if self.epochs <= 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs!r}.")
        if self.lr is not None and not 0 < self.lr < 1:
            raise ConfigError(f"lr must be in (0, 1), got {self.lr!r}.")
        if not 0 < self.dev_fraction < 1:
            raise ConfigError(f"dev_fraction must be in (0, 1), got {self.dev_fraction!r}.")
        if self.full_modules is not None and self.method is not Method.HYBRID:
            raise ConfigError(f"full_modules applies to method 'hybrid' only (method is {self.method.value!r}).")
        if self.method is Method.QUERY_ONLY and (self.loss is not Loss.MNRL or self.matryoshka_dims):
            raise ConfigError("query-only tuning trains against fixed document embeddings: use loss 'mnrl' without matryoshka_dims.")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    @property
    def mines_negatives(self) -> bool:
        enabled = self.hard_negatives.enabled
        return self.method is Method.QUERY_ONLY if enabled is None else enabled


def load_yaml(path: str) -> dict[str, Any]:
    """A YAML mapping read with the safe loader; errors name the file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found.") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}.")
    return data


class StatTest(str, enum.Enum):
    STUDENT = "student"  # paired Student's t-test (ranx)
    FISHER = "fisher"  # Fisher's randomization test (ranx)


@dataclass(frozen=True)
class CompareConfig:
    metrics: tuple[str, ...] = ("ndcg@10",)
    test: StatTest = StatTest.STUDENT
    alpha: float = 0.05
    n_permutations: int = 10000  # fisher
    bootstrap: int = 10000  # resamples for the 95 % confidence interval of the delta
    seed: int = 0
    worst: int = 10  # queries listed as the ones that lost most

    def __post_init__(self) -> None:
        _enum(self, "test", StatTest)
        for name in ("n_permutations", "bootstrap", "worst"):
            _positive(self, name)
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha!r}.")
        object.__setattr__(self, "metrics", check_metrics(self.metrics, k=10**9))


@dataclass(frozen=True)
class GateRules:
    """When a candidate fails against its baseline. Defaults: fail on any statistically significant
    drop (alpha 0.05) of NDCG@10, or on a drop of more than 0.02 whatever its significance."""

    metrics: tuple[str, ...] = ("ndcg@10",)
    max_drop: float = 0.0  # a drop of the mean larger than this fails ...
    require_significance: bool = True  # ... only when significant at alpha
    alpha: float = 0.05
    max_drop_any: float | None = 0.02  # a drop larger than this fails even when not significant
    min_value: float | None = None  # the candidate's mean must reach this
    min_gain: float | None = None  # the candidate must beat the baseline by this much (tuning must help)
    max_losing_share: float | None = None  # share of queries that may lose more than loss_threshold
    loss_threshold: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", check_metrics(self.metrics, k=10**9))
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha!r}.")
        for name in ("max_drop", "loss_threshold"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}.")
        if self.max_losing_share is not None and not 0 <= self.max_losing_share <= 1:
            raise ConfigError(f"max_losing_share must be in [0, 1], got {self.max_losing_share!r}.")


@dataclass(frozen=True)
class GateConfig:
    """Rules for the main dataset, and per guard set (a guard without its own rules uses `guard_rules`)."""

    rules: GateRules = field(default_factory=GateRules)
    guard_rules: GateRules = field(default_factory=GateRules)
    guards: dict[str, GateRules] = field(default_factory=dict)
    test: StatTest = StatTest.STUDENT
    bootstrap: int = 10000
    seed: int = 0

    def __post_init__(self) -> None:
        _enum(self, "test", StatTest)
        _positive(self, "bootstrap")
        guards = {}
        for name, rules in self.guards.items():
            guards[name] = rules if isinstance(rules, GateRules) else from_dict(GateRules, rules, f"guards.{name}")
        object.__setattr__(self, "guards", guards)

    def for_guard(self, name: str) -> GateRules:
        return self.guards.get(name, self.guard_rules)


@dataclass(frozen=True)
class GuardSet:
    """A dataset the tuned model must not get worse on (a general-domain set, say)."""

    name: str
    data: str
    split: str = "test"


GENERATED_DATA = ("demo", "demo-pages")  # datasets `run` generates instead of reading
GENERATED_MODELS = ("tiny-clip",)  # encoders `run` builds instead of loading


@dataclass(frozen=True)
class RunConfig:
    """`retrieval-ft run`: evaluate the base, tune, evaluate the tuned model, guard sets, gate, report.

    Generated stand-ins, written into OUT on first use: `data: demo` is the embedded product
    catalog (OUT/demo-data), `data: demo-pages` the generated document pages (OUT/demo-pages), and
    `model: tiny-clip` an untrained tiny CLIP text/image encoder (OUT/tiny-clip).
    """

    model: str
    data: str
    out: str = "runs/run"
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    guards: tuple[GuardSet, ...] = ()
    gate: GateConfig = field(default_factory=GateConfig)
    unknown_ids: str = "error"

    def __post_init__(self) -> None:
        if not self.model or not self.data:
            raise ConfigError("model and data are required.")
        names = [g.name for g in self.guards]
        if len(set(names)) != len(names):
            raise ConfigError(f"guard set names must be unique, got {names}.")
        if "main" in names:
            raise ConfigError("'main' is reserved for the main dataset; rename that guard set.")
        if self.unknown_ids not in ("error", "drop"):
            raise ConfigError(f"unknown_ids must be 'error' or 'drop', got {self.unknown_ids!r}.")


def load_run_config(path: str, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Read a run config YAML; relative paths (data, guards, out, a local model) are relative to it."""
    import os

    values = load_yaml(path)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    base = os.path.dirname(os.path.abspath(path))

    def rel(p: Any) -> Any:
        return p if not isinstance(p, str) or os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    if isinstance(values.get("data"), str) and values["data"] not in GENERATED_DATA:
        values["data"] = rel(values["data"])
    if isinstance(values.get("out"), str) and not (overrides or {}).get("out"):
        values["out"] = rel(values["out"])
    if isinstance(values.get("model"), str) and values["model"] not in GENERATED_MODELS and os.path.exists(rel(values["model"])):
        values["model"] = rel(values["model"])
    guards = values.get("guards") or []
    if not isinstance(guards, list):
        raise ConfigError(f"{path}: guards must be a list of {{name, data, split}} mappings.")
    values["guards"] = [from_dict(GuardSet, {**g, "data": rel(g.get("data"))} if isinstance(g, dict) else g,
                                  f"guards[{i}]") for i, g in enumerate(guards)]
    try:
        return from_dict(RunConfig, values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class BenchMethod:
    """One contender: a name for the tables, the tuning method and TrainConfig overrides."""

    name: str
    method: Method
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields

    def __post_init__(self) -> None:
        _enum(self, "method", Method)
        from_dict(TrainConfig, {**self.train, "method": self.method.value}, f"methods.{self.name}.train")

    def train_config(self, seed: int) -> TrainConfig:
        return from_dict(TrainConfig, {**self.train, "method": self.method.value, "seed": seed})


@dataclass(frozen=True)
class BenchConfig:
    """`retrieval-ft bench`: every method with several seeds against the base, with guard sets."""

    name: str
    model: str
    data: str
    methods: tuple[BenchMethod, ...]
    seeds: tuple[int, ...] = (42, 43, 44)
    # TrainConfig fields given to every method (a method's own `train` wins), e.g. the training
    # sequence length: cost settings that should be the same for every contender
    train: dict[str, Any] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)
    guards: tuple[GuardSet, ...] = ()
    out: str = "eval/results"
    work: str = "out/bench"  # tuned artifacts, one folder per method and seed

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("methods: name at least one method to benchmark.")
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names) or "base" in names:
            raise ConfigError(f"method names must be unique and not 'base', got {names}.")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed.")


def load_bench_config(path: str, overrides: dict[str, Any] | None = None) -> BenchConfig:
    """Read a benchmark config YAML; paths in it are relative to it. `overrides` (from the command
    line: data, name, seeds, out, work) replace its values; their paths are taken as given."""
    import os

    values = load_yaml(path)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "data" in overrides and "name" not in overrides:
        # another collection: its results get its own name instead of overwriting the config's
        overrides["name"] = os.path.basename(os.path.normpath(overrides["data"]))
    for key in ("data", "out", "work"):
        if isinstance(overrides.get(key), str) and not (key == "data" and overrides[key] in GENERATED_DATA):
            overrides[key] = os.path.abspath(overrides[key])
    base = os.path.dirname(os.path.abspath(path))

    def rel(p: Any) -> Any:
        return p if not isinstance(p, str) or os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    for key in ("data", "out", "work"):
        if isinstance(values.get(key), str) and not (key == "data" and values[key] in GENERATED_DATA):
            values[key] = rel(values[key])
    if isinstance(values.get("model"), str) and values["model"] not in GENERATED_MODELS and os.path.exists(rel(values["model"])):
        values["model"] = rel(values["model"])
    values["guards"] = [from_dict(GuardSet, {**g, "data": rel(g.get("data"))} if isinstance(g, dict) else g,
                                  f"guards[{i}]") for i, g in enumerate(values.get("guards") or [])]
    values.update(overrides)
    common = values.get("train") or {}
    if not isinstance(common, dict):
        raise ConfigError(f"{path}: train: expected a mapping of TrainConfig fields, got {type(common).__name__}.")
    from_dict(TrainConfig, common, "train")  # unknown or bad fields are named here
    methods = values.get("methods")
    if isinstance(methods, dict):  # {name: {method: lora, train: {...}}}
        values["methods"] = [
            from_dict(BenchMethod, {"name": n, **(m or {}), "train": {**common, **((m or {}).get("train") or {})}},
                      f"methods.{n}")
            for n, m in methods.items()]
    try:
        return from_dict(BenchConfig, values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
