"""A training run's intra-op thread count, raised while it runs.

The mini recipe trains the LM on one core while the enhancer trains on the
other (``ualm.sh --enhancer_in_background true``). When the enhancer is
done, ``ualm.sh`` writes the freed thread count into a file; training reads
that file at the start of every epoch and takes the threads
(``torch.set_num_threads``), so the second core does not idle for the rest
of the stage. ESPnet's Trainer has no per-epoch hook, so the check sits in
the train iterator factory, which the Trainer asks for every epoch's batches.

The second thread pays only if nothing else wants that core: with a
DataLoader worker process beside two OpenMP threads a stage-7 epoch of the
mini recipe took 9.9-12.9 s, with batches built in the training process
(``num_workers: 0``) 9.7-10.2 s (one thread: 14.8 s).
"""

import logging
import os
from typing import Iterator, Optional

import torch

from espnet2.iterators.abs_iter_factory import AbsIterFactory


def apply_thread_count(path: str) -> int:
    """Sets torch's intra-op thread count to the integer in ``path`` when the
    file exists; returns the count in use. A file that is not one positive
    integer is reported and ignored (training goes on)."""
    current = torch.get_num_threads()
    if not os.path.exists(path):
        return current
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except OSError as e:
        logging.warning(f"{path}: unreadable ({e}); keeping {current} threads")
        return current
    if not text.isdigit() or int(text) < 1:
        logging.warning(
            f"{path}: expected a positive thread count, got {text!r}; keeping "
            f"{current} threads"
        )
        return current
    count = int(text)
    if count != current:
        torch.set_num_threads(count)
        logging.info(f"{path}: intra-op threads {current} -> {count}")
    return count


class ThreadCountFromFile(AbsIterFactory):
    """Wraps an iterator factory: ``apply_thread_count`` before each epoch."""

    def __init__(self, factory: AbsIterFactory, path: str):
        self.factory = factory
        self.path = path

    def build_iter(self, epoch: int, shuffle: Optional[bool] = None) -> Iterator:
        apply_thread_count(self.path)
        return self.factory.build_iter(epoch, shuffle)
