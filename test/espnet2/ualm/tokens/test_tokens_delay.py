"""Delay pattern: shape, inverse, and agreement with transformers' MusicGen."""

import pytest
import torch

from espnet2.ualm.tokens.delay import (
    delay_deinterleave,
    delay_holes,
    delay_interleave,
    delay_length,
)


def test_interleave_shifts_codebook_k_by_k_frames():
    frames = torch.tensor([[1, 2, 3], [4, 5, 6]])  # T=2, K=3
    out = delay_interleave(frames, [-1, -2, -3])
    expected = torch.tensor([[1, -2, -3], [4, 2, -3], [-1, 5, 3], [-1, -2, 6]])
    assert torch.equal(out, expected)
    assert torch.equal(delay_deinterleave(out), frames)


def test_round_trip_with_batch_dims_and_masks():
    frames = torch.randint(0, 9, (2, 5, 4))
    out = delay_interleave(frames, 99)
    assert out.shape == (2, 8, 4)
    assert torch.equal(delay_deinterleave(out, 4), frames)
    mask = delay_interleave(torch.ones(5, 4, dtype=torch.bool), False)
    assert int(mask.sum()) == 20 and mask.dtype == torch.bool
    assert not bool(mask[0, 1:].any()) and not bool(mask[-1, :-1].any())


def test_errors():
    with pytest.raises(ValueError, match="one pad value per codebook"):
        delay_interleave(torch.zeros(3, 4, dtype=torch.long), [0, 1])
    with pytest.raises(ValueError, match="fewer than"):
        delay_deinterleave(torch.zeros(2, 4, dtype=torch.long))


def test_matches_musicgen_delay_pattern():
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

    n_codebooks, n_frames, pad = 4, 6, 10
    config = MusicgenDecoderConfig(
        vocab_size=pad,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=16,
        num_codebooks=n_codebooks,
        max_position_embeddings=32,
        pad_token_id=pad,
        bos_token_id=pad,
    )
    musicgen = MusicgenForCausalLM(config)
    codes = torch.randint(
        0, pad, (2, n_frames, n_codebooks), generator=torch.Generator().manual_seed(0)
    )
    # MusicGen's decoder input starts with a BOS column (its pad id)
    prompt = torch.cat(
        [torch.full((2, n_codebooks, 1), pad), codes.transpose(1, 2)], -1
    )
    _, pattern = musicgen.build_delay_pattern_mask(
        prompt.reshape(2 * n_codebooks, -1),
        pad_token_id=pad,
        max_length=n_frames + n_codebooks,
    )
    pattern = pattern.reshape(2, n_codebooks, -1)[:, :, 1:].transpose(1, 2)
    assert torch.equal(delay_interleave(codes, pad), pattern)


@pytest.mark.parametrize("n_frames", [0, 1, 5])
def test_holes_are_where_interleaving_puts_pads(n_frames):
    """What generation masks step by step is the pattern ``delay_interleave``
    lays out for the whole segment."""
    k = 4
    frames = torch.ones(n_frames, k, dtype=torch.bool)
    pattern = delay_interleave(frames, False)  # True where a frame's code sits
    steps = torch.arange(delay_length(n_frames, k))
    holes = delay_holes(steps, torch.full_like(steps, n_frames), k)
    assert pattern.shape[0] == delay_length(n_frames, k)
    assert torch.equal(holes, ~pattern)


@pytest.mark.parametrize("delays", [(0, 0, 0), (0, 2, 1)])
def test_other_delays(delays):
    """Any per-stream delays (the interleaving is data): parallel streams,
    or another order; the inverse and the holes follow."""
    frames = torch.arange(1, 13).view(4, 3)
    out = delay_interleave(frames, [-1, -2, -3], delays)
    assert out.shape == (4 + max(delays), 3)
    assert delay_length(4, 3, delays) == len(out)
    for k, d in enumerate(delays):
        assert out[d : d + 4, k].tolist() == frames[:, k].tolist()
    assert torch.equal(delay_deinterleave(out, delays=delays), frames)
    steps = torch.arange(len(out))
    holes = delay_holes(steps, torch.full_like(steps, 4), 3, delays)
    assert torch.equal(holes, out < 0)
    assert torch.equal(
        holes, delay_holes(steps, torch.full_like(steps, 4), 3, torch.tensor(delays))
    )
