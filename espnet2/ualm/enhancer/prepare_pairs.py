#!/usr/bin/env python3
"""Cache the codec round trip of stereo masters for enhancer training.

Runs each master once through down-mix -> resample to the codec's rate ->
codec encode/decode and writes, under --output_dir (the masters' rate is
the output rate of the enhancer --enhancer_config builds, its input rate the
codec's):

  codec_wav.scp   <id> <output_dir>/wav/<id>.flac  (mono, codec rate, 24 bit)
  wav48.scp       the kept masters (same paths as the input list)
  info.json       codec name and rates, clip counts
  rejected.tsv    masters that could not be used, with the reason

Example (from egs2/ualm/mini)::

    python -m espnet2.ualm.enhancer.prepare_pairs \\
        --wav48_scp dump/audio/mini_sound_train/wav48.scp \\
        --codec_config conf/codec.yaml --codec_model_dir exp/codec \\
        --enhancer_config conf/enhancer.yaml \\
        --output_dir dump/enhancer/mini_sound_train --nj 2
"""

import argparse
import json
import logging
import multiprocessing
import os
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import soundfile
import torch

from espnet2.ualm.codec.abs_codec import AbsCodec
from espnet2.ualm.codec.config import codec_from_config, load_codec_config
from espnet2.ualm.data.io import AudioReadError, read_audio
from espnet2.ualm.data.kaldi_dir import read_kv, write_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.enhancer import enhancer_config_rates
from espnet2.ualm.enhancer.pairs import make_input

_worker_codec: Optional[AbsCodec] = None


def _init_worker(codec_config: str, codec_model_dir: Optional[str]) -> None:
    global _worker_codec
    torch.set_num_threads(1)
    _worker_codec = codec_from_config(codec_config, codec_model_dir).eval()


def _process(
    job: Tuple[str, str, str, int],
) -> Tuple[str, str, Optional[str]]:
    """One master -> ``(utt_id, written path or "", reject reason or None)``."""
    utt_id, path, out_dir, target_rate = job
    codec = _worker_codec
    assert codec is not None
    try:
        wav, rate = read_audio(path, dtype="float32")
    except AudioReadError as e:
        return utt_id, "", e.reason
    if rate != target_rate:
        return utt_id, "", f"sample rate: {rate} Hz, expected {target_rate} Hz"
    if wav.shape[1] > 2:
        return utt_id, "", f"channels: {wav.shape[1]}, expected 1 or 2"
    factor = target_rate // codec.sample_rate
    wav = wav[: wav.shape[0] // factor * factor]
    if wav.shape[0] // factor < codec.hop_length:
        return utt_id, "", "too short: less than one codec frame"
    x = make_input(wav, target_rate, codec)
    out = os.path.join(out_dir, "wav", f"{utt_id}.flac")
    soundfile.write(out, np.clip(x, -1.0, 1.0), codec.sample_rate, subtype="PCM_24")
    return utt_id, os.path.abspath(out), None


def prepare_pairs(
    wav48_scp: str,
    codec_config: str,
    output_dir: str,
    enhancer_config: str,
    codec_model_dir: Optional[str] = None,
    nj: int = 1,
    max_clips: Optional[int] = None,
) -> Dict:
    """Writes the cache (see the module doc); returns the ``info.json`` dict.

    The masters must be at the enhancer's output rate, and the codec's rate
    must be the enhancer's input rate.
    """
    t0 = time.perf_counter()
    codec = codec_from_config(codec_config, codec_model_dir)
    input_rate, target_sample_rate = enhancer_config_rates(enhancer_config)
    if input_rate != codec.sample_rate:
        raise ValueError(
            f"{enhancer_config}: the enhancer takes {input_rate} Hz, the codec "
            f"gives {codec.sample_rate} Hz"
        )
    masters = read_kv(wav48_scp)
    ids = sorted(masters)[:max_clips] if max_clips is not None else sorted(masters)
    os.makedirs(os.path.join(output_dir, "wav"), exist_ok=True)
    jobs = [(u, masters[u], output_dir, target_sample_rate) for u in ids]
    rejects = RejectLog("prepare_pairs")
    written: Dict[str, str] = {}
    args = (codec_config, codec_model_dir)
    if nj > 1:
        with multiprocessing.get_context("spawn").Pool(nj, _init_worker, args) as pool:
            results = list(pool.imap(_process, jobs, chunksize=8))
    else:
        _init_worker(*args)
        results = [_process(job) for job in jobs]
    for utt_id, out, reason in results:
        if reason is not None:
            rejects.add(utt_id, masters[utt_id], reason)
        else:
            written[utt_id] = out
    write_kv(os.path.join(output_dir, "codec_wav.scp"), written.items())
    write_kv(os.path.join(output_dir, "wav48.scp"), ((u, masters[u]) for u in written))
    rejects.write(os.path.join(output_dir, "rejected.tsv"))
    logging.info(rejects.summary(len(ids)))
    info = dict(
        wav48_scp=os.path.abspath(wav48_scp),
        codec=load_codec_config(codec_config)["codec"],
        codec_model_dir=codec_model_dir,
        codec_sample_rate=codec.sample_rate,
        target_sample_rate=target_sample_rate,
        clips=len(written),
        rejected=len(rejects),
        seconds=round(time.perf_counter() - t0, 1),
    )
    with open(os.path.join(output_dir, "info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    logging.info(
        f"cached the codec round trip of {len(written)} clips in "
        f"{info['seconds']} s: {output_dir}"
    )
    return info


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wav48_scp", required=True, help="stereo masters")
    parser.add_argument("--codec_config", required=True, help="conf/codec.yaml")
    parser.add_argument(
        "--codec_model_dir", default=None, help="fitted codec dir (exp/codec)"
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--enhancer_config",
        required=True,
        help="the enhancer training config (conf/enhancer.yaml): its rates",
    )
    parser.add_argument("--nj", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--max_clips", type=int, default=None, help="first N ids only (None: all)"
    )
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> Dict:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
    return prepare_pairs(
        args.wav48_scp,
        args.codec_config,
        args.output_dir,
        args.enhancer_config,
        codec_model_dir=args.codec_model_dir,
        nj=args.nj,
        max_clips=args.max_clips,
    )


if __name__ == "__main__":
    main()
