#!/usr/bin/env python3
"""Self-reflection training data from a model's own attempts (issue 18).

The model writes a first attempt v1 for each training prompt (caption ->
its rich caption -> audio, ``UALM.generate_audio_with_reasoning``); the mini
judge listens to v1 (its signal analysis, ``mini_judge.analysis``) and its
analysis becomes a rich caption of what v1 contains; the critique compares
the clip's plan (its reference ``rich_text``) with that caption
(``espnet2.ualm.text.critique``). The attempts are written in the reflection
converter's JSON-lines format (doc/rich_captions.md) and the converter
writes the data directory: one self-reflection round per attempt, the
plan's own clip as the final answer (the ``reasoning`` task's data).

  python local/make_reflection_data.py --model exp/ualm_unified/packed \\
      --data_dir data/mini_sound_train --out_dir dump/reflection/mini_sound_train \\
      --max_items 2000

A recipe stage, not wired into the default run. Writes under ``out_dir``:
``attempts/<id>_v1.wav``, ``attempts.jsonl`` (the converter's input),
``data/`` (``dialogue.jsonl``, ``wav.scp``; the converter's output) and
``rejected.tsv`` (prompts without a usable attempt, and why: an item of
``data_dir`` without its files, a generation error, an attempt in which
the judge hears nothing or whose caption the format refuses).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import soundfile
import yaml

from espnet2.ualm.data.corpora.rich_captions import prepare_reflection
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.text.critique import critique_text
from espnet2.ualm.text.rich_caption import (
    RichCaption,
    RichCaptionError,
    RichEvent,
    parse,
    render,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mini_corpus.captions import noun  # noqa: E402
from mini_judge.analysis import ClipEstimate, analyse_file  # noqa: E402

ATTEMPTS = "attempts"


def heard_caption(estimate: ClipEstimate, clip_s: float) -> str:
    """The rich caption of what the judge found in a clip: each group's
    events (spans), pitch band, loudness and (stereo) position."""
    if not estimate.groups:
        raise ValueError("the judge finds no sound event in it")
    events, k = [], 0
    for g in estimate.groups:
        mine = estimate.events[k : k + g.count]
        k += g.count
        events.append(
            RichEvent(
                noun(g.type),
                g.count,
                tuple((e.onset_s, e.offset_s) for e in mine),
                pitch=g.pitch_band,
                loudness=g.loudness,
                position=g.position,
            )
        )
    return render(RichCaption.of_events(events, clip_s))


def judge_attempt(path: str, plan: str) -> tuple[str, str]:
    """(rich caption of what the clip at ``path`` contains, critique of it
    against ``plan``); ``ValueError`` when no caption can be written."""
    info = soundfile.info(path)
    heard = heard_caption(analyse_file(path), info.frames / info.samplerate)
    return heard, critique_text(parse(plan), parse(heard))


def _write_wav(path: str, audio: np.ndarray, rate: int) -> None:
    data = audio.T if audio.ndim == 2 else audio  # soundfile: [samples, channels]
    soundfile.write(path, np.clip(data, -1.0, 1.0), int(rate), subtype="PCM_16")


def make_attempts(
    ualm: Any,
    data_dir: str,
    out_dir: str,
    rejects: RejectLog,
    max_items: int | None = None,
) -> str:
    """Attempts of the model at ``data_dir``'s prompts, judged and critiqued,
    as the converter's JSON lines; returns the file's path."""
    captions = read_kv(os.path.join(data_dir, "text"), rejects)
    plans = read_kv(os.path.join(data_dir, "rich_text"), rejects)
    clips = read_kv(os.path.join(data_dir, "wav.scp"), rejects)
    ids = []
    for utt in sorted(captions):
        missing = [n for n, t in (("rich_text", plans), ("wav.scp", clips))
                   if utt not in t]  # fmt: skip
        if missing:
            rejects.add(utt, data_dir, f"no {missing[0]} entry")
            continue
        try:
            parse(plans[utt])
        except RichCaptionError as e:
            rejects.add(utt, os.path.join(data_dir, "rich_text"), str(e))
            continue
        ids.append(utt)
    ids = ids[:max_items] if max_items is not None else ids
    os.makedirs(os.path.join(out_dir, ATTEMPTS), exist_ok=True)
    path = os.path.join(out_dir, "attempts.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for utt, out in _attempt_outputs(ualm, [captions[u] for u in ids], ids):
            if not out.ok or out.audio is None:
                rejects.add(utt, "generation", out.error or "no audio generated")
                continue
            wav = os.path.abspath(os.path.join(out_dir, ATTEMPTS, f"{utt}_v1.wav"))
            _write_wav(wav, out.audio, out.sample_rate)
            try:
                heard, critique = judge_attempt(wav, plans[utt])
            except (ValueError, RichCaptionError) as e:
                rejects.add(utt, wav, f"attempt 1: {e}")
                continue
            attempt = {"audio": wav, "rich_caption": heard, "critique": critique}
            item = {
                "id": utt,
                "audio": clips[utt],
                "caption": captions[utt],
                "rich_caption": plans[utt],
                "attempts": [attempt],
            }
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    return path


def _attempt_outputs(ualm: Any, captions: list[str], ids: list[str], chunk: int = 32):
    """(id, first attempt) of every prompt, generated ``chunk`` prompts at a
    time (the model batches within) with a progress bar."""
    from tqdm import tqdm

    with tqdm(total=len(ids), desc="first attempts", unit="prompt") as bar:
        for i in range(0, len(ids), chunk):
            outputs = ualm.generate_audio_with_reasoning(captions[i : i + chunk])
            yield from zip(ids[i : i + chunk], outputs)
            bar.update(len(outputs))


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="packed model dir or archive")
    parser.add_argument(
        "--data_dir", required=True, help="prompts: text, rich_text, wav.scp"
    )
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--decode_config", default=None, help="YAML of settings")
    parser.add_argument("--max_items", type=int, default=None)
    parser.add_argument(
        "--audio_dir",
        default=".",
        help="where the relative paths of wav.scp start (the recipe's directory)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--id_prefix",
        default="reflect",
        help="prefix of the data dir's ids (the converter's)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Writes ``out_dir`` (module docstring); returns the rounds written."""
    from espnet2.ualm import UALM

    args = get_parser().parse_args(argv)
    decode = {}
    if args.decode_config:
        with open(args.decode_config, encoding="utf-8") as f:
            decode = yaml.safe_load(f) or {}
    ualm = UALM.from_pretrained(args.model, args.device, decode=decode)
    rejects = RejectLog(f"reflection data {args.out_dir}")
    path = make_attempts(ualm, args.data_dir, args.out_dir, rejects, args.max_items)
    rounds = prepare_reflection(
        os.path.join(args.out_dir, "data"),
        rejects,
        json=path,
        audio_dir=os.path.abspath(args.audio_dir),
        id_prefix=args.id_prefix,
    )
    rejects.write(os.path.join(args.out_dir, "rejected.tsv"))
    print(f"{rounds} self-reflection rounds; {rejects.summary(rounds + len(rejects))}")
    return rounds


if __name__ == "__main__":
    main()
