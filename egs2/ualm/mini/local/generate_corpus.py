#!/usr/bin/env python3
"""Generate the UALM mini corpus: synthetic sound events, eSpeak speech, text tasks.

Deterministic (same seed -> byte-identical files, whatever --nj) and offline.
Writes Kaldi-style data directories (doc/data_layout.md) under --out_dir:

  mini_sound_{train,valid,test}   wav.scp (16 kHz mono), wav48.scp (48 kHz stereo),
                                  text, rich_text, meta.jsonl, dialogue.jsonl (QA)

The 48 kHz stereo masters (the Enhancement VAE's data) have what the 16 kHz
mono files lack in a form predictable from what they hold: a stereo image set
by the pitch band and content above 9.5 kHz tied to each event
(mini_corpus/sound_events.py explains both).
  mini_speech_{train,valid,test}  wav.scp, text, utt2spk
  mini_text_{train,valid,test}    dialogue.jsonl

and the audio plus corpus_info.json (vocabulary, held-out templates and
combinations) under --audio_dir.

Examples (from egs2/ualm/mini):
  python local/generate_corpus.py --out_dir data --audio_dir corpus
  python local/generate_corpus.py --scale 0.01              # tiny corpus for tests
  python local/generate_corpus.py --num_sound_train 20 --num_speech_train 0
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import time
from collections.abc import Iterator
from typing import Any

from mini_corpus.corpus import SPLITS, GenConfig, generate

DEFAULT_SIZES: dict[tuple[str, str], int] = {
    ("sound", "train"): 2000,
    ("sound", "valid"): 200,
    ("sound", "test"): 200,
    ("speech", "train"): 600,
    ("speech", "valid"): 60,
    ("speech", "test"): 60,
    ("text", "train"): 3000,
    ("text", "valid"): 200,
    ("text", "test"): 200,
}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out_dir", default="data", help="data root (Kaldi dirs)")
    parser.add_argument("--audio_dir", default="corpus", help="where audio goes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nj", type=int, default=2, help="worker processes")
    parser.add_argument("--audio_format", choices=["flac", "wav"], default="flac")
    parser.add_argument(
        "--qa_per_clip", type=int, default=3, help="QA dialogues per sound clip"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every default size (explicit --num_* options win)",
    )
    for (kind, split), n in DEFAULT_SIZES.items():
        parser.add_argument(
            f"--num_{kind}_{split}",
            type=int,
            default=None,
            help=f"number of {kind} items in {split} (default {n} x --scale)",
        )
    parser.add_argument("--no_progress", action="store_true", help="no tqdm bars")
    return parser


def resolve_sizes(args: argparse.Namespace) -> dict[tuple[str, str], int]:
    """Explicit --num_* values, else the default scaled by --scale."""
    sizes = {}
    for (kind, split), n in DEFAULT_SIZES.items():
        explicit = getattr(args, f"num_{kind}_{split}")
        sizes[(kind, split)] = (
            explicit if explicit is not None else round(n * args.scale)
        )
    return sizes


def main(argv: list[str] | None = None) -> dict[str, dict[str, int]]:
    args = get_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [generate_corpus] %(message)s"
    )
    log = logging.getLogger("generate_corpus")
    if args.nj < 1:
        raise SystemExit("--nj must be >= 1")
    sizes = resolve_sizes(args)
    cfg = GenConfig(args.seed, args.audio_dir, args.audio_format, args.qa_per_clip)
    log.info(
        "seed %d, nj %d, sizes: %s",
        args.seed,
        args.nj,
        ", ".join(f"{k}_{s}={n}" for (k, s), n in sizes.items() if s in SPLITS),
    )
    start = time.perf_counter()
    try:
        if args.nj == 1:
            counts = generate(
                sizes, args.out_dir, cfg, map, not args.no_progress, log.info
            )
        else:
            with multiprocessing.Pool(args.nj) as pool:

                def mapper(fn: Any, jobs: Any) -> Iterator[Any]:
                    return pool.imap(fn, jobs, chunksize=8)

                counts = generate(
                    sizes, args.out_dir, cfg, mapper, not args.no_progress, log.info
                )
    except RuntimeError as e:  # e.g. espeak-ng missing: say it, no traceback
        log.error("%s", e)
        sys.exit(1)
    log.info(
        "done in %.1f s: %d datasets in %s, audio in %s",
        time.perf_counter() - start,
        len(counts),
        args.out_dir,
        args.audio_dir,
    )
    return counts


if __name__ == "__main__":
    main()
