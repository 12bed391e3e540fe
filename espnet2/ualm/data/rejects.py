"""Counting and listing rejected items, so that nothing is dropped silently.

Every data stage that can skip an item records it here with the utterance id,
the file it came from and the reason; ``write`` leaves a ``rejected.tsv`` next
to the stage's output and the log says how many were rejected and why.
"""

import collections
import logging
import os
from typing import List, NamedTuple, Optional


class Rejected(NamedTuple):
    utt_id: str
    source: str
    reason: str


class RejectLog:
    """Collects rejected items of one stage run."""

    def __init__(
        self,
        stage: str,
        logger: Optional[logging.Logger] = None,
        warn_each: bool = True,
    ):
        self.stage = stage
        self.items: List[Rejected] = []
        self.logger = logger or logging.getLogger(stage)
        self.warn_each = warn_each  # False: only counted and written

    def add(self, utt_id: str, source: str, reason: str) -> None:
        item = Rejected(str(utt_id), str(source), " ".join(str(reason).split()))
        self.items.append(item)
        if self.warn_each:
            self.logger.warning("%s: rejected %s (%s): %s", self.stage, *item)

    def reason_counts(self) -> "collections.Counter[str]":
        """How many items per reason (the text before the first colon)."""
        return collections.Counter(r.reason.split(":")[0] for r in self.items)

    def extend(self, other: "RejectLog") -> None:
        self.items.extend(other.items)

    def __len__(self) -> int:
        return len(self.items)

    def summary(self, total: int) -> str:
        by_reason = self.reason_counts()
        detail = ", ".join(f"{n} {reason}" for reason, n in by_reason.most_common())
        return (
            f"{self.stage}: kept {total - len(self.items)} of {total} items, "
            f"rejected {len(self.items)}" + (f" ({detail})" if detail else "")
        )

    def write(self, path: str) -> str:
        """Writes ``utt_id<TAB>source<TAB>reason`` lines (a header first)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("utt_id\tsource\treason\n")
            for item in self.items:
                f.write("\t".join(item) + "\n")
        return path

    @staticmethod
    def read(path: str) -> List[Rejected]:
        with open(path, encoding="utf-8") as f:
            next(f)
            return [Rejected(*line.rstrip("\n").split("\t", 2)) for line in f]
