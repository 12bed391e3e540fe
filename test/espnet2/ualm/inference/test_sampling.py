"""Token choice: masks, greedy, temperature, top-k, top-p, seeds."""

import pytest
import torch

from espnet2.ualm.inference.sampling import (
    GREEDY,
    SamplingConfig,
    sample,
    top_k_filter,
    top_p_filter,
)


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(6, 40, generator=torch.Generator().manual_seed(0))


def test_greedy_and_zero_temperature_take_the_argmax(logits):
    expected = logits.argmax(-1)
    assert torch.equal(sample(logits, GREEDY), expected)
    assert torch.equal(sample(logits, SamplingConfig(temperature=0.0)), expected)


def test_only_allowed_ids_are_chosen(logits):
    allowed = torch.zeros_like(logits, dtype=torch.bool)
    allowed[:, 10:13] = True
    assert torch.equal(
        sample(logits, GREEDY, allowed), logits[:, 10:13].argmax(-1) + 10
    )
    gen = torch.Generator().manual_seed(1)
    config = SamplingConfig(temperature=5.0)
    for _ in range(20):
        ids = sample(logits, config, allowed, gen)
        assert bool(((ids >= 10) & (ids < 13)).all())


def test_top_k_keeps_the_k_best(logits):
    kept = top_k_filter(logits, 5)
    assert bool((torch.isfinite(kept).sum(-1) == 5).all())
    best = logits.topk(5, -1).indices
    assert bool(torch.isfinite(kept.gather(-1, best)).all())
    gen = torch.Generator().manual_seed(2)
    for _ in range(20):
        ids = sample(logits, SamplingConfig(temperature=3.0, top_k=5), None, gen)
        assert bool((best == ids[:, None]).any(-1).all())


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [
        [True, True, False, False]
    ]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [
        [True, True, True, False]
    ]
    assert torch.isfinite(top_p_filter(logits, 0.1)).sum() == 1  # never empty
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_same_seed_same_samples(logits):
    config = SamplingConfig(temperature=1.0, top_k=20, top_p=0.9)
    a = sample(logits, config, None, torch.Generator().manual_seed(3))
    b = sample(logits, config, None, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SamplingConfig(temperature=-1.0)
    with pytest.raises(ValueError):
        SamplingConfig(top_k=0)
    with pytest.raises(ValueError):
        SamplingConfig(top_p=0.0)
