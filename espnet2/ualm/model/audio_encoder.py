"""Acoustic encoder for audio input: Whisper's encoder, pooled, in windows.

Whisper's encoder reads log-mel features of a fixed window (30 s for the
released models: ``max_source_positions`` x conv strides x hop) and gives 50
frames per second; an average pool (stride 2) brings them to 25 Hz. Longer
audio is cut into consecutive windows; the last one is zero-padded, as
Whisper was trained. The log-mel features are computed here, in torch, with
the feature extractor's own filter bank, so they run on the model's device.

The geometry (sample rate, hop, window, frame rate) is read from the encoder
config and its feature extractor config; a tiny test encoder uses the same
code as the released one.
"""

import dataclasses
import logging
import math
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from espnet2.ualm.data.safe_io import (
    FileFormatError,
    local_dir,
    read_checkpoint,
    read_json,
)
from espnet2.ualm.model.hf_config import build_hf_config

ENCODER_PREFIXES = ("model.encoder.", "encoder.", "")
CONV_INITS = ("he", "whisper")
# Whisper's front end (WhisperFeatureExtractor defaults) and its conv stack:
# conv1 stride 1, conv2 stride 2.
DEFAULT_SAMPLE_RATE = 16000
DEFAULT_HOP_LENGTH = 160
DEFAULT_N_FFT = 400
WHISPER_CONV_STRIDE = 2
DEFAULT_POOL_STRIDE = 2
# WhisperConfig's decoder ids for an encoder built from a config (never used)
ENCODER_ONLY_TOKEN_IDS = {
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
    "decoder_start_token_id": 0,
}


@dataclasses.dataclass(frozen=True)
class EncoderGeometry:
    """Input sample rate and waveform samples per output frame of the encoder:
    what the data side and the recipe need to know of it."""

    sample_rate: int
    samples_per_frame: int

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.samples_per_frame


def whisper_feature_extractor(model_dir: str, num_mel_bins: Optional[int] = None):
    """The log-mel front end of a local Whisper checkpoint: its
    ``preprocessor_config.json``, else Whisper's defaults."""
    from transformers import WhisperFeatureExtractor

    local_dir(model_dir, "Whisper checkpoint")
    if os.path.isfile(os.path.join(model_dir, "preprocessor_config.json")):
        return WhisperFeatureExtractor.from_pretrained(model_dir, local_files_only=True)
    if num_mel_bins is None:
        return WhisperFeatureExtractor()
    return WhisperFeatureExtractor(feature_size=num_mel_bins)


def encoder_geometry(conf: Mapping[str, Any]) -> EncoderGeometry:
    """The geometry the encoder of an ``audio_encoder_conf`` will have, from
    the config alone (no weights are read), for the data side and the recipe.

    Whisper's convolutions halve the mel frames, then ``pool_stride`` pools:
    ``2 * hop_length * pool_stride`` samples per frame.
    """
    pool = int(conf.get("pool_stride", DEFAULT_POOL_STRIDE))
    if conf.get("pretrained_dir") is not None:
        fe = whisper_feature_extractor(conf["pretrained_dir"])
        rate, hop = int(fe.sampling_rate), int(fe.hop_length)
    else:
        rate = int(conf.get("sample_rate", DEFAULT_SAMPLE_RATE))
        hop = int(conf.get("hop_length", DEFAULT_HOP_LENGTH))
    return EncoderGeometry(rate, WHISPER_CONV_STRIDE * hop * pool)


def _read_state_dict(model_dir: str, keep) -> Dict[str, torch.Tensor]:
    """Tensors of a checkpoint directory whose names ``keep`` accepts."""
    from safetensors import safe_open

    index = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.isfile(index):
        files = sorted(set(read_json(index)["weight_map"].values()))
    elif os.path.isfile(single):
        files = ["model.safetensors"]
    else:
        path = os.path.join(model_dir, "pytorch_model.bin")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"no model.safetensors or pytorch_model.bin in {model_dir}"
            )
        state = read_checkpoint(path)
        return {k: v for k, v in state.items() if keep(k)}
    from safetensors import SafetensorError

    out = {}
    for name in files:
        path = os.path.join(model_dir, name)
        try:
            with safe_open(path, framework="pt") as f:
                for key in f.keys():
                    if keep(key):
                        out[key] = f.get_tensor(key)
        except SafetensorError as e:
            raise FileFormatError(
                f"{path}: not a readable safetensors file: {e}"
            ) from e
    return out


def load_whisper_encoder(model_dir: str) -> nn.Module:
    """The encoder of a Whisper checkpoint (full model or encoder only).

    Reads only the encoder's tensors, so the decoder never takes memory.
    """
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    local_dir(model_dir, "Whisper checkpoint")
    config = WhisperConfig.from_pretrained(model_dir, local_files_only=True)
    encoder = WhisperEncoder(config)
    wanted = set(encoder.state_dict())
    state = _read_state_dict(
        model_dir,
        lambda k: any(
            k[len(p) :] in wanted for p in ENCODER_PREFIXES if k.startswith(p)
        ),
    )
    for prefix in ENCODER_PREFIXES:
        found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if set(found) >= wanted:
            encoder.load_state_dict({k: found[k] for k in wanted})
            return encoder
    raise ValueError(
        f"{model_dir}: no complete Whisper encoder under prefixes {ENCODER_PREFIXES}"
    )


class WhisperAudioEncoder(nn.Module):
    """Waveforms -> encoder frames at ``frame_rate`` (25 Hz for Whisper).

    ``freeze`` (default): no gradients, always in eval mode, run under
    ``no_grad``. ``window_batch_size`` bounds how many windows one encoder
    call takes (memory).
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_extractor: Any,
        pool_stride: int = DEFAULT_POOL_STRIDE,
        freeze: bool = True,
        window_batch_size: Optional[int] = None,
    ):
        super().__init__()
        config = encoder.config
        if feature_extractor.feature_size != config.num_mel_bins:
            raise ValueError(
                f"feature extractor gives {feature_extractor.feature_size} mel bins, "
                f"the encoder takes {config.num_mel_bins}"
            )
        self.encoder = encoder
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.hop_length = int(feature_extractor.hop_length)
        self.n_fft = int(feature_extractor.n_fft)
        self.pool_stride = int(pool_stride)
        self.freeze = bool(freeze)
        self.window_batch_size = window_batch_size
        conv_stride = encoder.conv1.stride[0] * encoder.conv2.stride[0]
        positions = int(config.max_source_positions)
        if positions % self.pool_stride:
            raise ValueError(
                f"max_source_positions {positions} is not a multiple of pool_stride "
                f"{self.pool_stride}"
            )
        self.window_samples = positions * conv_stride * self.hop_length
        self.frames_per_window = positions // self.pool_stride
        self.samples_per_frame = self.window_samples // self.frames_per_window
        self.register_buffer(
            "mel_filters",
            torch.as_tensor(feature_extractor.mel_filters, dtype=torch.float32),
            persistent=False,
        )
        self.register_buffer(
            "stft_window", torch.hann_window(self.n_fft), persistent=False
        )
        if self.freeze:
            self.encoder.requires_grad_(False)
            self.encoder.eval()
        logging.info(
            f"audio encoder: {self.sample_rate} Hz, windows of "
            f"{self.window_samples / self.sample_rate:g} s, "
            f"{self.frame_rate:g} Hz out, "
            f"{'frozen' if self.freeze else 'trainable'}"
        )

    # ----- construction -------------------------------------------------------

    @classmethod
    def from_pretrained(cls, model_dir: str, **kwargs) -> "WhisperAudioEncoder":
        """Encoder and feature extractor of a local Whisper checkpoint."""
        encoder = load_whisper_encoder(model_dir)
        fe = whisper_feature_extractor(model_dir, encoder.config.num_mel_bins)
        return cls(encoder, fe, **kwargs)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        hop_length: int = DEFAULT_HOP_LENGTH,
        n_fft: int = DEFAULT_N_FFT,
        conv_init: str = "he",
        **kwargs,
    ) -> "WhisperAudioEncoder":
        """A randomly initialised encoder (tests, CPU dry runs, the mini recipe).

        ``conv_init="he"`` (default) re-initialises the two input convolutions
        with He-normal weights and zero biases. Whisper's own init (normal,
        std 0.02) assumes long training: at init its conv output is about 2 %
        of the sinusoidal position embeddings it is added to, so the encoder's
        frames hardly depend on the audio and the LM never learns to listen
        in a short run. ``"whisper"`` keeps transformers' init.
        """
        from transformers import WhisperConfig, WhisperFeatureExtractor
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        if conv_init not in CONV_INITS:
            raise ValueError(
                f"conv_init must be one of {CONV_INITS}, got {conv_init!r}"
            )
        # only the encoder is built: the decoder's token ids default to GPT-2's
        # 50256 / 50257, outside a small vocab_size (transformers warns)
        config = {**ENCODER_ONLY_TOKEN_IDS, **config}
        whisper_config = build_hf_config(WhisperConfig, config, "audio_encoder config")
        encoder = WhisperEncoder(whisper_config)
        if conv_init == "he":
            for conv in (encoder.conv1, encoder.conv2):
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
        fe = WhisperFeatureExtractor(
            feature_size=whisper_config.num_mel_bins,
            sampling_rate=sample_rate,
            hop_length=hop_length,
            n_fft=n_fft,
        )
        return cls(encoder, fe, **kwargs)

    # ----- geometry -----------------------------------------------------------

    @property
    def output_size(self) -> int:
        return int(self.encoder.config.d_model)

    @property
    def geometry(self) -> EncoderGeometry:
        return EncoderGeometry(self.sample_rate, self.samples_per_frame)

    @property
    def frame_rate(self) -> float:
        return self.geometry.frame_rate

    def num_frames(self, num_samples: int) -> int:
        """Frames ``forward`` gives for ``num_samples`` samples (placeholders)."""
        return max(1, math.ceil(int(num_samples) / self.samples_per_frame))

    def train(self, mode: bool = True) -> "WhisperAudioEncoder":
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    # ----- computation --------------------------------------------------------

    def log_mel(self, windows: torch.Tensor) -> torch.Tensor:
        """``[N, window_samples]`` -> Whisper log-mel ``[N, n_mels, frames]``.

        Same as ``WhisperFeatureExtractor`` on each zero-padded window.
        """
        stft = torch.stft(
            windows.float(),
            self.n_fft,
            self.hop_length,
            window=self.stft_window,
            return_complex=True,
        )
        power = stft[..., :-1].abs().pow(2)
        mel = torch.matmul(self.mel_filters.T, power)
        log = mel.clamp(min=1e-10).log10()
        floor = log.amax(dim=(1, 2), keepdim=True) - 8.0
        return (torch.maximum(log, floor) + 4.0) / 4.0

    def _encode_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """``[M, window_samples]`` -> pooled frames ``[M, frames_per_window, D]``."""
        outs = []
        step = self.window_batch_size or windows.shape[0]
        dtype = next(self.encoder.parameters()).dtype
        for i in range(0, windows.shape[0], step):
            feats = self.log_mel(windows[i : i + step]).to(dtype)
            hidden = self.encoder(feats).last_hidden_state
            outs.append(
                nn.functional.avg_pool1d(
                    hidden.transpose(1, 2), self.pool_stride, self.pool_stride
                ).transpose(1, 2)
            )
        return torch.cat(outs)

    def forward(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[N, S]`` waveforms at ``sample_rate`` -> ``[N, F, D]``, ``[N]`` frames."""
        n_audio, n_samples = wav.shape
        size = self.window_samples
        n_windows = max(1, -(-n_samples // size))
        padded = wav.new_zeros(n_audio, n_windows * size, dtype=torch.float32)
        valid = torch.arange(n_samples, device=wav.device) < wav_lengths[:, None]
        padded[:, :n_samples] = wav.float() * valid
        windows = padded.view(n_audio, n_windows, size)
        windows_per_audio = ((wav_lengths + size - 1) // size).clamp(min=1)
        used = torch.arange(n_windows, device=wav.device) < windows_per_audio[:, None]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            frames = self._encode_windows(windows[used])
        out = frames.new_zeros(
            n_audio, n_windows, self.frames_per_window, frames.shape[-1]
        )
        out[used] = frames
        out = out.view(n_audio, n_windows * self.frames_per_window, -1)
        lengths = torch.tensor(
            [self.num_frames(n) for n in wav_lengths.tolist()], device=wav.device
        )
        return out[:, : int(lengths.max())], lengths
