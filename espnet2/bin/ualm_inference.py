#!/usr/bin/env python3
"""UALM inference over an ESPnet data directory: batched, sharded, resumable.

Example (mini recipe, 2 jobs)::

    for job in 1 2; do
        python -m espnet2.bin.ualm_inference --model exp/ualm_unified/packed \\
            --task asr --data_dir dump/audio/mini_speech_test \\
            --output_dir exp/ualm_unified/decode/asr/mini_speech_test \\
            --decode_config conf/decode.yaml --job ${job} --num_jobs 2 &
    done; wait
    python -m espnet2.bin.ualm_inference --merge --num_jobs 2 \\
        --output_dir exp/ualm_unified/decode/asr/mini_speech_test

``--model``: a packed model directory, an archive of ``ualm_pack`` or a hub
id. Each job answers a contiguous shard of the items (sorted ids) in
``output_dir/logdir/output.JOB/`` and appends each finished batch, so a
re-run skips what is done. ``--merge`` writes ESPnet's layout:

* ``text``: text replies (one line per item; a reply's text segments are
  joined with " | ");
* ``wav.scp``, ``wav/<id>.wav``: generated audio (enhanced when an enhancer
  is used; then the codec's own output is in ``codec_wav.scp``,
  ``codec_wav/``);
* ``codes.scp`` / ``codes.ark`` + ``codec.json``: generated codec codes
  ``[T, K]`` in stage 4's format (``espnet2.ualm.data.codes_io.CodesReader``);
* ``errors.tsv``: items that got no answer, and why (also counted in the log).
"""

import argparse
import json
import logging
import os
import shutil
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import soundfile
import yaml

from espnet2.ualm.cli import setup_logging
from espnet2.ualm.data.codes_io import (
    GEOMETRY_FILE,
    codec_geometry,
    flatten_codes,
    write_geometry,
)
from espnet2.ualm.data.io import JsonlError, iter_jsonl
from espnet2.ualm.data.kaldi_dir import write_kv
from espnet2.ualm.data.rejects import RejectLog

RESULTS = "results.jsonl"
DONE = ".done"


def shard_of(items: List, job: int, num_jobs: int) -> List:
    """Contiguous 1-based shard ``job`` of ``num_jobs`` (Kaldi's split_scp)."""
    n = len(items)
    return items[(job - 1) * n // num_jobs : job * n // num_jobs]


def shard_dir(output_dir: str, job: int) -> str:
    return os.path.join(os.path.abspath(output_dir), "logdir", f"output.{job}")


def finished_ids(path: str) -> Dict[str, dict]:
    """Results already written by an earlier run of this shard."""
    done: Dict[str, dict] = {}
    if os.path.isfile(path):
        try:
            for _, row in iter_jsonl(path):
                done[row["id"]] = row
        except JsonlError:
            pass  # a line cut by a kill: that batch and the rest are redone
    return done


def _write_wav(path: str, audio: np.ndarray, rate: int) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    audio = np.asarray(audio, dtype=np.float32)
    data = audio.T if audio.ndim == 2 else audio  # soundfile: [samples, channels]
    soundfile.write(path, np.clip(data, -1.0, 1.0), int(rate), subtype="PCM_16")
    return path


def run_shard(args: argparse.Namespace) -> None:
    import kaldiio
    import torch
    from tqdm import tqdm

    from espnet2.ualm.inference.data_dir import read_requests
    from espnet2.ualm.inference.pipeline import UALM
    from espnet2.ualm.tokens.tasks import load_tasks

    out = shard_dir(args.output_dir, args.job)
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(out, DONE)):
        logging.info(f"shard {args.job}/{args.num_jobs} already done, skipping")
        return
    decode = {}
    if args.decode_config:
        with open(args.decode_config, encoding="utf-8") as f:
            decode = yaml.safe_load(f) or {}
    if args.batch_size:
        decode["batch_size"] = args.batch_size
    torch.set_num_threads(max(1, args.num_threads))
    tasks = load_tasks(args.task_templates)
    ualm = UALM.from_pretrained(args.model, args.device, decode=decode, tasks=tasks)
    requests, rejects = read_requests(args.data_dir, args.task, tasks)
    if len(rejects):
        rejects.write(os.path.join(out, "rejected.tsv"))
    requests = shard_of(requests, args.job, args.num_jobs)
    write_geometry(out, codec_geometry(ualm.codec))
    results_path = os.path.join(out, RESULTS)
    done = finished_ids(results_path)
    todo = [r for r in requests if r.id not in done]
    logging.info(
        f"shard {args.job}/{args.num_jobs}: {len(requests)} items, "
        f"{len(requests) - len(todo)} already done; settings {ualm.settings}"
    )
    # Rewrite the results without a possibly cut last line before appending.
    with open(results_path, "w", encoding="utf-8") as f:
        for row in done.values():
            f.write(json.dumps(row) + "\n")
    start = time.time()
    size = max(1, ualm.settings.batch_size)
    with tqdm(
        total=len(todo), desc=f"{args.task} shard {args.job}/{args.num_jobs}"
    ) as bar:
        for begin in range(0, len(todo), size):
            batch = todo[begin : begin + size]
            outputs = ualm.run(batch, progress=bar)
            rows, codes = [], {}
            for o in outputs:
                row = {"id": o.id, "text": o.text, "error": o.error}
                if o.audio is not None:
                    row["wav"] = _write_wav(
                        os.path.join(out, "wav", f"{o.id}.wav"), o.audio, o.sample_rate
                    )
                    if o.audio is not o.codec_audio:
                        row["codec_wav"] = _write_wav(
                            os.path.join(out, "codec_wav", f"{o.id}.wav"),
                            o.codec_audio,
                            o.codec_sample_rate,
                        )
                if o.codes is not None:
                    codes[o.id] = flatten_codes(o.codes.cpu().numpy())
                rows.append(row)
            if codes:
                kaldiio.save_ark(
                    os.path.join(out, "codes.ark"),
                    codes,
                    scp=os.path.join(out, "codes.scp"),
                    append=True,
                )
            with open(results_path, "a", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
    open(os.path.join(out, DONE), "w").close()
    logging.info(f"shard {args.job}: {len(todo)} items in {time.time() - start:.1f} s")


def merge(args: argparse.Namespace) -> None:
    """Joins the finished shards into ``output_dir`` (ESPnet's layout)."""
    out = os.path.abspath(args.output_dir)
    missing = [
        j
        for j in range(1, args.num_jobs + 1)
        if not os.path.exists(os.path.join(shard_dir(out, j), DONE))
    ]
    if missing:
        sys.exit(
            f"ualm_inference: shards {missing} of {out} are not finished; re-run "
            "the stage (finished items are skipped)"
        )
    rows: Dict[str, dict] = {}
    token_lines: List[str] = []
    errors = RejectLog(f"inference {out}")
    n_unread = 0
    for job in range(1, args.num_jobs + 1):
        d = shard_dir(out, job)
        rows.update(finished_ids(os.path.join(d, RESULTS)))
        if os.path.isfile(os.path.join(d, "codes.scp")):
            with open(os.path.join(d, "codes.scp"), encoding="utf-8") as f:
                token_lines += [line for line in f if line.strip()]
        rejected = os.path.join(d, "rejected.tsv")
        if job == 1 and os.path.isfile(rejected):
            for r in RejectLog.read(rejected):
                errors.add(r.utt_id, r.source, r.reason)
                n_unread += 1
    texts, wavs, codec_wavs = [], [], []
    for utt in sorted(rows):
        row = rows[utt]
        if row.get("error"):
            errors.add(utt, "ualm_inference", row["error"])
            continue
        if row.get("text") is not None:
            texts.append((utt, " | ".join(row["text"].split("\n"))))
        if row.get("wav"):
            wavs.append((utt, row["wav"]))
        if row.get("codec_wav"):
            codec_wavs.append((utt, row["codec_wav"]))
    for name, items in (
        ("text", texts),
        ("wav.scp", wavs),
        ("codec_wav.scp", codec_wavs),
    ):
        path = os.path.join(out, name)
        if items:
            write_kv(path, items)
        elif os.path.exists(path):
            os.remove(path)
    if token_lines:
        with open(os.path.join(out, "codes.scp"), "w", encoding="utf-8") as f:
            f.writelines(sorted(token_lines))
        shutil.copy(
            os.path.join(shard_dir(out, 1), GEOMETRY_FILE),
            os.path.join(out, GEOMETRY_FILE),
        )
    errors.write(os.path.join(out, "errors.tsv"))
    logging.info(
        f"merged {len(rows)} items: {len(texts)} text, {len(wavs)} audio; "
        f"{errors.summary(len(rows) + n_unread)}"
    )


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--model", help="packed model dir, archive or hub id")
    parser.add_argument("--task", help="task of conf/datasets.yaml (asr, ...)")
    parser.add_argument(
        "--task_templates",
        default=None,
        help="YAML file of extra tasks (espnet2.ualm.tokens.tasks), as in training",
    )
    parser.add_argument("--data_dir", help="ESPnet data directory of the test set")
    parser.add_argument("--decode_config", help="YAML of decoding settings")
    parser.add_argument("--batch_size", type=int, default=0, help="0: the config's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--job", type=int, default=1, help="1-based shard index")
    parser.add_argument("--num_jobs", type=int, default=1)
    parser.add_argument("--merge", action="store_true", help="join finished shards")
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    if args.merge:
        merge(args)
        return
    for need in ("model", "task", "data_dir"):
        if not getattr(args, need):
            sys.exit(f"ualm_inference: --{need} is required (unless --merge)")
    if not 1 <= args.job <= args.num_jobs:
        sys.exit(f"ualm_inference: --job {args.job} not in 1..{args.num_jobs}")
    run_shard(args)


if __name__ == "__main__":
    main()
