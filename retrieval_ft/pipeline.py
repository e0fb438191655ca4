"""Chains the stages: data -> encode -> index -> search -> metrics. The CLI only calls into here."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .config import EvalConfig, to_dict
from .data import IRDataset, UnknownIds, load_dataset
from .encode import Encoder
from .metrics import evaluate as score_run
from .results import EvaluationResult
from .search import Retriever

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)


def evaluate(
    model: Encoder | SentenceTransformer | str,
    data: IRDataset | str | Path,
    config: EvalConfig | None = None,
    *,
    unknown_ids: UnknownIds | str = UnknownIds.ERROR,
    save_run: str | Path | None = None,
    save_index: str | Path | None = None,
) -> EvaluationResult:
    """Evaluate an encoder on a dataset split: encode the corpus (or reuse cached vectors), index it,
    retrieve the top `k` for each judged query and score the run with ranx."""
    config = config or EvalConfig()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    start = time.perf_counter()
    dataset = data if isinstance(data, IRDataset) else load_dataset(data, unknown_ids)
    qrels = dataset.split(config.split)
    judged = dataset.judged_queries(config.split)
    skipped = dataset.skipped_queries(config.split)
    timings["load_data"] = time.perf_counter() - start

    start = time.perf_counter()
    encoder = model if isinstance(model, Encoder) else Encoder(model, config.encode)
    encoder.fingerprint  # noqa: B018 - computed here so its cost is timed with loading
    timings["load_model"] = time.perf_counter() - start

    embeddings = encoder.encode_corpus(dataset.corpus)
    timings["encode_corpus"] = embeddings.seconds

    start = time.perf_counter()
    retriever = Retriever.from_embeddings(encoder, embeddings, config.index)
    timings["index"] = time.perf_counter() - start
    if save_index is not None:
        retriever.save(save_index)

    start = time.perf_counter()
    query_texts = {q: dataset.queries[q] for q in judged}
    vectors = encoder.encode_queries(list(query_texts.values()))
    timings["encode_queries"] = time.perf_counter() - start
    start = time.perf_counter()
    run = {q: dict(hits) for q, hits in zip(query_texts, retriever.index.search(vectors, config.k), strict=True)}
    timings["search"] = time.perf_counter() - start

    start = time.perf_counter()
    scores = score_run(qrels, run, config.metrics)
    timings["metrics"] = time.perf_counter() - start
    if save_run is not None:
        from .report import write_trec_run

        write_trec_run(save_run, run, tag=encoder.name)
    timings["total"] = time.perf_counter() - t0

    return EvaluationResult(
        metrics=scores.mean,
        per_query=scores.per_query,
        model=encoder.describe(),
        dataset={
            "path": dataset.source,
            "split": config.split,
            "fingerprint": dataset.fingerprint(config.split),
            "n_docs": len(dataset.corpus),
            "n_queries_judged": len(judged),
            "n_queries_skipped": len(skipped),
            "skipped_query_ids": skipped,
            "dropped_judgments": dataset.dropped_judgments,
        },
        retrieval={"k": config.k, "index": retriever.index.meta["kind"], "index_params": retriever.index.meta["params"],
                   "config": to_dict(config)},
        timings={k: round(v, 4) for k, v in timings.items()},
        cache={"hit": embeddings.cache_hit, "path": embeddings.cache_path},
        queries=query_texts,
    )
