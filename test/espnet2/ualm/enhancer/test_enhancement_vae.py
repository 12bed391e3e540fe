"""Shapes, lengths and modes of the Enhancement VAE and the resample enhancer."""

import numpy as np
import pytest
import torch

from espnet2.ualm.enhancer import (
    EnhancementVAE,
    ResampleEnhancer,
    enhancer_choices,
)

TINY = dict(
    encoder_in_channels=4,
    encoder_channels=[8, 16],
    encoder_strides=[4, 20],
    encoder_dilations=[1],
    latent_dim=4,
    decoder_channels=16,
    decoder_dilations=[1],
    wave_upsample_rates=[6, 5, 4, 2],
    wave_channels=[16, 8, 8, 4],
    wave_dilations=[1],
)


@pytest.mark.parametrize("head", ["istft", "wave"])
@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("n", [1, 79, 80, 1234])
def test_output_is_stereo_at_three_times_the_length(head, skip, n):
    torch.manual_seed(0)
    model = EnhancementVAE(head=head, input_skip=skip, **TINY)
    out = model(torch.randn(2, n), torch.tensor([n, n // 2]))
    assert out.wav.shape == (2, 2, 3 * n)
    assert out.wav_lengths.tolist() == [3 * n, 3 * (n // 2)]
    frames = -(-n // 80) + 1
    assert out.mean.shape == out.logvar.shape == (2, 4, frames)
    assert torch.isfinite(out.wav).all()


def test_latent_is_sampled_in_training_and_the_mean_in_eval():
    torch.manual_seed(0)
    model = EnhancementVAE(**TINY)
    x = torch.randn(1, 800)
    lengths = torch.tensor([800])
    model.train()
    assert not torch.equal(model(x, lengths).wav, model(x, lengths).wav)
    model.eval()
    assert torch.equal(model(x, lengths).wav, model(x, lengths).wav)


def test_skip_starts_close_to_plain_resampling():
    """Untrained, the skip path dominates: the model starts at the baseline."""
    torch.manual_seed(0)
    model = EnhancementVAE(**TINY).eval()
    t = torch.arange(1600) / 16000
    x = 0.5 * torch.sin(2 * np.pi * 440 * t)[None]
    base = ResampleEnhancer()(x, torch.tensor([1600])).wav
    out = model(x, torch.tensor([1600])).wav
    assert (out - base).pow(2).mean() < 0.05 * base.pow(2).mean()


def test_enhance_keeps_array_type_and_mode():
    model = EnhancementVAE(**TINY).train()
    out = model.enhance(np.zeros(160, dtype=np.float32))
    assert isinstance(out, np.ndarray) and out.shape == (2, 480)
    batch = model.enhance(torch.zeros(3, 160))
    assert isinstance(batch, torch.Tensor) and batch.shape == (3, 2, 480)
    assert model.training


def test_resample_enhancer_duplicates_a_band_limited_copy():
    enhancer = ResampleEnhancer()
    t = np.arange(16000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    out = enhancer.enhance(x)
    assert out.shape == (2, 48000)
    np.testing.assert_array_equal(out[0], out[1])
    # output sample 3k sits at input sample k (zero phase)
    np.testing.assert_allclose(out[0, 3000:45000:3], x[1000:15000], atol=1e-3)
    assert list(enhancer.parameters()) == []


def test_choices_select_by_name():
    assert enhancer_choices.get_class("vae") is EnhancementVAE
    assert enhancer_choices.get_class("resample") is ResampleEnhancer


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match="multiple"):
        EnhancementVAE(input_sample_rate=16000, output_sample_rate=44100)
    with pytest.raises(ValueError, match="output hop"):
        EnhancementVAE(head="wave", **{**TINY, "wave_upsample_rates": [2, 2]})
    with pytest.raises(ValueError, match="head"):
        EnhancementVAE(head="mel", **TINY)


def test_envelope_features_give_level_and_band_shape():
    """The head's envelope features: the frame level (a full-scale sine near
    0, silence at the floor) and which band holds the energy."""
    from espnet2.ualm.enhancer.heads import EnvelopeFeatures

    env = EnvelopeFeatures(n_bins=161, bin_hz=50.0, bands=8, out_channels=4)
    magnitude = torch.zeros(1, 481, 3)
    magnitude[0, 10, 0] = 1.0  # 500 Hz at full scale
    magnitude[0, 100, 1] = 0.01  # 5 kHz at -40 dB
    feats, offsets = env(magnitude)
    assert feats.shape == (1, 9, 3) and offsets.shape == (1, 4, 3)
    assert torch.count_nonzero(offsets) == 0  # starts without effect
    level = feats[0, 0] * 5.0  # natural-log power
    assert level[0] > level[1] > level[2]
    assert abs(float(level[0] - level[1]) - 2 * np.log(100.0)) < 1e-3
    assert level[2] < -20  # silence: the floor
    # The loudest band is where the partial is: low band first, high band next.
    assert int(feats[0, 1:, 0].argmax()) < int(feats[0, 1:, 1].argmax())


def test_envelope_head_starts_like_the_plain_head():
    """With envelope features the untrained model still starts at plain
    resampling, and the features reach every parameter group by gradient."""
    torch.manual_seed(0)
    model = EnhancementVAE(**TINY, refiner_channels=4, envelope_bands=8)
    assert model.head.envelope is not None
    t = torch.arange(1600) / 16000
    x = 0.5 * torch.sin(2 * np.pi * 440 * t)[None]
    out = model.eval()(x, torch.tensor([1600])).wav
    base = ResampleEnhancer()(x, torch.tensor([1600])).wav
    assert (out - base).pow(2).mean() < 0.05 * base.pow(2).mean()
    model.train()(x, torch.tensor([1600])).wav.pow(2).mean().backward()
    assert model.head.envelope.mlp[-1].weight.grad.abs().sum() > 0


def test_noise_phase_fills_the_upper_band_deterministically_in_eval():
    """With ``noise_phase`` the bins above the input's band take a noise's
    phases: in eval mode the output is reproducible, in training it is not,
    and the predicted magnitudes still set the level there."""
    torch.manual_seed(0)
    model = EnhancementVAE(**TINY, refiner_channels=4, noise_phase=True)
    head = model.head
    assert head.noise_from == head.refiner.n_bins
    with torch.no_grad():  # a loud, flat band above 8 kHz
        bias = head.proj.bias.view(2, 3, head.n_bins)
        bias[:, 0, head.noise_from :] = 0.0
    t = torch.arange(1600) / 16000
    x = 0.01 * torch.sin(2 * np.pi * 440 * t)[None]
    lengths = torch.tensor([1600])
    model.eval()
    a, b = model(x, lengths).wav, model(x, lengths).wav
    assert torch.equal(a, b)
    window = torch.hann_window(960)
    spec = torch.stft(a[0, 0], 960, 240, window=window, return_complex=True)
    spec = spec.abs().pow(2)
    freqs = torch.arange(spec.shape[0]) * 48000 / 960
    high = spec[freqs > 9000].mean()
    assert high > 100 * spec[(freqs > 1000) & (freqs < 7000)].mean()
    model.train()
    assert not torch.equal(model(x, lengths).wav, model(x, lengths).wav)
    with pytest.raises(ValueError, match="refiner_bins"):
        EnhancementVAE(**TINY, noise_phase=True)
