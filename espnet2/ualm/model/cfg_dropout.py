"""Condition dropout for classifier-free guidance (training side).

With probability ``p`` per example, every condition position (the builder's
``condition_mask``: all but the assistant's target turns) becomes ``<pad>``
in all streams (stream 0: the vocabulary's ``AudioLayout.cfg_null``, the
token the unconditional branch of inference writes), so the model also
learns the unconditional distribution the all-pad prompt of CFG inference
asks for. Packed rows drop each example on
its own; examples are told apart by their position ids restarting at 0.
"""

from typing import Optional, Tuple

import torch


def example_index(position_ids: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` index of the packed example each position belongs to."""
    return ((position_ids == 0).long().cumsum(-1) - 1).clamp(min=0)


def drop_condition(
    ids: torch.Tensor,
    condition_mask: torch.Tensor,
    position_ids: torch.Tensor,
    prob: float,
    pad_id: int = 0,
    generator: Optional[torch.Generator] = None,
    null_id: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Returns (ids with dropped conditions padded, ``[B, T]`` dropped positions).

    ``ids`` ``[B, T, K]``; ``condition_mask`` ``[B, T]`` bool; ``null_id``:
    what stream 0 of a dropped position gets (``None``: ``pad_id``).
    """
    condition_mask = condition_mask.bool()
    if prob <= 0 or not bool(condition_mask.any()):
        return ids, torch.zeros_like(condition_mask)
    index = example_index(position_ids)
    n_examples = int(index.max()) + 1
    draws = torch.rand(ids.shape[0], n_examples, generator=generator)
    dropped_examples = (draws < prob).to(ids.device)
    dropped = condition_mask & dropped_examples.gather(1, index)
    fill = torch.full_like(ids[0, 0], pad_id)
    if null_id is not None:
        fill[0] = null_id
    return torch.where(dropped[..., None], fill, ids), dropped
