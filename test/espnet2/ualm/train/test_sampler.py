"""Blending and batch samplers: budgets, coverage, shares, determinism, ranks."""

import collections
import json
import logging
from typing import Dict, List, Sequence

import numpy as np
import pytest

from espnet2.iterators.sequence_iter_factory import SequenceIterFactory
from espnet2.ualm.tokens.tasks import TASKS
from espnet2.ualm.train.blend import (
    PAPER_GROUP_WEIGHTS,
    Blend,
    BlendSource,
    make_key,
    split_key,
)
from espnet2.ualm.train.sampler import (
    ROW_SEP,
    BucketBatchSampler,
    PackedBatchSampler,
    RankSampler,
    best_fit_decreasing,
    join_row_key,
    shard_batches,
    split_row_key,
)


def _source(name: str, task: str, lengths: Sequence[int], **kw) -> BlendSource:
    return BlendSource.from_lengths(
        name, task, {f"{name}_utt{i:04d}": int(n) for i, n in enumerate(lengths)}, **kw
    )


def _sources(seed: int = 0, **kw: Dict[str, dict]) -> List[BlendSource]:
    """Three datasets with the length profiles of the three groups."""
    rng = np.random.default_rng(seed)
    return [
        _source(
            "gen", "text_to_audio", rng.integers(500, 600, 60), **kw.get("gen", {})
        ),
        _source("und", "audio_caption", rng.integers(80, 400, 90), **kw.get("und", {})),
        _source(
            "txt", "text_dialogue", rng.integers(20, 800, 120), **kw.get("txt", {})
        ),
    ]


def _lengths(blend: Blend) -> Dict[str, int]:
    return {
        make_key(s.name, i): int(n)
        for s in blend.sources
        for i, n in zip(s.ids, s.lengths)
    }


def _examples(batches) -> List[str]:
    return [k for batch in batches for row in batch for k in split_row_key(row)]


def first_fit(lengths: Sequence[int], capacity: int) -> List[List[int]]:
    """Baseline: each item, in arrival order, into the first bin it fits."""
    bins: List[List[int]] = []
    free: List[int] = []
    for i, n in enumerate(lengths):
        for b, f in enumerate(free):
            if f >= n:
                bins[b].append(i)
                free[b] -= n
                break
        else:
            bins.append([i])
            free.append(capacity - n)
    return bins


def test_keys_round_trip():
    row = ["gen/a1", "txt/b_2", "und/c.3"]
    assert split_row_key(join_row_key(row)) == row
    assert split_row_key("gen/a1") == ["gen/a1"]
    assert ROW_SEP.join(row) == join_row_key(row)
    assert split_key(make_key("mini_speech_asr", "spk/utt1")) == (
        "mini_speech_asr",
        "spk/utt1",
    )
    with pytest.raises(ValueError):
        join_row_key(["gen/a b"])
    with pytest.raises(ValueError):
        split_row_key("no_manifest_name")
    with pytest.raises(ValueError):
        BlendSource("bad", "asr", ["a b"], [5])


def test_every_task_has_a_group():
    assert all(TASKS.get(t).group for t in TASKS)
    assert {TASKS.get(t).group for t in TASKS} == set(PAPER_GROUP_WEIGHTS)


@pytest.mark.parametrize("seed", range(5))
def test_best_fit_decreasing_fits_and_covers(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 1000, 500)
    rows = best_fit_decreasing(lengths, 1000)
    assert all(lengths[row].sum() <= 1000 for row in rows)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    with pytest.raises(ValueError):
        best_fit_decreasing([1001], 1000)


def test_best_fit_decreasing_beats_first_fit():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        lengths = rng.integers(20, 900, 400)
        bfd, ff = best_fit_decreasing(lengths, 2048), first_fit(lengths, 2048)
        assert len(bfd) <= len(ff)
        assert len(bfd) <= np.ceil(lengths.sum() / 2048) * 1.02 + 1


def test_pack_budget_coverage_and_rejects(caplog):
    sources = _sources()
    too_long = _source("long", "text_dialogue", [100, 1500, 2000, 300])
    blend = Blend([*sources, too_long])
    with caplog.at_level(logging.WARNING):
        sampler = PackedBatchSampler(blend, max_tokens_per_row=1024, rows_per_batch=4)
    assert sorted(sampler.rejected_keys) == ["long/long_utt0001", "long/long_utt0002"]
    assert "rejected 2 examples longer than 1024" in caplog.text
    lengths = _lengths(blend)
    batches = sampler.generate(3)
    sizes = sorted(len(b) for b in batches)
    assert set(sizes[1:]) == {4} and 1 <= sizes[0] <= 4
    for batch in batches:
        for row in batch:
            assert sum(lengths[k] for k in split_row_key(row)) <= 1024
    counts = collections.Counter(_examples(batches))
    expected = set(lengths) - set(sampler.rejected_keys)
    assert set(counts) == expected and set(counts.values()) == {1}
    assert sampler.last_stats.real_fraction > 0.9
    assert len(sampler) == len(sampler.generate(sampler.seed))
    # a source none of whose examples fits is named, with its shortest
    only_long = _source("reflect", "reasoning", [1500, 2000])
    with pytest.raises(ValueError, match="reflect: every example is longer than 1024 "
                       r"tokens \(the shortest: 1500\)"):  # fmt: skip
        PackedBatchSampler(Blend([*sources, only_long]), 1024, 4)


def test_bucket_budget_and_coverage():
    blend = Blend(_sources())
    lengths = _lengths(blend)
    sampler = BucketBatchSampler(blend, batch_tokens=4000)
    batches = sampler.generate(0)
    for batch in batches:
        assert len(batch) * max(lengths[k] for k in batch) <= 4000
        assert all(ROW_SEP not in k for k in batch)
    counts = collections.Counter(_examples(batches))
    assert set(counts) == set(lengths) and set(counts.values()) == {1}


@pytest.mark.parametrize("sampler_cls", [PackedBatchSampler, BucketBatchSampler])
def test_oversampling_doubles_a_dataset(sampler_cls):
    blend = Blend(_sources(gen={"factor": 2.0}))
    kw = {"max_tokens_per_row": 2048, "rows_per_batch": 2}
    if sampler_cls is BucketBatchSampler:
        kw = {"batch_tokens": 4096}
    counts = collections.Counter(_examples(sampler_cls(blend, **kw).generate(7)))
    for key, n in counts.items():
        assert n == (2 if key.startswith("gen/") else 1), key
    assert len(counts) == 60 + 90 + 120


def test_fractional_factor_reads_a_fresh_subset_each_epoch():
    blend = Blend(_sources(txt={"factor": 0.5}))
    one, two = blend.draw(1), blend.draw(2)
    txt_tokens = blend.sources[2].total_tokens
    assert abs(one.tokens_by_source["txt"] - 0.5 * txt_tokens) < 800
    assert {k for k in one.keys if k.startswith("txt/")} != {
        k for k in two.keys if k.startswith("txt/")
    }


def test_source_weights_realise_token_shares():
    sources = _sources(gen={"weight": 0.5}, und={"weight": 0.3}, txt={"weight": 0.2})
    draw = Blend(sources, epoch_tokens=400_000).draw(0)
    total = draw.total_tokens
    assert abs(total - 400_000) < 3 * 800
    for name, asked in (("gen", 0.5), ("und", 0.3), ("txt", 0.2)):
        assert abs(draw.tokens_by_source[name] / total - asked) < 0.005


def test_group_weights_realise_paper_blend(caplog):
    blend = Blend(_sources(), group_weights=PAPER_GROUP_WEIGHTS, epoch_tokens=300_000)
    with caplog.at_level(logging.INFO):
        draw = blend.draw(5)
    total = draw.total_tokens
    for src in blend.sources:
        share = draw.tokens_by_source[src.name] / total
        assert abs(share - PAPER_GROUP_WEIGHTS[src.group]) < 0.01
    assert "token share by task" in caplog.text
    assert "token share by group" in caplog.text


def test_blend_config_errors():
    with pytest.raises(ValueError, match="no weight for"):
        Blend(_sources(), group_weights={"generation": 1.0})
    with pytest.raises(ValueError, match="no source for"):
        Blend(_sources()[:2], group_weights=PAPER_GROUP_WEIGHTS)
    with pytest.raises(ValueError, match="these not"):
        Blend(_sources(gen={"weight": 1.0}))
    with pytest.raises(ValueError, match="not both"):
        _source("x", "asr", [1, 2], weight=0.5, factor=2.0)


def test_a_group_weighted_zero_is_renormalised_away_with_a_warning(caplog):
    """The ualm1 configs: text-only data weighted 0 when there is none; if
    there is some, it is never drawn, and the log says so."""
    caplog.set_level(logging.INFO)
    weights = dict(PAPER_GROUP_WEIGHTS, text=0.0)
    without_text = [s for s in _sources() if s.group != "text"]
    blend = Blend(without_text, group_weights=weights)
    by_group = {}
    for src, share in zip(blend.sources, blend.shares):
        by_group[src.group] = by_group.get(src.group, 0.0) + share
    present = PAPER_GROUP_WEIGHTS["generation"] + PAPER_GROUP_WEIGHTS["understanding"]
    for group, share in by_group.items():
        assert share == pytest.approx(PAPER_GROUP_WEIGHTS[group] / present)
    assert "weight 0" not in caplog.text
    blend = Blend(_sources(), group_weights=weights)
    assert all(
        share == 0
        for src, share in zip(blend.sources, blend.shares)
        if src.group == "text"
    )
    assert "['text'] have sources but weight 0: never drawn" in caplog.text


@pytest.mark.parametrize("sampler_cls", [PackedBatchSampler, BucketBatchSampler])
def test_deterministic_per_seed_and_epoch(sampler_cls):
    def build():
        blend = Blend(_sources(und={"factor": 1.5}), group_weights=PAPER_GROUP_WEIGHTS)
        if sampler_cls is PackedBatchSampler:
            return sampler_cls(blend, max_tokens_per_row=1024, rows_per_batch=2, seed=3)
        return sampler_cls(blend, batch_tokens=2048, seed=3)

    a, b = build(), build()
    assert a.epoch_batches(1) == b.epoch_batches(1) == a.generate(4)
    assert a.epoch_batches(1) != a.epoch_batches(2)


def test_steps_defined_epoch_has_exact_batch_count():
    blend = Blend(_sources(), group_weights=PAPER_GROUP_WEIGHTS)
    pack = PackedBatchSampler(
        blend, max_tokens_per_row=1024, rows_per_batch=4, num_batches=25
    )
    batches = pack.generate(0)
    assert len(batches) == len(pack) == 25 and {len(b) for b in batches} == {4}
    bucket = BucketBatchSampler(blend, batch_tokens=4096, num_batches=30)
    assert len(bucket.generate(0)) == 30


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_distributed_split_is_even(world_size, drop_last):
    blend = Blend(_sources())
    pack = PackedBatchSampler(
        blend,
        max_tokens_per_row=1000,
        rows_per_batch=2 * world_size,
        world_size=world_size,
        drop_last=drop_last,
    )
    bucket = BucketBatchSampler(
        blend, batch_tokens=3000, world_size=world_size, drop_last=drop_last
    )
    for sampler in (pack, bucket):
        batches = sampler.generate(11)
        per_rank = [shard_batches(batches, r, world_size) for r in range(world_size)]
        for r in range(1, world_size):
            assert [len(b) for b in per_rank[r]] == [len(b) for b in per_rank[0]]
        assert all(len(b) >= 1 for b in per_rank[0])
        rank_sampler = RankSampler(sampler, world_size - 1, world_size)
        assert rank_sampler.generate(11) == per_rank[-1]
        seen = set(_examples(batches))
        if not drop_last:  # completing a short batch only repeats rows
            assert seen == set(_lengths(blend)) - set(sampler.rejected_keys)


def test_rows_per_batch_must_split_over_ranks():
    blend = Blend(_sources())
    with pytest.raises(ValueError, match="multiple of world_size"):
        PackedBatchSampler(blend, 1000, rows_per_batch=6, world_size=4)
    sampler = PackedBatchSampler(blend, 1000, batch_tokens=7000, world_size=4)
    assert sampler.rows_per_batch == 4
    with pytest.raises(ValueError):
        shard_batches([("a/1", "a/2", "a/3")], 0, 2)


class KeyDataset:
    """Stands in for the UALM dataset: returns the row key it is asked for."""

    def __getitem__(self, key: str) -> str:
        return key


def test_sequence_iter_factory_reads_one_draw_per_epoch():
    blend = Blend(_sources())
    sampler = PackedBatchSampler(
        blend, max_tokens_per_row=2048, rows_per_batch=2, seed=5
    )
    factory = SequenceIterFactory(
        KeyDataset(), sampler, seed=5, shuffle=True, collate_fn=list
    )
    for epoch in (1, 2):
        read = [row for batch in factory.build_iter(epoch) for row in batch]
        expected = sampler.epoch_batches(epoch)
        assert sorted(read) == sorted(row for b in expected for row in b)


def test_from_manifest_and_config(tmp_path):
    shape = tmp_path / "mini_speech_asr.shape"
    shape.write_text("utt1 30\nutt2 45\nutt3 12\n")
    manifest = {
        "name": "mini_speech_asr",
        "task": "asr",
        "shape_file": str(shape),
        "num_examples": 3,
    }
    (tmp_path / "mini_speech_asr.json").write_text(json.dumps(manifest))
    conf = {"datasets": [{"name": "mini_speech_asr", "factor": 2}]}
    blend = Blend.from_config(conf, manifest_dir=str(tmp_path))
    src = blend.sources[0]
    assert (src.name, src.task, src.ids) == (
        "mini_speech_asr",
        "asr",
        ["utt1", "utt2", "utt3"],
    )
    assert src.lengths.tolist() == [30, 45, 12]
    draw = blend.draw(0)
    assert sorted(draw.keys) == sorted(
        2 * [f"mini_speech_asr/utt{i}" for i in (1, 2, 3)]
    )
    with pytest.raises(ValueError, match="manifest"):
        Blend.from_config({"datasets": [{"name": "x"}]})


def test_sequence_iter_factory_steps_per_epoch():
    blend = Blend(_sources())
    sampler = PackedBatchSampler(blend, max_tokens_per_row=1024, rows_per_batch=2)
    factory = SequenceIterFactory(
        KeyDataset(), sampler, num_iters_per_epoch=7, shuffle=True, collate_fn=list
    )
    for epoch in (1, 2, 30):
        assert len(list(factory.build_iter(epoch))) == 7
