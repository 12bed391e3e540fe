#!/usr/bin/env python3
"""Stage 4: audio -> codec tokens (kaldiio ark/scp), sharded and resumable.

Each job encodes one shard of ``wav.scp`` and marks it done only when its ark,
scp and length files are complete, with a fingerprint of its inputs (its
items' audio files, the codec, ``--num_jobs``), so a re-run skips finished
shards whose inputs are unchanged and redoes the others. ``--merge`` joins
shards 1..num_jobs of that split (an id in two shards is an error):

    run_local.sh JOB=1:4 log/tok.JOB.log python -m espnet2.bin.ualm_tokenize_audio \
        --codec_config conf/codec.yaml --codec_model_dir exp/codec \
        --wav_scp dump/audio/train/wav.scp --output_dir dump/codec/train \
        --job JOB --num_jobs 4
    python -m espnet2.bin.ualm_tokenize_audio --merge --output_dir dump/codec/train \
        --num_jobs 4
"""

import argparse
import collections
import logging
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

import kaldiio
from tqdm import tqdm

from espnet2.ualm.cli import positive_int, setup_logging
from espnet2.ualm.data.codes_io import codec_geometry, flatten_codes, write_geometry
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


def shard_of(keys: List[str], job: int, num_jobs: int) -> List[str]:
    """Contiguous 1-based shard ``job`` of ``num_jobs`` (Kaldi's split_scp)."""
    n = len(keys)
    return keys[(job - 1) * n // num_jobs : job * n // num_jobs]


def shard_paths(output_dir: str, job: int) -> Tuple[str, str, str, str, str]:
    # absolute: codes.scp points into the arks from wherever it is read
    d = os.path.join(os.path.abspath(output_dir), "shards")
    return (
        os.path.join(d, f"codes.{job}.ark"),
        os.path.join(d, f"codes.{job}.scp"),
        os.path.join(d, f"utt2num_frames.{job}"),
        os.path.join(d, f"rejected.{job}.tsv"),
        os.path.join(d, f".done.{job}"),
    )


def shard_inputs(args: argparse.Namespace, wavs: Dict[str, str], keys: List[str]):
    """What a shard's codes depend on: its items and their audio files, the
    codec (config and weights) and the split (``num_jobs``, ``job``)."""
    from espnet2.ualm.codec.config import load_codec_config

    codec_conf = load_codec_config(args.codec_config)["codec_conf"]
    model_dirs = [args.codec_model_dir] if args.codec_model_dir else []
    model_dirs += [
        v for v in codec_conf.values() if isinstance(v, str) and os.path.exists(v)
    ]
    return {
        "items": [(k, file_stamp(wavs[k])) for k in keys],
        "codec_config": content_digest(args.codec_config),
        "codec_model": [tree_stamp(d) for d in model_dirs],
        "num_jobs": args.num_jobs,
        "job": args.job,
    }


def tokenize_shard(args: argparse.Namespace) -> None:
    ark, scp, lens, rej, done = shard_paths(args.output_dir, args.job)
    rejects = RejectLog("tokenize_audio")
    wavs = read_kv(args.wav_scp, rejects)
    keys = shard_of(sorted(wavs), args.job, args.num_jobs)
    fingerprint = digest(shard_inputs(args, wavs, keys))
    if is_done(done, fingerprint):
        logging.info("shard %d/%d already done, skipping", args.job, args.num_jobs)
        return
    if os.path.exists(done):
        logging.info(
            "shard %d/%d: its inputs (wav.scp, audio, codec or --num_jobs) changed "
            "since it was done: redoing it",
            args.job,
            args.num_jobs,
        )
        os.remove(done)
    # torch, the codec and the audio reader only here: the merge and the skip
    # of a finished shard need none of them (about 3 s of start-up per
    # process, two or three per data directory)
    import torch

    from espnet2.ualm.codec.config import codec_from_config
    from espnet2.ualm.data.io import AudioReadError, load_audio

    torch.set_num_threads(args.num_threads)
    codec = codec_from_config(args.codec_config, model_dir=args.codec_model_dir)
    codec.eval().to(args.device)
    write_geometry(args.output_dir, codec_geometry(codec))
    os.makedirs(os.path.dirname(ark), exist_ok=True)
    # Sort by length (utt2num_samples from stage 2) so batches pad little; audio
    # is read batch by batch, so a shard never has to fit in memory.
    len_file = os.path.join(os.path.dirname(args.wav_scp), "utt2num_samples")
    known = read_kv(len_file) if os.path.exists(len_file) else {}
    order = sorted(keys, key=lambda k: int(known.get(k, 0)))
    frames, seconds, start = {}, 0.0, time.time()
    with (
        kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer,
        tqdm(
            total=len(order), desc=f"tokenize shard {args.job}/{args.num_jobs}"
        ) as bar,
    ):
        for i in range(0, len(order), args.batch_size):
            batch, audio = [], []
            for k in order[i : i + args.batch_size]:
                try:  # stage 2 made it mono at the codec's rate: convert nothing
                    wav, _ = load_audio(wavs[k], codec.sample_rate, strict=True)
                    audio.append(wav)
                    batch.append(k)
                except AudioReadError as e:
                    rejects.add(k, wavs[k], f"unreadable for the codec: {e.reason}")
            bar.update(len(order[i : i + args.batch_size]))
            if not batch:
                continue
            lengths = torch.tensor([len(a) for a in audio])
            padded = torch.zeros(len(batch), int(lengths.max()))
            for j, a in enumerate(audio):
                padded[j, : len(a)] = torch.from_numpy(a)
            with torch.no_grad():
                codes, code_lengths = codec.encode(
                    padded.to(args.device), lengths.to(args.device)
                )
            codes = codes.cpu().numpy()
            for j, k in enumerate(batch):
                n = int(code_lengths[j])
                writer(k, flatten_codes(codes[j, :n]))
                frames[k] = n
            seconds += float(lengths.sum()) / codec.sample_rate
    write_kv(lens, frames.items())
    rejects.write(rej)
    logging.info(
        "shard %d: %s; %.1f s of audio in %.1f s",
        args.job,
        rejects.summary(len(keys)),
        seconds,
        time.time() - start,
    )
    write_done(done, fingerprint, num_jobs=args.num_jobs, items=len(frames))


def merge_shards(args: argparse.Namespace) -> None:
    """Joins shards 1..num_jobs of this split (never those of another
    ``--num_jobs``) into ``codes.scp``; an id in two shards is an error."""
    scp_lines, frames = [], {}
    rejects = RejectLog("tokenize_audio")
    missing, other_split = [], []
    for job in range(1, args.num_jobs + 1):
        _, scp, lens, rej, done = shard_paths(args.output_dir, job)
        marker = read_done(done)
        if marker is None:
            missing.append(job)
            continue
        if marker.get("num_jobs") != args.num_jobs:
            other_split.append(job)
            continue
        with open(scp, encoding="utf-8") as f:
            scp_lines.extend(line for line in f if line.strip())
        frames.update(read_kv(lens))
        rejects.items.extend(RejectLog.read(rej))
    if missing:
        sys.exit(
            f"ualm_tokenize_audio: shards {missing} of {args.output_dir} are not "
            "finished; re-run the stage (finished shards are skipped)"
        )
    if other_split:
        sys.exit(
            f"ualm_tokenize_audio: shards {other_split} of {args.output_dir} were "
            f"made for another --num_jobs than {args.num_jobs}; re-run the stage "
            f"with --num_jobs {args.num_jobs} (it redoes them)"
        )
    ids = collections.Counter(line.split(maxsplit=1)[0] for line in scp_lines)
    repeated = sorted(k for k, n in ids.items() if n > 1)
    if repeated:
        sys.exit(
            f"ualm_tokenize_audio: {len(repeated)} ids are in more than one shard "
            f"of {args.output_dir} (e.g. {repeated[0]}); re-run the stage"
        )
    with open(os.path.join(args.output_dir, "codes.scp"), "w", encoding="utf-8") as f:
        f.writelines(sorted(scp_lines))
    write_kv(os.path.join(args.output_dir, "utt2num_frames"), frames.items())
    rejects.write(os.path.join(args.output_dir, "rejected.tsv"))
    logging.info("%s: %s", args.output_dir, rejects.summary(len(frames) + len(rejects)))


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_jobs", type=positive_int, default=1)
    parser.add_argument("--merge", action="store_true", help="join finished shards")
    parser.add_argument("--codec_config", help="codec YAML (conf/codec.yaml)")
    parser.add_argument("--codec_model_dir", default=None, help="fitted codec dir")
    parser.add_argument("--wav_scp")
    parser.add_argument(
        "--job", type=positive_int, default=1, help="1-based shard index"
    )
    parser.add_argument("--batch_size", type=positive_int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_threads", type=positive_int, default=1)
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(logging.INFO)
    if args.merge:
        merge_shards(args)
        return
    for name in ("codec_config", "wav_scp"):
        if not getattr(args, name):
            sys.exit(f"ualm_tokenize_audio: --{name} is required unless --merge")
        if not os.path.exists(getattr(args, name)):
            sys.exit(f"ualm_tokenize_audio: {getattr(args, name)} not found")
    if not 1 <= args.job <= args.num_jobs:
        sys.exit(f"ualm_tokenize_audio: --job {args.job} not in 1..{args.num_jobs}")
    tokenize_shard(args)


if __name__ == "__main__":
    main()
