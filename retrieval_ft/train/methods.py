"""The two ways a model trains: query-side (the base trains, fully or through LoRA, as the query side
against its own fixed corpus vectors) and shared towers (the base trains, fully or through LoRA, on
queries and documents alike). Each returns the model that trains, its rows, loss and dev evaluator.
Either way the base model trains in place: no second copy of it is held.

Called by tune.py with its job; imports torch and sentence-transformers inside the functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..encode import document_inputs
from ..models import prepare_for_training
from .rows import check_pages

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .tune import Negatives, TrainingJob


@dataclass
class MethodSetup:
    """The method's side of training: the model that trains and what it trains on."""

    train_model: SentenceTransformer
    rows: dict[str, list[Any]]  # training columns: anchor, then positive/negatives or label
    loss: Any
    evaluator: Any
    prompts: dict[str, str] | None  # per column
    sampler: Any
    preparation: dict[str, Any]  # what prepare_for_training did
    encodes_images: bool  # whether training encodes page images (DDP's unused-parameter search)


def query_only_setup(job: TrainingJob, negs: Negatives, dev_docs: list[str]) -> MethodSetup:
    """The base trains as the query side against its fixed corpus vectors (encoded before any step,
    and cached): every weight (query-only) or LoRA adapters on it (query-lora). The document side is
    never encoded while training, so it needs no model of its own: loading the artifact puts the
    base back beside the tuned query side (models.load_model)."""
    from sentence_transformers.base.sampler import BatchSamplers

    from .dev_eval import DevNDCG
    from .losses import FixedDocumentsMNRL

    base, tdata, vectors = job.base, negs.tdata, negs.corpus_vectors
    assert vectors is not None
    row = {d: i for i, d in enumerate(job.dataset.corpus)}
    train_model = base.model
    preparation = prepare_for_training(train_model, job.config.method, job.config.lora)
    qids, relevant = _relevant_rows(job, [q for q, _ in tdata.pairs], row)
    rows = {"anchor": [job.dataset.queries[q] for q, _ in tdata.pairs],
            "label": [[qids[q], row[d]] + [row[n] for n in ns] + [-1] * (negs.per_pair - len(ns))
                      for (q, d), ns in zip(tdata.pairs, negs.lists, strict=True)]}
    loss = FixedDocumentsMNRL(train_model, vectors, base.normalize, gather_across_devices=job.world.size > 1,
                              relevant=relevant, corpus_negatives=job.config.corpus_negatives)
    evaluator = DevNDCG({q: job.dataset.queries[q] for q in tdata.dev_qrels}, tdata.dev_qrels, dev_docs, None,
                        vectors[[row[d] for d in dev_docs]], base.query_prompt, base.document_prompt,
                        base.normalize, job.encode.batch_size)
    # plain batches: the loss masks every document judged relevant to a row's query, so two pairs of
    # one query in a batch are no false negatives of each other
    return MethodSetup(train_model, rows, loss, evaluator,
                  prompts={"anchor": base.query_prompt} if base.query_prompt else None,
                  sampler=BatchSamplers.BATCH_SAMPLER, preparation=preparation, encodes_images=False)


def _relevant_rows(job: TrainingJob, queries: list[str], row: dict[str, int]) -> tuple[dict[str, int], list[list[int]]]:
    """(an index per training query, the corpus rows judged relevant to each): what the loss must
    never count as a negative for that query."""
    judged = job.dataset.split(job.config.split)
    qids = {q: i for i, q in enumerate(dict.fromkeys(queries))}
    return qids, [[row[d] for d, g in judged.get(q, {}).items() if g > 0 and d in row] for q in qids]


def shared_towers_setup(job: TrainingJob, negs: Negatives, dev_docs: list[str]) -> MethodSetup:
    """The base model trains (fully, or through LoRA adapters) on queries and documents alike."""
    from .dev_eval import DevNDCG
    from .losses import shared_towers_loss
    from .sampling import resolve_batching, shared_towers_sampler

    base, config, tdata = job.base, job.config, negs.tdata
    prep = prepare_for_training(base.model, config.method, config.lora, config.full_modules)
    item = dict(zip(job.dataset.corpus, document_inputs(list(job.dataset.corpus.values()), job.dataset.root),
                    strict=True))
    # dev pages are decoded at every evaluation: check them now, not after the first steps
    check_pages([item[d] for d in dev_docs])
    rows = {"anchor": [job.dataset.queries[q] for q, _ in tdata.pairs], "positive": [item[d] for _, d in tdata.pairs]}
    for j in range(negs.per_pair):
        rows[f"negative_{j + 1}"] = [item[ns[j]] for ns in negs.lists]
    loss = shared_towers_loss(base.model, config, gather_across_devices=job.world.size > 1)
    evaluator = DevNDCG({q: job.dataset.queries[q] for q in tdata.dev_qrels}, tdata.dev_qrels, dev_docs,
                        [item[d] for d in dev_docs], None, base.query_prompt, base.document_prompt, base.normalize,
                        job.encode.batch_size)
    prompts = {c: (base.query_prompt if c == "anchor" else base.document_prompt) for c in rows}
    batching = resolve_batching(config.batching, tdata.pairs)
    logger.info("batching: %s (%s)", batching.value, config.batching.value)
    sampler = shared_towers_sampler(batching, pages=job.n_pages > 0)
    return MethodSetup(base.model, rows, loss, evaluator, {c: p for c, p in prompts.items() if p} or None,
                  sampler, prep, encodes_images=job.n_pages > 0)
