#!/usr/bin/env python3
"""Preference pairs for DPO: sampled candidates per training prompt, scored,
the best and the worst kept when their scores differ by more than a margin.

    python -m espnet2.bin.ualm_make_pairs --model exp/ualm_unified/packed \\
        --data_dir dump/audio/mini_sound_train \\
        --output_dir dump/pairs/mini_sound_train --num_candidates 4 --margin 0.1 \\
        --scorer judge --judge local/judge.py --ref_dir data/mini_sound_train
    # --scorer clap --clap_checkpoint 630k-audioset-best.pt, or both:
    # --scorer judge,clap --scorer_weights 0.7,0.3; --decode_config, --seed,
    # --max_prompts, --prompts_per_step

Candidates come from the packed model with its decoding settings (CFG and
sampling as in ``--decode_config``), the N of a prompt in the same batches.
Writes the preference layout of ``doc/data_layout.md``: ``text``,
``chosen/`` and ``rejected/`` codes directories, ``scores.tsv`` (every
candidate's score), ``rejected.tsv`` (prompts without a usable pair and
why) and ``report.json`` (candidates per second, the fraction of prompts
that gave a pair).
"""

import argparse
import json
import logging
import os
import time
from typing import List, Optional

import yaml

from espnet2.ualm.cli import positive_int, setup_logging
from espnet2.ualm.data.codes_io import codec_geometry, flatten_codes, write_geometry
from espnet2.ualm.data.kaldi_dir import read_kv, write_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.scoring.preference import (
    JudgeScorer,
    PromptAudioScorer,
    TextAudioScorer,
    WeightedScorer,
)

SCORERS = ("judge", "clap")


def build_scorer(args: argparse.Namespace) -> PromptAudioScorer:
    """The scorer (or weighted sum) named by ``--scorer``."""
    names = [n for n in args.scorer.split(",") if n]
    unknown = sorted(set(names) - set(SCORERS))
    if not names or unknown:
        raise ValueError(f"--scorer: unknown {unknown or names}; known: {SCORERS}")
    weights = [1.0] * len(names)
    if args.scorer_weights:
        weights = [float(w) for w in args.scorer_weights.split(",")]
        if len(weights) != len(names):
            raise ValueError(
                f"--scorer_weights: {len(weights)} for {len(names)} scorers"
            )
    parts = []
    for name in names:
        if name == "judge":
            if not args.judge or not args.ref_dir:
                raise ValueError("--scorer judge needs --judge and --ref_dir")
            from espnet2.ualm.scoring.tasks import load_judge

            parts.append(JudgeScorer(load_judge(args.judge), args.ref_dir))
        else:
            from espnet2.ualm.scoring.embeddings import ClapModel

            parts.append(TextAudioScorer(ClapModel(args.clap_checkpoint)))
    return parts[0] if len(parts) == 1 else WeightedScorer(list(zip(parts, weights)))


def make_pairs(args: argparse.Namespace) -> dict:
    import kaldiio
    from tqdm import tqdm

    from espnet2.ualm.inference.candidates import generate_candidates
    from espnet2.ualm.inference.pipeline import UALM

    captions = read_kv(os.path.join(args.data_dir, "text"))
    prompts = sorted(captions.items())[: args.max_prompts or None]
    decode = {}
    if args.decode_config:
        with open(args.decode_config, encoding="utf-8") as f:
            decode = yaml.safe_load(f) or {}
    decode["seed"] = args.seed
    scorer = build_scorer(args)
    ualm = UALM.from_pretrained(args.model, args.device, decode=decode)
    rejects = RejectLog(f"preference pairs {args.output_dir}")
    os.makedirs(args.output_dir, exist_ok=True)
    writers, frames = {}, {}
    for side in ("chosen", "rejected"):
        side_dir = os.path.join(args.output_dir, side)
        os.makedirs(side_dir, exist_ok=True)
        write_geometry(side_dir, codec_geometry(ualm.codec))
        ark, scp = (
            os.path.join(side_dir, "codes.ark"),
            os.path.join(side_dir, "codes.scp"),
        )
        writers[side] = kaldiio.WriteHelper(f"ark,scp:{ark},{scp}")
        frames[side] = {}
    texts, score_rows = {}, []
    n_candidates, start = 0, time.perf_counter()
    steps = range(0, len(prompts), args.prompts_per_step)
    for first in tqdm(steps, desc="prompts", unit="step", disable=None):
        chunk = prompts[first : first + args.prompts_per_step]
        # a new seed per step: the same prompt in another run draws alike
        scored = generate_candidates(
            ualm, chunk, args.num_candidates, scorer, seed=args.seed + first
        )
        n_candidates += len(chunk) * args.num_candidates
        for item in scored:
            shown = " ".join("nan" if s != s else f"{s:.4f}" for s in item.scores)
            score_rows.append((item.item_id, shown))
            if item.error:
                rejects.add(item.item_id, args.data_dir, item.error)
                continue
            if item.worst is None:
                rejects.add(item.item_id, args.data_dir, "one scored candidate only")
                continue
            gap = item.scores[item.best] - item.scores[item.worst]
            if gap <= args.margin:
                rejects.add(
                    item.item_id,
                    args.data_dir,
                    f"score gap {gap:.4f} <= margin {args.margin}",
                )
                continue
            for side, j in (("chosen", item.best), ("rejected", item.worst)):
                codes = item.outputs[j].codes.cpu().numpy()
                writers[side](item.item_id, flatten_codes(codes))
                frames[side][item.item_id] = str(len(codes))
            texts[item.item_id] = item.prompt
    for writer in writers.values():
        writer.close()
    seconds = time.perf_counter() - start
    for side in ("chosen", "rejected"):
        write_kv(
            os.path.join(args.output_dir, side, "utt2num_frames"), frames[side].items()
        )
    write_kv(os.path.join(args.output_dir, "text"), sorted(texts.items()))
    write_kv(os.path.join(args.output_dir, "scores.tsv"), score_rows)
    rejects.write(os.path.join(args.output_dir, "rejected.tsv"))
    report = {
        "prompts": len(prompts),
        "pairs": len(texts),
        "fraction_with_pair": len(texts) / max(1, len(prompts)),
        "candidates": n_candidates,
        "candidates_per_second": n_candidates / max(seconds, 1e-9),
        "seconds": seconds,
        "margin": args.margin,
        "scorer": scorer.name,
        "rejected": dict(rejects.reason_counts()),
    }
    with open(os.path.join(args.output_dir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    logging.info(rejects.summary(len(prompts)))
    logging.info(
        f"{len(texts)} pairs from {len(prompts)} prompts "
        f"({report['fraction_with_pair']:.0%}); {n_candidates} candidates, "
        f"{report['candidates_per_second']:.2f} per second"
    )
    return report


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", required=True, help="packed model (dir, archive, hub id)"
    )
    parser.add_argument("--data_dir", required=True, help="prompts: its 'text' file")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_candidates", type=positive_int, default=4)
    parser.add_argument(
        "--margin",
        type=float,
        default=0.1,
        help="keep a pair only when best - worst exceeds this",
    )
    parser.add_argument(
        "--scorer", default="judge", help=f"of {SCORERS}, comma-separated"
    )
    parser.add_argument("--scorer_weights", default=None, help="comma-separated")
    parser.add_argument("--judge", default=None, help="judge plugin (local/judge.py)")
    parser.add_argument(
        "--ref_dir", default=None, help="the prompts' parameters (judge)"
    )
    parser.add_argument("--clap_checkpoint", default=None, help="laion_clap checkpoint")
    parser.add_argument(
        "--decode_config", default=None, help="YAML of decoding settings"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_prompts", type=int, default=0, help="0: all")
    parser.add_argument("--prompts_per_step", type=positive_int, default=8)
    parser.add_argument("--device", default="cpu")
    return parser


def main(cmd: Optional[List[str]] = None) -> dict:
    args = get_parser().parse_args(cmd)
    setup_logging(cmd=cmd)
    return make_pairs(args)


if __name__ == "__main__":
    main()
