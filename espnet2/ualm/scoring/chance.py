"""Chance levels: what a model that ignores its input scores on the same test set.

Every text metric gets a "shuffled references" baseline: each hypothesis is
replaced by the reference of *another* item of the same test set, paired by a
fixed, seeded derangement (no item keeps its own reference), so the baseline is
what a model that writes perfectly in-distribution text without listening
would score:

* ASR: another utterance's transcript (WER, CER, sentence error rate);
* captioning: another clip's reference caption (every caption metric), or,
  when the training captions are given, a random training clip's caption
  (a test split may phrase its references in ways training never shows;
  ``tasks.score_captioning``);
* QA: another question's reference answer *of the same question kind*, which
  keeps the answer prior (what a model that knows the answer distribution but
  does not listen gets);
* text dialogue: another prompt's reference answer of the same answer type
  (numeric / exact).

Generated audio gets the judge's chance level (the test clips' own metadata
judged against the parameters of another prompt; the judge plugin's
``chance_data_dir``).

Those levels are what a *perfect* input-ignoring model scores; a model whose
outputs are imperfect in form (a caption phrasing the test split holds out,
a clip the judge segments differently) can stay below them and still listen.
So each key metric also gets a permutation test of the model's *own* outputs
(``shuffled_outputs_test``): the metric recomputed with every output handed
to another item (``PERMUTATIONS`` seeded derangements; QA and text within the
answer kind), its mean, and the p-value of the observed score against that
distribution. p < ``SIGNIFICANCE`` means the outputs depend on their inputs.
"""

import math
from typing import (
    Callable,
    Dict,
    Hashable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np

CHANCE_SEED = 0
PERMUTATIONS = 200
SIGNIFICANCE = 0.01
# Metrics where a lower value is better (the rest: higher is better).
LOWER_IS_BETTER = frozenset(
    {"wer", "cer", "sentence_error_rate", "fd", "kl", "mcd"}
    | {"roundtrip_wer", "roundtrip_cer"}
)


def derangement(n: int, seed: int = CHANCE_SEED) -> List[int]:
    """``partner[i] != i`` for every i (n >= 2): a seeded random cyclic order,
    each item paired with the next one in it. Deterministic for (n, seed)."""
    if n < 2:
        raise ValueError("a derangement needs at least two items")
    order = np.random.default_rng(seed).permutation(n)
    partner = np.empty(n, dtype=int)
    partner[order] = np.roll(order, -1)
    return [int(j) for j in partner]


def grouped_derangement(
    groups: Sequence[Hashable], seed: int = CHANCE_SEED
) -> Tuple[List[int], int]:
    """A partner for every index, of the same group and never itself.

    Groups are deranged one by one (sorted by name, each with its own seeded
    draw), so the result is deterministic. An item alone in its group cannot
    keep the group: it is paired with the next item of the whole list instead;
    the number of such items is returned with the partners. Fewer than two
    items in all: ``ValueError``.
    """
    n = len(groups)
    if n < 2:
        raise ValueError("a derangement needs at least two items")
    members: Dict[Hashable, List[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    partner = [-1] * n
    lonely = 0
    for rank, g in enumerate(sorted(members, key=str)):
        idx = members[g]
        if len(idx) < 2:
            partner[idx[0]] = (idx[0] + 1) % n
            lonely += 1
            continue
        for a, b in zip(idx, derangement(len(idx), seed + 7919 * rank)):
            partner[a] = idx[b]
    return partner, lonely


def shuffled_by(values: Sequence, partner: Sequence[int]) -> List:
    """``values`` reordered so that item i gets ``values[partner[i]]``."""
    return [values[j] for j in partner]


def beats_chance(name: str, value: Optional[float], chance: Optional[float]):
    """True/False, or None when either number is missing."""
    if value is None or chance is None:
        return None
    if not (math.isfinite(value) and math.isfinite(chance)):
        return None
    return value < chance if name in LOWER_IS_BETTER else value > chance


def pick(metrics: Mapping[str, float], keep) -> Dict[str, float]:
    """The entries of ``metrics`` whose name passes ``keep``."""
    return {k: float(v) for k, v in metrics.items() if keep(k)}


def shuffled_outputs_test(
    score: Callable[[Sequence[int]], Mapping[str, float]],
    observed: Mapping[str, float],
    n_items: int,
    groups: Optional[Sequence[Hashable]] = None,
    permutations: int = PERMUTATIONS,
    seed: int = CHANCE_SEED,
) -> Dict[str, Dict[str, float]]:
    """Permutation test: do the model's outputs depend on their inputs?

    ``score(partner)`` gives the metrics with item i's output replaced by the
    output of item ``partner[i]``; it is called for ``permutations`` seeded
    derangements (within ``groups`` when given), each distinct one once: a
    small test set has few (2 items: one, 3 items: two), and counting a
    repeated one again would claim a p-value that so few pairings cannot
    give. For every metric of ``observed``: ``level`` (mean over the
    derangements), ``p_value`` ((1 + derangements scoring at least as well as
    observed) / (1 + derangements)) and ``permutations`` (the distinct
    derangements scored).
    """
    if n_items < 2:
        return {}
    drawn: Dict[str, List[float]] = {name: [] for name in observed}
    seen = set()
    for r in range(permutations):
        if groups is None:
            partner = derangement(n_items, seed + 1 + r)
        else:
            partner, _ = grouped_derangement(groups, seed + 1 + r)
        if tuple(partner) in seen:
            continue
        seen.add(tuple(partner))
        values = score(partner)
        for name in drawn:
            drawn[name].append(float(values[name]))
    out = {}
    for name, values in drawn.items():
        arr = np.asarray(values)
        obs = float(observed[name])
        if not math.isfinite(obs) or not np.isfinite(arr).all():
            continue
        as_good = arr <= obs if name in LOWER_IS_BETTER else arr >= obs
        out[name] = {
            "level": float(arr.mean()),
            "p_value": float((1 + as_good.sum()) / (1 + len(arr))),
            "permutations": float(len(arr)),
        }
    return out


def depends_on_input(name: str, test: Optional[Mapping[str, float]], value):
    """True when ``value`` beats the shuffled-outputs level with p below
    ``SIGNIFICANCE``; None when there is no test."""
    if not test or value is None:
        return None
    better = beats_chance(name, value, test["level"])
    return bool(better and test["p_value"] < SIGNIFICANCE)
