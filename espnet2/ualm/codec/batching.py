"""Grouping the rows of a padded batch by length.

Codecs with non-causal parts (attention, normalisation over time) give
different results for a row when it is zero-padded to a longer batch. Running
each group of equal-length rows as one batch keeps batched results equal to
one-by-one results at the cost of one forward per distinct length.
"""

from typing import Dict, List, Sequence


def group_by_length(lengths: Sequence[int]) -> Dict[int, List[int]]:
    """Maps each distinct positive length to the row indices that have it."""
    groups: Dict[int, List[int]] = {}
    for row, length in enumerate(lengths):
        if int(length) > 0:
            groups.setdefault(int(length), []).append(row)
    return groups
