"""Acoustic encoders for audio input: Whisper's (pooled, in windows) and
Qwen3-Omni's (transformers' ``Qwen3OmniMoeAudioEncoder``, as ESPnet-SpeechLM
second-generation checkpoints such as Bagpiper use it).

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


ENCODER_KINDS = ("whisper", "qwen3_omni")


@dataclasses.dataclass(frozen=True)
class EncoderGeometry:
    """Input sample rate and waveform samples per output frame of the encoder:
    what the data side and the recipe need to know of it.

    ``chunk_mel_frames`` > 0 (Qwen3-Omni): the encoder reads ``hop_length``
    mel frames in chunks of that many and its frame count is transformers'
    ``_get_feat_extract_output_lengths`` of the mel frames, not a ceiling of
    ``samples / samples_per_frame`` (then only the average rate).
    """

    sample_rate: int
    samples_per_frame: int
    hop_length: int = 0
    chunk_mel_frames: int = 0

    @property
    def frame_rate(self) -> float:
        if self.chunk_mel_frames:
            per_chunk = qwen3_omni_frames(self.chunk_mel_frames, self.chunk_mel_frames)
            return (
                per_chunk * self.sample_rate / (self.chunk_mel_frames * self.hop_length)
            )
        return self.sample_rate / self.samples_per_frame

    def num_frames(self, num_samples: int) -> int:
        """Encoder frames (placeholders) of ``num_samples`` input samples."""
        if self.chunk_mel_frames:
            mel = int(num_samples) // self.hop_length
            return max(1, qwen3_omni_frames(mel, self.chunk_mel_frames))
        return max(1, -(-int(num_samples) // self.samples_per_frame))


def qwen3_omni_frames(mel_frames, chunk_mel_frames: int):
    """Output frames of Qwen3-Omni's audio encoder for ``mel_frames`` (int or
    tensor): transformers' own ``_get_feat_extract_output_lengths``."""
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
        _get_feat_extract_output_lengths,
    )

    return _get_feat_extract_output_lengths(mel_frames, n_window=chunk_mel_frames // 2)


def qwen3_omni_geometry(sample_rate: int, hop_length: int, n_window: int):
    """Qwen3-Omni's encoder reads chunks of ``2 * n_window`` mel frames."""
    chunk = 2 * n_window
    per_chunk = qwen3_omni_frames(chunk, chunk)
    return EncoderGeometry(
        sample_rate, chunk * hop_length // per_chunk, hop_length, chunk
    )


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


def encoder_geometry(
    conf: Mapping[str, Any], kind: Optional[str] = "whisper"
) -> EncoderGeometry:
    """The geometry the encoder of an ``audio_encoder_conf`` will have, from
    the config alone (no weights are read), for the data side and the recipe.

    Whisper's convolutions halve the mel frames, then ``pool_stride`` pools:
    ``2 * hop_length * pool_stride`` samples per frame. Qwen3-Omni: chunks of
    ``2 * n_window`` mel frames (``Qwen3OmniAudioEncoder``).
    """
    kind = kind or "whisper"
    if kind not in ENCODER_KINDS:
        raise ValueError(f"audio encoder kind must be one of {ENCODER_KINDS}: {kind!r}")
    if kind == "qwen3_omni":
        return Qwen3OmniAudioEncoder.geometry_of(conf)
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
    return load_prefixed(encoder, model_dir, ENCODER_PREFIXES, "Whisper encoder")


def load_prefixed(
    module: nn.Module, model_dir: str, prefixes: Tuple[str, ...], what: str
) -> nn.Module:
    """Loads ``module`` from the tensors of ``model_dir`` under the first of
    ``prefixes`` that holds all of them (only those tensors are read)."""
    wanted = set(module.state_dict())
    state = _read_state_dict(
        model_dir,
        lambda k: any(k[len(p) :] in wanted for p in prefixes if k.startswith(p)),
    )
    for prefix in prefixes:
        found = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if set(found) >= wanted:
            module.load_state_dict({k: found[k] for k in wanted})
            return module
    raise ValueError(f"{model_dir}: no complete {what} under prefixes {prefixes}")


class LogMelEncoder(nn.Module):
    """What both encoders share: a transformers encoder behind the Whisper
    log-mel front end of its feature extractor (computed in torch, on the
    model's device), frozen or not, and its geometry's frame count.

    ``freeze`` (default): no gradients, always in eval mode, run under
    ``no_grad``.
    """

    def __init__(self, encoder: nn.Module, feature_extractor: Any, freeze: bool):
        super().__init__()
        n_mels = encoder.config.num_mel_bins
        if feature_extractor.feature_size != n_mels:
            raise ValueError(
                f"feature extractor gives {feature_extractor.feature_size} mel bins, "
                f"the encoder takes {n_mels}"
            )
        self.encoder = encoder
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.hop_length = int(feature_extractor.hop_length)
        self.n_fft = int(feature_extractor.n_fft)
        self.freeze = bool(freeze)
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

    @property
    def geometry(self) -> EncoderGeometry:
        raise NotImplementedError

    @property
    def frame_rate(self) -> float:
        return self.geometry.frame_rate

    def num_frames(self, num_samples: int) -> int:
        """Frames ``forward`` gives for ``num_samples`` samples (placeholders)."""
        return self.geometry.num_frames(num_samples)

    def train(self, mode: bool = True) -> "LogMelEncoder":
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    def whisper_log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """``[..., S]`` -> Whisper log-mel ``[..., n_mels, S // hop]``, as
        ``WhisperFeatureExtractor`` computes it for each leading index."""
        stft = torch.stft(
            wav.float().reshape(-1, wav.shape[-1]),
            self.n_fft,
            self.hop_length,
            window=self.stft_window,
            return_complex=True,
        )
        power = stft[..., :-1].abs().pow(2)
        log = torch.matmul(self.mel_filters.T, power).clamp(min=1e-10).log10()
        floor = log.amax(dim=(-2, -1), keepdim=True) - 8.0
        log = (torch.maximum(log, floor) + 4.0) / 4.0
        return log.view(*wav.shape[:-1], *log.shape[-2:])


class WhisperAudioEncoder(LogMelEncoder):
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
        super().__init__(encoder, feature_extractor, freeze)
        config = encoder.config
        self.pool_stride = int(pool_stride)
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

    # ----- computation --------------------------------------------------------

    def log_mel(self, windows: torch.Tensor) -> torch.Tensor:
        """``[N, window_samples]`` -> Whisper log-mel ``[N, n_mels, frames]``.

        Same as ``WhisperFeatureExtractor`` on each zero-padded window.
        """
        return self.whisper_log_mel(windows)

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


def qwen3_omni_audio_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The audio-encoder part of a Qwen3-Omni ``config.json`` (the whole
    model's, the thinker's or the encoder's own), as a plain mapping."""
    kind = config.get("model_type")
    if kind == "qwen3_omni_moe":
        config = (config.get("thinker_config") or {}).get("audio_config")
    elif kind == "qwen3_omni_moe_thinker":
        config = config.get("audio_config")
    elif kind != "qwen3_omni_moe_audio_encoder":
        raise ValueError(
            f"not a Qwen3-Omni config (model_type {kind!r}): expected "
            "qwen3_omni_moe, qwen3_omni_moe_thinker or qwen3_omni_moe_audio_encoder"
        )
    if not isinstance(config, Mapping):
        raise ValueError("the Qwen3-Omni config has no audio_config")
    return {k: v for k, v in config.items() if k not in ("architectures",)}


class Qwen3OmniAudioEncoder(LogMelEncoder):
    """Waveforms -> Qwen3-Omni audio-encoder frames (about 12.5 Hz).

    The encoder is transformers' ``Qwen3OmniMoeAudioEncoder``; its input is
    what ESPnet-SpeechLM's ``ContinuousAudioIO`` feeds it: each clip
    normalised to zero mean and unit variance (``do_normalize``), Whisper
    log-mel features of the whole clip (``n_samples // hop_length`` frames,
    the feature extractor's filter bank, computed here in torch), the
    clips' frames concatenated with their lengths. ``freeze`` as Whisper's.
    """

    def __init__(self, encoder: nn.Module, feature_extractor: Any, freeze: bool = True):
        super().__init__(encoder, feature_extractor, freeze)

    # ----- construction -------------------------------------------------------

    @classmethod
    def from_pretrained(cls, model_dir: str, **kwargs) -> "Qwen3OmniAudioEncoder":
        """The audio tower of a local Qwen3-Omni checkpoint (only its tensors
        are read) and its ``preprocessor_config.json``."""
        from transformers import WhisperFeatureExtractor

        local_dir(model_dir, "Qwen3-Omni checkpoint")
        config = qwen3_omni_audio_config(
            read_json(os.path.join(model_dir, "config.json"))
        )
        prefixes = ("thinker.audio_tower.", "audio_tower.", "")
        encoder = load_prefixed(
            cls._encoder(config), model_dir, prefixes, "Qwen3-Omni audio tower"
        )
        fe = WhisperFeatureExtractor.from_pretrained(model_dir, local_files_only=True)
        return cls(encoder, fe, **kwargs)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        hop_length: int = DEFAULT_HOP_LENGTH,
        n_fft: int = DEFAULT_N_FFT,
        **kwargs,
    ) -> "Qwen3OmniAudioEncoder":
        """An encoder of ``Qwen3OmniMoeAudioEncoderConfig`` fields (weights
        random until a state dict is loaded: a packed or converted model)."""
        from transformers import WhisperFeatureExtractor

        encoder = cls._encoder(config)
        fe = WhisperFeatureExtractor(
            feature_size=encoder.config.num_mel_bins,
            sampling_rate=sample_rate,
            hop_length=hop_length,
            n_fft=n_fft,
        )
        return cls(encoder, fe, **kwargs)

    @staticmethod
    def _encoder(config: Mapping[str, Any]) -> nn.Module:
        from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import (
            Qwen3OmniMoeAudioEncoderConfig,
        )
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
            Qwen3OmniMoeAudioEncoder,
        )

        config = {k: v for k, v in config.items() if k != "model_type"}
        hf = build_hf_config(
            Qwen3OmniMoeAudioEncoderConfig, config, "audio_encoder config"
        )
        return Qwen3OmniMoeAudioEncoder(hf)

    @staticmethod
    def geometry_of(conf: Mapping[str, Any]) -> EncoderGeometry:
        """The geometry of an ``audio_encoder_conf`` without building it."""
        if conf.get("pretrained_dir") is not None:
            from transformers import WhisperFeatureExtractor

            model_dir = conf["pretrained_dir"]
            config = qwen3_omni_audio_config(
                read_json(os.path.join(model_dir, "config.json"))
            )
            fe = WhisperFeatureExtractor.from_pretrained(
                model_dir, local_files_only=True
            )
            rate, hop = int(fe.sampling_rate), int(fe.hop_length)
        else:
            config = conf.get("config") or {}
            rate = int(conf.get("sample_rate", DEFAULT_SAMPLE_RATE))
            hop = int(conf.get("hop_length", DEFAULT_HOP_LENGTH))
        from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import (
            Qwen3OmniMoeAudioEncoderConfig,
        )

        n_window = config.get("n_window", Qwen3OmniMoeAudioEncoderConfig.n_window)
        return qwen3_omni_geometry(rate, hop, int(n_window))

    # ----- geometry -----------------------------------------------------------

    @property
    def output_size(self) -> int:
        return int(self.encoder.config.output_dim)

    @property
    def geometry(self) -> EncoderGeometry:
        n_window = int(self.encoder.config.n_window)
        return qwen3_omni_geometry(self.sample_rate, self.hop_length, n_window)

    # ----- computation --------------------------------------------------------

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """One clip ``[S]`` -> normalised Whisper log-mel ``[n_mels, S // hop]``,
        as ``WhisperFeatureExtractor(do_normalize=True)`` gives it."""
        wav = wav.float()
        wav = (wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-7)
        return self.whisper_log_mel(wav)

    def forward(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[N, S]`` waveforms at ``sample_rate`` -> ``[N, F, D]``, ``[N]`` frames."""
        lengths = [int(n) for n in wav_lengths.tolist()]
        mels = [self.log_mel(wav[i, :n]) for i, n in enumerate(lengths)]
        dtype = next(self.encoder.parameters()).dtype
        features = torch.cat(mels, dim=1).to(dtype)
        mel_lengths = torch.tensor([m.shape[1] for m in mels], device=wav.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.encoder(features, feature_lens=mel_lengths).last_hidden_state
        frames = [self.num_frames(n) for n in lengths]
        if sum(frames) != hidden.shape[0]:
            raise RuntimeError(
                f"Qwen3-Omni encoder gave {hidden.shape[0]} frames, expected {frames}"
            )
        out = hidden.new_zeros(len(lengths), max(frames), hidden.shape[-1])
        for i, chunk in enumerate(hidden.split(frames)):
            out[i, : chunk.shape[0]] = chunk
        return out, torch.tensor(frames, device=wav.device)
