"""Shared fixtures of the enhancer tests: tiny stereo masters and codec."""

import os

import numpy as np
import pytest
import soundfile

from espnet2.ualm.codec import SpecRVQCodec

RATE48 = 48000


def panned_tone(seconds: float, freq: float, pan: float, seed: int) -> np.ndarray:
    """``[N, 2]`` tone plus its 3rd harmonic (reaching above 8 kHz for a high
    tone), panned with the mini corpus' law ``L = 1 - p, R = 1 + p``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE48)) / RATE48
    x = 0.2 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.28))
    x += 0.07 * np.sin(2 * np.pi * 3 * freq * t)
    x[: len(x) // 8] = 0.0  # leading silence
    return np.stack([x * (1 - pan), x * (1 + pan)], axis=1).astype(np.float32)


def write_masters(directory, n: int, seconds: float = 0.6, seed: int = 0) -> str:
    """``n`` stereo 48 kHz masters and their ``wav48.scp``; returns the scp."""
    os.makedirs(directory / "48k", exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        utt = f"utt{i:03d}"
        path = directory / "48k" / f"{utt}.flac"
        wav = panned_tone(seconds, rng.uniform(300, 3500), rng.uniform(-0.9, 0.9), i)
        soundfile.write(path, wav, RATE48)
        lines.append(f"{utt} {path}\n")
    scp = directory / "wav48.scp"
    scp.write_text("".join(lines))
    return str(scp)


@pytest.fixture(scope="session")
def codec_dir(tmp_path_factory) -> str:
    """A tiny spec_rvq codec (2 x 16 codes, 8 Griffin-Lim iterations), fitted."""
    codec = SpecRVQCodec(
        n_codebooks=2, codebook_size=16, griffin_lim_iters=8, kmeans_iters=2
    )
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    codec.fit(
        [0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t) for _ in range(4)],
        max_frames=200,
    )
    out = str(tmp_path_factory.mktemp("codec"))
    codec.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def codec_config(codec_dir, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("conf") / "codec.yaml"
    path.write_text(f"codec: spec_rvq\ncodec_conf:\n  model_dir: {codec_dir}\n")
    return str(path)


@pytest.fixture
def masters(tmp_path) -> str:
    return write_masters(tmp_path / "masters", 3)


@pytest.fixture
def master() -> np.ndarray:
    """One 0.5 s stereo master ``[24000, 2]``, panned to the right."""
    return panned_tone(0.5, 800.0, 0.7, 0)
