"""Batching for in-batch negatives: the per-query sampler (one pair per query per batch, no query
starved), the auto choice, and the step checks before and after training."""

from __future__ import annotations

import logging
import math
from collections import Counter

import pytest

from retrieval_ft.config import Batching, EncodeConfig, TrainConfig
from retrieval_ft.errors import DataError
from retrieval_ft.train import finetune
from retrieval_ft.train.sampling import (
    PerQueryBatchSampler,
    check_steps,
    plan_batches,
    resolve_batching,
    steps_per_epoch,
)

from .conftest import write_beir


def _rows(counts: list[int]) -> tuple[list[str], list[frozenset[str]]]:
    groups = [f"q{g}" for g, c in enumerate(counts) for _ in range(c)]
    values = [frozenset({g, f"{g}-doc{i}"}) for i, g in enumerate(groups)]
    return groups, values


def _check_batches(batches: list[list[int]], groups: list[str], values: list[frozenset[str]]) -> None:
    for batch in batches:
        assert len({groups[i] for i in batch}) == len(batch)  # one pair per query
        seen = [v for i in batch for v in values[i]]
        assert len(seen) == len(set(seen))  # no text twice


@pytest.mark.parametrize("counts,batch_size", [([15] * 36, 32), ([10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 1], 4),
                                                ([3] * 5 + [1] * 40, 8)])
def test_per_query_plan_forms_the_batches_the_pairs_call_for(counts, batch_size):
    """36 queries with 15 relevant documents each: every batch takes 32 different queries, and the
    epoch has ceil(540 / 32) batches (no-duplicates on such data used to form a fraction of them)."""
    groups, values = _rows(counts)
    batches = plan_batches(groups, values, batch_size, drop_last=False, seed=3)
    _check_batches(batches, groups, values)
    assert sorted(i for b in batches for i in b) == list(range(len(groups)))  # every pair once
    # the fewest batches possible: a query's pairs need as many batches as it has pairs
    assert len(batches) == max(max(counts), math.ceil(len(groups) / batch_size))
    assert all(len(b) == batch_size for b in batches[:-1])


def test_fewer_queries_than_the_batch_size_form_batches_of_every_query():
    groups, values = _rows([4, 4, 4])
    batches = plan_batches(groups, values, 8, drop_last=False, seed=0)
    assert [len(b) for b in batches] == [3, 3, 3, 3]
    _check_batches(batches, groups, values)


def test_a_shared_positive_text_never_meets_itself_and_drop_last_keeps_full_batches():
    groups = ["a", "a", "b", "b", "c", "c", "d", "d"]
    docs = ["x", "y", "x", "z", "w", "v", "u", "x"]  # x is relevant to a, b and d
    values = [frozenset({g, d}) for g, d in zip(groups, docs, strict=True)]
    for seed in range(5):
        batches = plan_batches(groups, values, 2, drop_last=True, seed=seed)
        _check_batches(batches, groups, values)
        assert all(len(b) == 2 for b in batches)


def test_plans_follow_the_seed():
    groups, values = _rows([5, 4, 3, 2, 2, 1])
    assert plan_batches(groups, values, 3, False, 1) == plan_batches(groups, values, 3, False, 1)
    assert plan_batches(groups, values, 3, False, 1) != plan_batches(groups, values, 3, False, 2)


def _dataset(counts: list[int]):
    import datasets

    groups, _ = _rows(counts)
    return datasets.Dataset.from_dict({"anchor": [f"text of {g}" for g in groups],
                                       "positive": [f"doc {i}" for i in range(len(groups))]})


def test_sampler_under_the_trainer_contract_and_shared_by_two_processes():
    """Built as the Trainer builds a batch_sampler class; two processes (accelerate's sharding) take
    alternate full batches, each epoch its own seeded plan."""
    import torch
    from accelerate.data_loader import BatchSamplerShard

    data = _dataset([6] * 10)
    kwargs = dict(batch_size=4, drop_last=True, valid_label_columns=["label", "score"], generator=torch.Generator(),
                  seed=7)
    sampler = PerQueryBatchSampler(data, **kwargs)
    first = list(sampler)
    assert len(first) == len(sampler) == 15 and all(len(b) == 4 for b in first)
    shards = [BatchSamplerShard(PerQueryBatchSampler(data, **kwargs), 2, rank) for rank in (0, 1)]
    parts = [list(s) for s in shards]
    assert [len(p) for p in parts] == [len(s) for s in shards] == [7, 7]
    assert parts[0] == first[0:14:2] and parts[1] == first[1:14:2]
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_auto_batching_follows_pairs_per_query():
    assert resolve_batching(Batching.AUTO, [("q1", "a"), ("q1", "b"), ("q2", "c"), ("q2", "d")]) is Batching.PER_QUERY
    assert resolve_batching(Batching.AUTO, [("q1", "a"), ("q2", "b"), ("q3", "c")]) is Batching.NO_DUPLICATES
    assert resolve_batching(Batching.NO_DUPLICATES, [("q1", "a"), ("q1", "b")]) is Batching.NO_DUPLICATES


class OneBatch:
    """A sampler that advertises a batch per batch_size rows but forms one (as no-duplicates did on
    few queries with many relevant documents)."""

    def __init__(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
        self.n, self.batch_size = len(dataset), batch_size

    def __len__(self):
        return self.n // self.batch_size

    def __iter__(self):
        yield list(range(self.batch_size))


def test_a_sampler_that_cannot_form_its_batches_is_refused_before_training(caplog):
    config = TrainConfig(batch_size=4)
    with pytest.raises(DataError, match=r"forms 1 batch\(es\) per epoch .* --batching per-query"):
        steps_per_epoch(config, 1, _dataset([6] * 4), OneBatch)
    with caplog.at_level(logging.WARNING):
        assert steps_per_epoch(TrainConfig(batch_size=8), 1, _dataset([4, 4, 4]), PerQueryBatchSampler) == 4
    assert "3 training queries for batch size 8" in caplog.text


class CountedBatches:
    """A sampler that forms every batch it advertises and counts those drawn from it."""

    drawn = 0

    def __init__(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
        self.n, self.batch_size = len(dataset), batch_size

    def __len__(self):
        return self.n // self.batch_size

    def __iter__(self):
        for i in range(len(self)):
            CountedBatches.drawn += 1
            yield list(range(i * self.batch_size, (i + 1) * self.batch_size))


def test_a_run_of_max_steps_forms_only_the_batches_it_takes():
    """The dry pass stops once the run's steps have their batches: 3 of an epoch's 30 here (a short
    run on a large collection paid a pass over every row); without max_steps it forms the epoch."""
    data = _dataset([1] * 120)
    CountedBatches.drawn = 0
    assert steps_per_epoch(TrainConfig(batch_size=4, max_steps=3), 1, data, CountedBatches) == 30
    assert CountedBatches.drawn == 3
    CountedBatches.drawn = 0
    assert steps_per_epoch(TrainConfig(batch_size=4), 1, data, CountedBatches) == 30
    assert CountedBatches.drawn == 30
    # two processes: 3 steps take 6 batches
    CountedBatches.drawn = 0
    assert steps_per_epoch(TrainConfig(batch_size=4, max_steps=3), 2, data, CountedBatches) == 15
    assert CountedBatches.drawn == 6


def test_a_run_of_max_steps_the_sampler_cannot_form_is_still_refused():
    with pytest.raises(DataError, match=r"forms 1 batch\(es\) per epoch"):
        steps_per_epoch(TrainConfig(batch_size=4, max_steps=5), 1, _dataset([6] * 4), OneBatch)


def test_steps_short_of_the_plan_are_loud():
    check_steps(10, 10)
    with pytest.raises(DataError, match="took 1 of its 14 planned steps"):
        check_steps(1, 14)


def test_short_steps_warn(caplog):
    with caplog.at_level(logging.WARNING):
        check_steps(5, 14)
    assert "WARNING: training took 5 of its 14 planned steps" in caplog.text


def test_per_query_training_takes_one_step_per_batch(tiny_model_path, tmp_path):
    """Four training queries with four relevant documents each, batch size 8: an epoch is four
    batches of one pair per query (no-duplicates advertised two and trained half the pairs)."""
    data = write_beir(tmp_path / "beir", n_docs=40)
    config = TrainConfig(method="full", batch_size=8, epochs=1, evals_per_epoch=1, warmup_ratio=0.0, lr=1e-3)
    result = finetune(str(tiny_model_path), data, config, tmp_path / "out", encode=EncodeConfig(progress=False))
    assert result.stamp.data.pairs == 16 and result.stamp.steps == 4
    assert Counter(h["step"] for h in result.history) == {4: 1}


def test_every_epoch_forms_the_batches_the_first_did():
    """Queries sharing documents make some seeds' plans shorter; the Trainer schedules max_steps by
    the first epoch's length, so a shorter later epoch would end training early (2 processes trained
    3 of 4 steps): each epoch forms exactly the first's count, and its batches still hold one pair
    per query and no text twice."""
    import datasets
    import torch

    groups = [f"q{i % 5}" for i in range(30)]
    shared = [f"doc {i % 7}" for i in range(30)]  # documents judged for several queries
    data = datasets.Dataset.from_dict({"anchor": groups, "positive": shared})
    sampler = PerQueryBatchSampler(data, batch_size=4, drop_last=True, valid_label_columns=["label", "score"],
                                   generator=torch.Generator(), seed=0)
    lengths = {len(plan_batches(groups, [frozenset(r) for r in zip(groups, shared, strict=True)], 4, True, s))
               for s in range(40)}
    assert len(lengths) > 1  # the plans really differ in length from seed to seed
    first = len(sampler)
    for epoch in range(12):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == first
        for b in batches:
            assert len({groups[i] for i in b}) == len(b) and len({shared[i] for i in b}) == len(b)
