"""The GAN model: generator and discriminator turns as GANTrainer calls them."""

import pytest
import torch

from espnet2.gan_tts.hifigan import HiFiGANMultiPeriodDiscriminator
from espnet2.ualm.enhancer import EnhancementVAE
from espnet2.ualm.enhancer.espnet_model import ESPnetEnhancerGANModel

TINY = dict(
    encoder_in_channels=4,
    encoder_channels=[8, 16],
    encoder_strides=[4, 20],
    encoder_dilations=[1],
    latent_dim=4,
    decoder_channels=16,
    decoder_dilations=[1],
)


def _discriminator(in_channels=1):
    return HiFiGANMultiPeriodDiscriminator(
        periods=[2, 3],
        discriminator_params=dict(
            in_channels=in_channels,
            out_channels=1,
            kernel_sizes=[5, 3],
            channels=4,
            downsample_scales=[3, 3, 1],
            max_downsample_channels=16,
        ),
    )


def _batch(n=1600):
    torch.manual_seed(0)
    return dict(
        input=torch.randn(2, n) * 0.1,
        input_lengths=torch.tensor([n, n - 160]),
        target=torch.randn(2, 3 * n, 2) * 0.1,
        target_lengths=torch.tensor([3 * n, 3 * (n - 160)]),
    )


@pytest.mark.parametrize("fold", [True, False])
def test_generator_then_discriminator_turns(fold):
    model = ESPnetEnhancerGANModel(
        EnhancementVAE(**TINY),
        _discriminator(1 if fold else 2),
        fold_channels=fold,
        discriminator_segment=1024,
    )
    batch = _batch()
    out = model(forward_generator=True, **batch)
    assert out["optim_idx"] == 0 and torch.isfinite(out["loss"])
    for key in ("stft", "mid", "side", "mel", "kl", "adv", "feat_match"):
        assert f"generator_{key}_loss" in out["stats"]
    out["loss"].backward()
    assert all(
        p.grad is not None for p in model.enhancer.parameters() if p.requires_grad
    )
    model.zero_grad(set_to_none=True)
    out = model(forward_generator=False, **batch)
    assert out["optim_idx"] == 1 and torch.isfinite(out["loss"])
    assert set(out["stats"]) == {
        "discriminator_loss",
        "discriminator_real_loss",
        "discriminator_fake_loss",
    }
    out["loss"].backward()
    assert all(p.grad is None for p in model.enhancer.parameters())
    assert int(out["weight"]) == 2


def test_discriminator_reuses_the_generator_output_of_the_same_batch():
    model = ESPnetEnhancerGANModel(EnhancementVAE(**TINY), _discriminator())
    batch = _batch()
    model(forward_generator=True, **batch)
    assert model._cache is not None and model._cache["target"] is batch["target"]
    model(forward_generator=False, **batch)
    assert model._cache is None
    # Another batch (discriminator first): the generator runs afresh.
    other = _batch()
    model(forward_generator=True, **batch)
    assert torch.isfinite(model(forward_generator=False, **other)["loss"])


def test_loss_weights_switch_terms_off():
    model = ESPnetEnhancerGANModel(
        EnhancementVAE(**TINY), _discriminator(), lambda_adv=0, lambda_feat_match=0
    )
    stats = model(forward_generator=True, **_batch())["stats"]
    assert "generator_adv_loss" not in stats
    assert model.collect_feats(**_batch()) == {}


def test_mono_targets_are_spread_to_both_channels():
    model = ESPnetEnhancerGANModel(EnhancementVAE(**TINY), _discriminator())
    batch = _batch()
    batch["target"] = batch["target"][..., 0]
    assert torch.isfinite(model(forward_generator=True, **batch)["loss"])
