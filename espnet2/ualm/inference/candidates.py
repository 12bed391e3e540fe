"""Several sampled clips per prompt, scored: best-of-N at inference and the
(chosen, rejected) pairs DPO trains on.

The N candidates of a prompt are N rows of the same batches of the one decode
loop (``UALM.generate_audio``): each row draws its own samples from the run's
seeded generator, so a batch of N copies gives N different clips with CFG as
configured.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2.ualm.inference.pipeline import UALM, UALMOutput
from espnet2.ualm.scoring.preference import Candidate, PromptAudioScorer, best_of


@dataclasses.dataclass
class ScoredCandidates:
    """One prompt's candidates, their scores, and the best and worst of them
    (``None`` when fewer than one / two candidates could be scored)."""

    item_id: str
    prompt: str
    outputs: List[UALMOutput]
    scores: List[float]
    best: Optional[int]
    worst: Optional[int]
    error: Optional[str] = None


def generate_candidates(
    ualm: UALM,
    prompts: Sequence[Tuple[str, str]],
    n: int,
    scorer: PromptAudioScorer,
    **settings,
) -> List[ScoredCandidates]:
    """``n`` clips for each ``(item id, caption)`` of ``prompts``, scored by
    ``scorer`` (higher is better). Candidates that failed are left out of
    the ranking; a prompt without any scored candidate gets ``error``."""
    if n < 1:
        raise ValueError(f"the number of candidates must be >= 1, got {n}")
    captions = [caption for _, caption in prompts for _ in range(n)]
    outputs = ualm.generate_audio(captions, **settings)
    scored: List[Candidate] = []
    where: List[Tuple[int, int]] = []
    for i, (item_id, caption) in enumerate(prompts):
        for j, out in enumerate(outputs[i * n : (i + 1) * n]):
            if out.ok and out.audio is not None:
                scored.append(Candidate(item_id, caption, out.audio, out.sample_rate))
                where.append((i, j))
    scores = scorer.score(scored) if scored else np.zeros(0)
    per_prompt: Dict[int, List[float]] = {
        i: [float("nan")] * n for i in range(len(prompts))
    }
    for (i, j), s in zip(where, scores):
        per_prompt[i][j] = float(s)
    ranked = best_of(scores, [str(i) for i, _ in where])
    result = []
    for i, (item_id, caption) in enumerate(prompts):
        mine = outputs[i * n : (i + 1) * n]
        if str(i) not in ranked:
            errors = sorted({o.error for o in mine if o.error})
            result.append(
                ScoredCandidates(
                    item_id,
                    caption,
                    mine,
                    per_prompt[i],
                    None,
                    None,
                    error="no candidate could be generated: " + "; ".join(errors),
                )
            )
            continue
        best, worst = ranked[str(i)]
        result.append(
            ScoredCandidates(
                item_id,
                caption,
                mine,
                per_prompt[i],
                where[best][1],
                None if worst is None else where[worst][1],
            )
        )
    return result


def generate_best_of(
    ualm: UALM,
    captions: Sequence[str],
    n: int,
    scorer: PromptAudioScorer,
    item_ids: Optional[Sequence[str]] = None,
    **settings,
) -> List[ScoredCandidates]:
    """Best-of-N text-to-audio: per caption the candidate ``scorer`` rates
    highest (``.outputs[.best]``), every candidate's score beside it.
    ``item_ids``: what the scorer knows the prompts by (default: their
    positions)."""
    ids = (
        list(item_ids)
        if item_ids is not None
        else [str(i) for i in range(len(captions))]
    )
    if len(ids) != len(captions):
        raise ValueError(f"{len(ids)} item ids for {len(captions)} captions")
    return generate_candidates(ualm, list(zip(ids, captions)), n, scorer, **settings)
