"""Settings for fine-tuning: the method, its loss, LoRA, hard negatives and model selection."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import ConfigError
from .base import _enum, _positive, documented, option
from .evaluation import Precision


class Method(str, enum.Enum):
    """How a model is fine-tuned (decided in models.prepare_for_training)."""

    FULL = "full"  # every weight trains
    LORA = "lora"  # peft LoRA adapters on the transformer's linear layers; the base is frozen
    HYBRID = "hybrid"  # LoRA, plus named modules (e.g. the last layers) trained fully
    QUERY_ONLY = "query-only"  # only the query side changes; documents keep the base embeddings
    QUERY_LORA = "query-lora"  # LoRA adapters on the query side only; documents keep the base embeddings

    @property
    def query_side(self) -> bool:
        """Only queries are encoded by the tuned model: documents keep the base's embeddings (and index)."""
        return self in (Method.QUERY_ONLY, Method.QUERY_LORA)

    @property
    def adapter(self) -> bool:
        """Trains peft LoRA adapters (the artifact holds the adapter, loaded onto the base)."""
        return self in (Method.LORA, Method.HYBRID, Method.QUERY_LORA)


class Batching(str, enum.Enum):
    AUTO = "auto"  # per-query where queries have several relevant documents on average
    NO_DUPLICATES = "no-duplicates"  # sentence-transformers' NoDuplicatesBatchSampler
    PER_QUERY = "per-query"  # one pair per query per batch, in rounds over the queries


class Loss(str, enum.Enum):
    MNRL = "mnrl"  # MultipleNegativesRankingLoss (in-batch negatives)
    CACHED_MNRL = "cached-mnrl"  # CachedMultipleNegativesRankingLoss: large batches in small memory


@documented
@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters (the `lora` section of training settings)."""

    r: int = option(16, "adapter rank")
    alpha: int = option(32, "LoRA scaling numerator (scale = alpha / r)")
    # 0, chosen on SciFact dev (eval/results/scifact-sweep.md): LoRA's dev NDCG@10 0.7750 against 0.7754 at
    # 0.1 (query-lora: 0.7895 against 0.7885), and dropout keeps a dropped copy of every adapted layer's
    # input for the backward pass, which made LoRA use more memory than full tuning
    dropout: float = option(0.0, "dropout on the adapter input, in [0, 1)")
    target_modules: tuple[str, ...] | None = option(None, "module names, matched as peft does (a full name or its "
                                                          "last components) (default: every linear layer of the "
                                                          "transformer, the unused BERT pooler excluded)")

    def __post_init__(self) -> None:
        _positive(self, "r")
        _positive(self, "alpha")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout!r}.")


@documented
@dataclass(frozen=True)
class HardNegatives:
    """Negatives mined with the base encoder (from its cached corpus embeddings)."""

    enabled: bool | None = option(None, "mine negatives (default: on for query-only tuning, where documents are "
                                        "never re-encoded so negatives cost almost nothing; off for the others, "
                                        "where each is one more document to encode per example)")
    num: int = option(3, "negatives per (query, positive) pair")
    range_max: int = option(50, "look among the top range_max documents")
    fill: bool = option(True, "a pair with fewer than num candidates below the margin takes the next-ranked "
                              "ones beyond range_max (false: such pairs are dropped)")
    relative_margin: float = option(0.05, "skip candidates within this share of the positive's score (above "
                                          "(1 - margin) x its score; euclidean: nearer than (1 + margin) x its "
                                          "squared distance): likely unjudged positives")

    def __post_init__(self) -> None:
        _positive(self, "num")
        _positive(self, "range_max")
        if not 0.0 <= self.relative_margin < 1.0:
            raise ConfigError(f"hard_negatives.relative_margin must be in [0, 1), got {self.relative_margin!r}.")


@documented
@dataclass(frozen=True)
class GuardSet:
    """A dataset the tuned model must not get worse on (a general-domain set, say): evaluated by
    `run` and `bench`, and watched while training (TrainConfig.guards)."""

    name: str = option(help="the name reports and gate rules use")
    data: str = option(help="dataset path, relative to the config file")
    split: str = option("test", "judgments to evaluate on")


# Defaults chosen on SciFact dev NDCG@10 (eval/sweep.py; figures in eval/results/scifact-sweep.md).
DEFAULT_LR = {Method.FULL: 2e-5, Method.LORA: 1e-3, Method.HYBRID: 5e-4, Method.QUERY_ONLY: 1e-4,
              Method.QUERY_LORA: 5e-3}


@documented
@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning settings (the `train` section, `retrieval-ft train --config`)."""

    method: Method = option(Method.FULL, "which weights train: every one (full), LoRA adapters (lora), adapters "
                                         "plus named modules (hybrid), the query side only (query-only) or LoRA "
                                         "adapters on the query side only (query-lora)")
    epochs: float = option(1.0, "passes over the training pairs")
    lr: float | None = option(None, "learning rate (default: the method's, " + ", ".join(
        f"{v:g} {m.value}" for m, v in DEFAULT_LR.items()) + ")")
    batch_size: int = option(32, "pairs per step and process; under torchrun with N processes each step takes "
                                 "N x this, and in-batch negatives span all of them")
    seed: int = option(42, "random seed (data order, initialisation, dev sampling)")
    warmup_ratio: float = option(0.1, "share of steps warming the learning rate up")
    weight_decay: float = option(0.01, "AdamW weight decay")
    max_steps: int | None = option(None, "stop after this many optimizer steps (overrides epochs)")
    max_seq_length: int | None = option(None, "tokens per text while training and in dev evaluations; the saved "
                                              "model keeps the model's limit for encoding (default: the model's)")
    split: str = option("train", "judgments that make training pairs")
    min_grade: int = option(1, "judgments at or above this grade make training pairs")
    dev_split: str = option("dev", "model selection split, when the dataset has it")
    dev_fraction: float = option(0.1, "else this share of train queries is held out for model selection")
    max_dev_queries: int = option(200, "dev queries at most")
    dev_corpus_size: int = option(2000, "dev judged documents plus random others, to keep evaluation quick")
    dev_hard: bool = option(False, "the dev corpus also holds the base model's top-ranked documents for each dev "
                                   "query (a harder selection; costs encoding the corpus with the base once, cached)")
    evals_per_epoch: int = option(2, "dev evaluations (and checkpoints) per epoch")
    batching: Batching = option(Batching.AUTO, "how pairs are batched: no-duplicates (sentence-transformers' "
                                "sampler), per-query (each batch takes one pair per query, in rounds: no query "
                                "starves the batches) or auto (per-query where queries have several relevant "
                                "documents on average, else no-duplicates)")
    corpus_negatives: bool = option(False, "query-only: score each query against every cached document (the whole "
                                           "corpus as negatives), not only the batch's")
    guards: tuple[GuardSet, ...] | None = option(None, "guard sets watched while training: [{name, data, split}] "
                                                       "(default: none; in a run, the run's guard sets)")
    max_guard_drop: float = option(0.01, "the most NDCG@10 any guard set may lose against the base (on its "
                                         "sample): checkpoint selection and interpolation keep within it")
    guard_queries: int = option(200, "queries per guard sample (seeded)")
    guard_corpus_size: int = option(1000, "documents per guard sample: the sampled queries' judged documents "
                                          "plus random others up to this size")
    interpolate: str | float | None = option(None, "blend with the base, weights = base + alpha x (tuned - base): "
                                                   "auto (search alpha for the best dev NDCG@10 with every guard "
                                                   "within max_guard_drop), a number in [0, 1], or off (default: "
                                                   "auto with guard sets, else off)")
    loss: Loss = option(Loss.MNRL, "mnrl (in-batch negatives) or cached-mnrl (large batches in small memory)")
    mini_batch_size: int = option(16, "cached-mnrl mini-batch")
    matryoshka_dims: tuple[int, ...] | None = option(None, "train nested dimensions too, e.g. [384, 256, 128, 64]")
    lora: LoraSettings = option(default_factory=LoraSettings, help="LoRA adapters (lora, hybrid and query-lora)")
    full_modules: tuple[str, ...] | None = option(None, "hybrid: module names (in the transformers model) trained "
                                                        "fully (default: the last layer)")
    hard_negatives: HardNegatives = option(default_factory=HardNegatives, help="mined hard negatives")
    precision: Precision = option(Precision.AUTO, "auto: bf16 mixed precision where the hardware has it, else fp32")
    gradient_checkpointing: bool = option(False, "recompute the transformer's activations in the backward pass "
                                                 "instead of keeping them: far less memory (about a third at "
                                                 "MiniLM size), slower steps (about 1.5x); the same result")
    ddp_find_unused_parameters: bool | None = option(
        None, "several processes: search each step for trainable weights that take no gradient (None: only where "
              "the model has some, e.g. a BERT pooler; set true for a model whose unused weights that rule misses)")

    def __post_init__(self) -> None:
        _enum(self, "method", Method)
        _enum(self, "loss", Loss)
        _enum(self, "batching", Batching)
        _enum(self, "precision", Precision)
        for name in ("batch_size", "max_dev_queries", "dev_corpus_size", "evals_per_epoch", "mini_batch_size", "min_grade",
                     "guard_queries", "guard_corpus_size"):
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
        if not 0 <= self.max_guard_drop < 1:
            raise ConfigError(f"max_guard_drop must be in [0, 1), got {self.max_guard_drop!r}.")
        self.interpolation  # noqa: B018 - checks the value
        if self.corpus_negatives and not self.method.query_side:
            raise ConfigError("corpus_negatives applies to methods 'query-only' and 'query-lora' only (documents "
                              "re-encoded while training cannot all be scored at every step).")
        if self.guards is not None:
            names = [g.name for g in self.guards]
            if len(set(names)) != len(names) or "main" in names:
                raise ConfigError(f"guards: names must be unique and not 'main', got {names}.")
        if self.method.query_side and (self.loss is not Loss.MNRL or self.matryoshka_dims):
            raise ConfigError(f"{self.method.value} tuning trains against fixed document embeddings: use loss 'mnrl' without matryoshka_dims.")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    @property
    def interpolation(self) -> str | float:
        """'off', 'auto' or a fixed alpha in [0, 1]: `interpolate` resolved (default: auto with guard sets)."""
        value = self.interpolate
        if value is None:
            return "auto" if self.guards else "off"
        if isinstance(value, str) and value.strip().lower() in ("auto", "off"):
            return value.strip().lower()
        try:
            alpha = float(value)
        except ValueError:
            raise ConfigError(f"interpolate must be auto, off or a number in [0, 1], got {value!r}.") from None
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"interpolate must be auto, off or a number in [0, 1], got {value!r}.")
        return alpha

    @property
    def mines_negatives(self) -> bool:
        enabled = self.hard_negatives.enabled
        return self.method.query_side if enabled is None else enabled
