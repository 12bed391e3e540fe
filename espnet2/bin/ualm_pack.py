#!/usr/bin/env python3
"""Pack a trained UALM: one directory (``--out_dir``) and/or one archive.

Example (mini recipe)::

    python -m espnet2.bin.ualm_pack --out_dir exp/ualm_unified/packed \\
        --train_config exp/ualm_unified/config.yaml \\
        --model_file exp/ualm_unified/valid.loss.best.pth \\
        --text_tokenizer data/text_tokenizer --codec_config conf/codec.yaml \\
        --codec_model_dir exp/codec --enhancer_exp exp/enhancer \\
        --decode_config conf/decode.yaml

    python -m espnet2.bin.ualm_pack --out_dir exp/ualm_unified/packed \\
        --results exp/ualm_unified/scores/RESULTS.md \\
        --archive exp/ualm_unified/ualm_mini.zip      # card + one file

The directory is what ``UALM.from_pretrained`` and the upload stage take;
the archive is ESPnet's pack format (``meta.yaml`` + files), which
``UALM.from_pretrained`` takes as well. With only ``--results`` /
``--archive`` an existing directory is updated and archived.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

from espnet2.ualm.cli import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out_dir", required=True, help="packed model directory")
    parser.add_argument("--train_config", help="training config.yaml")
    parser.add_argument("--model_file", help="checkpoint (valid.loss.best.pth)")
    parser.add_argument("--text_tokenizer", help="stage-3 tokenizer directory")
    parser.add_argument("--codec_config", help="conf/codec.yaml")
    parser.add_argument("--codec_model_dir", help="fitted codec dir (exp/codec)")
    parser.add_argument("--enhancer_exp", help="trained enhancer experiment dir")
    parser.add_argument("--decode_config", help="decoding settings to ship")
    parser.add_argument("--model_name", default="ualm")
    parser.add_argument("--results", help="RESULTS.md to put into the model card")
    parser.add_argument("--archive", help="also write this .zip / .tar.gz")
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    from espnet2.ualm.pretrained import pack_pretrained_dir, write_pretrained_dir
    from espnet2.ualm.pretrained.model_card import add_results_to_card

    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    if args.train_config:
        for need in ("model_file", "text_tokenizer", "codec_config"):
            if not getattr(args, need):
                sys.exit(f"ualm_pack: --{need} is required with --train_config")
        write_pretrained_dir(
            args.out_dir,
            train_config=args.train_config,
            model_file=args.model_file,
            text_tokenizer=args.text_tokenizer,
            codec_config=args.codec_config,
            codec_model_dir=args.codec_model_dir,
            enhancer_exp=args.enhancer_exp,
            decode_config=args.decode_config,
            model_name=args.model_name,
        )
        logging.info(f"packed model directory: {args.out_dir}")
    elif not os.path.isdir(args.out_dir):
        sys.exit(f"ualm_pack: {args.out_dir} does not exist; give --train_config")
    if args.results:
        add_results_to_card(args.out_dir, args.results)
    if args.archive:
        path = pack_pretrained_dir(args.out_dir, args.archive)
        size = os.path.getsize(path) / 2**20
        logging.info(f"packed model archive: {path} ({size:.1f} MiB)")


if __name__ == "__main__":
    main()
