"""The Enhancement VAE as a GAN for ESPnet's ``GANTrainer``.

``forward(forward_generator=True)`` returns the generator loss (optimizer 0):
``lambda_stft * L/R STFT + lambda_mid * mid STFT + lambda_side * side STFT
+ lambda_mel * log-mel
+ lambda_adv * adversarial + lambda_feat_match * feature matching + zeta *
KL``; ``forward(forward_generator=False)`` the discriminator loss (optimizer 1).
The discriminator is any ESPnet HiFi-GAN-style module returning per-layer
outputs; stereo reaches it with the channels folded into the batch (each
channel judged alone, ``in_channels: 1``) or stacked (``in_channels: 2``).
"""

from typing import Any, Dict, Optional, Sequence

import torch

from espnet2.gan_tts.hifigan.loss import (
    DiscriminatorAdversarialLoss,
    FeatureMatchLoss,
    GeneratorAdversarialLoss,
)
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_gan_espnet_model import AbsGANESPnetModel
from espnet2.ualm.enhancer.abs_enhancer import AbsEnhancer
from espnet2.ualm.enhancer.losses import (
    MultiScaleMelLoss,
    StereoSTFTLoss,
    kl_divergence,
)


class ESPnetEnhancerGANModel(AbsGANESPnetModel):
    """Generator = the enhancer; batches hold ``input`` ``[B, N]`` (codec
    output) and ``target`` ``[B, N * factor, C]`` (the original)."""

    def __init__(
        self,
        enhancer: AbsEnhancer,
        discriminator: torch.nn.Module,
        fold_channels: bool = True,
        discriminator_segment: Optional[int] = None,
        stft_fft_sizes: Sequence[int] = (512, 1024, 2048),
        stft_floor_db: float = -100.0,
        stft_log_distance: str = "l1",
        mel_fft_sizes: Sequence[int] = (512, 1024, 2048),
        mel_n_mels: Sequence[int] = (40, 80, 128),
        adv_loss_type: str = "mse",
        lambda_stft: float = 1.0,
        lambda_mid: float = 0.5,
        lambda_side: float = 0.5,
        lambda_mel: float = 15.0,
        lambda_adv: float = 1.0,
        lambda_feat_match: float = 2.0,
        zeta: float = 1e-3,
        cache_generator_outputs: bool = True,
    ):
        """Arguments (the ``model_conf`` of the task):

        fold_channels: give the discriminator one channel at a time (True) or
            both stacked (False; its ``in_channels`` must then be 2).
        discriminator_segment: the discriminators see one random window of
            this many output samples per batch (None: the whole crop); their
            cost at 48 kHz dominates a CPU step otherwise.
        stft_fft_sizes, stft_floor_db: resolutions (hop = FFT size / 4) and
            magnitude floor (dB re a full-scale sine) of the STFT losses.
        stft_log_distance: ``l1`` (the usual log-magnitude L1) or ``l2``
            (squared log difference: what the log-spectral distance measures).
        mel_fft_sizes, mel_n_mels: scales of the log-mel loss.
        adv_loss_type: ``mse`` (LSGAN) or ``hinge``.
        lambda_*: weights of the generator loss terms; ``zeta`` weighs the KL.
        cache_generator_outputs: with ``generator_first: true`` the
            discriminator step reuses the generator step's output.
        """
        super().__init__()
        self.enhancer = enhancer
        self.discriminator = discriminator
        self.fold_channels = fold_channels
        self.discriminator_segment = discriminator_segment
        self.stft_loss = StereoSTFTLoss(
            stft_fft_sizes, floor_db=stft_floor_db, log_distance=stft_log_distance
        )
        self.mel_loss = MultiScaleMelLoss(
            enhancer.output_sample_rate, mel_fft_sizes, mel_n_mels
        )
        self.generator_adv_loss = GeneratorAdversarialLoss(loss_type=adv_loss_type)
        self.discriminator_adv_loss = DiscriminatorAdversarialLoss(
            loss_type=adv_loss_type
        )
        self.feat_match_loss = FeatureMatchLoss()
        self.lambda_stft = lambda_stft
        self.lambda_mid = lambda_mid
        self.lambda_side = lambda_side
        self.lambda_mel = lambda_mel
        self.lambda_adv = lambda_adv
        self.lambda_feat_match = lambda_feat_match
        self.zeta = zeta
        self.cache_generator_outputs = cache_generator_outputs
        self._cache: Optional[Dict[str, Any]] = None

    def _discriminate(self, wav: torch.Tensor):
        if self.fold_channels:
            wav = wav.reshape(-1, 1, wav.shape[-1])
        return self.discriminator(wav)

    def _window(self, wav: torch.Tensor, ref: torch.Tensor) -> tuple:
        """The same random window of ``discriminator_segment`` samples of both."""
        size = self.discriminator_segment
        if size is None or wav.shape[-1] <= size:
            return wav, ref
        start = int(torch.randint(0, wav.shape[-1] - size + 1, ()))
        return wav[..., start : start + size], ref[..., start : start + size]

    def _targets(self, target: torch.Tensor, length: int) -> torch.Tensor:
        """``[B, N, C]`` (or ``[B, N]`` mono) -> ``[B, C, length]``."""
        if target.dim() == 2:
            target = target[..., None]
        target = target.transpose(1, 2)
        channels = self.enhancer.output_channels
        if target.shape[1] != channels:
            if target.shape[1] != 1:
                raise ValueError(
                    f"target has {target.shape[1]} channels, the enhancer makes "
                    f"{channels}"
                )
            target = target.expand(-1, channels, -1)
        if target.shape[-1] < length:
            target = torch.nn.functional.pad(target, (0, length - target.shape[-1]))
        return target[..., :length]

    def forward(
        self,
        input: torch.Tensor,
        input_lengths: torch.Tensor,
        target: torch.Tensor,
        target_lengths: torch.Tensor,
        forward_generator: bool = True,
        **kwargs,
    ) -> Dict[str, Any]:
        if forward_generator:
            return self._forward_generator(input, input_lengths, target)
        return self._forward_discriminator(input, input_lengths, target)

    def _forward_generator(
        self, input: torch.Tensor, input_lengths: torch.Tensor, target: torch.Tensor
    ) -> Dict[str, Any]:
        out = self.enhancer(input, input_lengths)
        wav = out.wav
        ref = self._targets(target, wav.shape[-1])
        mask = _length_mask(out.wav_lengths, wav.shape[-1])[:, None]
        wav = wav * mask
        ref = ref * mask
        if self.cache_generator_outputs:
            self._cache = dict(target=target, wav=wav.detach(), ref=ref)

        stft_loss, mid_loss, side_loss = self.stft_loss(wav, ref)
        mel_loss = self.mel_loss(wav, ref)
        loss = (
            self.lambda_stft * stft_loss
            + self.lambda_mid * mid_loss
            + self.lambda_side * side_loss
            + self.lambda_mel * mel_loss
        )
        stats = dict(
            generator_stft_loss=stft_loss.detach(),
            generator_mid_loss=mid_loss.detach(),
            generator_side_loss=side_loss.detach(),
            generator_mel_loss=mel_loss.detach(),
        )
        if out.mean is not None and out.logvar is not None:
            kl_loss = kl_divergence(out.mean, out.logvar)
            loss = loss + self.zeta * kl_loss
            stats["generator_kl_loss"] = kl_loss.detach()
        if self.lambda_adv > 0 or self.lambda_feat_match > 0:
            wav_d, ref_d = self._window(wav, ref)
            outs_hat = self._discriminate(wav_d)
            with torch.no_grad():
                outs = self._discriminate(ref_d)
            adv_loss = self.generator_adv_loss(outs_hat)
            feat_match_loss = self.feat_match_loss(outs_hat, outs)
            loss = (
                loss
                + self.lambda_adv * adv_loss
                + self.lambda_feat_match * feat_match_loss
            )
            stats.update(
                generator_adv_loss=adv_loss.detach(),
                generator_feat_match_loss=feat_match_loss.detach(),
            )
        stats["generator_loss"] = loss.detach()
        weight = torch.tensor(input.shape[0], device=input.device)
        loss, stats, weight = force_gatherable((loss, stats, weight), loss.device)
        return dict(loss=loss, stats=stats, weight=weight, optim_idx=0)

    def _forward_discriminator(
        self, input: torch.Tensor, input_lengths: torch.Tensor, target: torch.Tensor
    ) -> Dict[str, Any]:
        cache, self._cache = self._cache, None
        if cache is not None and cache["target"] is target:
            wav, ref = cache["wav"], cache["ref"]
        else:
            with torch.no_grad():
                out = self.enhancer(input, input_lengths)
                ref = self._targets(target, out.wav.shape[-1])
                mask = _length_mask(out.wav_lengths, out.wav.shape[-1])[:, None]
                wav, ref = out.wav * mask, ref * mask
        wav, ref = self._window(wav.detach(), ref)
        real_loss, fake_loss = self.discriminator_adv_loss(
            self._discriminate(wav), self._discriminate(ref)
        )
        loss = real_loss + fake_loss
        stats = dict(
            discriminator_loss=loss.detach(),
            discriminator_real_loss=real_loss.detach(),
            discriminator_fake_loss=fake_loss.detach(),
        )
        weight = torch.tensor(input.shape[0], device=input.device)
        loss, stats, weight = force_gatherable((loss, stats, weight), loss.device)
        return dict(loss=loss, stats=stats, weight=weight, optim_idx=1)

    def collect_feats(self, **batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        """No feature statistics: the model works on waveforms."""
        return {}


def _length_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """``[B]`` valid lengths -> ``[B, size]`` float mask."""
    steps = torch.arange(size, device=lengths.device)
    return (steps[None] < lengths[:, None]).float()
