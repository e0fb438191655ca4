"""Chains the stages: data -> encode -> index -> search -> metrics (`evaluate`), tune -> evaluate ->
guard sets (`tune_and_evaluate`, the one chain `run`, `bench` and the eval scripts share), and the
`run` job. The CLI only calls into here."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .config import EvalConfig, ImageCheck, RunConfig, TrainConfig, to_dict
from .data import IRDataset, UnknownIds, load_dataset
from .encode import Encoder
from .errors import DataError
from .gate import gate
from .metrics import evaluate_run
from .results import TOP_DOCS, EvaluationResult, RunReport, TrainSummary
from .search import Retriever

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .train import TrainResult

logger = logging.getLogger(__name__)
Rankings = dict[str, dict[str, float]]  # query id -> document id -> score


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - start


def _checked_pages(dataset: IRDataset, images: ImageCheck) -> tuple[IRDataset, list[str]]:
    """The dataset with its page images checked as `images` says, and the pages dropped."""
    if images is ImageCheck.LAZY:
        return dataset, []
    from .data.images import verify_images

    return verify_images(dataset, skip_bad=images is ImageCheck.SKIP)


def evaluate_guards(encoder: Encoder, guards: Mapping[str, tuple[IRDataset, str]], config: EvalConfig,
                    who: str) -> dict[str, EvaluationResult]:
    """`encoder` (the base or the tuned model, `who`) on every guard set, name -> (dataset, split)."""
    results = {}
    for name, (data, split) in guards.items():
        logger.info("guard set %s: evaluating the %s on %s (%s)", name, who, data.source, split)
        results[name] = evaluate(encoder, data, replace(config, split=split))
    return results


def _evaluation_data(data: IRDataset | str | Path, config: EvalConfig,
                     unknown_ids: UnknownIds | str) -> tuple[IRDataset, list[str]]:
    """The dataset (its pages checked as `config.images` says) and the pages dropped; refused when
    the split has no query with a relevant judgment, before anything is encoded."""
    dataset = data if isinstance(data, IRDataset) else load_dataset(data, unknown_ids)
    dataset, bad_pages = _checked_pages(dataset, config.images)
    if not dataset.judged_queries(config.split):
        raise DataError(f"{dataset.source}: split {config.split!r} has no query with a relevant judgment (every "
                        "grade is 0 or below), so no metric can be computed; judge at least one document relevant "
                        "(grade 1 or more) or evaluate another split.")
    return dataset, bad_pages


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
    retrieve the top `k` for each judged query and score the rankings with ranx. `save_run` writes
    them as a TREC run file."""
    config = config or EvalConfig()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with _timed(timings, "load_data"):
        dataset, bad_pages = _evaluation_data(data, config, unknown_ids)
    with _timed(timings, "load_model"):
        encoder = model if isinstance(model, Encoder) else Encoder(model, config.encode)
        encoder.fingerprint  # noqa: B018 - computed here so its cost is timed with loading
    embeddings = encoder.encode_corpus(dataset)
    timings["encode_corpus"] = embeddings.seconds
    with _timed(timings, "encode_queries"):
        query_texts = {q: dataset.queries[q] for q in dataset.judged_queries(config.split)}
        vectors = encoder.encode_queries(list(query_texts.values()))
    with _timed(timings, "index"):
        # an approximate index is calibrated on these queries, so its top-k matches exact search's
        retriever = Retriever.from_embeddings(encoder, embeddings, config.index, queries=vectors)
    if save_index is not None:
        retriever.save(save_index)
    with _timed(timings, "search"):
        hits = retriever.index.search(vectors, config.k)
        rankings: Rankings = {q: dict(found) for q, found in zip(query_texts, hits, strict=True)}
    with _timed(timings, "metrics"):
        scores = evaluate_run(dataset.split(config.split), rankings, config.metrics)
    if save_run is not None:
        from .report import write_trec_run

        write_trec_run(save_run, rankings, tag=encoder.name)
    timings["total"] = time.perf_counter() - t0
    return EvaluationResult(
        metrics=scores.mean, per_query=scores.per_query, model=encoder.describe(),
        dataset=_dataset_info(dataset, config.split, bad_pages),
        retrieval={"k": config.k, "index": retriever.index.meta["kind"], "index_params": retriever.index.meta["params"],
                   "config": to_dict(config)},
        timings={k: round(v, 4) for k, v in timings.items()},
        cache={"hit": embeddings.cache_hit, "path": embeddings.cache_path},
        queries=query_texts,
        top_docs={q: list(found)[:TOP_DOCS] for q, found in rankings.items()},
    )


def _dataset_info(dataset: IRDataset, split: str, bad_pages: list[str]) -> dict[str, object]:
    skipped = dataset.skipped_queries(split)
    return {
        "path": dataset.source,
        "split": split,
        "fingerprint": dataset.fingerprint(split),
        "n_docs": len(dataset.corpus),
        "n_queries_judged": len(dataset.judged_queries(split)),
        "n_queries_skipped": len(skipped),
        "skipped_query_ids": skipped,
        "dropped_judgments": dataset.dropped_judgments,
        "skipped_pages": bad_pages,
    }


@dataclass
class TunedEvaluation:
    """What `tune_and_evaluate` produced: the training record, the tuned encoder's result on the
    dataset and on each guard set, and the encoder itself (to evaluate it further)."""

    trained: TrainResult
    result: EvaluationResult
    guards: dict[str, EvaluationResult]
    encoder: Encoder


def tune_and_evaluate(model: str, dataset: IRDataset, train_config: TrainConfig, out: str | Path,
                      eval_config: EvalConfig, guards: Mapping[str, tuple[IRDataset, str]] | None = None, *,
                      train_data: IRDataset | None = None, resume: bool = False,
                      unknown_ids: UnknownIds | str = UnknownIds.ERROR,
                      save_index: str | Path | None = None) -> TunedEvaluation:
    """The chain tune -> evaluate -> guard sets: fine-tune `model` on `train_data` (default: `dataset`)
    into `out`, evaluate the tuned encoder on `dataset` with `eval_config` (saving its index to
    `save_index`), then on every guard set, name -> (dataset, split)."""
    from .train import finetune

    logger.info("tuning: %s with %s into %s", model, train_config.method.value, out)
    trained = finetune(model, train_data or dataset, train_config, out, encode=eval_config.encode, resume=resume,
                       unknown_ids=unknown_ids)
    logger.info("tuned model: trained in %.0f s; evaluating on %s (%s)", trained.train_seconds, dataset.source,
                eval_config.split)
    encoder = Encoder(str(trained.artifact), eval_config.encode)
    result = evaluate(encoder, dataset, eval_config, save_index=save_index)
    guard_results = evaluate_guards(encoder, guards or {}, eval_config, "tuned model")
    return TunedEvaluation(trained=trained, result=result, guards=guard_results, encoder=encoder)


def generated_inputs(data: str, model: str, out: Path) -> tuple[Path, str]:
    """(dataset path, model) with generated stand-ins (`data: demo | demo-pages`,
    `model: tiny-clip`) written into `out` on first use and reused afterwards."""
    if data == "demo":
        from .data.demo import write_demo

        data_path = out / "demo-data"
        if not (data_path / "dataset.yaml").is_file():
            write_demo(data_path)
    elif data == "demo-pages":
        from .data.demo_pages import write_demo_pages

        data_path = out / "demo-pages"
        if not (data_path / "corpus.jsonl").is_file():
            logger.info("generating the demo pages into %s", data_path)
            write_demo_pages(data_path)
    else:
        data_path = Path(data)
    if model == "tiny-clip":
        from .tiny_clip import build_tiny_clip

        model = str(out / "tiny-clip")
        if not (out / "tiny-clip" / "modules.json").is_file():
            logger.info("building an untrained tiny CLIP encoder in %s", model)
            build_tiny_clip(model)
    return data_path, model


def run(config: RunConfig, *, resume: bool = False) -> RunReport:
    """Evaluate the base encoder, fine-tune it, evaluate the tuned one on the same split and on every
    guard set, gate the comparison, and write report.json / report.md / report.html into config.out."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    data_path, model = generated_inputs(config.data, config.model, out)
    config = replace(config, model=model)
    dataset = load_dataset(data_path, config.unknown_ids)
    train_data, _ = _checked_pages(dataset, config.eval.images)  # the same page check as evaluation's
    guard_sets = {g.name: (load_dataset(g.data, config.unknown_ids), g.split) for g in config.guards}
    logger.info("base model: evaluating %s on %s (%s)", config.model, dataset.source, config.eval.split)
    base_encoder = Encoder(config.model, config.eval.encode)
    base = evaluate(base_encoder, dataset, config.eval)
    headline = config.headline_metric
    logger.info("base model: %s %.4f", headline, base.metrics[headline])
    base_guards = evaluate_guards(base_encoder, guard_sets, config.eval, "base model")

    tuned = tune_and_evaluate(config.model, dataset, config.training, out / "model", config.eval, guard_sets,
                              train_data=train_data, resume=resume, unknown_ids=config.unknown_ids,
                              save_index=out / "index")
    logger.info("tuned model: %s %.4f (base %.4f)", headline, tuned.result.metrics[headline], base.metrics[headline])
    logger.info("gate: comparing base and tuned on %s", ", ".join(["main", *guard_sets]))
    verdict = gate(base, tuned.result, config.gate, {n: (base_guards[n], tuned.guards[n]) for n in guard_sets},
                   also_compare=config.eval.metrics)

    from .report import page_gallery, write_run_report

    report = RunReport(base=base, tuned=tuned.result,
                       guards={n: {"base": base_guards[n], "tuned": tuned.guards[n]} for n in guard_sets},
                       train=TrainSummary.from_trained(tuned.trained), verdict=verdict, out=out,
                       config=to_dict(config),
                       gallery=page_gallery(dataset, base, tuned.result, headline))
    write_run_report(report, out)
    logger.info("report: %s written (gate %s)", out / "report.html", "passed" if verdict.passed else "FAILED")
    return report
