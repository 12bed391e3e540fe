"""Direct preference optimisation (DPO) of a UALM model against a frozen
reference copy of it (spec section 3; Rafailov et al., 2023).

A preference batch holds a chosen and a rejected reply to each prompt, as
examples of an ordinary batch (packed or not) plus two per-example keys:

========================  ===============  =====================================
key                       shape / dtype    meaning
========================  ===============  =====================================
``pair_index``            [E] long         the pair each example belongs to
``chosen``                [E] bool         True for the pair's chosen reply
========================  ===============  =====================================

(examples numbered row by row, in their order inside each row). An example's
log-probability is the sum over its targets (the reply: ``loss_mask``) of
the log-likelihood the CE loss weighs (audio targets by
``audio_token_weight``), so DPO values a sequence as CE does. The loss per
pair is ``-logsigmoid(beta * ((logp_w - logp_l) - (ref_w - ref_l)))``, plus
``ce_weight`` times the CE loss of the chosen replies.

The reference lives in ``PreferenceObjective``, which is not an
``nn.Module``: attached to the policy (``UALMModel.attach_preference``) it is
not trained, not in the optimizer, not in ``state_dict`` (checkpoints stay
plain UALM checkpoints that stage 9 packs) and not seen by DDP. A resumed run
builds it again from the same checkpoint file. Its forward runs at every
step without gradients rather than being cached once per pair: a cache would
fix the data and their packing, and the reference forward costs less than a
third of the policy's forward and backward.
"""

from typing import Dict, Mapping, Tuple

import torch
import torch.nn.functional as F

from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.ualm.model.cfg_dropout import example_index

AUDIO_KEYS = ("audio_input", "audio_input_lengths", "audio_input_spans")


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Mean DPO loss over ``[P]`` pairs of sequence log-probabilities, and
    the implicit rewards ``beta * (policy - reference)`` it moves apart."""
    reward_chosen = beta * (policy_chosen - reference_chosen)
    reward_rejected = beta * (policy_rejected - reference_rejected)
    margin = reward_chosen - reward_rejected
    loss = -F.logsigmoid(margin).mean()
    with torch.no_grad():
        stats = {
            "reward_chosen": reward_chosen.mean(),
            "reward_rejected": reward_rejected.mean(),
            "reward_margin": margin.mean(),
            "reward_accuracy": (margin > 0).float().mean(),
        }
    return loss, stats


def example_numbers(position_ids: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """``[B, T]`` number of the example each position belongs to, counted row
    by row over the batch (padding belongs to its row's last example), and
    the number of examples."""
    index = example_index(position_ids)
    per_row = index[:, -1] + 1
    offset = per_row.cumsum(0) - per_row
    return index + offset[:, None], int(per_row.sum())


def sequence_logprobs(
    model, batch: Mapping[str, torch.Tensor]
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example weighted log-probability of its targets ``[E]``, the
    number of its stream-0 targets ``[E]``, and its summed weighted NLL's
    share of the CE loss (``[E]``, for CE on a subset of examples)."""
    ids = batch["ids"]
    length = ids.shape[1]
    position_ids = batch.get("position_ids")
    if position_ids is None:
        position_ids = torch.arange(length, device=ids.device).expand(ids.shape[0], -1)
    out = model.multistream(
        ids,
        batch["ids_lengths"],
        batch["loss_mask"],
        position_ids,
        None,  # no condition dropout: both replies see the same prompt
        *(batch.get(k) for k in AUDIO_KEYS),
        per_target=True,
    )
    numbers, n_examples = example_numbers(position_ids)
    # the target at position t + 1 is predicted at t (target_position's index)
    example_of = numbers[:, 1:].reshape(-1)[out.target_position]
    nll = out.target_nll.new_zeros(n_examples).index_add(0, example_of, out.target_nll)
    n0 = int(out.n_stream0_targets)
    count0 = torch.bincount(example_of[:n0], minlength=n_examples)
    return -nll, count0, nll


class PreferenceObjective:
    """DPO of a policy against ``reference`` (frozen, in eval mode).

    Args:
        reference: the reference model, a separate instance (e.g. the
            checkpoint the DPO run starts from, or ``copy.deepcopy`` of the
            policy before training); put in eval mode and never trained.
        beta: strength of the KL regularisation implied by DPO (0.1 is the
            common default; higher keeps the policy nearer the reference).
        ce_weight: weight of the CE loss of the chosen replies added to the
            DPO loss (the spec's CE regularisation; 0 disables it).
    """

    def __init__(self, reference, beta: float = 0.1, ce_weight: float = 0.0):
        if beta <= 0:
            raise ValueError(f"beta must be positive, got {beta}")
        if ce_weight < 0:
            raise ValueError(f"ce_weight must be >= 0, got {ce_weight}")
        if getattr(reference, "preference", None) is not None:
            raise ValueError("the reference has a preference objective attached")
        self.reference = reference.eval()
        self.reference.requires_grad_(False)
        self.beta = float(beta)
        self.ce_weight = float(ce_weight)

    def __call__(
        self, policy, batch: Mapping[str, torch.Tensor]
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """``(loss, stats, weight)`` of a preference batch for ESPnet's
        Trainer; ``weight`` is the number of pairs."""
        pair, chosen = batch["pair_index"].long(), batch["chosen"].bool()
        logp, count0, nll = sequence_logprobs(policy, batch)
        if logp.shape[0] != pair.shape[0]:
            raise ValueError(
                f"the batch holds {logp.shape[0]} examples, pair_index names "
                f"{pair.shape[0]}"
            )
        n_pairs = int(pair.max()) + 1 if pair.numel() else 0
        n_chosen = torch.bincount(pair[chosen], minlength=n_pairs)
        n_rejected = torch.bincount(pair[~chosen], minlength=n_pairs)
        if bool((n_chosen != 1).any() or (n_rejected != 1).any()):
            bad = int(((n_chosen != 1) | (n_rejected != 1)).nonzero()[0])
            raise ValueError(
                f"pair {bad} has {int(n_chosen[bad])} chosen and "
                f"{int(n_rejected[bad])} rejected replies (one of each needed)"
            )
        with torch.no_grad():
            self.reference.train(False)  # no dropout, whatever train() did
            ref_logp, _, _ = sequence_logprobs(self.reference, batch)
        order = torch.argsort(pair * 2 + (~chosen).long())  # w0, l0, w1, l1, ...
        w, lo = order[0::2], order[1::2]
        loss, stats = dpo_loss(logp[w], logp[lo], ref_logp[w], ref_logp[lo], self.beta)
        with torch.no_grad():
            # policy/reference log-ratio per target of the chosen replies:
            # a sampled KL estimate where those replies come from the policy
            stats["kl_chosen"] = (
                (logp[w] - ref_logp[w]) / count0[w].clamp(min=1)
            ).mean()
            stats["loss_dpo"] = loss.detach()
        ce = nll[w].sum() / count0[w].sum().clamp(min=1)
        stats["loss_ce_chosen"] = ce.detach()
        if self.ce_weight:
            loss = loss + self.ce_weight * ce
        if policy.training:
            loss = loss + policy._unused_parameter_guard()
        stats["loss"] = loss.detach()
        weight = torch.tensor(float(n_pairs), device=loss.device)
        return force_gatherable((loss, stats, weight), loss.device)

    def to_(self, fn) -> None:
        """Applies a module function (device or dtype move) to the reference."""
        self.reference._apply(fn)
