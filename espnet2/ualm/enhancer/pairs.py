"""Training pairs of the Enhancement VAE, made from 48 kHz stereo masters.

target = the master; input = the master down-mixed to mono, resampled to the
codec's sample rate and passed through the codec (encode, then decode), i.e.
what the UALM generation path hands to the enhancer. The codec round trip is
either cached once per clip (``prepare_pairs``: the mini recipe's choice,
since the spec_rvq codec's Griffin-Lim decoding would otherwise dominate a
CPU training step) or made on the fly here from a random crop.
"""

import logging
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from espnet2.ualm.codec.abs_codec import AbsCodec
from espnet2.ualm.data.io import downmix, resample


@torch.no_grad()
def codec_round_trip(codec: AbsCodec, wav: np.ndarray) -> np.ndarray:
    """``[N]`` at the codec's rate -> decode(encode(wav)) cut to ``N`` samples."""
    x = torch.as_tensor(np.ascontiguousarray(wav), dtype=torch.float32)[None]
    device = next(iter(codec.buffers()), x).device
    codes, code_lengths = codec.encode(x.to(device), torch.tensor([x.shape[1]]))
    out, _ = codec.decode(codes, code_lengths)
    out = out[0, : x.shape[1]].float().cpu().numpy()
    return np.pad(out, (0, x.shape[1] - out.shape[0]))


def make_input(target: np.ndarray, target_rate: int, codec: AbsCodec) -> np.ndarray:
    """``[N, C]`` master at ``target_rate`` -> ``[N * codec_rate / target_rate]``
    float32 codec output: down-mix, resample, codec round trip."""
    mono = resample(downmix(target).astype(np.float64), target_rate, codec.sample_rate)
    return codec_round_trip(codec, mono.astype(np.float32))


def crop_pair(
    input: np.ndarray,
    target: np.ndarray,
    factor: int,
    segment: int,
    rng: Optional[np.random.Generator],
) -> Tuple[np.ndarray, np.ndarray]:
    """Aligned crops of ``segment`` input samples and ``segment * factor`` target
    samples: a random start with ``rng``, else the centre of the clip. Clips
    shorter than a segment are zero-padded at the end."""
    available = min(input.shape[0], target.shape[0] // factor)
    if available > segment:
        if rng is None:
            start = (available - segment) // 2
        else:
            start = int(rng.integers(0, available - segment + 1))
    else:
        start = 0
    x = input[start : start + segment]
    y = target[start * factor : (start + segment) * factor]
    x = np.pad(x, (0, segment - x.shape[0]))
    y = np.pad(y, [(0, segment * factor - y.shape[0])] + [(0, 0)] * (y.ndim - 1))
    return x, y


class EnhancerPairPreprocessor:
    """ESPnet preprocessor: ``{"target": [N, C]}`` (and a cached ``"input"``)
    -> aligned ``input`` ``[segment]`` and ``target`` ``[segment * factor, C]``.

    Without a cached ``input`` the codec round trip of the (cropped) target is
    made here. ``segment=None`` keeps whole clips (evaluation). In training,
    ``swap_channels_prob`` mirrors the target's stereo image: where the image
    cannot be inferred from the mono input, this keeps the model from drifting
    towards whichever side the last batches happened to favour.
    """

    def __init__(
        self,
        train: bool,
        input_sample_rate: int,
        target_sample_rate: int,
        segment: Optional[int],
        codec: Optional[AbsCodec] = None,
        seed: int = 0,
        swap_channels_prob: float = 0.0,
    ):
        if target_sample_rate % input_sample_rate != 0:
            raise ValueError(
                f"target rate {target_sample_rate} must be a multiple of the input "
                f"rate {input_sample_rate}"
            )
        if codec is not None and codec.sample_rate != input_sample_rate:
            raise ValueError(
                f"the codec runs at {codec.sample_rate} Hz but the enhancer takes "
                f"{input_sample_rate} Hz"
            )
        self.train = train
        self.input_sample_rate = input_sample_rate
        self.target_sample_rate = target_sample_rate
        self.factor = target_sample_rate // input_sample_rate
        self.segment = segment
        self.codec = codec
        self.seed = seed
        self.swap_channels_prob = swap_channels_prob
        self._rng: Optional[np.random.Generator] = None

    def _generator(self) -> Optional[np.random.Generator]:
        """Random crops in training, centre crops otherwise. Seeded from the
        torch seed of the data-loader worker, so workers draw different crops."""
        if not self.train:
            return None
        if self._rng is None:
            self._rng = np.random.default_rng([self.seed, torch.initial_seed()])
        return self._rng

    def __call__(self, uid: str, data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        target = np.asarray(data["target"], dtype=np.float32)
        rng = self._generator()
        if "input" in data:
            x = np.asarray(data["input"], dtype=np.float32)
            if x.ndim != 1:
                raise ValueError(f"{uid}: input must be mono, got shape {x.shape}")
            expected = target.shape[0] / self.factor
            if abs(x.shape[0] - expected) > 0.05 * expected + 1024:
                raise ValueError(
                    f"{uid}: input has {x.shape[0]} samples, the target "
                    f"{target.shape[0]}: not a {self.factor}x rate pair of one clip"
                )
            if self.segment is not None:
                x, target = crop_pair(x, target, self.factor, self.segment, rng)
        else:
            if self.codec is None:
                raise ValueError(
                    f"{uid}: no cached 'input' and no codec to make it: give "
                    "--codec_config or an input scp"
                )
            if self.segment is not None:
                # Crop first: the codec then only runs on the segment.
                dummy = np.zeros(target.shape[0] // self.factor, dtype=np.float32)
                _, target = crop_pair(dummy, target, self.factor, self.segment, rng)
            x = make_input(target, self.target_sample_rate, self.codec)
            x = x[: target.shape[0] // self.factor]
        if (
            rng is not None
            and target.ndim == 2
            and rng.random() < self.swap_channels_prob
        ):
            # Mirror the stereo image: a mono input says nothing about the side.
            target = target[:, ::-1]
        out = dict(data)
        out.update(
            input=np.ascontiguousarray(x, dtype=np.float32),
            target=np.ascontiguousarray(target, dtype=np.float32),
        )
        return out


def log_pair_setup(preprocessor: EnhancerPairPreprocessor) -> None:
    mode = "cached input" if preprocessor.codec is None else "codec on the fly"
    logging.info(
        f"enhancer pairs ({'train' if preprocessor.train else 'valid'}): {mode}, "
        f"segment {preprocessor.segment} input samples, "
        f"{preprocessor.input_sample_rate} -> {preprocessor.target_sample_rate} Hz"
    )
