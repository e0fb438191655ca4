"""How training pairs are batched and whether the batches the schedule counts on can be formed:
the per-query batch sampler (one pair per query per batch, in rounds that starve no query), the
batching choice, and the checks before and after training.

Knows rows and the sentence-transformers Trainer's batch-sampler contract, not models or losses.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

from sentence_transformers.base.sampler import DefaultBatchSampler

from ..config import Batching, TrainConfig
from ..errors import DataError

logger = logging.getLogger(__name__)

# a dry pass of a sampler that reads rows (no-duplicates) costs a row read each; above this, trust its length
DRY_PASS_MAX_ROWS = 50_000
BATCHING_FIX = "use --batching per-query (one pair per query per batch) or a smaller --batch-size"


def resolve_batching(batching: Batching, pairs: Sequence[tuple[str, str]]) -> Batching:
    """`auto` is per-query where training queries have 2 or more pairs on average, else no-duplicates."""
    if batching is not Batching.AUTO:
        return batching
    queries = len({q for q, _ in pairs})
    return Batching.PER_QUERY if queries and len(pairs) / queries >= 2 else Batching.NO_DUPLICATES


def plan_batches(groups: Sequence[Hashable], values: Sequence[frozenset[Hashable]], batch_size: int,
                 drop_last: bool, seed: int) -> list[list[int]]:
    """Row indices per batch: each batch takes at most one row per group (query) and no two rows
    sharing a value (a text), drawing first from the groups with the most rows left (ties in seeded
    random order, a group just drawn behind those not drawn yet), so a query with many pairs is
    spread over the epoch instead of left for its end. With at least `batch_size` groups that forms
    about ceil(rows / batch_size) batches; with fewer, batches of every group that has rows left.
    `drop_last` drops batches smaller than the full size (min(batch_size, groups))."""
    rng = random.Random(seed)
    rows: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        rows.setdefault(g, []).append(i)
    for r in rows.values():
        rng.shuffle(r)
    order = list(rows)
    rng.shuffle(order)
    buckets: dict[int, deque[Hashable]] = {}
    for g in order:
        buckets.setdefault(len(rows[g]), deque()).append(g)
    full = min(batch_size, len(rows))
    batches = []
    while buckets:
        batch = _one_batch(buckets, rows, values, full)
        if not batch:
            break
        if len(batch) == full or not drop_last:
            batches.append(batch)
    return batches


def _one_batch(buckets: dict[int, deque[Hashable]], rows: dict[Hashable, list[int]],
               values: Sequence[frozenset[Hashable]], size: int) -> list[int]:
    """One batch drawn from the fullest buckets down; the drawn groups move one bucket lower."""
    batch: list[int] = []
    taken: set[Hashable] = set()
    drawn: list[Hashable] = []
    for count in sorted(buckets, reverse=True):
        bucket, skipped = buckets[count], []
        while bucket and len(batch) < size:
            g = bucket.popleft()
            pick = next((i for i in rows[g] if taken.isdisjoint(values[i])), None)
            if pick is None:
                skipped.append(g)
                continue
            rows[g].remove(pick)
            batch.append(pick)
            taken.update(values[pick])
            drawn.append(g)
        bucket.extendleft(reversed(skipped))
        if not bucket:
            del buckets[count]
        if len(batch) == size:
            break
    for g in drawn:
        if rows[g]:
            buckets.setdefault(len(rows[g]), deque()).append(g)
    return batch


def _value_key(value: Any) -> Hashable:
    """A row value as a hashable key: a text itself, an image by its file (never decoded)."""
    if isinstance(value, dict):
        return value.get("path") or hash(value.get("bytes"))
    return value if isinstance(value, Hashable) else repr(value)


class PerQueryBatchSampler(DefaultBatchSampler):
    """`plan_batches` as a sentence-transformers batch sampler (pass the class as `batch_sampler`):
    rows are grouped by their first column (the query text), and no text appears twice in a batch.
    Every epoch forms as many batches as the first, the count the Trainer schedules by (a later
    epoch's plan can come out shorter where texts are shared between queries: it is drawn again with
    other seeds, then topped up with its own first batches; a longer one loses its last). `batch_size`
    is the full size it forms, min(batch size, queries), so that several processes keep their equal
    batches."""

    REPLANS = 8  # seeds tried for an epoch whose plan comes out shorter than the first

    def __init__(self, dataset: Any, batch_size: int, drop_last: bool, valid_label_columns: list[str] | None = None,
                 generator: Any = None, seed: int = 0) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        columns = [c for c in dataset.column_names if c not in set(valid_label_columns or [])]
        # columns as Arrow stores them: images stay undecoded (their path or bytes)
        table = dataset.with_format("arrow")
        data = [[_value_key(v) for v in table[c].to_pylist()] for c in columns]
        self.groups = data[0]
        self.values = [frozenset(row) for row in zip(*data, strict=True)]
        self.queries = len(set(self.groups))
        self.batch_size = min(batch_size, self.queries)
        self._plans: dict[int, list[list[int]]] = {}
        self._length: int | None = None  # batches per epoch, fixed by the first epoch's plan

    def _draw(self, epoch: int, attempt: int = 0) -> list[list[int]]:
        return plan_batches(self.groups, self.values, self.batch_size, self.drop_last,
                            self.seed + epoch + 1_000_003 * attempt)

    def _plan(self) -> list[list[int]]:
        if self.epoch in self._plans:
            return self._plans[self.epoch]
        if self._length is None:
            self._length = len(self._draw(0))
        plan = self._draw(self.epoch)
        for attempt in range(1, self.REPLANS):
            if len(plan) >= self._length:
                break
            plan = max(plan, self._draw(self.epoch, attempt), key=len)
        if plan:  # topped up with its own batches where still short, its last dropped where longer
            plan = list(itertools.islice(itertools.cycle(plan), self._length))
        self._plans = {self.epoch: plan}
        return self._plans[self.epoch]

    def __iter__(self) -> Iterator[list[int]]:
        yield from (list(b) for b in self._plan())

    def __len__(self) -> int:
        return len(self._plan())


def shared_towers_sampler(batching: Batching, pages: bool) -> Any:
    """The `batch_sampler` for in-batch-negative losses: per-query, or sentence-transformers'
    no-duplicates (with pages, each row hashed once instead of re-decoding pages at every check)."""
    import functools

    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    if batching is Batching.PER_QUERY:
        return PerQueryBatchSampler
    return functools.partial(NoDuplicatesBatchSampler, precompute_hashes=True) if pages else NoDuplicatesBatchSampler


def _sampler_batches(sampler: Any, dataset: Any, batch_size: int, drop_last: bool, seed: int,
                     enough: int | None = None) -> tuple[int, int, int]:
    """(batches a pass forms, batches the sampler advertises, its full batch size): built as the
    Trainer builds it; a dry pass where it is cheap (rows read without decoding pages), which stops
    once `enough` batches are formed (a run of that many steps needs no more)."""
    import torch
    from sentence_transformers.base.sampler import BatchSamplers

    n = len(dataset)
    if sampler == BatchSamplers.BATCH_SAMPLER:  # plain batches: the count is arithmetic
        count = n // batch_size if drop_last else math.ceil(n / batch_size)
        return count, count, batch_size
    instance = sampler(dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=["label", "score"],
                       generator=torch.Generator(), seed=seed)
    advertised = len(instance)
    # the per-query sampler's length is its plan's; a large or page-hashing pass is not cheap: trusted
    if isinstance(instance, PerQueryBatchSampler) or n > DRY_PASS_MAX_ROWS or getattr(instance, "precompute_hashes", False):
        return advertised, advertised, instance.batch_size
    formed = sum(1 for _ in itertools.islice(instance, enough))
    return formed, advertised, instance.batch_size


def steps_per_epoch(config: TrainConfig, world_size: int, dataset: Any, sampler: Any) -> int:
    """Optimizer steps one epoch takes with `sampler` (several processes share its batches), checked
    before training: a sampler that cannot form the batches the pairs call for says so loudly, and
    one that would train a single step where the pairs call for more is an error. A run of
    `max_steps` that the sampler's first pass covers is not checked beyond those steps."""
    drop_last = world_size > 1  # as the Trainer's arguments (see trainer._training_arguments)
    enough = config.max_steps * world_size if config.max_steps else None
    formed, advertised, full = _sampler_batches(sampler, dataset, config.batch_size, drop_last, config.seed, enough)
    n_rows = len(dataset)
    wanted = max(1, math.ceil(n_rows / (config.batch_size * world_size)))
    taken, promised = formed // world_size, advertised // world_size
    if isinstance(sampler, type) and issubclass(sampler, PerQueryBatchSampler) and full < config.batch_size:
        logger.warning("per-query batching: %d training queries for batch size %d, so each batch holds one pair of "
                       "every query with pairs left (%d at most): %d batches per epoch for %d pairs.",
                       full, config.batch_size, full, formed, n_rows)
    elif enough is not None and formed >= enough:  # every step the run takes has its batch
        return max(1, promised)
    elif taken < wanted:
        logger.warning("WARNING: the batch sampler forms %d batches per epoch (%d per process) where %d training pairs "
                       "call for %d steps: few queries with many relevant documents leave it too few distinct "
                       "queries per batch; %s.", formed, taken, n_rows, wanted, BATCHING_FIX)
    if taken < promised:
        logger.warning("WARNING: the batch sampler advertises %d steps per epoch but forms %d: training will stop "
                       "short of its schedule; %s.", promised, taken, BATCHING_FIX)
    if taken <= 1 < wanted:
        raise DataError(f"the batch sampler forms {formed} batch(es) per epoch ({taken} step(s) over {world_size} "
                        f"process(es)) from {n_rows} training pairs that call for {wanted}: training would take "
                        f"{taken} step(s) per epoch; {BATCHING_FIX}.")
    return max(1, promised)


def check_steps(taken: int, planned: int) -> None:
    """After training: fewer steps than planned is a loud warning, a single one (of more) an error."""
    if taken >= planned:
        return
    message = (f"training took {taken} of its {planned} planned steps: the batch sampler could not form the batches "
               f"it planned (few queries with many relevant documents); {BATCHING_FIX}.")
    if taken <= 1:
        raise DataError(message)
    logger.warning("WARNING: %s", message)

