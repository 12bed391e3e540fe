#!/usr/bin/env python3
"""Does the model hear its own attempt? Its caption of v1 against the mini
judge's analysis of v1 (issue 18's listening check).

For every item of a self-reflection decoding (``ualm_inference --task
self_reflection``: ``reflection/v1/wav.scp`` and ``heard_text``), the judge's
analysis of the v1 clip is written as a rich caption
(``make_reflection_data.heard_caption``) and compared with the model's
caption of the same clip by the critique's comparison
(``espnet2.ualm.text.critique.compare``): an item agrees on an attribute when
the comparison finds no mismatch of that kind, and on the event types when
both name the same sounds. Position is left out of the overall agreement:
the model listens to the codec's mono output, and only the enhanced stereo
clip has a position. A caption the rich-caption parser refuses agrees on
nothing. Several runs (``--run name=decode_dir``, e.g. listening to the
attempt and to silence) are compared in one table with 95 % bootstrap
intervals and, against the first run, a paired sign-flip test.

    python local/listening_agreement.py \\
        --run heard=exp/ualm_reflect/decode/self_reflection/mini_sound_test \\
        --run silence=exp/reason_eval/reflect_silence/self_reflection/mini_sound_test \\
        --output_dir exp/reason_eval/listening
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import numpy as np
import soundfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from make_reflection_data import heard_caption  # noqa: E402
from mini_judge.analysis import analyse_file  # noqa: E402

from espnet2.bin.ualm_ablation import paired_test  # noqa: E402
from espnet2.ualm.data.kaldi_dir import read_kv  # noqa: E402
from espnet2.ualm.scoring.bootstrap import mean_interval  # noqa: E402
from espnet2.ualm.text.critique import compare  # noqa: E402
from espnet2.ualm.text.rich_caption import RichCaptionError, parse  # noqa: E402

# the attributes compared; "overall": all but position (module docstring)
ATTRIBUTES = ("types", "count", "order", "pitch", "loudness", "position")
OVERALL = ("types", "count", "order", "pitch", "loudness")


def agreement(model_caption: str, judge_caption: str | None) -> dict[str, float]:
    """Per attribute 1.0 (agree) or 0.0, and ``overall`` (all of OVERALL),
    plus ``parsed``: the model's caption is a rich caption."""
    try:
        mine = parse(model_caption)
    except RichCaptionError:
        return {a: 0.0 for a in (*ATTRIBUTES, "overall", "parsed")}
    if judge_caption is None:  # the judge hears nothing in the clip
        empty = float(not mine.events)
        return {**{a: empty for a in (*ATTRIBUTES, "overall")}, "parsed": 1.0}
    judge = parse(judge_caption)
    kinds = {m.kind for m in compare(judge, mine).mismatches}
    out = {a: float(a not in kinds) for a in ATTRIBUTES if a != "types"}
    out["types"] = float(
        {e.name for e in judge.events} == {e.name for e in mine.events}
    )
    out["overall"] = float(all(out[a] for a in OVERALL))
    out["parsed"] = 1.0
    return out


def judge_captions(wav_scp: str) -> dict[str, str | None]:
    """The judge's rich caption of each clip (``None``: it hears no event)."""
    out = {}
    for utt, path in sorted(read_kv(wav_scp).items()):
        info = soundfile.info(path)
        try:
            out[utt] = heard_caption(analyse_file(path), info.frames / info.samplerate)
        except ValueError:
            out[utt] = None
    return out


def run_agreement(decode_dir: str) -> dict[str, dict[str, float]]:
    """Per item agreement of a self-reflection decoding's first attempt."""
    v1 = os.path.join(decode_dir, "reflection", "v1")
    for name in ("wav.scp", "heard_text"):
        if not os.path.isfile(os.path.join(v1, name)):
            sys.exit(f"listening_agreement: {v1}/{name} missing (a self_reflection "
                     "decoding with reflection_rounds >= 1)")  # fmt: skip
    heard = read_kv(os.path.join(v1, "heard_text"))
    judged = judge_captions(os.path.join(v1, "wav.scp"))
    return {u: agreement(heard.get(u, ""), judged[u]) for u in sorted(judged)}


def table(runs: dict[str, dict[str, dict[str, float]]]) -> str:
    names = list(runs)
    first = runs[names[0]]
    lines = [
        "| run | items | " + " | ".join(ATTRIBUTES) + " | overall | Δ overall | p |",
        "|---|---|" + "---|" * (len(ATTRIBUTES) + 3),
    ]
    for name in names:
        items = runs[name]
        ids = sorted(items)
        cells = []
        for a in (*ATTRIBUTES, "overall"):
            values = [items[u][a] for u in ids]
            iv = mean_interval(values)
            ci = f" [{iv[0]:.2f}, {iv[1]:.2f}]" if iv and a == "overall" else ""
            cells.append(f"{np.mean(values):.3f}{ci}")
        delta = p = ""
        if name != names[0]:
            both = sorted(set(ids) & set(first))
            d, iv, pv, _ = paired_test(
                [items[u]["overall"] for u in both], [first[u]["overall"] for u in both]
            )
            delta = f"{d:+.3f}" + (f" [{iv[0]:.2f}, {iv[1]:.2f}]" if iv else "")
            p = f"{pv:.4f}"
        lines.append(
            f"| {name} | {len(ids)} | " + " | ".join(cells) + f" | {delta} | {p} |"
        )
    return "\n".join(lines)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run", action="append", required=True, help="NAME=self_reflection decode dir"
    )
    parser.add_argument("--output_dir", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    bad = [r for r in args.run if "=" not in r]
    if bad:
        sys.exit(f"listening_agreement: --run {bad[0]!r}: give NAME=DIR")
    runs = {n: run_agreement(d) for n, d in (r.split("=", 1) for r in args.run)}
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "agreement.json"), "w") as f:
        json.dump(runs, f, indent=1)
    text = (
        "# Does the model hear its own attempt?\n\n"
        "Its caption of attempt v1 against the mini judge's analysis of v1, per "
        "attribute (1: no mismatch of that kind); overall: all but position "
        "(the model hears the codec's mono clip). [low, high]: 95 % bootstrap "
        "interval over the items; Δ, p: paired against the first run.\n\n"
        + table(runs)
        + "\n\nRuns:\n\n"
        + "".join(f"- `{r}`\n" for r in args.run)
    )
    with open(os.path.join(args.output_dir, "RESULTS.md"), "w") as f:
        f.write(text)
    print(text)
    return runs


if __name__ == "__main__":
    main()
