#!/usr/bin/env python3
"""Fit a trainable codec on wav.scp audio, save it and measure reconstruction.

Example::

    python -m espnet2.bin.ualm_fit_codec --codec spec_rvq \\
        --train_scp dump/audio/train/wav.scp --valid_scp dump/audio/valid/wav.scp \\
        --output_dir exp/codec

A pretrained codec (``--codec xcodec --codec_conf model_dir=...``) is not
fitted: it is only measured. Either way ``output_dir/metrics.json`` holds the
reconstruction metrics of the valid clips (see ``espnet2.ualm.codec.metrics``).
"""

import argparse
import json
import logging
import math
import os
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from espnet2.ualm.cli import positive_int, setup_logging
from espnet2.ualm.codec import AbsCodec, build_codec, codec_choices
from espnet2.ualm.codec.config import load_codec_config
from espnet2.ualm.codec.metrics import reconstruction_metrics
from espnet2.ualm.data.io import AudioReadError, load_audio
from espnet2.ualm.data.kaldi_dir import read_kv


def read_scp_audio(
    scp_paths: Sequence[str], sample_rate: int, desc: str = "reading"
) -> Iterator[Tuple[str, np.ndarray]]:
    """Yields ``(utt_id, mono float32 waveform)`` from Kaldi wav.scp files.

    The audio must already be mono at ``sample_rate`` (stage 2 formats it);
    anything else is an error that names the scp file, the id and the audio file.
    """
    for scp in scp_paths:
        items = read_kv(scp)
        for utt_id, path in tqdm(items.items(), desc=f"{desc} {scp}", unit="clip"):
            if path.endswith("|"):
                raise ValueError(
                    f"{scp}: {utt_id}: piped commands are not supported ({path})"
                )
            try:
                wav, _ = load_audio(path, sample_rate, strict=True)
            except AudioReadError as e:
                hint = "" if e.detail else "; re-format the audio first (stage 2)"
                raise ValueError(f"{scp}: {utt_id}: {e}{hint}") from e
            yield utt_id, wav


def measure(
    codec: AbsCodec, clips: List[Tuple[str, np.ndarray]], batch_size: int
) -> Tuple[Dict[str, Dict[str, float]], Dict[str, float]]:
    """Encodes and decodes ``clips``; returns per-clip metrics and timings."""
    per_clip: Dict[str, Dict[str, float]] = {}
    seconds = dict(encode_s=0.0, decode_s=0.0)
    for start in tqdm(range(0, len(clips), batch_size), desc="measuring", unit="batch"):
        batch = clips[start : start + batch_size]
        lengths = torch.tensor([len(w) for _, w in batch])
        wav = torch.zeros(len(batch), int(lengths.max()))
        for i, (_, w) in enumerate(batch):
            wav[i, : len(w)] = torch.from_numpy(w)
        t0 = time.perf_counter()
        codes, code_lengths = codec.encode(wav, lengths)
        t1 = time.perf_counter()
        out, _ = codec.decode(codes, code_lengths)
        t2 = time.perf_counter()
        seconds["encode_s"] += t1 - t0
        seconds["decode_s"] += t2 - t1
        for i, (utt_id, w) in enumerate(batch):
            est = out[i, : len(w)].cpu().numpy()
            per_clip[utt_id] = reconstruction_metrics(w, est, codec.sample_rate)
    audio_s = sum(len(w) for _, w in clips) / codec.sample_rate
    seconds["audio_s"] = audio_s
    return per_clip, seconds


def summarize(per_clip: Dict[str, Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """Mean and median over clips of each metric (NaN entries left out)."""
    summary: Dict[str, Dict[str, float]] = {}
    keys = sorted({k for m in per_clip.values() for k in m})
    for key in keys:
        values = np.array([m[key] for m in per_clip.values()], dtype=np.float64)
        values = values[~np.isnan(values)]
        summary[key] = dict(
            mean=float(values.mean()) if len(values) else math.nan,
            median=float(np.median(values)) if len(values) else math.nan,
            clips=int(len(values)),
        )
    return summary


def format_table(summary: Dict[str, Dict[str, float]]) -> str:
    lines = [f"{'metric':<16}{'mean':>10}{'median':>10}{'clips':>7}"]
    for key, s in summary.items():
        lines.append(f"{key:<16}{s['mean']:>10.3f}{s['median']:>10.3f}{s['clips']:>7d}")
    return "\n".join(lines)


def _nan_to_none(obj):
    """Strict JSON has no NaN: a metric without data (no tonal frame) is null."""
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    codec_choices.add_arguments(parser)
    parser.add_argument(
        "--codec_config",
        default=None,
        help="codec YAML ({codec: name, codec_conf: {...}}); overrides --codec*",
    )
    parser.add_argument(
        "--train_scp",
        action="append",
        default=[],
        help="Kaldi wav.scp of training audio (repeatable)",
    )
    parser.add_argument(
        "--valid_scp",
        action="append",
        default=[],
        help="Kaldi wav.scp of held-out clips to measure (repeatable)",
    )
    parser.add_argument("--output_dir", required=True, help="where to save")
    parser.add_argument(
        "--max_train_frames",
        type=int,
        default=None,
        help="code frames drawn at random from the training audio for the fit "
        "(None: the codec's own default)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--num_valid",
        type=int,
        default=None,
        help="measure only the first N valid clips by id (None: all)",
    )
    parser.add_argument(
        "--batch_size", type=positive_int, default=8, help="for measuring"
    )
    parser.add_argument(
        "--log_level",
        default="INFO",
        choices=("ERROR", "WARNING", "INFO", "DEBUG"),
    )
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> Dict:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    torch.manual_seed(args.seed)
    if args.codec_config is not None:  # a recipe's conf/codec.yaml
        conf = load_codec_config(args.codec_config)
        args.codec, args.codec_conf = conf["codec"], conf["codec_conf"]
    codec = build_codec(args.codec, args.codec_conf)
    codec.eval()
    os.makedirs(args.output_dir, exist_ok=True)
    report: Dict = dict(
        codec=args.codec,
        codec_conf=args.codec_conf,
        sample_rate=codec.sample_rate,
        frame_rate=codec.frame_rate,
        n_codebooks=codec.n_codebooks,
        codebook_size=codec.codebook_size,
    )

    fit = getattr(codec, "fit", None)
    if callable(fit):
        if not args.train_scp:
            raise SystemExit(f"--codec {args.codec} must be fitted: give --train_scp")
        wavs = (w for _, w in read_scp_audio(args.train_scp, codec.sample_rate))
        t0 = time.perf_counter()
        fit_kwargs = dict(seed=args.seed)
        if args.max_train_frames is not None:
            fit_kwargs["max_frames"] = args.max_train_frames
        stats = fit(wavs, **fit_kwargs)
        stats["seconds"] = time.perf_counter() - t0
        codec.save_pretrained(args.output_dir)
        logging.info(f"fitted in {stats['seconds']:.1f} s, saved to {args.output_dir}")
        report["fit"] = stats
    else:
        logging.info(
            f"--codec {args.codec} is not trainable (pretrained): nothing to fit, "
            "only measuring reconstruction"
        )
        if args.train_scp:
            logging.warning(f"ignoring --train_scp {args.train_scp}")

    if args.valid_scp:
        clips = sorted(
            read_scp_audio(args.valid_scp, codec.sample_rate, "loading"),
            key=lambda item: item[0],
        )
        clips = clips[: args.num_valid] if args.num_valid is not None else clips
        per_clip, seconds = measure(codec, clips, args.batch_size)
        summary = summarize(per_clip)
        logging.info(
            f"reconstruction of {len(clips)} valid clips "
            f"({seconds['audio_s']:.1f} s of audio; encode {seconds['encode_s']:.1f} "
            f"s, decode {seconds['decode_s']:.1f} s):\n{format_table(summary)}"
        )
        report.update(valid=dict(summary=summary, timing=seconds, per_clip=per_clip))
    else:
        logging.warning("no --valid_scp: reconstruction not measured")

    with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
        json.dump(_nan_to_none(report), f, indent=2)
        f.write("\n")
    return report


if __name__ == "__main__":
    main()
