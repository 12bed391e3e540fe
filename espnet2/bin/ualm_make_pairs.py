#!/usr/bin/env python3
"""Preference pairs for DPO: sampled candidates per training prompt, scored,
the best and the worst kept when their scores differ by more than a margin.

    for job in 1 2; do
        python -m espnet2.bin.ualm_make_pairs --model exp/ualm_unified/packed \\
            --data_dir dump/audio/mini_sound_train \\
            --output_dir dump/pairs/mini_sound_train \\
            --scorer_config conf/pair_scorer.yaml --decode_config conf/decode.yaml \\
            --num_candidates 4 --margin 0.1 \\
            --job ${job} --num_jobs 2 &
    done; wait
    python -m espnet2.bin.ualm_make_pairs --merge --num_jobs 2 \\
        --output_dir dump/pairs/mini_sound_train

``--scorer_config``: a YAML file in the format of
``espnet2.ualm.scoring.preference.build_scorer`` (the mini judge, a CLAP
model, or a weighted list). Candidates come from the packed model with the
decoding settings of ``--decode_config`` (CFG and sampling; ``seed`` is
``--seed``), the N of a prompt as N rows of one batch (best-of-N). Each job
does a contiguous shard of the prompts (sorted ids) in
``output_dir/logdir/pairs.JOB`` and is skipped on a re-run when its inputs
are unchanged. ``--merge`` writes the preference layout of
``doc/data_layout.md`` in ``output_dir``: ``text``, the chosen replies'
codes (``codes.scp``, ``utt2num_frames``, ``codec.json``: a stage-4 codes
directory), ``rejected/`` (the same for the rejected replies),
``scores.tsv`` (every candidate's score), ``rejected.tsv`` (prompts without
a usable pair and why) and ``report.json`` (candidates per second, the
fraction of prompts that gave a pair).
"""

import argparse
import json
import logging
import os
import shutil
import sys
import time
from typing import Dict, List, Optional

from espnet2.ualm.cli import positive_int, setup_logging
from espnet2.ualm.data.codes_io import (
    GEOMETRY_FILE,
    codec_geometry,
    flatten_codes,
    write_geometry,
)
from espnet2.ualm.data.fingerprint import (
    content_digest,
    digest,
    file_stamp,
    is_done,
    read_done,
    tree_stamp,
    write_done,
)
from espnet2.ualm.data.kaldi_dir import read_kv, write_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.data.safe_io import read_yaml

DONE = ".done"
SIDES = {"chosen": "", "rejected": "rejected"}  # side -> its directory
REPORT = "report.json"


def shard_dir(output_dir: str, job: int) -> str:
    return os.path.join(os.path.abspath(output_dir), "logdir", f"pairs.{job}")


def _decode_settings(args: argparse.Namespace) -> dict:
    decode = (read_yaml(args.decode_config) or {}) if args.decode_config else {}
    return {**decode, "seed": args.seed}


def make_pairs(args: argparse.Namespace) -> dict:
    """Decodes and scores shard ``args.job``; returns its report."""
    import kaldiio
    from tqdm import tqdm

    from espnet2.bin.ualm_inference import shard_of
    from espnet2.ualm.inference.candidates import generate_candidates
    from espnet2.ualm.inference.pipeline import UALM
    from espnet2.ualm.scoring.preference import build_scorer

    captions = read_kv(os.path.join(args.data_dir, "text"))
    prompts = sorted(captions.items())[: args.max_prompts or None]
    indexed = list(enumerate(prompts))
    mine = shard_of(indexed, args.job, args.num_jobs)
    decode = _decode_settings(args)
    out = shard_dir(args.output_dir, args.job)
    fingerprint = digest(
        {
            "model": tree_stamp(args.model)
            if os.path.exists(args.model)
            else args.model,
            "decode": decode,
            "scorer": content_digest(args.scorer_config),
            "prompts": mine,
            "data": file_stamp(os.path.join(args.data_dir, "text")),
            "options": [args.num_candidates, args.margin, args.prompts_per_step],
            "split": [args.job, args.num_jobs],
        }
    )
    if is_done(os.path.join(out, DONE), fingerprint):
        logging.info(f"pairs shard {args.job}/{args.num_jobs} already done, skipping")
        with open(os.path.join(out, REPORT), encoding="utf-8") as f:
            return json.load(f)
    shutil.rmtree(out, ignore_errors=True)
    scorer = build_scorer(read_yaml(args.scorer_config))
    ualm = UALM.from_pretrained(args.model, args.device, decode=decode)
    rejects = RejectLog(f"preference pairs {args.output_dir}")
    writers, frames = {}, {}
    for side, sub in SIDES.items():
        side_dir = os.path.join(out, sub)
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
    steps = range(0, len(mine), args.prompts_per_step)
    desc = f"pairs shard {args.job}/{args.num_jobs}"
    for begin in tqdm(steps, desc=desc, unit="step", disable=None):
        chunk = mine[begin : begin + args.prompts_per_step]
        # a seed per step from the first prompt's place in the whole list: the
        # same prompts draw alike whatever the number of jobs
        scored = generate_candidates(
            ualm,
            [p for _, p in chunk],
            args.num_candidates,
            scorer,
            seed=args.seed + chunk[0][0],
            batch_size=len(chunk),
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
    for side, sub in SIDES.items():
        write_kv(os.path.join(out, sub, "utt2num_frames"), frames[side].items())
    write_kv(os.path.join(out, "text"), sorted(texts.items()))
    write_kv(os.path.join(out, "scores.tsv"), score_rows)
    rejects.write(os.path.join(out, "rejected.tsv"))
    report = {
        "prompts": len(mine),
        "pairs": len(texts),
        "candidates": n_candidates,
        "seconds": seconds,
        "margin": args.margin,
        "scorer": scorer.name,
    }
    with open(os.path.join(out, REPORT), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    write_done(os.path.join(out, DONE), fingerprint, num_jobs=args.num_jobs)
    logging.info(
        f"shard {args.job}: {len(texts)} pairs from {len(mine)} prompts; "
        f"{n_candidates} candidates in {seconds:.1f} s"
    )
    return report


def merge(args: argparse.Namespace) -> dict:
    """Joins the finished shards into ``output_dir``; returns the report."""
    out = os.path.abspath(args.output_dir)
    markers = {
        j: read_done(os.path.join(shard_dir(out, j), DONE))
        for j in range(1, args.num_jobs + 1)
    }
    missing = [j for j, m in markers.items() if m is None]
    other = [j for j, m in markers.items() if m and m.get("num_jobs") != args.num_jobs]
    if missing or other:
        sys.exit(
            f"ualm_make_pairs: shards {missing or other} of {out} are not finished "
            f"for --num_jobs {args.num_jobs}; re-run the stage (finished shards "
            "are skipped)"
        )
    texts: Dict[str, str] = {}
    scores: List = []
    lines: Dict[str, List[str]] = {"codes.scp": [], "utt2num_frames": []}
    side_lines = {side: {k: [] for k in lines} for side in SIDES}
    rejects = RejectLog(f"preference pairs {out}")
    reports = []
    for j in range(1, args.num_jobs + 1):
        d = shard_dir(out, j)
        texts.update(read_kv(os.path.join(d, "text")))
        scores += read_kv(os.path.join(d, "scores.tsv")).items()
        for side, sub in SIDES.items():
            for name in lines:
                with open(os.path.join(d, sub, name), encoding="utf-8") as f:
                    side_lines[side][name] += f.readlines()
        for r in RejectLog.read(os.path.join(d, "rejected.tsv")):
            rejects.add(r.utt_id, r.source, r.reason)
        with open(os.path.join(d, REPORT), encoding="utf-8") as f:
            reports.append(json.load(f))
    for side, sub in SIDES.items():
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        for name in lines:  # the scp lines point into the shards' arks
            with open(os.path.join(out, sub, name), "w", encoding="utf-8") as f:
                f.writelines(sorted(side_lines[side][name]))
        shutil.copy(
            os.path.join(shard_dir(out, 1), sub, GEOMETRY_FILE),
            os.path.join(out, sub, GEOMETRY_FILE),
        )
    write_kv(os.path.join(out, "text"), sorted(texts.items()))
    write_kv(os.path.join(out, "scores.tsv"), sorted(scores))
    rejects.write(os.path.join(out, "rejected.tsv"))
    n_prompts = sum(r["prompts"] for r in reports)
    n_candidates = sum(r["candidates"] for r in reports)
    # the shards ran side by side: the slowest is the stage's time
    seconds = max(r["seconds"] for r in reports)
    report = {
        "prompts": n_prompts,
        "pairs": len(texts),
        "fraction_with_pair": len(texts) / max(1, n_prompts),
        "candidates": n_candidates,
        "candidates_per_second": n_candidates / max(seconds, 1e-9),
        "seconds": seconds,
        "jobs": args.num_jobs,
        "margin": reports[0]["margin"],
        "scorer": reports[0]["scorer"],
        "rejected": dict(rejects.reason_counts()),
    }
    with open(os.path.join(out, REPORT), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    logging.info(rejects.summary(n_prompts))
    logging.info(
        f"{len(texts)} pairs from {n_prompts} prompts "
        f"({report['fraction_with_pair']:.0%}); {n_candidates} candidates, "
        f"{report['candidates_per_second']:.2f} per second ({args.num_jobs} jobs)"
    )
    return report


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--model", help="packed model (dir, archive, hub id)")
    parser.add_argument("--data_dir", help="prompts: its 'text' file")
    parser.add_argument(
        "--scorer_config",
        help="YAML of the scorer (espnet2.ualm.scoring.preference.build_scorer)",
    )
    parser.add_argument(
        "--num_candidates", type=positive_int, default=4, help="per prompt (>= 2)"
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=0.1,
        help="keep a pair only when best - worst exceeds this",
    )
    parser.add_argument(
        "--decode_config", default=None, help="YAML of decoding settings"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_prompts", type=int, default=0, help="0: all")
    parser.add_argument(
        "--prompts_per_step",
        type=positive_int,
        default=8,
        help="prompts per batch (each num_candidates rows)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--job", type=positive_int, default=1, help="1-based shard index"
    )
    parser.add_argument("--num_jobs", type=positive_int, default=1)
    parser.add_argument("--merge", action="store_true", help="join finished shards")
    return parser


def main(cmd: Optional[List[str]] = None) -> dict:
    args = get_parser().parse_args(cmd)
    setup_logging(cmd=cmd)
    if args.merge:
        return merge(args)
    for need in ("model", "data_dir", "scorer_config"):
        if not getattr(args, need):
            sys.exit(f"ualm_make_pairs: --{need} is required (unless --merge)")
    if args.num_candidates < 2:
        sys.exit("ualm_make_pairs: --num_candidates must be >= 2 (a pair needs two)")
    if not 1 <= args.job <= args.num_jobs:
        sys.exit(f"ualm_make_pairs: --job {args.job} not in 1..{args.num_jobs}")
    return make_pairs(args)


if __name__ == "__main__":
    main()
