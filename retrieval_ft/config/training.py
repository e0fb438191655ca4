"""Settings for fine-tuning: the method, its loss, LoRA, hard negatives and model selection."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..errors import ConfigError
from .base import _enum, _positive
from .evaluation import Precision


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
