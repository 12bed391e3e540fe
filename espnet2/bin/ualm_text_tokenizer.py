#!/usr/bin/env python3
"""Stage 3: the text tokenizer.

Train a sentencepiece BPE on the training texts of data directories (for LMs
trained from scratch), or record a Hugging Face tokenizer directory (Qwen2.5):

    python -m espnet2.bin.ualm_text_tokenizer --output_dir data/text_tokenizer \
        --data_dir dump/audio/train_a --data_dir dump/audio/train_b --vocab_size 2000
    python -m espnet2.bin.ualm_text_tokenizer --output_dir data/text_tokenizer \
        --hf_tokenizer_dir /models/Qwen2.5-1.5B
"""

import argparse
import logging
import os
import sys
from typing import Iterator, List, Optional

from espnet2.ualm.cli import setup_logging
from espnet2.ualm.data.io import iter_jsonl
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.text.tokenizer import train_sentencepiece, write_hf_pointer

TEXT_FILES = ("text", "rich_text")


def iter_texts(data_dir: str) -> Iterator[str]:
    """Captions, transcripts, rich captions and dialogue text of a data directory."""
    for name in TEXT_FILES:
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            yield from read_kv(path).values()
    path = os.path.join(data_dir, "dialogue.jsonl")
    if os.path.exists(path):
        for _, row in iter_jsonl(path):
            for msg in row["messages"]:
                for seg in msg["content"]:
                    if seg.get("type") == "text":
                        yield seg["text"]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", required=True)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--data_dir", action="append", help="training data directory (repeatable)"
    )
    src.add_argument("--hf_tokenizer_dir", help="local Hugging Face tokenizer dir")
    parser.add_argument("--vocab_size", type=int, default=2000)
    parser.add_argument("--model_type", default="bpe", choices=["bpe", "unigram"])
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(logging.INFO)
    if args.hf_tokenizer_dir:
        try:
            tok = write_hf_pointer(args.hf_tokenizer_dir, args.output_dir)
        except (OSError, ValueError) as e:
            sys.exit(f"ualm_text_tokenizer: {e}")
        logging.info("Hugging Face tokenizer %s: %d ids", tok.model_dir, tok.vocab_size)
        return
    for d in args.data_dir:
        if not os.path.isdir(d):
            sys.exit(f"ualm_text_tokenizer: data directory {d} not found")

    def texts() -> Iterator[str]:
        for d in args.data_dir:
            yield from iter_texts(d)

    tok = train_sentencepiece(
        texts(), args.output_dir, args.vocab_size, model_type=args.model_type
    )
    logging.info(
        "sentencepiece %s: %d pieces in %s",
        args.model_type,
        tok.vocab_size,
        args.output_dir,
    )


if __name__ == "__main__":
    main()
