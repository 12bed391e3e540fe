"""A codec fitted on the CPU in about a minute: residual k-means on log spectra.

Each code frame is one log-magnitude STFT frame (``n_fft // 2 + 1`` bins at the
codec frame rate), quantised by ``n_codebooks`` residual k-means stages of
``codebook_size`` centroids each; decoding sums the chosen centroids and runs
Griffin-Lim. Bins are weighted by the density of the mel scale before
clustering, so that low frequencies (pitch, formants) get more of the
codebooks than the noise-like top of the spectrum.

It has the geometry of X-codec by default (16 kHz, 50 Hz, 8 x 1024), so the
rest of the project can be developed and tested end to end without pretrained
weights. It keeps the pitch and timing of simple sounds; speech stays
intelligible but sounds rough, since the phase is re-estimated, not coded.
"""

import json
import logging
import os
from typing import Any, Dict, Iterable, Optional, Tuple, Union

import numpy as np
import torch
from safetensors.torch import save_file

from espnet2.ualm.codec.abs_codec import AbsCodec
from espnet2.ualm.codec.kmeans import nearest, residual_kmeans
from espnet2.ualm.codec.spectral import griffin_lim, log_magnitude
from espnet2.ualm.data.safe_io import read_json, read_safetensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

# What a fitted model is: saved in config.json, must agree when loaded.
_GEOMETRY_DEFAULTS: Dict[str, Any] = dict(
    sample_rate=16000,
    frame_rate=50,
    n_codebooks=8,
    codebook_size=1024,
    n_fft=1024,
    win_length=None,  # None: n_fft
    log_floor=1e-2,
    mel_weighting=1.0,
)
# How it is fitted and decoded: saved too, but may be changed when loading.
_SETTING_DEFAULTS: Dict[str, Any] = dict(
    kmeans_iters=5,
    griffin_lim_iters=64,
    griffin_lim_momentum=0.99,
    seed=0,
)


class SpecRVQCodec(AbsCodec):
    """Residual k-means codes of log-magnitude spectra, Griffin-Lim decoding.

    Build it unfitted from geometry arguments and call :meth:`fit`, or load a
    fitted one with ``model_dir`` (written by :meth:`save_pretrained`). Geometry
    arguments given together with ``model_dir`` must match the saved model.
    """

    def __init__(
        self,
        model_dir: Optional[str] = None,
        sample_rate: Optional[int] = None,
        frame_rate: Optional[int] = None,
        n_codebooks: Optional[int] = None,
        codebook_size: Optional[int] = None,
        n_fft: Optional[int] = None,
        win_length: Optional[int] = None,
        log_floor: Optional[float] = None,
        mel_weighting: Optional[float] = None,
        kmeans_iters: Optional[int] = None,
        griffin_lim_iters: Optional[int] = None,
        griffin_lim_momentum: Optional[float] = None,
        seed: Optional[int] = None,
    ):
        """Arguments (each defaults to the saved value, else to the default):

        sample_rate, frame_rate, n_codebooks, codebook_size: codec geometry
            (16000, 50, 8, 1024).
        n_fft, win_length: STFT size and Hann window length (1024, n_fft).
        log_floor: magnitudes below it are coded as silence (1e-2, about
            -88 dB under a full-scale sine's peak bin).
        mel_weighting: exponent of the mel-density weight of each bin in the
            k-means distance (1.0; 0 weighs all bins equally).
        kmeans_iters: Lloyd iterations per stage in :meth:`fit` (5).
        griffin_lim_iters, griffin_lim_momentum: decoding effort (64, 0.99).
        seed: seeds the k-means initialisation and Griffin-Lim's initial phase.
        """
        super().__init__()
        given: Dict[str, Any] = dict(
            sample_rate=sample_rate,
            frame_rate=frame_rate,
            n_codebooks=n_codebooks,
            codebook_size=codebook_size,
            n_fft=n_fft,
            win_length=win_length,
            log_floor=log_floor,
            mel_weighting=mel_weighting,
            kmeans_iters=kmeans_iters,
            griffin_lim_iters=griffin_lim_iters,
            griffin_lim_momentum=griffin_lim_momentum,
            seed=seed,
        )
        saved: Dict[str, Any] = {}
        if model_dir is not None:
            saved = read_json(os.path.join(model_dir, CONFIG_NAME))
            for key in _GEOMETRY_DEFAULTS:
                if given[key] is not None and given[key] != saved.get(key):
                    raise ValueError(
                        f"{model_dir}: {key}={given[key]} was given but the saved "
                        f"model has {key}={saved.get(key)}"
                    )
        defaults = {**_GEOMETRY_DEFAULTS, **_SETTING_DEFAULTS}
        conf = {
            key: value if value is not None else saved.get(key, defaults[key])
            for key, value in given.items()
        }
        self._sample_rate = int(conf["sample_rate"])
        self._frame_rate = int(conf["frame_rate"])
        self._n_codebooks = int(conf["n_codebooks"])
        self._codebook_size = int(conf["codebook_size"])
        self.n_fft = int(conf["n_fft"])
        self.win_length = int(conf["win_length"] or self.n_fft)
        self.log_floor = float(conf["log_floor"])
        self.mel_weighting = float(conf["mel_weighting"])
        if self._sample_rate % self._frame_rate != 0:
            raise ValueError(
                f"sample_rate {self._sample_rate} must be a multiple of frame_rate "
                f"{self._frame_rate}"
            )
        if not 2 * self.hop_length <= self.win_length <= self.n_fft:
            raise ValueError(
                f"win_length {self.win_length} must lie between twice the hop "
                f"length {self.hop_length} (Griffin-Lim needs overlap) and n_fft "
                f"{self.n_fft}"
            )
        self.kmeans_iters = int(conf["kmeans_iters"])
        self.griffin_lim_iters = int(conf["griffin_lim_iters"])
        self.griffin_lim_momentum = float(conf["griffin_lim_momentum"])
        self.seed = int(conf["seed"])
        dim = self.n_fft // 2 + 1
        self.register_buffer("bin_weights", self._bin_weights(), persistent=False)
        self.register_buffer(
            "codebooks", torch.zeros(self._n_codebooks, self._codebook_size, dim)
        )
        self.register_buffer("fitted_flag", torch.zeros((), dtype=torch.bool))
        if model_dir is not None:
            codebooks = read_safetensors(os.path.join(model_dir, WEIGHTS_NAME))[
                "codebooks"
            ]
            if codebooks.shape != self.codebooks.shape:
                raise ValueError(
                    f"{model_dir}: codebooks of shape {tuple(codebooks.shape)}, "
                    f"config says {tuple(self.codebooks.shape)}"
                )
            self.codebooks.copy_(codebooks)
            self.fitted_flag.fill_(True)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def frame_rate(self) -> float:
        return float(self._frame_rate)

    @property
    def n_codebooks(self) -> int:
        return self._n_codebooks

    @property
    def codebook_size(self) -> int:
        return self._codebook_size

    @property
    def hop_length(self) -> int:
        return self._sample_rate // self._frame_rate

    @property
    def fitted(self) -> bool:
        """Whether the codebooks hold a fit (a buffer: survives ``state_dict``)."""
        return bool(self.fitted_flag)

    def model_config(self) -> Dict[str, Any]:
        """What ``config.json`` holds: the geometry plus the run-time settings."""
        return dict(
            codec="spec_rvq",
            sample_rate=self._sample_rate,
            frame_rate=self._frame_rate,
            n_codebooks=self._n_codebooks,
            codebook_size=self._codebook_size,
            n_fft=self.n_fft,
            win_length=self.win_length,
            log_floor=self.log_floor,
            mel_weighting=self.mel_weighting,
            kmeans_iters=self.kmeans_iters,
            griffin_lim_iters=self.griffin_lim_iters,
            griffin_lim_momentum=self.griffin_lim_momentum,
            seed=self.seed,
        )

    def save_pretrained(self, model_dir: str) -> None:
        """Writes ``config.json`` and ``model.safetensors`` into ``model_dir``."""
        self._check_fitted()
        os.makedirs(model_dir, exist_ok=True)
        with open(os.path.join(model_dir, CONFIG_NAME), "w", encoding="utf-8") as f:
            json.dump(self.model_config(), f, indent=2)
            f.write("\n")
        save_file(
            {"codebooks": self.codebooks.detach().cpu().contiguous()},
            os.path.join(model_dir, WEIGHTS_NAME),
        )

    @classmethod
    def from_pretrained(cls, model_dir: str, **kwargs: Any) -> "SpecRVQCodec":
        return cls(model_dir=model_dir, **kwargs)

    def _bin_weights(self) -> torch.Tensor:
        """``sqrt(mel density) ** mel_weighting`` per bin, RMS-normalised to 1.

        The mel scale's density is proportional to ``1 / (700 + f)``; scaling the
        vectors by its square root makes squared distances weigh it linearly.
        """
        freq = torch.linspace(0, self._sample_rate / 2, self.n_fft // 2 + 1)
        weights = (700.0 / (700.0 + freq)) ** (self.mel_weighting / 2)
        return weights / weights.pow(2).mean().sqrt()

    def features(self, wav: Union[torch.Tensor, np.ndarray]) -> torch.Tensor:
        """``[N]`` waveform -> ``[ceil(N / hop), n_fft // 2 + 1]`` vectors to quantise
        (log magnitudes times the bin weights)."""
        wav = torch.as_tensor(wav, dtype=torch.float32)
        log_mag = log_magnitude(
            wav.cpu(),
            self.n_fft,
            self.win_length,
            self.hop_length,
            self.num_frames(wav.shape[-1]),
            self.log_floor,
        )
        return log_mag * self.bin_weights.cpu()

    def magnitudes(self, feats: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`features` up to the phase: ``[T, F]`` magnitudes, with
        bins at the floor (quiet when encoded) decoded as silence."""
        log_mag = feats / self.bin_weights.cpu()
        return (log_mag.exp() - self.log_floor).clamp_min(0.0)

    @torch.no_grad()
    def fit(
        self,
        wavs: Iterable[Union[torch.Tensor, np.ndarray]],
        max_frames: int = 65536,
        seed: Optional[int] = None,
    ) -> Dict[str, float]:
        """Fits the codebooks on a random subsample of the frames of ``wavs``.

        Frames are drawn uniformly from all clips by reservoir sampling, so the
        clips are read once and never held in memory together. More frames with
        fewer Lloyd iterations generalise better than the reverse at equal cost
        (8 x 1024 centroids overfit 32k frames). Returns fit statistics.
        """
        seed = self.seed if seed is None else int(seed)
        rng = np.random.default_rng(seed)
        dim = self.n_fft // 2 + 1
        reservoir = np.empty((max_frames, dim), dtype=np.float32)
        seen = 0
        for wav in wavs:
            frames = self.features(wav).numpy()
            for frame in _reservoir_picks(frames, seen, max_frames, rng):
                reservoir[frame[0]] = frames[frame[1]]
            seen += frames.shape[0]
        used = min(seen, max_frames)
        if used < self.codebook_size:
            raise ValueError(
                f"fit needs at least codebook_size={self.codebook_size} frames, "
                f"the training audio has {seen}"
            )
        x = torch.from_numpy(reservoir[:used])
        variance = float(x.var(dim=0).sum() / dim)
        residual_mse = []
        codebooks = residual_kmeans(
            x,
            self.n_codebooks,
            self.codebook_size,
            self.kmeans_iters,
            seed=seed,
            progress=lambda stage, mse: residual_mse.append(mse),
        )
        self.codebooks.copy_(codebooks)
        self.fitted_flag.fill_(True)
        logging.info(
            f"fitted {self.n_codebooks} x {self.codebook_size} codebooks on {used} "
            f"of {seen} frames; residual mse per stage: "
            + " ".join(f"{m:.3f}" for m in residual_mse)
            + f" (frame variance {variance:.3f})"
        )
        return dict(
            frames_seen=float(seen),
            frames_used=float(used),
            frame_variance=variance,
            residual_mse=residual_mse[-1],
        )

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(
                "SpecRVQCodec is not fitted: call fit(...) first, or build it with "
                "model_dir=<directory written by save_pretrained>"
            )

    @torch.no_grad()
    def quantize(self, feats: torch.Tensor) -> torch.Tensor:
        """``[T, D]`` features -> ``[T, n_codebooks]`` codes (residual, greedy)."""
        self._check_fitted()
        residual = feats.float().to(self.codebooks.device).clone()
        codes = torch.empty(
            feats.shape[0], self.n_codebooks, dtype=torch.long, device=residual.device
        )
        for stage in range(self.n_codebooks):
            index, _ = nearest(residual, self.codebooks[stage])
            codes[:, stage] = index
            residual -= self.codebooks[stage][index]
        return codes.cpu()

    @torch.no_grad()
    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """``[T, n_codebooks]`` codes -> ``[T, D]`` features (sum of centroids)."""
        self._check_fitted()
        device = self.codebooks.device
        stages = torch.arange(self.n_codebooks, device=device)
        return self.codebooks[stages, codes.long().to(device)].sum(dim=1).cpu()

    @torch.no_grad()
    def encode(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Each row is framed at its own length: batched equals one by one."""
        self._check_fitted()
        if wav.dim() != 2:
            raise ValueError(f"wav must be [B, N], got shape {tuple(wav.shape)}")
        lengths = [int(n) for n in wav_lengths]
        frames = [self.num_frames(n) for n in lengths]
        codes = torch.zeros(
            len(lengths), max(frames, default=0), self.n_codebooks, dtype=torch.long
        )
        for row, n in enumerate(lengths):
            if n > 0:
                codes[row, : frames[row]] = self.quantize(
                    self.features(wav[row, :n].cpu())
                )
        return codes.to(wav.device), torch.tensor(frames, device=wav.device)

    @torch.no_grad()
    def decode(
        self, codes: torch.Tensor, code_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Griffin-Lim per row, seeded: same output batched or one by one."""
        self._check_fitted()
        if codes.dim() != 3 or codes.shape[-1] != self.n_codebooks:
            raise ValueError(
                f"codes must be [B, T, {self.n_codebooks}], got {tuple(codes.shape)}"
            )
        if codes.numel() > 0 and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(
                f"codes must lie in [0, {self.codebook_size}), got "
                f"[{int(codes.min())}, {int(codes.max())}]"
            )
        frames = [int(t) for t in code_lengths]
        hop = self.hop_length
        wav = torch.zeros(codes.shape[0], codes.shape[1] * hop)
        for row, n_frames in enumerate(frames):
            if n_frames > 0:
                feats = self.dequantize(codes[row, :n_frames])
                wav[row, : n_frames * hop] = griffin_lim(
                    self.magnitudes(feats),
                    self.n_fft,
                    self.win_length,
                    hop,
                    self.griffin_lim_iters,
                    self.griffin_lim_momentum,
                    torch.Generator().manual_seed(self.seed),
                )
        lengths = torch.tensor(frames, device=codes.device) * hop
        return wav.to(codes.device), lengths


def _reservoir_picks(
    frames: np.ndarray, seen: int, capacity: int, rng: np.random.Generator
) -> Iterable[Tuple[int, int]]:
    """``(slot, frame)`` pairs of reservoir sampling (Algorithm R) for one clip.

    Frame ``i`` of the clip is the ``seen + i``-th frame overall; it fills a free
    slot, or replaces a random slot with probability ``capacity / (seen + i + 1)``.
    Pairs come in order, so a later frame overwrites an earlier one.
    """
    n = frames.shape[0]
    position = seen + np.arange(n)
    slot = np.where(
        position < capacity,
        position,
        np.floor(rng.random(n) * (position + 1)).astype(np.int64),
    )
    keep = np.flatnonzero(slot < capacity)
    return zip(slot[keep].tolist(), keep.tolist())
