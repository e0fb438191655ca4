"""What the Trainer trains on: (query, relevant document) pairs and dev queries from a split's
judgments, and the rows as a `datasets.Dataset` (page columns as image columns).

Knows datasets and documents, not models or the Trainer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import TrainConfig
from ..data import IRDataset
from ..encode import Item, Page
from ..errors import DataError

DEV_METRIC = "ndcg@10"  # model selection: the dev queries' NDCG@10 (ranx's definition, see metrics.py)


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
        if not dev_qids:
            raise DataError(f"{dataset.source}: split '{config.dev_split}' (model selection) has no query with a "
                            "relevant judgment (every grade is 0); fix its judgments, or remove it so that dev "
                            "queries are held out of the train split.")
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


def check_pages(items: Sequence[Item]) -> None:
    """Decode every page among `items` once; a corrupt one raises DataError naming its file."""
    from ..data.images import load_image

    for x in items:
        if isinstance(x, Page):
            load_image(x.path).close()


def training_set(rows: dict[str, list[Any]]) -> Any:
    """A datasets.Dataset of the training rows. Page columns become `datasets.Image` columns of
    file paths, decoded one row at a time while training (PDF pages are rendered to PNG files in
    the cache first). Every training page is decoded once up front, so a corrupt one stops
    training before it starts, with its file named."""
    import datasets as hf_datasets

    from ..data.images import page_file

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
