#!/usr/bin/env python3
"""How do free-running text-to-audio clips differ from what was asked?

For every generated clip of a decode directory (its ``wav.scp``) it reads the
clip's prompt parameters (``meta.jsonl`` of the reference data dir), runs the
judge's signal analysis on the clip and compares structure, not labels:

* events found minus events asked (too few, right, too many);
* groups found minus groups asked;
* the clip's duration against the reference clip's, and how many clips ran
  to the decoder's length limit (``--max_seconds``: the end was never chosen).

This is the free-running half of the diagnosis in ``doc/mini_competence.md``
(``local/diagnose.py`` is the teacher-forced half).

  python local/generation_stats.py \\
      --hyp_dir exp/ualm_unified/decode/text_to_audio/mini_sound_test \\
      --ref_dir dump/audio/mini_sound_test --max_seconds 5 \\
      --output_json exp/diagnosis/free_running.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter

import numpy as np
import soundfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from judge import read_meta, read_scp, resolve_path  # noqa: E402
from mini_judge.analysis import analyse, load_audio  # noqa: E402


def _histogram(diffs: list[int]) -> dict[str, float]:
    """Share of clips by ``found - asked``, clipped to [-3, +3]."""
    counts = Counter(int(np.clip(d, -3, 3)) for d in diffs)
    return {f"{k:+d}": counts.get(k, 0) / len(diffs) for k in range(-3, 4)}


def clip_stats(wav: str, meta: dict, max_seconds: float) -> dict:
    """Structure of one generated clip against its prompt's parameters."""
    mono, stereo = load_audio(wav)
    found = analyse(mono, stereo)
    seconds = soundfile.info(wav).duration
    return {
        "events_asked": int(meta["num_events"]),
        "events_found": len(found.events),
        "groups_asked": len(meta["groups"]),
        "groups_found": len(found.groups),
        "seconds": seconds,
        "reference_seconds": float(meta["duration_s"]),
        "at_limit": seconds >= max_seconds - 0.05,
    }


def summarise(per_item: dict[str, dict]) -> dict:
    """The table of ``doc/mini_competence.md``: histograms and duration ratios."""
    rows = list(per_item.values())
    event_diff = [r["events_found"] - r["events_asked"] for r in rows]
    group_diff = [r["groups_found"] - r["groups_asked"] for r in rows]
    ratio = [r["seconds"] / r["reference_seconds"] for r in rows]
    return {
        "clips": len(rows),
        "events_found_minus_asked": _histogram(event_diff),
        "events_mean_diff": float(np.mean(event_diff)),
        "groups_found_minus_asked": _histogram(group_diff),
        "no_event_found": float(np.mean([r["events_found"] == 0 for r in rows])),
        "duration_ratio_median": float(np.median(ratio)),
        "duration_ratio_iqr": [float(np.percentile(ratio, q)) for q in (25, 75)],
        "at_length_limit": float(np.mean([r["at_limit"] for r in rows])),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hyp_dir", required=True, help="decode dir with wav.scp")
    p.add_argument("--ref_dir", required=True, help="data dir with meta.jsonl")
    p.add_argument("--max_seconds", type=float, required=True, help="decoder's limit")
    p.add_argument("--output_json", default=None)
    args = p.parse_args(argv)

    metas = read_meta(args.ref_dir)
    wavs = read_scp(os.path.join(args.hyp_dir, "wav.scp"))
    missing = sorted(set(wavs) - set(metas))
    if missing:
        raise SystemExit(
            f"{args.hyp_dir}/wav.scp: {len(missing)} ids without metadata "
            f"in {args.ref_dir}/meta.jsonl, first {missing[0]}"
        )
    per_item = {}
    for uid in sorted(wavs):
        wav = resolve_path(wavs[uid], args.hyp_dir)
        per_item[uid] = clip_stats(wav, metas[uid], args.max_seconds)
    out = {"summary": summarise(per_item), "per_item": per_item}
    print(json.dumps(out["summary"], indent=2))
    if args.output_json:
        os.makedirs(os.path.dirname(os.path.abspath(args.output_json)), exist_ok=True)
        with open(args.output_json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
