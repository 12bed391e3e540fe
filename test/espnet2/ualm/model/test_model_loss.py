"""Loss: chunked logits, restricted softmax and audio weighting, checked directly."""

import math

import pytest
import torch
import torch.nn.functional as F

from espnet2.ualm.model.batch import collate_sequences
from espnet2.ualm.model.loss import (
    linear_cross_entropy,
    multistream_loss,
    target_weights,
)
from espnet2.ualm.tokens.conversation import AudioInputSegment


def _batch(builder):
    codes = torch.randint(0, 5, (6, 3), generator=torch.Generator().manual_seed(1))
    t2a = builder.build_example("text_to_audio", {"caption": "dog", "audio": codes})
    cap = builder.build_example(
        "audio_caption", {"caption": "beep", "audio": AudioInputSegment("a", 2)}
    )
    return collate_sequences([[t2a], [cap, t2a]], {"a": torch.randn(1200)})


def test_chunked_cross_entropy_equals_direct_and_has_the_same_gradient():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(50, 8, generator=g, requires_grad=True)
    weight = torch.randn(30, 8, generator=g, requires_grad=True)
    targets = torch.randint(0, 30, (50,), generator=g)
    nll, pred = linear_cross_entropy(hidden, weight, targets, chunk_size=7)
    logits = hidden @ weight.T
    reference = F.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(nll, reference)
    assert torch.equal(pred, logits.argmax(-1))
    grads = torch.autograd.grad(nll.sum(), (hidden, weight))
    ref_grads = torch.autograd.grad(reference.sum(), (hidden, weight))
    for got, ref in zip(grads, ref_grads):
        torch.testing.assert_close(got, ref)


def test_restricted_logits_equal_masking_the_full_softmax(vocab):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(20, 16, generator=g, dtype=torch.float64)
    head = torch.randn(vocab.size, 16, generator=g, dtype=torch.float64)
    targets = torch.randint(vocab.audio_offset, vocab.size, (20,), generator=g)
    restricted, _ = linear_cross_entropy(
        hidden, head[vocab.audio_offset :], targets - vocab.audio_offset
    )
    full = (hidden @ head.T).masked_fill(
        torch.arange(vocab.size) < vocab.audio_offset, -math.inf
    )
    torch.testing.assert_close(
        restricted.double(), F.cross_entropy(full, targets, reduction="none")
    )


def test_weighted_loss_matches_direct_computation(vocab, builder, direct_loss):
    batch = _batch(builder)
    ids, mask = batch["ids"], batch["loss_mask"]
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(*ids.shape[:2], 16, generator=g, dtype=torch.float64)
    head = torch.randn(vocab.size, 16, generator=g, dtype=torch.float64)
    stream_emb = torch.randn(2, 16, generator=g, dtype=torch.float64)
    out = multistream_loss(
        hidden, ids, mask, head, stream_emb, vocab.audio_offset, 1 / 3, chunk_size=5
    )
    expected = direct_loss(hidden, ids, mask, head, stream_emb, vocab, 1 / 3)
    torch.testing.assert_close(out.loss.double(), expected)
    assert int(out.n_stream0_targets) == int(mask[:, 1:, 0].sum())
    assert set(out.stats) == {
        "loss_text",
        "loss_audio",
        "acc_text",
        "acc_stream0",
        "acc_stream1",
        "acc_stream2",
    }


def test_an_audio_frame_weighs_as_much_as_one_text_token(vocab, builder):
    codes = torch.zeros(6, 3, dtype=torch.long)
    seq = builder.build_example("text_to_audio", {"caption": "x", "audio": codes})
    weights = target_weights(seq.ids, seq.loss_mask, vocab.audio_offset, 1 / 3)
    # the marker and the closing <eos> weigh 1 each, every frame of 3 codes 1
    assert float(weights.sum()) == pytest.approx(1 + 6 + 1)
    assert float(weights.sum()) == pytest.approx(int(seq.loss_mask[:, 0].sum()))


def test_stats_of_absent_kinds_are_nan_not_missing(vocab, builder):
    seq = builder.build_example(
        "audio_caption", {"caption": "x", "audio": AudioInputSegment("a", 1)}
    )
    ids, mask = seq.ids[None], seq.loss_mask[None]
    hidden = torch.randn(1, len(seq), 8)
    out = multistream_loss(
        hidden,
        ids,
        mask,
        torch.randn(vocab.size, 8),
        torch.randn(2, 8),
        vocab.audio_offset,
        1 / 3,
    )
    assert math.isnan(float(out.stats["loss_audio"]))
    assert math.isnan(float(out.stats["acc_stream1"]))
    assert not math.isnan(float(out.stats["acc_text"]))


@pytest.mark.parametrize("softmax", ["codebook", "audio"])
def test_both_audio_softmaxes_match_their_definition(
    vocab, builder, direct_loss, softmax
):
    batch = _batch(builder)
    ids, mask = batch["ids"], batch["loss_mask"]
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(*ids.shape[:2], 16, generator=g, dtype=torch.float64)
    head = torch.randn(vocab.size, 16, generator=g, dtype=torch.float64)
    stream_emb = torch.randn(2, 16, generator=g, dtype=torch.float64)
    out = multistream_loss(
        hidden, ids, mask, head, stream_emb, vocab.audio_offset, 1 / 3,
        chunk_size=4, audio_softmax=softmax,
    )  # fmt: skip
    expected = direct_loss(hidden, ids, mask, head, stream_emb, vocab, 1 / 3, softmax)
    torch.testing.assert_close(out.loss.double(), expected)
    other = "audio" if softmax == "codebook" else "codebook"
    assert not torch.isclose(
        out.loss.double(),
        direct_loss(hidden, ids, mask, head, stream_emb, vocab, 1 / 3, other),
    )


def test_codebook_softmax_is_what_inference_samples(make_model, vocab, builder):
    """The training distribution of stream k is ``stream_logits(.., k)``'s."""
    model = make_model().eval()
    codes = torch.randint(0, 5, (4, 3), generator=torch.Generator().manual_seed(2))
    seq = builder.build_example("text_to_audio", {"caption": "a", "audio": codes})
    ids, mask = seq.ids[None], seq.loss_mask[None].clone()
    mask[..., 0] = False
    mask[0, 1, 0] = True  # one stream-0 target: the normaliser is 1
    hidden = torch.randn(1, len(seq), model.head_weight.shape[1])
    with torch.no_grad():
        out = multistream_loss(
            hidden, ids, mask, model.head_weight, model.stream_embeddings,
            vocab.audio_offset, 1.0,
        )  # fmt: skip
        expected = -F.log_softmax(model.stream_logits(hidden[0, 0], 0), -1)[
            ids[0, 1, 0]
        ]
        for b, t, k in mask[:, 1:, 1:].nonzero().tolist():
            start, _ = vocab.codebook_range(k + 1)
            logp = F.log_softmax(model.stream_logits(hidden[b, t], k + 1), -1)
            expected = expected + -logp[ids[b, t + 1, k + 1] - start]
    torch.testing.assert_close(out.loss, expected)
    for k in (1, 2):
        assert float(out.stats[f"acc_stream{k}"]) >= 0


def test_a_target_outside_its_codebook_is_refused(vocab, builder):
    codes = torch.zeros(3, 3, dtype=torch.long)
    seq = builder.build_example("text_to_audio", {"caption": "x", "audio": codes})
    ids = seq.ids[None].clone()
    t = int(seq.loss_mask[:, 1].nonzero()[0])
    ids[0, t, 1] = vocab.codebook_range(2)[0]  # codebook 2's id in stream 1
    args = (torch.randn(1, len(seq), 8), ids, seq.loss_mask[None])
    table = (torch.randn(vocab.size, 8), torch.randn(2, 8), vocab.audio_offset, 0.5)
    with pytest.raises(ValueError, match="own codebook"):
        multistream_loss(*args, *table)
    multistream_loss(*args, *table, audio_softmax="audio")  # an audio id: fine
    with pytest.raises(ValueError, match="audio_softmax"):
        multistream_loss(*args, *table, audio_softmax="full")
