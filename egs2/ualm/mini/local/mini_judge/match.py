"""Compare what a prompt asked for with what the analysis found, and aggregate.

Groups are compared by position in time (the prompt's first group with the
first group found, ...); a group that was not found fails every attribute.
Per-group attributes: ``event_type``, ``count``, ``pitch_band``, ``loudness``
and ``position`` (the last two only when the prompt states them, position only
for stereo audio). Per-clip attributes: ``num_groups`` (as many groups as asked,
nothing spurious) and ``order`` (the sequence of types, prompts with two or more
groups only). A clip's ``overall`` score is the mean of its attribute scores;
``exact`` is 1 when all of them are right.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .analysis import ClipEstimate, GroupEstimate
from .prompt import ExpectedGroup

GROUP_ATTRIBUTES: tuple[str, ...] = (
    "event_type",
    "count",
    "pitch_band",
    "loudness",
    "position",
)
CLIP_ATTRIBUTES: tuple[str, ...] = ("num_groups", "order")
ATTRIBUTES: tuple[str, ...] = GROUP_ATTRIBUTES + CLIP_ATTRIBUTES
# What the mini prompts always state (loudness/position only in rich prompts).
CORE_ATTRIBUTES: tuple[str, ...] = ("event_type", "count", "pitch_band", "order")

Found = Sequence[GroupEstimate] | Sequence[ExpectedGroup]


def compare(
    expected: Sequence[ExpectedGroup], found: Found, stereo: bool = False
) -> dict[str, list[bool]]:
    """Right/wrong per attribute (one entry per group, or one per clip)."""
    out: dict[str, list[bool]] = {a: [] for a in ATTRIBUTES}
    for i, exp in enumerate(expected):
        got = found[i] if i < len(found) else None
        out["event_type"].append(got is not None and got.type == exp.type)
        out["count"].append(got is not None and got.count == exp.count)
        out["pitch_band"].append(got is not None and got.pitch_band == exp.pitch_band)
        if exp.loudness is not None:
            out["loudness"].append(got is not None and got.loudness == exp.loudness)
        if exp.position is not None and stereo:
            out["position"].append(got is not None and got.position == exp.position)
    out["num_groups"].append(len(found) == len(expected))
    if len(expected) >= 2:
        out["order"].append([g.type for g in found] == [g.type for g in expected])
    return out


def clip_scores(checks: dict[str, list[bool]]) -> dict[str, float]:
    """Per-attribute accuracy of one clip, its ``overall`` mean and ``exact``."""
    scores = {a: float(np.mean(v)) for a, v in checks.items() if v}
    values = list(scores.values())
    scores["overall"] = float(np.mean(values)) if values else float("nan")
    scores["exact"] = float(all(all(v) for v in checks.values()))
    return scores


def judge_clip(
    expected: Sequence[ExpectedGroup], estimate: ClipEstimate
) -> dict[str, Any]:
    """Checks, scores and the estimate of one clip (JSON-ready)."""
    checks = compare(expected, estimate.groups, estimate.stereo)
    return {
        "checks": checks,
        "scores": clip_scores(checks),
        "expected": [vars(g) for g in expected],
        "estimate": estimate.to_dict(),
    }


def aggregate(checks: Sequence[dict[str, list[bool]]]) -> dict[str, float]:
    """Accuracy per attribute over every group/clip, mean ``overall`` and
    ``exact`` over clips, and the number of clips."""
    summary: dict[str, float] = {}
    for a in ATTRIBUTES:
        values = [x for c in checks for x in c.get(a, [])]
        if values:
            summary[a] = float(np.mean(values))
    per_clip = [clip_scores(c) for c in checks]
    summary["overall"] = float(np.nanmean([s["overall"] for s in per_clip]))
    summary["exact"] = float(np.mean([s["exact"] for s in per_clip]))
    summary["clips"] = float(len(checks))
    return summary
