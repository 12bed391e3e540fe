"""Codec tokens on disk: kaldiio ark/scp plus a ``codec.json`` with the geometry.

Kaldi's ark format (through kaldiio) only stores integer *vectors*, so each
utterance's codes ``[T, n_codebooks]`` are stored frame-major as one int32
vector of ``T * n_codebooks`` values (ESPnet-SpeechLM does the same) and
reshaped on reading with the ``n_codebooks`` recorded in ``codec.json``.
"""

import json
import os
from typing import Dict, Iterator, Tuple

import kaldiio
import numpy as np

GEOMETRY_FILE = "codec.json"


def write_geometry(codes_dir: str, geometry: Dict) -> None:
    os.makedirs(codes_dir, exist_ok=True)
    with open(os.path.join(codes_dir, GEOMETRY_FILE), "w", encoding="utf-8") as f:
        json.dump(geometry, f, indent=2, sort_keys=True)


def read_geometry(codes_dir: str) -> Dict:
    path = os.path.join(codes_dir, GEOMETRY_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} missing: was stage 4 run for {codes_dir}?")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def codec_geometry(codec) -> Dict:
    """What a reader of the tokens must know about the codec that made them."""
    return {
        "codec": type(codec).__name__,
        "sample_rate": int(codec.sample_rate),
        "frame_rate": float(codec.frame_rate),
        "n_codebooks": int(codec.n_codebooks),
        "codebook_size": int(codec.codebook_size),
    }


def flatten_codes(codes: np.ndarray) -> np.ndarray:
    """``[T, K]`` codes -> the int32 vector stored in the ark."""
    return np.ascontiguousarray(codes, dtype=np.int32).reshape(-1)


class CodesReader:
    """Random access to ``codes.scp``: ``reader[utt_id] -> int64 [T, K]``."""

    def __init__(self, codes_dir: str):
        self.geometry = read_geometry(codes_dir)
        self.n_codebooks = int(self.geometry["n_codebooks"])
        self._scp = kaldiio.load_scp(os.path.join(codes_dir, "codes.scp"))

    def __getitem__(self, utt_id: str) -> np.ndarray:
        flat = np.asarray(self._scp[utt_id])
        if flat.size % self.n_codebooks:
            raise ValueError(
                f"{utt_id}: {flat.size} codes is not a multiple of "
                f"{self.n_codebooks} codebooks"
            )
        return flat.reshape(-1, self.n_codebooks).astype(np.int64)

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self._scp

    def __len__(self) -> int:
        return len(self._scp)

    def keys(self):
        return self._scp.keys()

    def items(self) -> Iterator[Tuple[str, np.ndarray]]:
        for k in self._scp.keys():
            yield k, self[k]
