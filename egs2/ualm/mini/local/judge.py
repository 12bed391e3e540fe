#!/usr/bin/env python3
"""The mini judge: does each generated clip contain what its prompt asked for?

For every clip it estimates, from the signal only, the event groups (type,
count, pitch band, loudness, stereo position when the file is stereo) and their
order, reads what the prompt asked for (the test item's ``meta.jsonl`` record,
or its rich/plain caption) and scores the match per attribute
(``mini_judge.match``).

  # score generated audio (ids = the test clips' ids)
  python local/judge.py score --hyp_scp exp/decode/text_to_audio/wav.scp \\
      --ref_dir data/mini_sound_test --output_json exp/decode/judge.json

  # validate the judge: ground truth, shuffled prompts, noise, codec round trip
  python local/judge.py validate --ref_dir data/mini_sound_test \\
      --codec_dir exp/codec --output_json exp/judge_validation.json

``espnet2.bin.ualm_score --judge local/judge.py`` calls :func:`judge_data_dir`
(generated audio) and :func:`caption_attributes` (generated captions: parsed
with the judge's caption parser and compared with the clip's parameters).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from espnet2.ualm.data.io import read_jsonl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mini_judge.analysis import (  # noqa: E402
    SAMPLE_RATE,
    GroupEstimate,
    analyse,
    load_audio,
)
from mini_judge.match import (  # noqa: E402
    ATTRIBUTES,
    aggregate,
    clip_scores,
    compare,
    judge_clip,
)
from mini_judge.prompt import ExpectedGroup, from_meta, from_text  # noqa: E402

PROMPT_SOURCES = ("meta", "text", "rich_text")
JUDGE_NAME = "mini judge (signal analysis vs prompt parameters)"


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def read_scp(path: str) -> dict[str, str]:
    """``<id> <value>`` lines (values keep their inner spaces)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(maxsplit=1)
            if len(parts) == 2:
                out[parts[0]] = parts[1].strip()
    return out


def resolve_path(path: str, data_dir: str) -> str:
    """Kaldi paths are relative to the setup directory the recipe runs from:
    the current directory, else two levels above ``data/<set>/``."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    guess = os.path.join(os.path.dirname(os.path.dirname(data_dir)), path)
    return guess if os.path.exists(guess) else path


def read_meta(ref_dir: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in read_jsonl(os.path.join(ref_dir, "meta.jsonl"))}


def expected_groups(
    ref_dir: str, source: str = "meta"
) -> dict[str, list[ExpectedGroup]]:
    """What each prompt of ``ref_dir`` asked for, by id."""
    if source == "meta":
        return {k: from_meta(m) for k, m in read_meta(ref_dir).items()}
    if source not in PROMPT_SOURCES:
        raise ValueError(f"prompt source must be one of {PROMPT_SOURCES}")
    return {k: from_text(t) for k, t in read_scp(os.path.join(ref_dir, source)).items()}


def expected_from_prompt(text: str) -> list[ExpectedGroup]:
    """What a caption or rich caption asks for (best-of-N and preference
    scorers that know only the prompt: ``espnet2.ualm.scoring.preference``)."""
    return from_text(text)


# --------------------------------------------------------------------------
# Judging
# --------------------------------------------------------------------------


def judge_audio(
    items: Iterable[tuple[str, np.ndarray, np.ndarray | None, list[ExpectedGroup]]],
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Judge ``(id, mono16k, stereo16k or None, expected)`` items."""
    per_item = {}
    for uid, mono, stereo, expected in items:
        per_item[uid] = judge_clip(expected, analyse(mono, stereo))
    summary = aggregate([r["checks"] for r in per_item.values()])
    return per_item, summary


def _load_items(
    wavs: dict[str, str], expected: dict[str, list[ExpectedGroup]], data_dir: str
) -> Iterable[tuple[str, np.ndarray, np.ndarray | None, list[ExpectedGroup]]]:
    for uid in sorted(wavs):
        mono, stereo = load_audio(resolve_path(wavs[uid], data_dir))
        yield uid, mono, stereo, expected[uid]


def judge_data_dir(
    hyp_wavs: dict[str, str], ref_dir: str, prompt_source: str = "meta"
) -> dict[str, Any]:
    """Plugin entry of ``espnet2.bin.ualm_score --judge``: score generated clips
    (by id) against the prompts of ``ref_dir``. Ids without a prompt are
    skipped and counted."""
    expected = expected_groups(ref_dir, prompt_source)
    known = {k: v for k, v in hyp_wavs.items() if k in expected}
    per_item, summary = judge_audio(_load_items(known, expected, ref_dir))
    return {
        "name": JUDGE_NAME,
        "summary": summary,
        "per_item": per_item,
        "skipped_ids": len(hyp_wavs) - len(known),
    }


# --------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------

CAPTION_JUDGE_NAME = "mini judge caption parser (from_text) vs clip parameters"


def stated_in_captions(expected: Sequence[ExpectedGroup]) -> list[ExpectedGroup]:
    """What a plain caption states of each group: type, count and pitch band
    (captions never name loudness or position, so those are not asked)."""
    return [ExpectedGroup(g.type, g.count, g.pitch_band) for g in expected]


@functools.lru_cache(maxsize=65536)
def _parse_caption(text: str) -> tuple[ExpectedGroup, ...]:
    return tuple(from_text(text))


def caption_attributes(hyp_texts: dict[str, str], ref_dir: str) -> dict[str, Any]:
    """Plugin entry of ``espnet2.bin.ualm_score`` for captioning: does each
    generated caption (by clip id) name what the clip holds?

    Each caption is parsed with the judge's own caption parser
    (``mini_judge.prompt.from_text``, which reads every caption template) and
    its groups are compared, in order, with the clip's parameters
    (``meta.jsonl``) by ``mini_judge.match.compare``, as the judge compares
    the groups it finds in a generated clip: ``event_type``, ``count`` and
    ``pitch_band`` per group, ``num_groups`` and ``order`` per clip. A clip's
    ``overall`` is the mean of its attribute scores and ``exact`` whether all
    are right; the summary aggregates them as the judge does
    (``mini_judge.match.aggregate``) and counts in ``unparsed`` the captions
    where the parser finds no group. Ids without metadata are skipped and
    counted."""
    expected = _expected_groups_cached(ref_dir, "meta")
    known = sorted(k for k in hyp_texts if k in expected)
    per_item = {}
    for uid in known:
        found = list(_parse_caption(hyp_texts[uid] or ""))
        want = stated_in_captions(expected[uid])
        checks = compare(want, found, stereo=False)
        per_item[uid] = {
            "checks": checks,
            "scores": clip_scores(checks),
            "parsed": [vars(g) for g in found],
        }
    if per_item:
        summary = aggregate([r["checks"] for r in per_item.values()])
    else:
        summary = {"clips": 0.0}
    summary["unparsed"] = float(sum(not r["parsed"] for r in per_item.values()))
    return {
        "name": CAPTION_JUDGE_NAME,
        "summary": summary,
        "per_item": per_item,
        "skipped_ids": len(hyp_texts) - len(known),
    }


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """``partner[i] != i`` for every i: clip i is judged against prompt partner[i]."""
    if n < 2:
        raise ValueError("shuffling needs at least two clips")
    order = np.random.default_rng(seed).permutation(n)
    partner = np.empty(n, dtype=int)
    partner[order] = np.roll(order, -1)
    return partner


def chance_level(
    ids: list[str],
    expected: dict[str, list[ExpectedGroup]],
    partner: np.ndarray,
    stereo: bool | Sequence[bool] = True,
) -> dict[str, float]:
    """What a perfect judge scores on the shuffled pairs: the prompts' own
    parameters compared with those of the partner prompts (the chance level
    given the corpus's label distribution). ``stereo`` (one flag, or one per
    id): whether position is checked, as the judge does for stereo clips."""
    flags = [stereo] * len(ids) if isinstance(stereo, bool) else list(stereo)
    checks = [
        compare(expected[ids[j]], expected[ids[i]], stereo=flags[i])
        for i, j in enumerate(partner)
    ]
    return aggregate(checks)


def chance_data_dir(
    ids: list[str],
    ref_dir: str,
    seed: int = 0,
    stereo: bool | Sequence[bool] = True,
) -> dict[str, float]:
    """Plugin entry of ``espnet2.bin.ualm_score``: the judge's chance level on
    the clips ``ids`` of ``ref_dir`` (each clip's metadata judged against the
    metadata prompt of clip ``derangement(len(ids), seed)[i]``)."""
    meta = read_meta(ref_dir)
    expected = {k: from_meta(meta[k]) for k in ids}
    return chance_level(ids, expected, derangement(len(ids), seed), stereo)


@functools.lru_cache(maxsize=8)
def _expected_groups_cached(
    ref_dir: str, prompt_source: str
) -> dict[str, list[ExpectedGroup]]:
    """``expected_groups`` read once per permutation test (callers don't mutate)."""
    return expected_groups(ref_dir, prompt_source)


def shuffled_output_level(
    per_item: dict[str, dict[str, Any]],
    ref_dir: str,
    partner: Sequence[int],
    prompt_source: str = "meta",
) -> dict[str, float]:
    """Plugin entry of ``espnet2.bin.ualm_score``: the judged clips (the
    ``per_item`` of :func:`judge_data_dir`, ids sorted) each compared with the
    prompt of clip ``partner[i]`` instead of their own: what the same clips
    score when they ignore their prompts (a permutation test's draw)."""
    ids = sorted(per_item)
    expected = _expected_groups_cached(ref_dir, prompt_source)
    checks = []
    for i, j in enumerate(partner):
        estimate = per_item[ids[i]]["estimate"]
        found = [GroupEstimate(**g) for g in estimate["groups"]]
        checks.append(compare(expected[ids[j]], found, estimate["stereo"]))
    return aggregate(checks)


def reconstruct_with_codec(clips: list[np.ndarray], codec_dir: str) -> list[np.ndarray]:
    """Encode and decode 16 kHz clips with the recipe's fitted codec."""
    import torch

    from espnet2.ualm.codec import build_codec

    with open(os.path.join(codec_dir, "config.json"), encoding="utf-8") as f:
        name = json.load(f)["codec"]
    codec = build_codec(name, {"model_dir": codec_dir})
    codec.eval()
    if codec.sample_rate != SAMPLE_RATE:
        raise ValueError(f"the judge reads 16 kHz; the codec is {codec.sample_rate} Hz")
    out = []
    with torch.no_grad():
        for x in clips:
            wav = torch.from_numpy(x.astype(np.float32))[None]
            codes, lengths = codec.encode(wav, torch.tensor([len(x)]))
            y, _ = codec.decode(codes, lengths)
            out.append(y[0, : len(x)].numpy().astype(np.float64))
    return out


def validate(
    ref_dir: str,
    num: int | None = None,
    seed: int = 0,
    stereo: bool = False,
    codec_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """Judge figures that show the judge measures what it should:

    * ``ground_truth``: each test clip against its own metadata (should be ~1);
    * ``shuffled``: clip i against the prompt of clip j != i, and
      ``chance``: the metadata of those pairs against each other (what
      ``shuffled`` should fall to);
    * ``noise``: white noise (one of the loudness levels) against each prompt;
    * ``codec``: the clips encoded and decoded by ``codec_dir``'s codec.
    """
    meta = read_meta(ref_dir)
    ids = sorted(meta)[:num] if num else sorted(meta)
    expected = {k: from_meta(meta[k]) for k in ids}
    scp = read_scp(os.path.join(ref_dir, "wav48.scp" if stereo else "wav.scp"))
    audio = [load_audio(resolve_path(scp[k], ref_dir)) for k in ids]
    results: dict[str, dict[str, float]] = {}

    def run(name: str, clips: list[tuple[np.ndarray, np.ndarray | None]], prompts):
        items = (
            (uid, m, s, p) for uid, (m, s), p in zip(ids, clips, prompts, strict=True)
        )
        _, results[name] = judge_audio(items)
        log(f"{name}: " + _fmt(results[name]))

    run("ground_truth", audio, [expected[k] for k in ids])
    partner = derangement(len(ids), seed)
    run("shuffled", audio, [expected[ids[j]] for j in partner])
    results["chance"] = chance_level(ids, expected, partner)
    log("chance: " + _fmt(results["chance"]))
    rng = np.random.default_rng(seed)
    noise = []
    for mono, st in audio:
        level = 10 ** (float(rng.choice([-24.0, -15.0, -6.0])) / 20)
        x = rng.standard_normal(len(mono))
        x *= level / np.max(np.abs(x))
        noise.append((x, None if st is None else np.stack([x, x], axis=1)))
    run("noise", noise, [expected[k] for k in ids])
    if codec_dir:
        rebuilt = reconstruct_with_codec([m for m, _ in audio], codec_dir)
        run("codec", [(y, None) for y in rebuilt], [expected[k] for k in ids])
    return results


def _fmt(summary: dict[str, float]) -> str:
    parts = [f"{a} {summary[a]:.3f}" for a in ATTRIBUTES if a in summary]
    parts += [f"overall {summary['overall']:.3f}", f"exact {summary['exact']:.3f}"]
    return ", ".join(parts) + f" ({int(summary['clips'])} clips)"


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="judge generated clips")
    score.add_argument("--hyp_scp", required=True, help="wav.scp of generated audio")
    score.add_argument("--ref_dir", required=True, help="data dir of the prompts")
    score.add_argument("--prompt_source", choices=PROMPT_SOURCES, default="meta")
    score.add_argument("--output_json", default=None)
    val = sub.add_parser("validate", help="ground truth / shuffled / noise / codec")
    val.add_argument("--ref_dir", required=True, help="a mini_sound data dir")
    val.add_argument("--num", type=int, default=None, help="first N clips by id")
    val.add_argument("--seed", type=int, default=0)
    val.add_argument(
        "--stereo", action="store_true", help="read wav48.scp (judges position too)"
    )
    val.add_argument("--codec_dir", default=None, help="fitted codec (exp/codec)")
    val.add_argument("--output_json", default=None)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = get_parser().parse_args(argv)
    if args.command == "score":
        report = judge_data_dir(
            read_scp(args.hyp_scp), args.ref_dir, args.prompt_source
        )
        print(_fmt(report["summary"]))
    else:
        report = validate(
            args.ref_dir, args.num, args.seed, args.stereo, args.codec_dir
        )
    if args.output_json:
        os.makedirs(os.path.dirname(os.path.abspath(args.output_json)), exist_ok=True)
        with open(args.output_json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    return report


if __name__ == "__main__":
    main()
