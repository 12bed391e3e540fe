#!/usr/bin/env python3
"""Padding waste of packed rows against length-bucketed batches (UALM data mix).

    tools/venv/bin/python bench/bench_packing.py [--json PATH]

Draws one epoch of a synthetic blend with the paper's group token shares
(``PAPER_GROUP_WEIGHTS``), batches it with ``PackedBatchSampler`` and
``BucketBatchSampler`` at the same token budget per batch, and reports the
fraction of real (non-padding) tokens as ``collate_sequences`` pads (every
row of a batch to the batch's longest row). Also times ESPnet-SpeechLM's
``batchfy_pack`` against ``best_fit_decreasing`` on a subset, which is why
the sampler packs with its own best-fit. Runs in a few seconds on one core.

Length mix (LM positions per example; what stage 5's shape files hold):
- template: 8 positions per message (``TEMPLATE_OVERHEAD``, manifest.py),
  two messages (three for QA) plus bos;
- generation audio: X-codec 50 frames/s + 7 delay steps (spec sections 1-2);
- understanding audio: continuous encoder at 25 frames/s (spec section 2);
- sound clips: 10 s (AudioSet / AudioCaps / VGGSound clips), 15 % trimmed
  shorter (uniform 2-10 s); captions ~20 tokens (N(20, 6), clipped 5-60,
  AudioCaps-style one-sentence captions);
- speech: utterances uniform 2-15 s, transcripts ~3 tokens per second
  (about 2.5 words/s read speech, ~1.3 BPE tokens per word);
- text-only: 50-800 tokens, log-uniform (short instructions to long chats);
- QA: question ~15 tokens, answer 10-80 tokens.
Dataset sizes are arbitrary (the blend redistributes tokens by weight).
"""

import argparse
import logging
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from espnet2.speechlm.dataloader.batch import batchfy_pack
from espnet2.ualm.data.manifest import TEMPLATE_OVERHEAD
from espnet2.ualm.train.blend import PAPER_GROUP_WEIGHTS, Blend, BlendSource
from espnet2.ualm.train.sampler import (
    BucketBatchSampler,
    PackedBatchSampler,
    best_fit_decreasing,
    split_row_key,
)

import common

CODEC_FPS, DELAY, ENCODER_FPS = 50, 7, 25
TEMPLATE_2 = 1 + 2 * TEMPLATE_OVERHEAD  # bos + two messages
TEMPLATE_3 = 1 + 3 * TEMPLATE_OVERHEAD


def _clip_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    sec = np.full(n, 10.0)
    short = rng.random(n) < 0.15
    sec[short] = rng.uniform(2, 10, short.sum())
    return sec


def _caption(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.clip(np.rint(rng.normal(20, 6, n)), 5, 60)


def make_mix(scale: float, seed: int = 0) -> List[BlendSource]:
    """The synthetic datasets (lengths in LM positions), see module doc."""
    rng = np.random.default_rng(seed)

    def n(count: int) -> int:
        return max(1, int(count * scale))

    clip = _clip_seconds(rng, n(20000))
    t2a = np.ceil(clip * CODEC_FPS) + DELAY + _caption(rng, len(clip)) + TEMPLATE_2
    speech = rng.uniform(2, 15, n(6000))
    tts = np.ceil(speech * CODEC_FPS) + DELAY + np.rint(3 * speech) + TEMPLATE_2
    clip = _clip_seconds(rng, n(8000))
    cap = np.ceil(clip * ENCODER_FPS) + _caption(rng, len(clip)) + TEMPLATE_2
    clip = _clip_seconds(rng, n(8000))
    qa = (
        np.ceil(clip * ENCODER_FPS)
        + rng.integers(8, 25, len(clip))
        + rng.integers(10, 81, len(clip))
        + TEMPLATE_3
    )
    speech = rng.uniform(2, 15, n(6000))
    asr = np.ceil(speech * ENCODER_FPS) + np.rint(3 * speech) + TEMPLATE_2
    text = np.rint(np.exp(rng.uniform(np.log(50), np.log(800), n(30000))))
    mix = {
        "sound_text_to_audio": ("text_to_audio", t2a),
        "speech_tts": ("tts", tts),
        "sound_audio_caption": ("audio_caption", cap),
        "sound_audio_qa": ("audio_qa", qa),
        "speech_asr": ("asr", asr),
        "text_dialogue": ("text_dialogue", text),
    }
    return [
        BlendSource.from_lengths(
            name,
            task,
            {f"{name}_{i:06d}": int(v) for i, v in enumerate(lengths)},
            factor=2.0 if task == "text_to_audio" else 1.0,  # paper: gen 2x
        )
        for name, (task, lengths) in mix.items()
    ]


BATCH_TOKENS = 16384  # release: 16,000 tokens per GPU (spec section 3)
PACK_ROWS = ((8192, 2), (4096, 4), (2048, 8))  # row length, rows per batch
SCENARIOS = (("large", 1.0), ("small", 0.02))  # ~112k and ~2.3k examples/epoch


def measure(sampler, method: str, row_tokens: Optional[int]) -> Dict:
    """One epoch of ``sampler``: sizes, real-token fraction, batching time."""
    start = time.perf_counter()
    batches = sampler.generate(1)
    seconds = time.perf_counter() - start
    stats = sampler.last_stats
    per_batch = [[split_row_key(r) for r in b] for b in batches]
    examples = [sum(len(r) for r in b) for b in per_batch]
    datasets = [len({k.split("/")[0] for r in b for k in r}) for b in per_batch]
    out = {
        "method": method,
        "row_tokens": row_tokens,
        "rows_per_batch": getattr(sampler, "rows_per_batch", None),
        "examples": stats.examples,
        "rows": stats.rows,
        "batches": stats.batches,
        "real_tokens": stats.real_tokens,
        "padded_tokens": stats.padded_tokens,
        "real_fraction": stats.real_fraction,
        "examples_per_batch": [min(examples), max(examples)],
        "datasets_per_batch": float(np.mean(datasets)),
        "single_dataset_batches": float(np.mean(np.array(datasets) == 1)),
        "seconds": seconds,
        "rejected": len(sampler.rejected_keys),
    }
    if row_tokens is not None:
        out["real_fraction_of_row_budget"] = stats.real_tokens / (
            stats.rows * row_tokens
        )
    return out


def espnet_pack_comparison(lengths: np.ndarray, capacity: int) -> Dict:
    """Same examples, ESPnet-SpeechLM's batchfy_pack vs best_fit_decreasing."""
    keys = list(range(len(lengths)))
    table = dict(enumerate(lengths.tolist()))
    start = time.perf_counter()
    espnet_rows = batchfy_pack(keys, table, capacity)
    espnet_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = best_fit_decreasing(lengths, capacity)
    ours_s = time.perf_counter() - start
    return {
        "examples": len(lengths),
        "row_tokens": capacity,
        "lower_bound_rows": int(np.ceil(lengths.sum() / capacity)),
        "espnet_batchfy_pack": {"rows": len(espnet_rows), "seconds": espnet_s},
        "best_fit_decreasing": {"rows": len(ours), "seconds": ours_s},
    }


def run_scenario(name: str, scale: float) -> Dict:
    blend = Blend(make_mix(scale), group_weights=PAPER_GROUP_WEIGHTS)
    draw = blend.draw(1)
    group_of = {s.name: s.group for s in blend.sources}
    shares = {g: 0.0 for g in PAPER_GROUP_WEIGHTS}
    for source, tokens in draw.tokens_by_source.items():
        shares[group_of[source]] += tokens / draw.total_tokens
    results = [
        measure(
            PackedBatchSampler(blend, max_tokens_per_row=row, rows_per_batch=rows),
            "pack",
            row,
        )
        for row, rows in PACK_ROWS
    ]
    results.append(
        measure(BucketBatchSampler(blend, batch_tokens=BATCH_TOKENS), "bucket", None)
    )
    print(
        f"\n[{name}] epoch of {len(draw.keys)} examples, {draw.total_tokens} tokens, "
        f"{BATCH_TOKENS} tokens per batch; group shares "
        + ", ".join(f"{g} {100 * v:.1f}%" for g, v in shares.items())
    )
    header = (
        f"{'method':7s} {'row':>5s} {'rows/b':>6s} {'rows':>7s} {'batches':>7s} "
        f"{'ex/batch':>9s} {'real %':>7s} {'of row %':>8s} {'time s':>6s}"
    )
    print(header + "\n" + "-" * len(header))
    for r in results:
        of_row = r.get("real_fraction_of_row_budget")
        lo, hi = r["examples_per_batch"]
        print(
            f"{r['method']:7s} {r['row_tokens'] or '-'!s:>5s} "
            f"{r['rows_per_batch'] or '-'!s:>6s} {r['rows']:7d} {r['batches']:7d} "
            f"{f'{lo}-{hi}':>9s} {100 * r['real_fraction']:7.2f} "
            f"{'-' if of_row is None else f'{100 * of_row:.2f}':>8s} "
            f"{r['seconds']:6.2f}"
        )
    return {
        "scale": scale,
        "epoch_examples": len(draw.keys),
        "epoch_tokens": draw.total_tokens,
        "group_shares": shares,
        "results": results,
        "lengths": draw.lengths,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--espnet_subsets",
        type=int,
        nargs="*",
        default=[6000, 25000],
        help="example counts for the batchfy_pack timing (grows ~n^2)",
    )
    parser.add_argument(
        "--json",
        default=common.default_json("bench_packing"),
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    scenarios = {name: run_scenario(name, scale) for name, scale in SCENARIOS}
    lengths = scenarios["large"].pop("lengths")
    scenarios["small"].pop("lengths")
    lengths = lengths[np.random.default_rng(0).permutation(len(lengths))]
    comparisons = []
    print("\npacking into rows of 4096, same examples:")
    for n in args.espnet_subsets:
        c = espnet_pack_comparison(lengths[:n], 4096)
        comparisons.append(c)
        ours, espnet = c["best_fit_decreasing"], c["espnet_batchfy_pack"]
        print(
            f"  {c['examples']:6d} examples (>= {c['lower_bound_rows']} rows): "
            f"best_fit_decreasing {ours['rows']} rows {ours['seconds']:.3f} s, "
            f"ESPnet batchfy_pack {espnet['rows']} rows {espnet['seconds']:.3f} s"
        )
    print()
    common.write_json(
        args.json,
        {
            "batch_tokens": BATCH_TOKENS,
            "scenarios": scenarios,
            "espnet_pack_comparison": comparisons,
        },
    )


if __name__ == "__main__":
    main()
