"""Fixtures for the corpus converter tests: tiny audio files, output readers."""

import os
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
import soundfile

from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog


@pytest.fixture
def write_audio() -> Callable[..., str]:
    """Writes a short tone (wav or flac by extension) and returns its path."""

    def write(path: str, seconds: float = 0.05, samplerate: int = 16000) -> str:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        t = np.arange(int(seconds * samplerate)) / samplerate
        soundfile.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), samplerate)
        return path

    return write


@pytest.fixture
def table() -> Callable[[str, str], Dict[str, str]]:
    """Reads ``<out_dir>/<name>`` as a key-value table (strictly)."""
    return lambda out_dir, name: read_kv(os.path.join(out_dir, name))


@pytest.fixture
def rejected() -> Callable[[str], Dict[str, List[Tuple[str, str]]]]:
    """Reads ``<out_dir>/rejected.tsv`` as ``{utt_id: [(source, reason)]}``."""

    def read(out_dir: str) -> Dict[str, List[Tuple[str, str]]]:
        out: Dict[str, List[Tuple[str, str]]] = {}
        for item in RejectLog.read(os.path.join(out_dir, "rejected.tsv")):
            out.setdefault(item.utt_id, []).append((item.source, item.reason))
        return out

    return read
