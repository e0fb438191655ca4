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


class Loss(str, enum.Enum):
    MNRL = "mnrl"  # MultipleNegativesRankingLoss (in-batch negatives)
    CACHED_MNRL = "cached-mnrl"  # CachedMultipleNegativesRankingLoss: large batches in small memory


@documented
@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters (the `lora` section of training settings)."""

    r: int = option(16, "adapter rank")
    alpha: int = option(32, "LoRA scaling numerator (scale = alpha / r)")
    dropout: float = option(0.1, "dropout on the adapter input, in [0, 1)")
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
    relative_margin: float = option(0.05, "skip candidates within this share of the positive's score (above "
                                          "(1 - margin) x its score; euclidean: nearer than (1 + margin) x its "
                                          "squared distance): likely unjudged positives")

    def __post_init__(self) -> None:
        _positive(self, "num")
        _positive(self, "range_max")
        if not 0.0 <= self.relative_margin < 1.0:
            raise ConfigError(f"hard_negatives.relative_margin must be in [0, 1), got {self.relative_margin!r}.")


# Defaults chosen on SciFact dev NDCG@10 (eval/sweep.py; figures in eval/results/scifact-sweep.md).
DEFAULT_LR = {Method.FULL: 2e-5, Method.LORA: 1e-3, Method.HYBRID: 5e-4, Method.QUERY_ONLY: 1e-4}


@documented
@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning settings (the `train` section, `retrieval-ft train --config`)."""

    method: Method = option(Method.FULL, "which weights train: every one (full), LoRA adapters (lora), adapters "
                                         "plus named modules (hybrid) or the query side only (query-only)")
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
    evals_per_epoch: int = option(2, "dev evaluations (and checkpoints) per epoch")
    loss: Loss = option(Loss.MNRL, "mnrl (in-batch negatives) or cached-mnrl (large batches in small memory)")
    mini_batch_size: int = option(16, "cached-mnrl mini-batch")
    matryoshka_dims: tuple[int, ...] | None = option(None, "train nested dimensions too, e.g. [384, 256, 128, 64]")
    lora: LoraSettings = option(default_factory=LoraSettings, help="LoRA adapters (lora and hybrid)")
    full_modules: tuple[str, ...] | None = option(None, "hybrid: module names (in the transformers model) trained "
                                                        "fully (default: the last layer)")
    hard_negatives: HardNegatives = option(default_factory=HardNegatives, help="mined hard negatives")
    precision: Precision = option(Precision.AUTO, "auto: bf16 mixed precision where the hardware has it, else fp32")
    ddp_find_unused_parameters: bool | None = option(
        None, "several processes: search each step for trainable weights that take no gradient (None: only where "
              "the model has some, e.g. a BERT pooler; set true for a model whose unused weights that rule misses)")

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
