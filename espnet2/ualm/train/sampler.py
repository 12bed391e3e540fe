"""Batch samplers over a blend: packed rows or length buckets.

Both are ESPnet ``AbsSampler``s: ``generate(seed)`` returns the batches of one
epoch as tuples of string keys, a pure function of ``seed``.
``SequenceIterFactory.build_iter(epoch)`` calls ``generate(epoch + seed)``, so
passing the sampler object itself (not ``list(sampler)``) gives every epoch
its own blend draw and packing; with ``shuffle=True`` the factory reshuffles
the batch order with the same seed, which is harmless.

``pack``: the epoch's examples are packed into rows of at most
``max_tokens_per_row`` LM positions by best-fit decreasing; a row's key is
its example keys joined by ``ROW_SEP`` (see ``split_row_key``); the
collate function lays the examples of a row side by side with position ids
restarting per example (``espnet2.ualm.model.batch.collate_sequences``).
Rows are shuffled and grouped into batches of ``rows_per_batch``.

``bucket``: one example per row; examples sorted by length are cut into
batches whose padded size (rows x longest) fits ``batch_tokens``.

Distributed training: every batch holds a multiple of ``world_size`` rows,
so ``batch[rank::world_size]`` (ESPnet's ``build_sequence_iter_factory``,
``shard_batches`` and ``RankSampler`` here) gives each rank the same number
of rows in every step. The short last batch of a data-defined epoch is
topped up to a multiple of ``world_size`` with rows repeated from the
epoch's first batch (``drop_last=False``) or dropped (``drop_last=True``).

Examples longer than the row (pack) or than ``batch_tokens / world_size``
(bucket) can never be batched: they are rejected once at construction, with
a warning counting them, and listed in ``sampler.rejected_keys``.
"""

import logging
from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from espnet2.samplers.abs_sampler import AbsSampler
from espnet2.speechlm.dataloader.batch import batchfy_bucket
from espnet2.ualm.train.blend import Blend, EpochDraw, epoch_rng, split_key

# Joins the example keys of a packed row. Ids never contain white space
# (doc/data_layout.md), so " + " cannot occur inside a key.
ROW_SEP = " + "

Batch = Tuple[str, ...]


def join_row_key(keys: Sequence[str]) -> str:
    """Key of a packed row holding ``keys`` in order."""
    if not keys:
        raise ValueError("a row needs at least one example")
    for key in keys:
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"example key empty or with white space: {key!r}")
    return ROW_SEP.join(keys)


def split_row_key(row_key: str) -> List[str]:
    """Example keys of a row key (a bucket row key is a single example key)."""
    keys = row_key.split(ROW_SEP)
    for key in keys:
        split_key(key)  # raises on anything that is not "<manifest>/<id>"
    return keys


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> List[List[int]]:
    """Packs items into bins of ``capacity``: indices of ``lengths`` per bin.

    Longest first, each into the open bin it fills most tightly. Open bins
    are indexed by free space (a sorted list of free amounts), so one item
    costs a bisection instead of a scan over all open bins: O(n log n)
    overall. ESPnet-SpeechLM's ``batchfy_pack`` does the same packing with a
    scan (O(n x open bins), minutes for a million examples) and closes bins
    at 99 % full, so it is not reused here; bench/bench_packing.py compares.
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if len(lengths) == 0:
        return []
    if lengths.max() > capacity or lengths.min() <= 0:
        raise ValueError(f"item lengths must lie in [1, {capacity}]")
    order = np.argsort(-lengths, kind="stable")
    smallest = int(lengths.min())
    bins: List[List[int]] = []
    open_by_free: Dict[int, List[int]] = {}
    free_levels: List[int] = []  # sorted free amounts that have an open bin
    for i, n in zip(order.tolist(), lengths[order].tolist()):
        j = bisect_left(free_levels, n)
        if j < len(free_levels):
            free = free_levels[j]
            stack = open_by_free[free]
            b = stack.pop()
            if not stack:
                del open_by_free[free]
                del free_levels[j]
        else:
            b, free = len(bins), capacity
            bins.append([])
        bins[b].append(i)
        free -= n
        if free >= smallest:  # otherwise nothing left can fit: close it
            if free in open_by_free:
                open_by_free[free].append(b)
            else:
                open_by_free[free] = [b]
                insort(free_levels, free)
    return bins


def shard_batches(
    batches: Sequence[Sequence[str]], rank: int, world_size: int
) -> List[Batch]:
    """Rank ``rank``'s rows of every batch, as ESPnet shards them.

    Raises unless every batch splits evenly, which the samplers here ensure.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world_size {world_size}")
    for batch in batches:
        if len(batch) == 0 or len(batch) % world_size:
            raise ValueError(
                f"batch of {len(batch)} rows does not split over {world_size} ranks"
            )
    return [tuple(batch[rank::world_size]) for batch in batches]


@dataclass
class BatchStats:
    """Size of one epoch's batches; padding as ``collate_sequences`` pads."""

    examples: int
    rows: int
    batches: int
    real_tokens: int
    padded_tokens: int  # sum over batches of rows x longest row

    @property
    def real_fraction(self) -> float:
        return self.real_tokens / max(self.padded_tokens, 1)


class _BlendSampler(AbsSampler):
    """Shared epoch logic; subclasses turn an ``EpochDraw`` into index batches."""

    def __init__(
        self,
        blend: Blend,
        max_length: int,
        num_batches: Optional[int],
        world_size: int,
        drop_last: bool,
        seed: int,
        shuffle: bool,
    ) -> None:
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        if num_batches is not None and num_batches < 1:
            raise ValueError(f"num_batches must be >= 1, got {num_batches}")
        self.blend, self.rejected_keys = blend.filtered(max_length)
        if self.rejected_keys:
            by_source: Dict[str, int] = {}
            for key in self.rejected_keys:
                name = split_key(key)[0]
                by_source[name] = by_source.get(name, 0) + 1
            logging.warning(
                "%s: rejected %d examples longer than %d positions (%s); "
                "see .rejected_keys",
                type(self).__name__,
                len(self.rejected_keys),
                max_length,
                ", ".join(f"{k}: {v}" for k, v in by_source.items()),
            )
        self.num_batches = num_batches
        self.world_size = world_size
        self.drop_last = drop_last
        self.seed = seed
        self.shuffle = shuffle
        self.last_draw: Optional[EpochDraw] = None
        self.last_stats: Optional[BatchStats] = None
        self._len: Optional[int] = num_batches

    def _index_batches(
        self, draw: EpochDraw, rng: np.random.Generator
    ) -> List[List[List[int]]]:
        """Batches of rows of indices into ``draw`` (before fixing the count)."""
        raise NotImplementedError

    def _epoch_tokens(self) -> Optional[int]:
        """Tokens to draw for ``num_batches`` batches (None: data-defined)."""
        raise NotImplementedError

    def generate(self, seed: int) -> List[Batch]:
        """The batches of the epoch seeded by ``seed``."""
        rng = epoch_rng(seed, "batches")
        draw = self.blend.draw(seed, self._epoch_tokens())
        batches = self._index_batches(draw, rng)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.num_batches is not None:
            batches = _exactly(batches, self.num_batches)
        self.last_draw = draw
        self.last_stats = _stats(batches, draw.lengths)
        logging.info(
            "%s: %d examples in %d rows, %d batches, %.1f%% real tokens",
            type(self).__name__,
            self.last_stats.examples,
            self.last_stats.rows,
            self.last_stats.batches,
            100 * self.last_stats.real_fraction,
        )
        keys = draw.keys
        return [
            tuple(ROW_SEP.join([keys[i] for i in row]) for row in batch)
            for batch in batches
        ]

    def epoch_batches(self, epoch: int) -> List[Batch]:
        """What ``SequenceIterFactory(seed=self.seed)`` reads in ``epoch``.

        (The factory may reshuffle the batch order again; the batches are
        the same.)
        """
        return self.generate(self.seed + epoch)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.generate(self.seed))

    def __len__(self) -> int:
        # Data-defined epochs can differ by a batch or so when a fractional
        # weight or factor draws a different subset; num_batches fixes it.
        if self._len is None:
            self._len = len(self.generate(self.seed))
        return self._len


class PackedBatchSampler(_BlendSampler):
    """Packed rows: best-fit decreasing into ``max_tokens_per_row`` positions.

    Args:
        blend: the datasets and their weights (``Blend``).
        max_tokens_per_row: row length in LM positions (the packing budget).
        rows_per_batch: rows per batch; must be a multiple of ``world_size``.
        batch_tokens: alternative to ``rows_per_batch``: rows =
            ``batch_tokens // max_tokens_per_row``, rounded down to a multiple
            of ``world_size``.
        num_batches: epoch defined by steps (exactly this many batches; the
            blend draws ``num_batches x rows x row length`` tokens and
            surplus rows are dropped); None: the blend's epoch.
        world_size: number of data-parallel ranks.
        drop_last: drop a short last batch instead of completing it.
        seed: the seed ``__iter__`` and ``__len__`` use.
        shuffle: shuffle rows into batches and batch order; False keeps
            best-fit order (validation).
    """

    def __init__(
        self,
        blend: Blend,
        max_tokens_per_row: int,
        rows_per_batch: Optional[int] = None,
        batch_tokens: Optional[int] = None,
        num_batches: Optional[int] = None,
        world_size: int = 1,
        drop_last: bool = False,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if max_tokens_per_row < 1:
            raise ValueError(f"max_tokens_per_row must be >= 1: {max_tokens_per_row}")
        if (rows_per_batch is None) == (batch_tokens is None):
            raise ValueError("give exactly one of rows_per_batch and batch_tokens")
        if rows_per_batch is None:
            rows = batch_tokens // max_tokens_per_row
            rows_per_batch = rows - rows % world_size
            if rows_per_batch < 1:
                raise ValueError(
                    f"batch_tokens={batch_tokens} holds {rows} rows of "
                    f"{max_tokens_per_row}, fewer than world_size={world_size}"
                )
        if rows_per_batch < 1 or rows_per_batch % world_size:
            raise ValueError(
                f"rows_per_batch={rows_per_batch} must be a positive multiple of "
                f"world_size={world_size}"
            )
        self.max_tokens_per_row = max_tokens_per_row
        self.rows_per_batch = rows_per_batch
        super().__init__(
            blend,
            max_tokens_per_row,
            num_batches,
            world_size,
            drop_last,
            seed,
            shuffle,
        )

    def _epoch_tokens(self) -> Optional[int]:
        if self.num_batches is None:
            return None
        return self.num_batches * self.rows_per_batch * self.max_tokens_per_row

    def _index_batches(
        self, draw: EpochDraw, rng: np.random.Generator
    ) -> List[List[List[int]]]:
        rows = best_fit_decreasing(draw.lengths, self.max_tokens_per_row)
        if self.shuffle:
            # Mix datasets across batches: best-fit order groups long
            # (audio) rows at the front and short (text) rows at the back.
            rows = [rows[i] for i in rng.permutation(len(rows))]
        if self.num_batches is not None:
            rows = _exactly(rows, self.num_batches * self.rows_per_batch)
        size = self.rows_per_batch
        batches = [rows[i : i + size] for i in range(0, len(rows), size)]
        self._complete_last(batches)
        return batches

    def _complete_last(self, batches: List[List[List[int]]]) -> None:
        """Short last batch: dropped, or topped up to a multiple of world_size.

        The top-up repeats rows of the first batch (fewer than world_size).
        """
        if not batches:
            return
        short = len(batches[-1]) % self.world_size
        if self.drop_last and len(batches) > 1 and len(batches[-1]) < len(batches[0]):
            batches.pop()
        elif short:
            spare = batches[0]
            need = self.world_size - short
            batches[-1] = batches[-1] + [spare[i % len(spare)] for i in range(need)]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_tokens_per_row={self.max_tokens_per_row}, "
            f"rows_per_batch={self.rows_per_batch}, num_batches={self.num_batches}, "
            f"world_size={self.world_size}, sources={len(self.blend.sources)})"
        )


class BucketBatchSampler(_BlendSampler):
    """Length-bucketed batches, one example per row (no packing).

    Examples sorted by length are cut into batches whose padded size
    (rows x longest example) stays within ``batch_tokens``: ESPnet-SpeechLM's
    ``batchfy_bucket``, applied to groups of ``world_size`` neighbouring
    examples so that every batch splits evenly over the ranks.

    Args:
        blend, num_batches, world_size, drop_last, seed, shuffle: as in
            ``PackedBatchSampler`` (drop_last drops the < world_size
            examples left over instead of repeating some).
        batch_tokens: padded token budget per batch (all ranks together).
        max_length: reject examples longer than this (default: the longest
            that fits, ``batch_tokens // world_size``).
    """

    def __init__(
        self,
        blend: Blend,
        batch_tokens: int,
        max_length: Optional[int] = None,
        num_batches: Optional[int] = None,
        world_size: int = 1,
        drop_last: bool = False,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        limit = batch_tokens // max(world_size, 1)
        if max_length is not None:
            limit = min(limit, max_length)
        if limit < 1:
            raise ValueError(
                f"batch_tokens={batch_tokens} is too small for {world_size} ranks"
            )
        self.batch_tokens = batch_tokens
        super().__init__(
            blend, limit, num_batches, world_size, drop_last, seed, shuffle
        )

    def _epoch_tokens(self) -> Optional[int]:
        if self.num_batches is None:
            return None
        return self.num_batches * self.batch_tokens

    def _index_batches(
        self, draw: EpochDraw, rng: np.random.Generator
    ) -> List[List[List[int]]]:
        ws = self.world_size
        n = len(draw.lengths)
        index = rng.permutation(n) if self.shuffle else np.arange(n)
        extra = len(index) % ws
        if extra and self.drop_last and len(index) > extra:
            index = index[:-extra]
        elif extra:
            index = np.concatenate([index, index[: ws - extra]])
        index = index[np.argsort(draw.lengths[index], kind="stable")]
        units = index.reshape(-1, ws)  # ws neighbours: one row for each rank
        unit_len = draw.lengths[units[:, -1]] * ws
        buckets = batchfy_bucket(
            list(range(len(units))),
            dict(enumerate(unit_len.tolist())),
            self.batch_tokens,
        )
        return [[[int(i)] for i in units[b].reshape(-1)] for b in buckets]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_tokens={self.batch_tokens}, "
            f"num_batches={self.num_batches}, world_size={self.world_size}, "
            f"sources={len(self.blend.sources)})"
        )


class RankSampler(AbsSampler):
    """One rank's rows of every batch of ``sampler`` (``shard_batches``).

    Every rank sees the same batch count and order (same seeds), so the
    ranks step together; give this to ``SequenceIterFactory`` on each rank.
    """

    def __init__(self, sampler: AbsSampler, rank: int, world_size: int) -> None:
        if getattr(sampler, "world_size", world_size) != world_size:
            raise ValueError(
                f"sampler built for world_size={sampler.world_size}, not {world_size}"
            )
        self.sampler = sampler
        self.rank = rank
        self.world_size = world_size

    def generate(self, seed: int) -> List[Batch]:
        return shard_batches(self.sampler.generate(seed), self.rank, self.world_size)

    def __iter__(self) -> Iterator[Batch]:
        return iter(shard_batches(list(self.sampler), self.rank, self.world_size))

    def __len__(self) -> int:
        return len(self.sampler)

    def __repr__(self) -> str:
        return f"RankSampler({self.sampler!r}, rank={self.rank}/{self.world_size})"


def _exactly(items: list, count: int) -> list:
    """The first ``count`` items; cycles (with a warning) when too few."""
    if len(items) >= count:
        return items[:count]
    if not items:
        raise ValueError("the blend drew no examples for this epoch")
    logging.warning("epoch drew %d of %d needed; repeating some", len(items), count)
    return [items[i % len(items)] for i in range(count)]


def _stats(batches: List[List[List[int]]], lengths: np.ndarray) -> BatchStats:
    examples = rows = real = padded = 0
    for batch in batches:
        row_lengths = [int(lengths[row].sum()) for row in batch]
        examples += sum(len(row) for row in batch)
        rows += len(batch)
        real += sum(row_lengths)
        padded += len(batch) * max(row_lengths)
    return BatchStats(examples, rows, len(batches), real, padded)
