"""Fine-tuning with the sentence-transformers Trainer: full, LoRA, hybrid and query-only.

Training pairs come from a split's judgments (query, relevant document) or from a pair/triplet
file; optional hard negatives are mined with the base encoder's cached corpus embeddings. Model
selection uses NDCG@10 on dev queries (the dataset's dev split, else a held-out slice of the train
queries; the test split is never read). Checkpoints land in `OUT/checkpoints` and `resume=True`
continues from the last one. The artifact written to OUT carries a stamp (retrieval_ft.json)
saying what made it.

Launched as several processes (torchrun, accelerate launch), the Trainer trains with DDP: the batch
size is per process, in-batch negatives are gathered across processes, and only rank 0 writes the
artifact.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import math
import os
import random
import resource
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._io import atomic_dir, write_json_atomic
from ._launch import launch_env
from .config import EncodeConfig, IndexConfig, IndexKind, Loss, Method, Precision, TrainConfig, to_dict
from .data import IRDataset, UnknownIds, load_dataset
from .data.pairs import is_pair_file, load_pairs
from .encode import (
    Encoder,
    Item,
    Page,
    check_encodes_pages,
    default_batch_size,
    document_inputs,
    encode_items,
)
from .errors import ConfigError, DataError
from .index import build_index
from .metrics import evaluate as score_run
from .models import STAMP, ArtifactKind, parameter_counts, prepare_for_training, query_document_model
from .precision import resolve_precision
from .results import library_versions

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
RUN_SETTINGS = "run-settings.json"  # in the checkpoints folder: what --resume must match
DEV_METRIC = "ndcg@10"


@dataclass
class TrainResult:
    artifact: Path
    method: str
    best_dev_ndcg: float | None
    history: list[dict[str, float]]  # dev NDCG@10 per evaluation (step, epoch)
    train_seconds: float
    peak_memory_mb: float
    trainable_params: int
    total_params: int
    artifact_bytes: int
    stamp: dict[str, Any] = field(default_factory=dict)


# -- data ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingData:
    pairs: list[tuple[str, str]]  # (query id, relevant doc id)
    dev_qrels: dict[str, dict[str, int]]
    dev_source: str


def training_data(dataset: IRDataset, config: TrainConfig) -> TrainingData:
    """Pairs from the train split and the dev queries for model selection (never the test split)."""
    if config.split not in dataset.qrels:
        raise DataError(
            f"{dataset.source}: no '{config.split}' split to train on (splits: {', '.join(dataset.splits)}). "
            "Add qrels/train.tsv, or pass a pair file."
        )
    train = dataset.split(config.split)
    train_qids = [q for q in dataset.judged_queries(config.split)]
    if config.dev_split in dataset.qrels and config.dev_split != config.split:
        dev_qids = dataset.judged_queries(config.dev_split)[: config.max_dev_queries]
        dev_qrels = {q: dataset.split(config.dev_split)[q] for q in dev_qids}
        source = f"split '{config.dev_split}'"
    else:
        rng = random.Random(config.seed)
        shuffled = list(train_qids)
        rng.shuffle(shuffled)
        n_dev = min(config.max_dev_queries, max(1, round(config.dev_fraction * len(shuffled))))
        if len(shuffled) < 2:
            raise DataError(f"{dataset.source}: split '{config.split}' has {len(shuffled)} judged queries; need at least 2.")
        dev_qids = sorted(shuffled[:n_dev])
        held = set(dev_qids)
        train_qids = [q for q in train_qids if q not in held]
        dev_qrels = {q: train[q] for q in dev_qids}
        source = f"{len(dev_qids)} queries held out of split '{config.split}'"
    pairs = [(q, d) for q in train_qids for d, g in train[q].items() if g >= config.min_grade and g > 0]
    if not pairs:
        raise DataError(f"{dataset.source}: split '{config.split}' has no relevant judgments to train on.")
    return TrainingData(pairs=pairs, dev_qrels=dev_qrels, dev_source=source)


def mine_hard_negatives(pairs: Sequence[tuple[str, str]], qrels: Mapping[str, Mapping[str, int]],
                        query_vectors: Mapping[str, np.ndarray], doc_ids: list[str], doc_vectors: np.ndarray,
                        num: int, range_max: int, relative_margin: float, similarity: Any) -> list[list[str]]:
    """For each (query, positive): up to `num` documents among the base encoder's top `range_max`
    that are not judged relevant for the query and score below (1 - relative_margin) x the
    positive's score (those above are likely unjudged positives), best first; as
    sentence-transformers' mine_hard_negatives does, but over cached embeddings."""
    # exact search, as sentence-transformers' mining: an approximate index is calibrated for the
    # top 10, not for the depth mining reads
    index = build_index(doc_vectors, doc_ids, similarity, IndexConfig(kind=IndexKind.FLAT))
    row = {d: i for i, d in enumerate(doc_ids)}
    qids = sorted({q for q, _ in pairs})
    hits = dict(zip(qids, index.search(np.stack([query_vectors[q] for q in qids]), range_max + 1), strict=True))
    out = []
    for q, pos in pairs:
        pos_score = float(doc_vectors[row[pos]] @ query_vectors[q])
        ceiling = pos_score * (1 - relative_margin) if pos_score > 0 else pos_score
        judged = {d for d, g in qrels[q].items() if g > 0}
        out.append([d for d, s in hits[q] if d not in judged and s < ceiling][:num])
    return out


# -- dev evaluation and the query-only loss ------------------------------------------------------
def _evaluator_base() -> type:
    from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

    return SentenceEvaluator


def make_dev_evaluator(queries: dict[str, str], qrels: dict[str, dict[str, int]], doc_ids: list[str],
                       doc_items: list[Item] | None, fixed_doc_vectors: np.ndarray | None,
                       query_prompt: str, document_prompt: str, normalize: bool, batch_size: int | None) -> Any:
    """An evaluator for the Trainer: NDCG@10 of the dev queries over a dev corpus, computed with ranx.
    With `fixed_doc_vectors` (query-only tuning) only the queries are re-encoded."""

    class DevNDCG(_evaluator_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.name = "dev"
            self.primary_metric = DEV_METRIC
            self.history: list[dict[str, float]] = []

        def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
            qids = list(queries)
            qv = model.encode([queries[q] for q in qids], prompt=query_prompt,
                              batch_size=batch_size or default_batch_size(model, "query"),
                              normalize_embeddings=normalize, convert_to_numpy=True, show_progress_bar=False)
            if fixed_doc_vectors is not None:
                dv = fixed_doc_vectors
            else:
                assert doc_items is not None
                dv = encode_items(model, doc_items, prompt=document_prompt, batch_size=batch_size, normalize=normalize)
            scores = np.asarray(qv, dtype=np.float32) @ np.asarray(dv, dtype=np.float32).T  # (n_queries, n_docs)
            k = min(100, len(doc_ids))
            run = {}
            for qi, q in enumerate(qids):
                top = np.argpartition(-scores[qi], k - 1)[:k]
                run[q] = {doc_ids[j]: float(scores[qi, j]) for j in top}
            value = score_run(qrels, run, [DEV_METRIC]).mean[DEV_METRIC]
            self.history.append({"step": int(steps), "epoch": float(epoch), DEV_METRIC: value})
            logger.info("dev %s at step %s: %.4f", DEV_METRIC, steps, value)
            return self.prefix_name_to_metrics({DEV_METRIC: value}, self.name)

    return DevNDCG()


def make_fixed_documents_loss(model: Any, doc_vectors: np.ndarray, normalize: bool, scale: float = 20.0,
                              gather_across_devices: bool = False) -> Any:
    """MultipleNegativesRankingLoss against fixed document vectors (query-only tuning).

    Each example is a query text plus `label` = row indices of its positive (first) and hard
    negatives in `doc_vectors`; every document of the batch is a candidate for every query, and a
    query's own positive appearing in another column is masked rather than counted as a negative.
    With `gather_across_devices` the batch is the global one of every training process.
    """
    import torch
    import torch.nn.functional as F
    from sentence_transformers.util import all_gather, get_rank
    from torch import nn

    class FixedDocumentsMNRL(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.scale = scale
            self.gather_across_devices = gather_across_devices
            self.register_buffer("docs", torch.from_numpy(np.ascontiguousarray(doc_vectors, dtype=np.float32)),
                                 persistent=False)

        def forward(self, sentence_features: list[dict[str, Any]], labels: Any) -> Any:
            q = self.model(sentence_features[0])["sentence_embedding"]
            if normalize:
                q = F.normalize(q, dim=-1)
            labels = labels.long().view(q.shape[0], -1)  # (batch, 1 + negatives)
            batch_labels, offset = labels, 0
            if self.gather_across_devices:
                # Every process holds all the (fixed) document vectors, and they take no gradient, so
                # there are no document embeddings to gather as MultipleNegativesRankingLoss does;
                # gathering the candidates' row indices (integers) is enough for each query to be
                # scored against the documents of the whole global batch.
                batch_labels = all_gather(labels)  # (world x batch, 1 + negatives), rank order
                offset = get_rank() * q.shape[0]
            cand = batch_labels.reshape(-1)  # (world x batch x (1 + negatives),)
            d = self.docs.to(q.device)[cand]
            scores = q @ d.T * self.scale  # (batch, candidates)
            target = (torch.arange(q.shape[0], device=q.device) + offset) * labels.shape[1]
            same_doc = cand.unsqueeze(0) == labels[:, :1]  # (batch, candidates): the query's positive
            own = torch.zeros_like(same_doc)
            own[torch.arange(q.shape[0]), target] = True
            scores = scores.masked_fill(same_doc & ~own, float("-inf"))
            return F.cross_entropy(scores, target)

        @property
        def citation(self) -> str:
            return ""

    return FixedDocumentsMNRL()


def gathers_across_devices(loss: Any) -> bool:
    """Whether `loss` (or the loss it wraps, e.g. inside MatryoshkaLoss) gathers in-batch negatives
    across processes."""
    while loss is not None:
        if getattr(loss, "gather_across_devices", False):
            return True
        loss = getattr(loss, "loss", None)
    return False


# -- several processes: torchrun, accelerate launch ---------------------------------------------
@dataclass(frozen=True)
class World:
    """This process among the training processes: rank 0 of 1 when launched alone."""

    rank: int = 0
    size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


DDP_TIMEOUT = timedelta(seconds=1800)  # the Trainer's default ddp_timeout


def join_world(device: str | None) -> World:
    """Join the process group that a launcher (torchrun, accelerate launch) describes in the
    environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT): gloo on CPUs, NCCL on GPUs.

    The Trainer joins the same group through accelerate's PartialState once its arguments exist;
    joining it here first lets the processes agree on the training rows before that, and makes each
    process's default CUDA device its own GPU (LOCAL_RANK), so that the base encoder and the corpus
    encoding do not all land on GPU 0."""
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()))
    if launch_env().world_size <= 1:
        return World()
    from accelerate import PartialState

    cpu = (device == "cpu" or not torch.cuda.is_available()
           or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"))
    state = PartialState(cpu=cpu, timeout=DDP_TIMEOUT)
    return World(state.process_index, state.num_processes, str(dist.get_backend()))


def _from_main(world: World, obj: Any) -> Any:
    """Rank 0's `obj`, on every process. Every process waits here until rank 0 arrives, so this is
    also the barrier after work that only rank 0 does."""
    if world.size == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# -- the training run ---------------------------------------------------------------------------
def _reset_peak_memory() -> None:
    """Start a new peak-memory window, so that a second training in the same process (bench) reports
    its own peak: on Linux, writing 5 to clear_refs resets the resident high-water mark (VmHWM)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    # not Linux, or not allowed: the process-wide peak (ru_maxrss) is reported instead
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory_mb() -> float:
    """Peak memory since `_reset_peak_memory`: CUDA allocations on a GPU, else resident memory."""
    import torch

    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _check_same_run(ckpt_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume checkpoints written with other settings (model, data, training config)."""
    path = ckpt_dir / RUN_SETTINGS
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        logger.warning("%s: no record of the settings that wrote these checkpoints; resuming as asked.", ckpt_dir)
        return
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); delete {ckpt_dir} to start the run again.") from None
    now = _flat(json.loads(json.dumps(settings, default=str)))
    before = _flat(saved)
    changed = [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(now) | set(before)) if now.get(k) != before.get(k)]
    if changed:
        shown = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise ConfigError(f"{ckpt_dir}: these checkpoints were written with other settings ({shown}); resuming "
                          "would mix two runs. Resume with the same settings, or start again in another --out "
                          f"(or delete {ckpt_dir}).")


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint: the Trainer writes trainer_state.json last, so a checkpoint
    torn by a kill mid-save is skipped."""
    ckpts = [p for p in folder.glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1])) if ckpts else None


def _loss(model: Any, config: TrainConfig, gather_across_devices: bool = False) -> Any:
    """The loss for `config`; with `gather_across_devices` (several processes) its in-batch negatives
    span the global batch. MatryoshkaLoss calls the wrapped loss per dimension, so it gathers too."""
    from sentence_transformers.sentence_transformer import losses

    if config.loss is Loss.CACHED_MNRL:
        loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size,
                                                         gather_across_devices=gather_across_devices)
    else:
        loss = losses.MultipleNegativesRankingLoss(model, gather_across_devices=gather_across_devices)
    if config.matryoshka_dims:
        dim = model.get_embedding_dimension()
        bad = [d for d in config.matryoshka_dims if d > (dim or 0)]
        if bad:
            raise ConfigError(f"matryoshka_dims {bad} exceed the model's dimension {dim}.")
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=list(config.matryoshka_dims))
    return loss


def check_pages(items: Sequence[Item]) -> None:
    """Decode every page among `items` once; a corrupt one raises DataError naming its file."""
    from .data.images import load_image

    for x in items:
        if isinstance(x, Page):
            load_image(x.path).close()


def training_set(rows: dict[str, list[Any]]) -> Any:
    """A datasets.Dataset of the training rows. Page columns become `datasets.Image` columns of
    file paths, decoded one row at a time while training (PDF pages are rendered to PNG files in
    the cache first). Every training page is decoded once up front, so a corrupt one stops
    training before it starts, with its file named."""
    import datasets as hf_datasets

    from .data.images import page_file

    page_columns = []
    checked: set[str] = set()
    for name, values in rows.items():
        kinds = {isinstance(v, Page) for v in values}
        if kinds == {True, False}:
            raise DataError(f"training column {name!r} mixes page images and text documents; train on a corpus "
                            "of one kind (all pages, or all texts).")
        if kinds == {True}:
            files = [page_file(v.path) for v in values]
            check_pages([Page(f) for f in set(files) - checked])
            checked.update(files)
            rows = {**rows, name: files}
            page_columns.append(name)
    train_set = hf_datasets.Dataset.from_dict(rows)
    for name in page_columns:
        train_set = train_set.cast_column(name, hf_datasets.Image(mode="RGB"))
    return train_set


def finetune(
    model: str | SentenceTransformer,
    data: IRDataset | str | Path,
    config: TrainConfig | None = None,
    out: str | Path = "tuned",
    *,
    encode: EncodeConfig | None = None,
    resume: bool = False,
    unknown_ids: UnknownIds | str = UnknownIds.ERROR,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Fine-tune `model` on `data`'s train split with `config.method`; write the artifact to `out`.

    `data` is a dataset (its `train` judgments make the pairs) or a pair/triplet file (anchor,
    positive, optional negative columns; see data/pairs.py).

    `resume` continues from the last checkpoint in `out/checkpoints`; `callbacks` are passed to the
    transformers Trainer.

    Under torchrun or accelerate launch every process calls this with the same arguments and trains
    its share of each global batch (`config.batch_size` per process). Rank 0 alone writes
    checkpoints and the artifact; every process returns rank 0's result once the artifact is written.
    """
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    config = config or TrainConfig()
    encode = encode or EncodeConfig()
    use_cpu = encode.device == "cpu" or not torch.cuda.is_available()
    precision = resolve_precision(config.precision, "cpu" if use_cpu else "cuda")
    if precision is Precision.FP16 and use_cpu:
        raise ConfigError("precision 'fp16' trains on CUDA only; on a CPU use 'bf16' or 'fp32' (or 'auto').")
    world = join_world(encode.device)
    out = Path(out)
    ckpt_dir = out / CHECKPOINTS
    last = _last_checkpoint(ckpt_dir) if ckpt_dir.is_dir() else None
    main_last = _from_main(world, last)
    if main_last != last:
        # rank 0 alone writes checkpoints: a process that does not see them would start afresh
        # while the others resume, and the processes would wait on each other for ever
        raise ConfigError(f"{ckpt_dir}: rank {world.rank} sees {last.name if last else 'no checkpoint'} but rank 0 sees "
                          f"{main_last.name if main_last else 'none'}; with several machines, --out must be a folder "
                          "that every machine sees (shared storage, the same path).")
    if last is not None and not resume:
        raise ConfigError(f"{out} holds checkpoints of an earlier run ({last.name}); pass --resume to continue it, "
                          "or choose another output folder.")
    if resume and last is None:
        logger.warning("--resume: no checkpoint in %s; starting from the beginning.", ckpt_dir)

    explicit: dict[tuple[str, str], list[str]] = {}
    if isinstance(data, IRDataset):
        dataset = data
    elif is_pair_file(data):
        dataset, explicit = load_pairs(data)
    else:
        dataset = load_dataset(data, unknown_ids)
    tdata = training_data(dataset, config)
    seed = config.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    base = Encoder(model, encode)
    base_info = {"name": base.name, "path": base.path, "fingerprint": base.fingerprint}
    # checkpoints continue only the run that wrote them: its settings are kept beside them
    # the precision it resolved to, not "auto": another machine's auto could switch it mid-run
    run_settings = {"config": {k: v for k, v in to_dict(config).items() if k != "precision"},
                    "precision": precision.value, "base_fingerprint": base.fingerprint,
                    "data_fingerprint": dataset.fingerprint(config.split),
                    "encode": {k: v for k, v in base.settings().items() if k != "precision"}}
    if resume and last is not None:
        _check_same_run(ckpt_dir, run_settings)
    normalize = base.normalize
    n_pages = sum(d.image is not None for d in dataset.corpus.values())
    if n_pages:
        check_encodes_pages(base.model)
        if n_pages < len(dataset.corpus):
            raise DataError(f"{dataset.source}: {n_pages} of {len(dataset.corpus)} documents are page images and the "
                            "rest text; training needs a corpus of one kind (all pages, or all texts).")
    doc_ids = list(dataset.corpus)
    row = {d: i for i, d in enumerate(doc_ids)}
    # a triplet file brings its own negatives (the same number on every row); else mine them if asked
    negatives: list[list[str]] = [explicit.get(pair, []) for pair in tdata.pairs]
    n_neg = len(negatives[0]) if negatives else 0
    mine = n_neg == 0 and config.mines_negatives
    need_base_vectors = config.method is Method.QUERY_ONLY or mine
    # Several processes each encode the corpus (or read it from the cache) themselves, side by side
    # on their own GPUs: had rank 0 filled the cache while the others waited, they would idle as long,
    # and on a large corpus the wait could outlast the process group's timeout. Cache files are
    # written by atomic renames and checked by checksum, so concurrent writers cannot leave a torn one.
    corpus_vectors = base.encode_corpus(dataset).vectors if need_base_vectors else None  # (n_docs, dim)
    if mine:
        assert corpus_vectors is not None
        qids = sorted({q for q, _ in tdata.pairs})
        qvecs = dict(zip(qids, base.encode_queries([dataset.queries[q] for q in qids]), strict=True))
        hn = config.hard_negatives
        negatives = mine_hard_negatives(tdata.pairs, dataset.split(config.split), qvecs, doc_ids, corpus_vectors,
                                        hn.num, hn.range_max, hn.relative_margin, base.similarity)
        # Mining is cheap and deterministic, but two GPUs need not agree to the last bit, and a
        # near-tie could keep a pair on one process and drop it on another: with different row
        # counts one process would step alone and hang the others. All take rank 0's negatives.
        negatives = _from_main(world, negatives)
        keep = [i for i, n in enumerate(negatives) if len(n) == hn.num]
        if len(keep) < len(negatives):
            logger.warning("hard negatives: %d of %d pairs found fewer than %d negatives and were dropped.",
                           len(negatives) - len(keep), len(negatives), hn.num)
        tdata = TrainingData([tdata.pairs[i] for i in keep], tdata.dev_qrels, tdata.dev_source)
        negatives = [negatives[i] for i in keep]
        n_neg = hn.num

    # dev corpus: every document judged for a dev query, then random others up to dev_corpus_size
    rng = random.Random(seed)
    dev_docs = list(dict.fromkeys(d for docs in tdata.dev_qrels.values() for d in docs))
    judged_dev = set(dev_docs)
    others = [d for d in doc_ids if d not in judged_dev]
    dev_docs += rng.sample(others, max(0, min(len(others), config.dev_corpus_size - len(dev_docs))))
    dev_queries = {q: dataset.queries[q] for q in tdata.dev_qrels}

    if config.method is Method.QUERY_ONLY:
        assert corpus_vectors is not None
        train_model = copy.deepcopy(base.model)
        document_model = base.model
        for p in document_model.parameters():
            p.requires_grad_(False)
        rows = {"anchor": [dataset.queries[q] for q, _ in tdata.pairs],
                "label": [[row[d]] + [row[n] for n in negs] for (_, d), negs in zip(tdata.pairs, negatives, strict=True)]}
        loss = make_fixed_documents_loss(train_model, corpus_vectors, normalize, gather_across_devices=world.size > 1)
        evaluator = make_dev_evaluator(dev_queries, tdata.dev_qrels, dev_docs, None,
                                       corpus_vectors[[row[d] for d in dev_docs]], base.query_prompt,
                                       base.document_prompt, normalize, encode.batch_size)
        prompts = {"anchor": base.query_prompt} if base.query_prompt else None
        sampler = BatchSamplers.BATCH_SAMPLER
        prep = prepare_for_training(train_model, config.method)
    else:
        train_model = base.model
        prep = prepare_for_training(train_model, config.method, config.lora, config.full_modules)
        item = dict(zip(doc_ids, document_inputs(list(dataset.corpus.values()), dataset.root), strict=True))
        # dev pages are decoded at every evaluation: check them now, not after the first steps
        check_pages([item[d] for d in dev_docs])
        rows = {"anchor": [dataset.queries[q] for q, _ in tdata.pairs],
                "positive": [item[d] for _, d in tdata.pairs]}
        for j in range(n_neg):
            rows[f"negative_{j + 1}"] = [item[negs[j]] for negs in negatives]
        loss = _loss(train_model, config, gather_across_devices=world.size > 1)
        evaluator = make_dev_evaluator(dev_queries, tdata.dev_qrels, dev_docs, [item[d] for d in dev_docs], None,
                                       base.query_prompt, base.document_prompt, normalize, encode.batch_size)
        prompts = {c: (base.query_prompt if c == "anchor" else base.document_prompt) for c in rows}
        prompts = {c: p for c, p in prompts.items() if p} or None
        sampler = BatchSamplers.NO_DUPLICATES
    base_length = train_model.max_seq_length
    if config.max_seq_length is not None:
        train_model.max_seq_length = config.max_seq_length
    train_set = training_set(rows)
    if sampler == BatchSamplers.NO_DUPLICATES and n_pages:
        # hash each row once instead of re-decoding pages at every duplicate check
        from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

        sampler = functools.partial(NoDuplicatesBatchSampler, precompute_hashes=True)

    trainable, total = parameter_counts(train_model)
    global_batch = config.batch_size * world.size  # batch_size is per process, as in the Trainer
    if world.size > 1 and len(train_set) < global_batch:
        # every process drops its last short batch (see dataloader_drop_last): none would be left
        raise ConfigError(f"{len(train_set)} training pairs cannot fill one step of {world.size} processes x "
                          f"batch size {config.batch_size}; lower --batch-size or start fewer processes.")
    steps_per_epoch = max(1, math.ceil(len(train_set) / global_batch))
    total_steps = config.max_steps or math.ceil(steps_per_epoch * config.epochs)
    eval_steps = max(1, min(total_steps, steps_per_epoch // config.evals_per_epoch or 1))
    show = encode.progress if encode.progress is not None else sys.stderr.isatty()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=config.weight_decay,
        seed=seed,
        data_seed=seed,
        batch_sampler=sampler,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=f"eval_dev_{DEV_METRIC}",
        greater_is_better=True,
        logging_steps=max(1, eval_steps // 2),
        report_to="none",
        disable_tqdm=not show,
        dataloader_num_workers=0,
        # with several processes every one must take a full batch at every step: gathering needs
        # equal shapes, and a process left with an extra short batch would wait for the others forever
        dataloader_drop_last=world.size > 1,
        ddp_timeout=int(DDP_TIMEOUT.total_seconds()),
        prompts=prompts,
        use_cpu=use_cpu,
        # mixed precision: float32 weights, bf16/fp16 matmuls where the hardware has them
        bf16=precision is Precision.BF16,
        fp16=precision is Precision.FP16,
    )
    trainer = SentenceTransformerTrainer(model=train_model, args=args, train_dataset=train_set, loss=loss,
                                         evaluator=evaluator, callbacks=callbacks)
    # training logs go to our logger (shown with -v) instead of dicts printed on stdout
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(_log_callback())
    logger.info("training %s: %d pairs, %d steps (dev: %s), %d of %d parameters trainable",
                config.method.value, len(train_set), total_steps, tdata.dev_source, trainable, total)
    gathered = gathers_across_devices(loss)
    distributed = {"world_size": world.size, "backend": world.backend, "global_batch_size": global_batch,
                   "negatives_gathered": gathered}
    if world.size > 1:
        logger.info("%d processes (%s): global batch %d = %d x %d per process; in-batch negatives %s",
                    world.size, world.backend, global_batch, world.size, config.batch_size,
                    "gathered across processes" if gathered else "per process")
    if world.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(ckpt_dir / RUN_SETTINGS, run_settings)
    _reset_peak_memory()
    start = time.perf_counter()
    with warnings.catch_warnings():
        # under DDP: torch deprecations raised inside accelerate's DDP wrapping and inside
        # sentence-transformers' gathering (again after every evaluation), which no user can act on
        for message in (r"`broadcast_buffers` is deprecated", r"torch\.distributed\.nn\.functional\.all_gather is deprecated"):
            warnings.filterwarnings("ignore", message=message, category=FutureWarning)
        trainer.train(resume_from_checkpoint=str(last) if (resume and last is not None) else None)
    train_seconds = time.perf_counter() - start
    peak = _peak_memory_mb()

    history = _dev_history(trainer, evaluator)
    best = max((h[DEV_METRIC] for h in history), default=None)
    final = trainer.model
    if config.max_seq_length is not None:
        final.max_seq_length = base_length  # the training limit does not travel into the artifact
    if config.method is Method.QUERY_ONLY:
        final = query_document_model(final, document_model)
        kind = ArtifactKind.QUERY_ONLY
    elif config.method is Method.FULL:
        kind = ArtifactKind.FULL
    else:
        kind = ArtifactKind.ADAPTER
    stamp = {
        "artifact": kind.value,
        "method": config.method.value,
        "base": base_info,
        "data": {"path": dataset.source, "split": config.split, "fingerprint": run_settings["data_fingerprint"],
                 "pairs": len(train_set), "hard_negatives": n_neg, "dev": tdata.dev_source,
                 "dev_corpus_size": len(dev_docs)},
        "config": to_dict(config),
        "learning_rate": config.learning_rate,
        # how to encode with this model; precision is the encoding machine's business
        "encode": {k: v for k, v in base.settings().items() if k not in ("max_seq_length", "precision")},
        "precision": precision.value,
        "max_seq_length": base.model.max_seq_length,
        "steps": trainer.state.global_step,
        "distributed": distributed,
        "train_seconds": round(train_seconds, 2),
        # time spent in dev evaluations, included in train_seconds
        "eval_seconds": round(sum(float(e.get("eval_runtime", 0.0)) for e in trainer.state.log_history), 2),
        "peak_memory_mb": round(peak, 1),  # of rank 0's process when there are several
        "trainable_params": trainable,
        "total_params": total,
        "preparation": prep,
        "best_dev_ndcg@10": best,
        "dev_history": history,
        "best_checkpoint": Path(trainer.state.best_model_checkpoint).name if trainer.state.best_model_checkpoint else None,
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    def write() -> TrainResult:
        with atomic_dir(out) as tmp:
            final.save(str(tmp))
            write_json_atomic(tmp / STAMP, stamp)
        size = _folder_bytes(out)
        stamp["artifact_bytes"] = size
        write_json_atomic(out / STAMP, stamp)
        return TrainResult(artifact=out, method=config.method.value, best_dev_ndcg=best, history=history,
                           train_seconds=train_seconds, peak_memory_mb=peak, trainable_params=trainable,
                           total_params=total, artifact_bytes=size, stamp=stamp)

    # one artifact, written once: rank 0 writes it (the Trainer's checkpoints are rank 0's too);
    # the others wait until it is complete, then report rank 0's run
    return _written_by_main(world, write)


@dataclass(frozen=True)
class _MainFailed:
    """What rank 0 sends the other processes when writing the artifact failed."""

    error: str


def _written_by_main(world: World, write: Any) -> Any:
    """Rank 0 runs `write()`; every process returns its result. When it fails, rank 0 tells the
    others before raising, so they stop at once with the reason instead of waiting for the
    process group's timeout."""
    if not world.is_main:
        got = _from_main(world, None)
        if isinstance(got, _MainFailed):
            raise RuntimeError(f"rank 0 failed to write the artifact ({got.error}); see its log.")
        return got
    try:
        result = write()
    except BaseException as exc:
        if world.size > 1:
            _from_main(world, _MainFailed(f"{type(exc).__name__}: {exc}"))
        raise
    return _from_main(world, result)


def _log_callback() -> Any:
    from transformers import TrainerCallback

    class LogToLogger(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if logs:
                values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
                logger.info("step %d/%d: %s", state.global_step, state.max_steps, values)

    return LogToLogger()


def _dev_history(trainer: Any, evaluator: Any) -> list[dict[str, float]]:
    """Dev NDCG@10 per evaluation, from the trainer's log (which survives a resume)."""
    key = f"eval_dev_{DEV_METRIC}"
    history = [{"step": int(e["step"]), "epoch": float(e.get("epoch", 0.0)), DEV_METRIC: float(e[key])}
               for e in trainer.state.log_history if key in e]
    return history or list(evaluator.history)
