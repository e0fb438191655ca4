"""Chains the stages: data -> encode -> index -> search -> metrics. The CLI only calls into here."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import EvalConfig, ImageCheck, RunConfig, to_dict
from .data import IRDataset, UnknownIds, load_dataset
from .encode import Encoder
from .gate import Verdict, gate
from .metrics import evaluate as score_run
from .results import TOP_DOCS, EvaluationResult, library_versions
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
    bad_pages: list[str] = []
    if config.images is not ImageCheck.LAZY:
        from .data.images import verify_images

        dataset, bad_pages = verify_images(dataset, skip_bad=config.images is ImageCheck.SKIP)
    qrels = dataset.split(config.split)
    judged = dataset.judged_queries(config.split)
    skipped = dataset.skipped_queries(config.split)
    timings["load_data"] = time.perf_counter() - start

    start = time.perf_counter()
    encoder = model if isinstance(model, Encoder) else Encoder(model, config.encode)
    encoder.fingerprint  # noqa: B018 - computed here so its cost is timed with loading
    timings["load_model"] = time.perf_counter() - start

    embeddings = encoder.encode_corpus(dataset)
    timings["encode_corpus"] = embeddings.seconds

    start = time.perf_counter()
    query_texts = {q: dataset.queries[q] for q in judged}
    vectors = encoder.encode_queries(list(query_texts.values()))
    timings["encode_queries"] = time.perf_counter() - start

    start = time.perf_counter()
    # an approximate index is calibrated on these queries, so its top-k matches exact search's
    retriever = Retriever.from_embeddings(encoder, embeddings, config.index, queries=vectors)
    timings["index"] = time.perf_counter() - start
    if save_index is not None:
        retriever.save(save_index)

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
            "skipped_pages": bad_pages,
        },
        retrieval={"k": config.k, "index": retriever.index.meta["kind"], "index_params": retriever.index.meta["params"],
                   "config": to_dict(config)},
        timings={k: round(v, 4) for k, v in timings.items()},
        cache={"hit": embeddings.cache_hit, "path": embeddings.cache_path},
        queries=query_texts,
        top_docs={q: list(hits)[:TOP_DOCS] for q, hits in run.items()},
    )


@dataclass
class RunReport:
    """What `run` produced: the parts of report.json, and where the files are."""

    base: EvaluationResult
    tuned: EvaluationResult
    guards: dict[str, dict[str, EvaluationResult]]  # name -> {"base": ..., "tuned": ...}
    train: dict[str, Any]
    verdict: Verdict
    out: Path
    config: dict[str, Any] = field(default_factory=dict)
    gallery: list[dict[str, Any]] = field(default_factory=list)  # page corpora: pages retrieved for the worst queries

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.to_dict(),
            "tuned": self.tuned.to_dict(),
            "guards": {name: {side: r.to_dict() for side, r in parts.items()} for name, parts in self.guards.items()},
            "train": self.train,
            "gate": {"passed": self.verdict.passed, "reasons": self.verdict.reasons, "checked": self.verdict.checked},
            "comparisons": {k: c.to_dict() for k, c in self.verdict.comparisons.items()},
            "config": self.config,
            "worst_pages": self.gallery,
            "versions": library_versions(),
        }


def _headline_metric(config: RunConfig) -> str:
    """The metric reports lead with: the gate's first, else the first evaluated."""
    gated = [m for m in config.gate.rules.metrics if m in config.eval.metrics]
    return gated[0] if gated else config.eval.metrics[0]


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
    train_data = dataset
    if config.eval.images is not ImageCheck.LAZY:  # the same page check for training as for evaluation
        from .data.images import verify_images

        train_data, _ = verify_images(dataset, skip_bad=config.eval.images is ImageCheck.SKIP)
    logger.info("base model: evaluating %s on %s (%s)", config.model, dataset.source, config.eval.split)
    base_encoder = Encoder(config.model, config.eval.encode)
    base = evaluate(base_encoder, dataset, config.eval)

    from .train import finetune

    tuned_dir = out / "model"
    trained = finetune(config.model, train_data, config.train, tuned_dir, encode=config.eval.encode, resume=resume,
                       unknown_ids=config.unknown_ids)
    tuned_encoder = Encoder(str(tuned_dir), config.eval.encode)
    tuned = evaluate(tuned_encoder, dataset, config.eval, save_index=out / "index")

    guards: dict[str, dict[str, EvaluationResult]] = {}
    for guard in config.guards:
        guard_data = load_dataset(guard.data, config.unknown_ids)
        guard_eval = replace(config.eval, split=guard.split)
        guards[guard.name] = {"base": evaluate(base_encoder, guard_data, guard_eval),
                              "tuned": evaluate(tuned_encoder, guard_data, guard_eval)}
    verdict = gate(base, tuned, config.gate, {n: (g["base"], g["tuned"]) for n, g in guards.items()},
                   also_compare=config.eval.metrics)

    stamp = trained.stamp
    train_info = {
        "method": trained.method, "seconds": round(trained.train_seconds, 2), "peak_memory_mb": round(trained.peak_memory_mb, 1),
        "trainable_params": trained.trainable_params, "total_params": trained.total_params,
        "artifact_bytes": trained.artifact_bytes, "artifact": str(trained.artifact), "best_dev_ndcg@10": trained.best_dev_ndcg,
        "dev": stamp["data"]["dev"], "pairs": stamp["data"]["pairs"], "steps": stamp["steps"],
        "learning_rate": stamp["learning_rate"],
    }
    from .report import page_gallery, write_run_report

    report = RunReport(base=base, tuned=tuned, guards=guards, train=train_info, verdict=verdict, out=out,
                       config=to_dict(config), gallery=page_gallery(dataset, base, tuned, _headline_metric(config)))

    write_run_report(report, out)
    return report
