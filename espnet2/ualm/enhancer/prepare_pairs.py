#!/usr/bin/env python3
"""Cache the codec round trip of stereo masters for enhancer training.

Runs each master once through down-mix -> resample to the codec's rate ->
codec encode/decode and writes, under --output_dir (the masters' rate is
the output rate of the enhancer --enhancer_config builds, its input rate the
codec's):

  codec_wav.scp   <id> <output_dir>/wav/<id>.flac  (mono, codec rate, 24 bit)
  wav48.scp       the kept masters (same paths as the input list)
  info.json       codec name and rates, clip counts, the fingerprint of the
                  inputs (a re-run with the same inputs keeps the cache,
                  with others it makes it again)
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

from espnet2.ualm.cli import positive_int
from espnet2.ualm.codec.abs_codec import AbsCodec
from espnet2.ualm.codec.config import codec_from_config, load_codec_config
from espnet2.ualm.data.fingerprint import (
    content_digest,
    digest,
    file_stamp,
    tree_stamp,
)
from espnet2.ualm.data.io import AudioReadError, read_audio
from espnet2.ualm.data.kaldi_dir import file_name_problem, read_kv, write_kv
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
    try:
        soundfile.write(out, np.clip(x, -1.0, 1.0), codec.sample_rate, subtype="PCM_24")
    except Exception as e:  # this clip only: the others and the list survive
        return utt_id, "", f"writing {out} failed: {type(e).__name__}: {e}"
    return utt_id, os.path.abspath(out), None


def pairs_inputs(
    masters: Dict[str, str],
    ids: Sequence[str],
    codec_config: str,
    enhancer_config: str,
    codec_model_dir: Optional[str],
) -> Dict:
    """What the cache depends on: the masters, the codec and the rates."""
    codec_conf = load_codec_config(codec_config)["codec_conf"]
    model_dirs = [codec_model_dir] if codec_model_dir else []
    model_dirs += [
        v for v in codec_conf.values() if isinstance(v, str) and os.path.exists(v)
    ]
    return {
        "masters": [(u, file_stamp(masters[u])) for u in ids],
        "codec_config": content_digest(codec_config),
        "codec_model": [tree_stamp(d) for d in model_dirs],
        "enhancer_config": content_digest(enhancer_config),
    }


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
    rejects = RejectLog("prepare_pairs")
    masters = read_kv(wav48_scp, rejects)
    ids = sorted(masters)[:max_clips] if max_clips is not None else sorted(masters)
    fingerprint = digest(
        pairs_inputs(masters, ids, codec_config, enhancer_config, codec_model_dir)
    )
    info_path = os.path.join(output_dir, "info.json")
    if os.path.isfile(info_path):
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
        if info.get("fingerprint") == fingerprint:
            logging.info(f"{output_dir}: codec round trip already cached")
            return info
        logging.info(
            f"{output_dir}: the masters, codec or enhancer config changed since "
            "the cache was made: making it again"
        )
        os.remove(info_path)  # the cache is complete only with its info.json
    codec = codec_from_config(codec_config, codec_model_dir)
    input_rate, target_sample_rate = enhancer_config_rates(enhancer_config)
    if input_rate != codec.sample_rate:
        raise ValueError(
            f"{enhancer_config}: the enhancer takes {input_rate} Hz, the codec "
            f"gives {codec.sample_rate} Hz"
        )
    os.makedirs(os.path.join(output_dir, "wav"), exist_ok=True)
    jobs = []
    for u in ids:
        problem = file_name_problem(u, ".flac")
        if problem is None:
            jobs.append((u, masters[u], output_dir, target_sample_rate))
        else:
            rejects.add(u, masters[u], f"id cannot be a file name: {problem}")
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
    logging.info(rejects.summary(len(written) + len(rejects)))
    info = dict(
        wav48_scp=os.path.abspath(wav48_scp),
        codec=load_codec_config(codec_config)["codec"],
        codec_model_dir=codec_model_dir,
        codec_sample_rate=codec.sample_rate,
        target_sample_rate=target_sample_rate,
        clips=len(written),
        rejected=len(rejects),
        seconds=round(time.perf_counter() - t0, 1),
        fingerprint=fingerprint,
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
    parser.add_argument("--nj", type=positive_int, default=1, help="worker processes")
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
