"""The two ways a model trains: query-only (a copy of the base trains as the query side against
the base's fixed corpus vectors) and shared towers (the base trains, fully or through LoRA, on
queries and documents alike). Each returns the model that trains, its rows, loss and dev evaluator.

Called by tune.py with its job; imports torch and sentence-transformers inside the functions.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import Method
from ..encode import document_inputs
from ..models import prepare_for_training
from .rows import check_pages

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .tune import Negatives, TrainingJob


@dataclass
class MethodSetup:
    """The method's side of training: the model that trains and what it trains on."""

    train_model: SentenceTransformer
    document_model: SentenceTransformer | None  # query-only: the fixed document side
    rows: dict[str, list[Any]]  # training columns: anchor, then positive/negatives or label
    loss: Any
    evaluator: Any
    prompts: dict[str, str] | None  # per column
    sampler: Any
    preparation: dict[str, Any]  # what prepare_for_training did
    encodes_images: bool  # whether training encodes page images (DDP's unused-parameter search)


def query_only_setup(job: TrainingJob, negs: Negatives, dev_docs: list[str]) -> MethodSetup:
    """A copy of the base trains as the query side against the base's fixed corpus vectors."""
    from sentence_transformers.base.sampler import BatchSamplers

    from .dev_eval import DevNDCG
    from .losses import FixedDocumentsMNRL

    base, tdata, vectors = job.base, negs.tdata, negs.corpus_vectors
    assert vectors is not None
    row = {d: i for i, d in enumerate(job.dataset.corpus)}
    train_model = copy.deepcopy(base.model)
    for p in base.model.parameters():
        p.requires_grad_(False)
    rows = {"anchor": [job.dataset.queries[q] for q, _ in tdata.pairs],
            "label": [[row[d]] + [row[n] for n in ns] for (_, d), ns in zip(tdata.pairs, negs.lists, strict=True)]}
    loss = FixedDocumentsMNRL(train_model, vectors, base.normalize, gather_across_devices=job.world.size > 1)
    evaluator = DevNDCG({q: job.dataset.queries[q] for q in tdata.dev_qrels}, tdata.dev_qrels, dev_docs, None,
                        vectors[[row[d] for d in dev_docs]], base.query_prompt, base.document_prompt,
                        base.normalize, job.encode.batch_size)
    return MethodSetup(train_model, base.model, rows, loss, evaluator,
                  prompts={"anchor": base.query_prompt} if base.query_prompt else None,
                  sampler=BatchSamplers.BATCH_SAMPLER, preparation=prepare_for_training(train_model, Method.QUERY_ONLY),
                  encodes_images=False)


def shared_towers_setup(job: TrainingJob, negs: Negatives, dev_docs: list[str]) -> MethodSetup:
    """The base model trains (fully, or through LoRA adapters) on queries and documents alike."""
    from sentence_transformers.base.sampler import BatchSamplers, NoDuplicatesBatchSampler

    from .dev_eval import DevNDCG
    from .losses import shared_towers_loss

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
    # with pages, each row is hashed once instead of re-decoding pages at every duplicate check
    sampler = (functools.partial(NoDuplicatesBatchSampler, precompute_hashes=True) if job.n_pages
               else BatchSamplers.NO_DUPLICATES)
    return MethodSetup(base.model, None, rows, loss, evaluator, {c: p for c, p in prompts.items() if p} or None,
                  sampler, prep, encodes_images=job.n_pages > 0)
