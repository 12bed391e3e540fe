"""UALMModel end to end on a tiny Qwen2 + tiny Whisper encoder + tiny codec."""

import copy

import pytest
import torch
import torch.nn.functional as F

from espnet2.ualm.model.batch import collate_sequences
from espnet2.ualm.model.cfg_dropout import drop_condition, example_index
from espnet2.ualm.tokens.conversation import AudioInputSegment
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.tokens.templates import task_template_from_dict
from espnet2.ualm.tokens.vocabulary import SPECIAL_TOKENS, UALMVocabulary

N_SAMPLES = 1500  # 3 encoder frames at 25 Hz, 16 kHz


@pytest.fixture
def examples(builder, make_model):
    enc = make_model().audio_encoder
    codes = torch.randint(0, 5, (5, 3), generator=torch.Generator().manual_seed(2))
    t2a = builder.build_example("text_to_audio", {"caption": "a cat", "audio": codes})
    frames = enc.num_frames(N_SAMPLES)
    cap = builder.build_example(
        "audio_caption", {"caption": "rain", "audio": AudioInputSegment("a", frames)}
    )
    dialogue = builder.build_example(
        "text_dialogue",
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "yo"}]},
            ]
        },
    )
    wav = torch.randn(N_SAMPLES, generator=torch.Generator().manual_seed(3))
    return t2a, cap, dialogue, {"a": wav}


def test_forward_backward(make_model, examples, vocab):
    t2a, cap, dialogue, waves = examples
    model = make_model()
    model.train()
    batch = collate_sequences([[t2a], [cap, dialogue]], waves)
    loss, stats, weight = model(**batch)
    assert loss.shape == (1,) and torch.isfinite(loss).all()
    assert int(weight) == int(batch["loss_mask"][:, 1:, 0].sum())
    assert {"loss", "loss_text", "loss_audio", "acc_text", "acc_stream2"} <= set(stats)
    loss.sum().backward()
    table = model.backbone.get_input_embeddings().weight
    assert not bool(table.grad[0].any())  # <pad> stays a zero row
    assert table.grad[vocab.audio_offset :].abs().sum() > 0
    assert model.stream_embeddings.grad.abs().sum() > 0
    assert model.adapter.net[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.audio_encoder.parameters())
    assert model.backbone.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_forward_loss_is_the_direct_computation(
    make_model, examples, vocab, direct_loss
):
    t2a, cap, _, waves = examples
    model = make_model().eval()
    batch = collate_sequences([[t2a], [cap]], waves)
    loss, _, _ = model(**batch)
    with torch.no_grad():
        embeds = model.embed(
            batch["ids"],
            batch["audio_input"],
            batch["audio_input_lengths"],
            batch["audio_input_spans"],
        )
        hidden = model.hidden_states(embeds, batch["position_ids"])
    expected = direct_loss(
        hidden.double(),
        batch["ids"],
        batch["loss_mask"],
        model.head_weight.double(),
        model.stream_embeddings.double(),
        vocab,
        1 / 3,
    )
    torch.testing.assert_close(loss[0].double(), expected, rtol=1e-5, atol=1e-6)


def test_audio_features_are_written_at_the_placeholders(make_model, examples, vocab):
    _, cap, _, waves = examples
    model = make_model().eval()
    batch = collate_sequences([[cap]], waves)
    with torch.no_grad():
        embeds = model.embed(
            batch["ids"],
            batch["audio_input"],
            batch["audio_input_lengths"],
            batch["audio_input_spans"],
        )
        feats, _ = model.audio_encoder(
            batch["audio_input"], batch["audio_input_lengths"]
        )
        row, start, n = batch["audio_input_spans"][0].tolist()
        torch.testing.assert_close(
            embeds[row, start : start + n], model.adapter(feats[0])
        )
    with pytest.raises(ValueError, match="no audio_input_spans"):
        model.embed(batch["ids"])
    bad = batch["audio_input_spans"].clone()
    bad[0, 2] += 1
    with pytest.raises(ValueError, match="holds 4 placeholders, the encoder gives 3"):
        model.embed(
            batch["ids"], batch["audio_input"], batch["audio_input_lengths"], bad
        )


@pytest.mark.parametrize("flatten_batch", [False, True])
def test_packed_rows_give_the_same_per_example_loss(
    make_model, examples, flatten_batch
):
    t2a, cap, dialogue, waves = examples
    model = make_model(flatten_batch=flatten_batch).eval()
    separate = collate_sequences([[t2a], [cap], [dialogue]], waves)
    packed = collate_sequences([[cap, t2a], [dialogue]], waves)
    assert packed["position_ids"][0, len(cap)] == 0
    with torch.no_grad():
        total_separate, n_separate = 0.0, 0.0
        for i in range(3):  # one example at a time: no padding, no packing
            one = collate_sequences([[(t2a, cap, dialogue)[i]]], waves)
            loss, _, weight = model(**one)
            total_separate += float(loss * weight)
            n_separate += float(weight)
        for batch in (separate, packed):
            loss, _, weight = model(**batch)
            assert float(weight) == n_separate
            assert float(loss * weight) == pytest.approx(total_separate, rel=1e-5)
        # hidden states of the packed example equal those of the example alone
        hidden = model.hidden_states(
            model.embed(
                packed["ids"],
                packed["audio_input"],
                packed["audio_input_lengths"],
                packed["audio_input_spans"],
            ),
            packed["position_ids"],
        )
        alone = collate_sequences([[t2a]], waves)
        reference = model.hidden_states(
            model.embed(alone["ids"]), alone["position_ids"]
        )
    torch.testing.assert_close(
        hidden[0, len(cap) : len(cap) + len(t2a)], reference[0], rtol=1e-4, atol=1e-5
    )


def test_condition_dropout_replaces_exactly_the_condition(builder, examples):
    t2a, cap, _, waves = examples
    batch = collate_sequences([[t2a, t2a], [cap]], waves)
    ids, cond, pos = batch["ids"], batch["condition_mask"], batch["position_ids"]
    dropped_ids, dropped = drop_condition(ids, cond, pos, prob=1.0)
    assert torch.equal(dropped, cond)
    assert not bool(dropped_ids[cond].any())  # all streams <pad>
    assert torch.equal(dropped_ids[~cond], ids[~cond])
    same, none = drop_condition(ids, cond, pos, prob=0.0)
    assert torch.equal(same, ids) and not bool(none.any())
    # an AudioLayout's cfg_null: in stream 0 only, id 0 in the others
    nulled, _ = drop_condition(ids, cond, pos, prob=1.0, null_id=12)
    assert bool((nulled[cond][:, 0] == 12).all()) and not bool(
        nulled[cond][:, 1:].any()
    )
    assert torch.equal(nulled[~cond], ids[~cond])
    # packed examples are dropped independently, each one entirely or not at all
    index = example_index(pos)
    outcomes = set()
    for seed in range(16):
        _, dropped = drop_condition(
            ids, cond, pos, 0.5, generator=torch.Generator().manual_seed(seed)
        )
        outcome = []
        for e in range(2):
            d, c = dropped[0][index[0] == e], cond[0][index[0] == e]
            assert torch.equal(d, c) or not bool(d.any())
            outcome.append(bool(d.any()))
        outcomes.add(tuple(outcome))
    assert {(True, False), (False, True)} <= outcomes


def test_training_with_cfg_dropout_skips_dropped_audio_input(
    make_model, vocab, tokenizer
):
    template = task_template_from_dict(
        "audio_to_audio",
        {
            "messages": [
                {"role": "user", "content": [{"audio_input": "{audio}"}]},
                {"role": "assistant", "content": [{"audio": "{target}"}]},
            ],
            "cfg_dropout": True,
        },
    )
    model = make_model(cfg_dropout_prob=0.999999).train()
    frames = model.audio_encoder.num_frames(N_SAMPLES)
    builder = SequenceBuilder(vocab, tokenizer, loss_region="all")
    example = {
        "audio": AudioInputSegment("a", frames),
        "target": torch.zeros(4, 3, dtype=torch.long),
    }
    seq = builder.build_example(template, example)
    batch = collate_sequences([[seq]], {"a": torch.randn(N_SAMPLES)})
    loss, _, weight = model(**batch)
    assert torch.isfinite(loss).all()
    # with loss_region="all" the dropped condition is no target any more
    kept = batch["loss_mask"][0, 1:, 0] & ~batch["condition_mask"][0, 1:]
    assert int(weight) == int(kept.sum())


def test_checkpoint_of_another_vocabulary_layout_is_refused(make_model, vocab):
    model = make_model()
    swapped = list(SPECIAL_TOKENS)
    swapped[8], swapped[9] = swapped[9], swapped[8]  # same sizes, other ids
    other = UALMVocabulary(vocab.text_vocab_size, 3, 5, special_tokens=swapped)
    assert other.size == vocab.size
    state = model.state_dict()
    state["vocabulary_fingerprint"] = torch.tensor(
        list(bytes.fromhex(other.fingerprint())), dtype=torch.uint8
    )
    with pytest.raises(ValueError, match="another vocabulary layout"):
        model.load_state_dict(state)
    make_model(seed=1).load_state_dict(model.state_dict())  # same layout: fine


def test_modality_alignment_trains_only_audio_rows_and_adapter(
    make_model, examples, vocab
):
    t2a, cap, _, waves = examples
    model = make_model()
    model.freeze_for_modality_alignment()
    model.train()
    loss, _, _ = model(**collate_sequences([[t2a], [cap]], waves))
    loss.sum().backward()
    grad = model.backbone.get_input_embeddings().weight.grad
    assert not bool(grad[: vocab.audio_offset].any())
    assert grad[vocab.audio_offset :].abs().sum() > 0
    assert model.adapter.net[2].weight.grad.abs().sum() > 0
    assert model.backbone.model.layers[0].self_attn.q_proj.weight.grad is None


def test_stream_logits_and_deepcopy(make_model, vocab):
    model = make_model().eval()
    hidden = torch.randn(2, 32)
    full = model.stream_logits(hidden, 0)
    assert full.shape == (2, vocab.size)
    own = model.stream_logits(hidden, 2)
    start, stop = vocab.codebook_range(2)
    torch.testing.assert_close(
        own, model.stream_logits(hidden, 2, "full")[:, start:stop]
    )
    assert model.stream_logits(hidden, 1, "audio").shape == (2, vocab.audio_size)
    reference = copy.deepcopy(model)  # e.g. the frozen DPO reference
    torch.testing.assert_close(
        reference.stream_logits(hidden, 1), model.stream_logits(hidden, 1)
    )


def test_audio_softmax_option(make_model, examples, vocab, direct_loss):
    t2a, cap, _, waves = examples
    batch = collate_sequences([[t2a], [cap]], waves)
    assert make_model().audio_softmax == "codebook"
    model = make_model(audio_softmax="audio").eval()
    loss, _, _ = model(**batch)
    with torch.no_grad():
        embeds = model.embed(
            batch["ids"],
            batch["audio_input"],
            batch["audio_input_lengths"],
            batch["audio_input_spans"],
        )
        hidden = model.hidden_states(embeds, batch["position_ids"])
    expected = direct_loss(
        hidden.double(),
        batch["ids"],
        batch["loss_mask"],
        model.head_weight.double(),
        model.stream_embeddings.double(),
        vocab,
        1 / 3,
        "audio",
    )
    torch.testing.assert_close(loss[0].double(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="audio_softmax"):
        make_model(audio_softmax="full")


def test_bfloat16_autocast_option(make_model, examples):
    """Matmuls in bfloat16, the loss and every gradient in float32, and the
    same loss and gradient directions as the float32 step (same weights)."""
    t2a, cap, dialogue, waves = examples
    batch = collate_sequences([[t2a], [cap, dialogue]], waves)
    with pytest.raises(ValueError, match="autocast_dtype"):
        make_model(autocast_dtype="float16")
    plain = make_model().train()
    amp = make_model(seed=1, autocast_dtype="bfloat16").train()
    amp.load_state_dict(plain.state_dict())
    dtypes = []
    amp.backbone.model.layers[0].self_attn.q_proj.register_forward_hook(
        lambda module, inputs, output: dtypes.append(output.dtype)
    )
    losses = {}
    for name, model in (("amp", amp), ("plain", plain)):
        torch.manual_seed(0)  # the same CFG dropout draw
        losses[name] = model(**batch)[0]
        losses[name].sum().backward()
    assert dtypes == [torch.bfloat16]
    assert losses["amp"].dtype == torch.float32
    torch.testing.assert_close(losses["amp"], losses["plain"], rtol=0.02, atol=0.0)
    n_compared = 0
    for (name, p_amp), p_plain in zip(amp.named_parameters(), plain.parameters()):
        assert (p_amp.grad is None) == (p_plain.grad is None), name
        if p_plain.grad is None or not p_plain.grad.any():
            continue
        assert p_amp.dtype == p_amp.grad.dtype == torch.float32, name
        cosine = F.cosine_similarity(
            p_amp.grad.flatten(), p_plain.grad.flatten(), dim=0
        )
        assert cosine > 0.98, (name, float(cosine))
        n_compared += 1
    assert n_compared > 20


@pytest.mark.parametrize("native", [True, False])
def test_auto_autocast_follows_the_device(make_model, examples, monkeypatch, native):
    """``autocast_dtype: auto``: bfloat16 matmuls where the device runs them
    natively, float32 where it would emulate them (a CPU without AVX512)."""
    from espnet2.ualm.model import ualm_model

    monkeypatch.setattr(ualm_model, "native_bfloat16", lambda device_type: native)
    t2a, cap, dialogue, waves = examples
    model = make_model(autocast_dtype="auto").train()
    dtypes = []
    model.backbone.model.layers[0].self_attn.q_proj.register_forward_hook(
        lambda module, inputs, output: dtypes.append(output.dtype)
    )
    model(**collate_sequences([[t2a], [cap, dialogue]], waves))
    assert dtypes == [torch.bfloat16 if native else torch.float32]
