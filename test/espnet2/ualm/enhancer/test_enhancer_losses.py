"""The generator's reconstruction losses: zero at the reference, sensitive to
what each is meant to measure, differentiable."""

import numpy as np
import torch

from espnet2.ualm.enhancer.abs_enhancer import DEFAULT_OUTPUT_SAMPLE_RATE
from espnet2.ualm.enhancer.losses import (
    MultiScaleMelLoss,
    StereoSTFTLoss,
    kl_divergence,
)


def _stereo(pan: float, seconds: float = 0.2, freq: float = 1000.0):
    t = torch.arange(int(seconds * 48000)) / 48000
    x = 0.3 * torch.sin(2 * np.pi * freq * t)
    return torch.stack([x * (1 - pan), x * (1 + pan)])[None]


def test_stft_losses_vanish_at_the_reference():
    y = _stereo(0.5)
    lr, mid, side = StereoSTFTLoss()(y, y)
    assert max(lr.item(), mid.item(), side.item()) < 1e-5


def test_both_stft_losses_see_a_lost_stereo_image():
    """A centred copy has the right mid signal but no side signal."""
    y = _stereo(0.8)
    centred = y.mean(dim=1, keepdim=True).expand(-1, 2, -1)
    lr, mid, side = StereoSTFTLoss()(centred, y)
    assert side.item() > 1.0 and lr.item() > 0.1 and mid.item() < 1e-5


def test_stft_loss_has_gradients():
    y = _stereo(0.0)
    y_hat = (y * 0.5).requires_grad_()
    sum(StereoSTFTLoss()(y_hat, y)).backward()
    assert torch.isfinite(y_hat.grad).all() and y_hat.grad.abs().sum() > 0


def test_mel_loss_grows_with_the_spectral_error():
    loss = MultiScaleMelLoss(DEFAULT_OUTPUT_SAMPLE_RATE)
    y = _stereo(0.2)
    assert loss(y, y).item() < 1e-6
    assert loss(_stereo(0.2, freq=1100.0), y) < loss(_stereo(0.2, freq=3000.0), y)


def test_kl_is_zero_for_the_prior_and_positive_otherwise():
    zeros = torch.zeros(2, 4, 10)
    assert kl_divergence(zeros, zeros).item() == 0.0
    assert kl_divergence(zeros + 1.0, zeros).item() > 0.0
    assert kl_divergence(zeros, zeros - 2.0).item() > 0.0
