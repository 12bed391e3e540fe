#!/usr/bin/env python3
"""Stage 2: format a data directory's audio for the codec (rate, mono, length).

    python -m espnet2.bin.ualm_format_audio --codec_config conf/codec.yaml \
        --in_dir data/train --out_dir dump/audio/train --nj 4 [--master_fs 48000]
"""

import argparse
import logging
import sys
from typing import List, Optional

from espnet2.ualm.cli import positive_int, setup_logging
from espnet2.ualm.data.audio_format import FormatOptions, format_data_dir


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--in_dir", required=True, help="Kaldi-style data directory")
    parser.add_argument("--out_dir", required=True)
    rate = parser.add_mutually_exclusive_group(required=True)
    rate.add_argument(
        "--codec_config", help="codec YAML; the target rate is the codec's"
    )
    rate.add_argument("--fs", type=int, help="target sample rate (Hz)")
    parser.add_argument(
        "--min_input_fs",
        type=int,
        default=None,
        help="reject audio recorded below this rate (default: the target rate; "
        "0 accepts any rate and upsamples)",
    )
    parser.add_argument("--min_sec", type=float, default=0.1)
    parser.add_argument("--max_sec", type=float, default=30.0)
    parser.add_argument("--audio_format", default="flac", choices=["flac", "wav"])
    parser.add_argument(
        "--master_fs",
        type=int,
        default=None,
        help="also keep a stereo copy of each stereo source at this rate "
        "(the enhancer's output rate: its target, wav48.scp) unless the data "
        "directory has its own wav48.scp; default: none",
    )
    parser.add_argument(
        "--min_master_fs",
        type=int,
        default=44100,
        help="sources recorded below this rate get no master",
    )
    parser.add_argument("--nj", type=positive_int, default=1, help="parallel processes")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(logging.INFO)
    if args.codec_config:
        from espnet2.ualm.codec.config import codec_from_config

        fs = codec_from_config(args.codec_config).sample_rate
    else:
        fs = args.fs
    opts = FormatOptions(
        sample_rate=fs,
        min_input_sample_rate=fs if args.min_input_fs is None else args.min_input_fs,
        min_sec=args.min_sec,
        max_sec=args.max_sec,
        audio_format=args.audio_format,
        master_sample_rate=args.master_fs or None,
        min_master_sample_rate=args.min_master_fs,
    )
    try:
        format_data_dir(args.in_dir, args.out_dir, opts, nj=args.nj)
    except FileNotFoundError as e:
        sys.exit(f"ualm_format_audio: {e}")


if __name__ == "__main__":
    main()
