"""Several sampled clips per prompt, scored: the (chosen, rejected) pairs DPO
trains on, from the decode loop's best-of-N (``DecodeSettings.best_of``).

The N candidates of a prompt are N rows of the same batch of the one decode
loop: each row draws its own samples from the run's seeded generator, so N
rows of one prompt give N different clips with CFG as configured.
"""

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

from espnet2.ualm.inference.pipeline import UALM, UALMOutput
from espnet2.ualm.scoring.preference import PromptAudioScorer


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
    ``scorer`` (higher is better). Candidates that failed (or that the
    scorer cannot rate) are left out of the ranking; a prompt without any
    scored candidate gets ``error``."""
    if n < 2:
        raise ValueError(f"a pair needs >= 2 candidates per prompt, got {n}")
    outputs = ualm.with_scorer(scorer).generate_audio(
        [caption for _, caption in prompts], best_of=n, **settings
    )
    result = []
    for (item_id, caption), out in zip(prompts, outputs):
        if out.candidates is None:
            result.append(
                ScoredCandidates(
                    item_id, caption, [out], [float("nan")] * n, None, None,
                    error=f"no candidate could be generated: {out.error}",
                )
            )  # fmt: skip
            continue
        scores = list(out.candidate_scores)
        rated = [j for j, s in enumerate(scores) if not np.isnan(s)]
        worst = min(rated, key=lambda j: (scores[j], -j)) if len(rated) > 1 else None
        result.append(
            ScoredCandidates(
                item_id, caption, out.candidates, scores, out.chosen_candidate, worst
            )
        )
    return result
