#!/usr/bin/env python3
"""Evaluate a trained Enhancement VAE against plain resampling on held-out clips.

Both enhance the same codec output of each master (cached by
``espnet2.ualm.enhancer.prepare_pairs``, or made here from --codec_config);
the baseline resamples it to 48 kHz and copies the mono channel. Measures
(``espnet2.ualm.enhancer.metrics``; lower is better): log-spectral distance
over the full band and above 8 kHz, multi-resolution STFT distance and the
inter-channel level difference error. Prints the table, writes it as a section
of ``<exp_dir>/RESULTS.md`` and the numbers to ``<exp_dir>/eval_<name>.json``.

Example::

    python -m espnet2.bin.ualm_enhancer_eval --exp_dir exp/enhancer \\
        --wav48_scp dump/enhancer/mini_sound_test/wav48.scp \\
        --input_scp dump/enhancer/mini_sound_test/codec_wav.scp
"""

import argparse
import json
import logging
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import soundfile
import torch

from espnet2.tasks.ualm_enhancer import find_checkpoint, load_enhancer
from espnet2.ualm.cli import positive_int
from espnet2.ualm.data.io import AudioReadError, load_audio
from espnet2.ualm.data.kaldi_dir import file_name_problem, read_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.enhancer.metrics import enhancement_metrics
from espnet2.ualm.enhancer.pairs import make_input
from espnet2.ualm.enhancer.resample import ResampleEnhancer

MEASURES = (
    ("lsd_db", "log-spectral distance, full band (dB)"),
    ("lsd_high_db", "log-spectral distance above 8 kHz (dB)"),
    ("mrstft", "multi-resolution STFT distance"),
    ("ild_error_db", "inter-channel level difference error (dB)"),
)


def evaluate(
    enhancer,
    masters: Dict[str, str],
    inputs: Optional[Dict[str, str]],
    codec=None,
    floor_db: float = -80.0,
    write_wav_dir: Optional[str] = None,
    rejects: Optional[RejectLog] = None,
) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Per-clip measures ``{system: {utt_id: {measure: value}}}`` for the
    baseline and the enhancer. A clip that cannot be read (or has no cached
    input, or whose output cannot be written) is recorded in ``rejects`` and
    left out; the others are measured."""
    rejects = rejects if rejects is not None else RejectLog("enhancer_eval")
    baseline = ResampleEnhancer(enhancer.input_sample_rate, enhancer.output_sample_rate)
    per_clip: Dict[str, Dict[str, Dict[str, float]]] = dict(baseline={}, vae={})
    rate = enhancer.output_sample_rate
    for utt_id, path in masters.items():
        if inputs is not None and utt_id not in inputs:
            rejects.add(utt_id, path, "no cached input (codec output) for it")
            continue
        problem = file_name_problem(utt_id, ".wav") if write_wav_dir else None
        if problem is not None:
            rejects.add(utt_id, path, f"id cannot be a file name: {problem}")
            continue
        try:
            # as stored: the reference keeps its channels and must be at the
            # rate the enhancer makes; the input must be mono at the rate it takes
            ref, _ = load_audio(path, rate, mono=False, strict=True)
            if inputs is not None:
                x, _ = load_audio(
                    inputs[utt_id], enhancer.input_sample_rate, strict=True
                )
            else:
                x = make_input(ref, rate, codec)
        except AudioReadError as e:
            rejects.add(utt_id, path, f"unreadable: {e}")
            continue
        outputs = dict(baseline=baseline.enhance(x), vae=enhancer.enhance(x))
        measured = {
            system: enhancement_metrics(ref.T, est, rate, floor_db=floor_db)
            for system, est in outputs.items()
        }
        try:
            for system, est in outputs.items():
                if write_wav_dir is not None:
                    out = os.path.join(write_wav_dir, system, f"{utt_id}.wav")
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    soundfile.write(out, np.clip(est.T, -1, 1), rate)
        except Exception as e:  # this clip only
            rejects.add(utt_id, path, f"writing its outputs failed: {e}")
            continue
        for system, m in measured.items():
            per_clip[system][utt_id] = m
    return per_clip


def summarize(per_clip: Dict[str, Dict[str, Dict[str, float]]]) -> Dict:
    """Mean over clips of each measure and system, and the relative change."""
    summary: Dict = {}
    for key, _ in MEASURES:
        row = {}
        for system, clips in per_clip.items():
            values = np.array([m[key] for m in clips.values()], dtype=np.float64)
            values = values[~np.isnan(values)]
            row[system] = float(values.mean()) if len(values) else float("nan")
        base, vae = row["baseline"], row["vae"]
        row["relative_improvement"] = (base - vae) / base if base else float("nan")
        summary[key] = row
    return summary


def format_markdown(summary: Dict, title: str, notes: List[str]) -> str:
    lines = [
        f"## {title}",
        "",
        "| measure (lower is better) | resample + mono copy | Enhancement VAE "
        "| relative improvement |",
        "|---|---:|---:|---:|",
    ]
    for key, label in MEASURES:
        row = summary[key]
        lines.append(
            f"| {label} | {row['baseline']:.3f} | {row['vae']:.3f} "
            f"| {100 * row['relative_improvement']:+.1f} % |"
        )
    lines.append("")
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def write_section(path: str, section: str) -> None:
    """Puts ``section`` (starting with a ``## title`` line) into the markdown
    file, replacing an existing section of the same title."""
    title = section.splitlines()[0].strip()
    old = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
    kept: List[str] = []
    skipping = False
    for line in old.splitlines(keepends=True):
        if line.startswith("## "):
            skipping = line.strip() == title
        if not skipping:
            kept.append(line)
    text = "".join(kept).rstrip("\n")
    if not text:
        text = "# Results"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n\n" + section)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exp_dir", required=True, help="enhancer training dir")
    parser.add_argument("--checkpoint", default=None, help="model file to load")
    parser.add_argument("--wav48_scp", required=True, help="held-out masters")
    parser.add_argument(
        "--input_scp", default=None, help="cached codec output (codec_wav.scp)"
    )
    parser.add_argument(
        "--codec_config", default=None, help="codec YAML, without --input_scp"
    )
    parser.add_argument("--codec_model_dir", default=None)
    parser.add_argument(
        "--num_clips", type=positive_int, default=None, help="first N ids"
    )
    parser.add_argument("--floor_db", type=float, default=-80.0)
    parser.add_argument("--name", default=None, help="test set name (default: dir)")
    parser.add_argument(
        "--results_md", default=None, help="default: <exp_dir>/RESULTS.md"
    )
    parser.add_argument(
        "--write_wav_dir", default=None, help="also write both systems' outputs"
    )
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> Dict:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    checkpoint = args.checkpoint or find_checkpoint(args.exp_dir)
    enhancer = load_enhancer(args.exp_dir, checkpoint)
    rejects = RejectLog("enhancer_eval")
    masters = read_kv(args.wav48_scp, rejects)
    ids = sorted(masters)[: args.num_clips] if args.num_clips else sorted(masters)
    masters = {u: masters[u] for u in ids}
    inputs, codec = None, None
    if args.input_scp is not None:
        inputs = read_kv(args.input_scp, rejects)
    elif args.codec_config is not None:
        from espnet2.ualm.codec.config import codec_from_config

        codec = codec_from_config(args.codec_config, args.codec_model_dir).eval()
    else:
        raise SystemExit("give --input_scp or --codec_config")

    t0 = time.perf_counter()
    per_clip = evaluate(
        enhancer, masters, inputs, codec, args.floor_db, args.write_wav_dir, rejects
    )
    name = args.name or os.path.basename(
        os.path.dirname(os.path.abspath(args.wav48_scp))
    )
    rejected = rejects.write(os.path.join(args.exp_dir, f"eval_{name}.rejected.tsv"))
    n_clips = len(per_clip["vae"])
    logging.info(f"{rejected}: {rejects.summary(n_clips + len(rejects))}")
    if not n_clips:
        raise SystemExit(f"ualm_enhancer_eval: no clip to evaluate; see {rejected}")
    summary = summarize(per_clip)
    notes = [
        f"{n_clips} held-out clips of `{args.wav48_scp}`"
        + (f" ({len(rejects)} rejected, listed in `{rejected}`)" if rejects else "")
        + "; input: the codec output "
        + (f"cached in `{args.input_scp}`" if inputs else f"of `{args.codec_config}`"),
        f"model: `{checkpoint}`",
        "both systems enhance the same codec output; magnitudes floored at "
        f"{args.floor_db:g} dB re full scale (espnet2/ualm/enhancer/metrics.py)",
    ]
    section = format_markdown(summary, f"Enhancement VAE on {name}", notes)
    print(section)
    results_md = args.results_md or os.path.join(args.exp_dir, "RESULTS.md")
    write_section(results_md, section)
    report = dict(
        checkpoint=checkpoint,
        clips=n_clips,
        rejected=len(rejects),
        seconds=round(time.perf_counter() - t0, 1),
        summary=summary,
        per_clip=per_clip,
    )
    with open(
        os.path.join(args.exp_dir, f"eval_{name}.json"), "w", encoding="utf-8"
    ) as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    logging.info(f"wrote {results_md}")
    return report


if __name__ == "__main__":
    main()
