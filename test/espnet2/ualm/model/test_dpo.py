"""DPO of a tiny UALM: the loss by hand, sequence log-probabilities (packed
== alone, equal to the CE loss's terms), the frozen reference, a toy run."""

import copy
import math

import pytest
import torch

from espnet2.ualm.model.batch import collate_sequences
from espnet2.ualm.model.dpo import PreferenceObjective, dpo_loss, sequence_logprobs


def _pairs(builder, n_pairs: int = 2, seed: int = 0):
    """(chosen, rejected) text-to-audio examples with the same caption."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for i in range(n_pairs):
        caption = ["a cat", "two beeps", "rain on a roof"][i % 3]
        chosen, rejected = (
            builder.build_example(
                "text_to_audio",
                {"caption": caption, "audio": torch.randint(0, 5, (n, 3), generator=g)},
            )
            for n in (4 + i, 6)
        )
        pairs.append((chosen, rejected))
    return pairs


def _batch(pairs, packed: bool):
    """One example per row, or both replies of a pair packed in one row."""
    if packed:
        rows = [[w, lo] for w, lo in pairs]
    else:
        rows = [[s] for pair in pairs for s in pair]
    batch = collate_sequences(rows)
    batch["pair_index"] = torch.arange(len(pairs)).repeat_interleave(2)
    batch["chosen"] = torch.tensor([True, False] * len(pairs))
    return batch


def test_dpo_loss_is_the_hand_computed_value():
    w, lo = torch.tensor([-10.0, -3.0]), torch.tensor([-12.0, -2.0])
    rw, rl = torch.tensor([-11.0, -3.5]), torch.tensor([-11.5, -2.5])
    beta = 0.5
    loss, stats = dpo_loss(w, lo, rw, rl, beta)
    # pair 0: 0.5 * ((-10 + 12) - (-11 + 11.5)) = 0.75; pair 1: 0.5 * (-1 - (-1)) = 0
    expected = (math.log1p(math.exp(-0.75)) + math.log(2.0)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(stats["reward_chosen"]) == pytest.approx((0.5 * 1 + 0.5 * 0.5) / 2)
    assert float(stats["reward_margin"]) == pytest.approx(0.375)
    assert float(stats["reward_accuracy"]) == 0.5


def test_sequence_logprobs_packed_equal_alone_and_sum_to_the_ce_loss(
    make_model, builder
):
    model = make_model().eval()
    pairs = _pairs(builder, 3)
    alone, packed = _batch(pairs, False), _batch(pairs, True)
    with torch.no_grad():
        lp_alone, n_alone, nll_alone = sequence_logprobs(model, alone)
        lp_packed, n_packed, _ = sequence_logprobs(model, packed)
        loss, _, weight = model(
            **{k: v for k, v in alone.items() if k not in ("pair_index", "chosen")}
        )
    assert lp_alone.shape == (6,) and bool((lp_alone < 0).all())
    assert torch.allclose(lp_alone, lp_packed, atol=1e-5)
    assert torch.equal(n_alone, n_packed)
    # the CE loss is the examples' weighted NLL over all stream-0 targets
    assert int(n_alone.sum()) == int(weight)
    assert float(nll_alone.sum() / n_alone.sum()) == pytest.approx(
        float(loss), rel=1e-5
    )
    # one example alone in its batch gives the same value
    ((w, _),) = pairs[:1]
    single = collate_sequences([[w]])
    with torch.no_grad():
        lp_single, _, _ = sequence_logprobs(model, single)
    assert float(lp_single[0]) == pytest.approx(float(lp_alone[0]), abs=1e-5)


def test_reference_is_frozen_and_outside_the_state_dict(make_model, builder):
    policy = make_model(seed=0)
    before = copy.deepcopy(policy.state_dict())
    policy.attach_preference(PreferenceObjective(copy.deepcopy(policy), beta=0.5))
    reference = policy.preference.reference
    assert set(policy.state_dict()) == set(before)  # no reference.* keys
    ref_params = {id(p) for p in reference.parameters()}
    assert not ref_params & {id(p) for p in policy.parameters()}
    assert not any(p.requires_grad for p in reference.parameters())
    ref_state = copy.deepcopy(reference.state_dict())

    policy.train()
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    batch = _batch(_pairs(builder), packed=True)
    for _ in range(3):
        loss, _, _ = policy(**batch)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    assert all(p.grad is None for p in reference.parameters())
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in ref_state.items())
    changed = policy.state_dict()["stream_embeddings"]
    assert not torch.equal(changed, before["stream_embeddings"])
    assert not reference.training

    # a moved policy moves its reference (it is no submodule)
    policy.double()
    assert reference.stream_embeddings.dtype == torch.float64


def test_resume_rebuilds_the_same_objective(make_model, builder):
    """A checkpoint holds the policy only; a resumed run attaches a reference
    built from the same source and computes the same loss."""
    start = make_model(seed=0)
    policy = copy.deepcopy(start)
    policy.attach_preference(PreferenceObjective(copy.deepcopy(start), beta=0.2))
    with torch.no_grad():
        policy.stream_embeddings.add_(0.1)
    saved = copy.deepcopy(policy.state_dict())

    resumed = make_model(seed=5)
    resumed.load_state_dict(saved)
    resumed.attach_preference(PreferenceObjective(copy.deepcopy(start), beta=0.2))
    batch = _batch(_pairs(builder), packed=False)
    policy.eval(), resumed.eval()
    with torch.no_grad():
        a, stats_a, _ = policy(**batch)
        b, stats_b, _ = resumed(**batch)
    assert torch.equal(a, b)
    assert float(stats_a["reward_margin"]) != 0.0


def test_toy_run_raises_the_margin(make_model, builder):
    policy = make_model(seed=1)
    policy.attach_preference(
        PreferenceObjective(copy.deepcopy(policy), beta=0.5, ce_weight=0.1)
    )
    policy.train()
    batch = _batch(_pairs(builder, 3), packed=True)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    margins, accuracies = [], []
    for _ in range(15):
        loss, stats, weight = policy(**batch)
        margins.append(float(stats["reward_margin"]))
        accuracies.append(float(stats["reward_accuracy"]))
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    assert int(weight) == 3
    assert margins[0] == pytest.approx(0.0, abs=1e-5)  # policy == reference
    assert margins[-1] > 0.5 and accuracies[-1] == 1.0
    assert {"loss_dpo", "loss_ce_chosen", "kl_chosen", "reward_rejected"} <= set(stats)


def test_bad_preference_batches_are_errors(make_model, builder):
    policy = make_model()
    batch = _batch(_pairs(builder), packed=False)
    with pytest.raises(ValueError, match="attach_preference"):
        policy(**batch)
    policy.attach_preference(PreferenceObjective(copy.deepcopy(policy)))
    batch["chosen"] = torch.tensor([True, True, True, False])
    with pytest.raises(ValueError, match="pair 0 has 2 chosen and 0 rejected"):
        policy(**batch)
    batch["chosen"] = torch.tensor([True, False, True, False])
    batch["pair_index"] = torch.tensor([0, 0, 1])
    with pytest.raises(ValueError, match="4 examples"):
        policy(**batch)
    with pytest.raises(ValueError, match="beta"):
        PreferenceObjective(copy.deepcopy(policy), beta=0.0)
