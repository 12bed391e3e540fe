"""Token choice from logits: guidance, masking, temperature, top-k, top-p.

Everything works on ``[N, V]`` logits, one row per sequence, so a batch of
sequences in different states is sampled in one call. Randomness comes only
from the ``torch.Generator`` passed in, which makes a run reproducible.
"""

import dataclasses
import math
from typing import Optional

import torch


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How one kind of token (text or audio) is chosen.

    ``greedy`` (or ``temperature == 0``) takes the arg-max; otherwise the
    logits are divided by ``temperature``, cut to the ``top_k`` best and to
    the smallest set of probability mass ``top_p``, then sampled.
    """

    greedy: bool = False
    temperature: float = 1.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0


GREEDY = SamplingConfig(greedy=True)
# The release's audio sampling (temperature 0.8, top-k 20); text is greedy.
RELEASE_AUDIO_SAMPLING = SamplingConfig(temperature=0.8, top_k=20)


def mask_logits(logits: torch.Tensor, allowed: Optional[torch.Tensor]) -> torch.Tensor:
    """Sets the logits of ids outside ``allowed`` (bool, same shape) to -inf."""
    if allowed is None:
        return logits
    return logits.masked_fill(~allowed, -math.inf)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keeps the ``k`` best logits of each row (ties with the k-th kept too)."""
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -math.inf)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keeps the smallest best-first set with mass >= ``p``.

    The best id is always kept, so a row never ends up empty.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    # mass of the ids ranked before each one: drop an id once that reaches p
    before = torch.cumsum(probs, dim=-1) - probs
    drop_sorted = before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, -math.inf)


def sample(
    logits: torch.Tensor,
    config: SamplingConfig,
    allowed: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """One id per row of ``[N, V]`` logits, among the ``allowed`` ids.

    With ``top_k`` the distribution is built over the ``k`` best ids only
    (``topk``, then top-p on those, softmax and one multinomial over ``[N,
    k]``): the same distribution as filtering the full row, without a
    softmax over ``V`` columns. Rows need at least one allowed id.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    logits = mask_logits(logits, allowed)
    if config.is_greedy:
        return logits.argmax(dim=-1)
    logits = logits / config.temperature
    if config.top_k is not None and config.top_k < logits.shape[-1]:
        values, index = torch.topk(logits, config.top_k, dim=-1)  # best first
        if config.top_p is not None and config.top_p < 1.0:
            probs = torch.softmax(values, dim=-1)
            before = torch.cumsum(probs, dim=-1) - probs
            drop = before >= config.top_p
            drop[..., 0] = False
            values = values.masked_fill(drop, -math.inf)
        probs = torch.softmax(values, dim=-1)
        pick = torch.multinomial(probs, 1, generator=generator)
        return index.gather(-1, pick).squeeze(-1)
    if config.top_k is not None:
        logits = top_k_filter(logits, config.top_k)
    if config.top_p is not None:
        logits = top_p_filter(logits, config.top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
