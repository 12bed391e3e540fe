"""Generation in another ``AudioLayout`` (ESPnet-SpeechLM's: the closing
token after the delayed block, every stream sampling its pads, the CFG
branch nulled with ``<cfg_null>`` over the whole prompt) on a tiny random
UALM. The comparison with ESPnet's own decoder is
``test/espnet2/ualm/pretrained/test_speechlm.py``; here: the structure,
batching, the reduced state update and the fast step."""

import dataclasses

import pytest
import torch

from espnet2.ualm.inference import generate as generate_module
from espnet2.ualm.inference.decoder import batch_prompts, unconditional_ids
from espnet2.ualm.inference.generate import UALMGenerator
from espnet2.ualm.inference.sampling import SamplingConfig
from espnet2.ualm.inference.settings import DecodeSettings
from espnet2.ualm.model.factory import build_ualm_model
from espnet2.ualm.testing.tiny_model import tiny_qwen2_config, tiny_whisper_config
from espnet2.ualm.tokens.conversation import Message, TextSegment
from espnet2.ualm.tokens.delay import delay_deinterleave
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.tokens.vocabulary import (
    SPECIAL_TOKENS,
    AudioLayout,
)

HOT = SamplingConfig(temperature=2.0)
LAYOUTS = {
    "delayed": (0, 1, 2, 3),
    "parallel": (0, 0, 0, 0),
}


def _vocab(vocab, delays):
    return dataclasses.replace(
        vocab,
        special_tokens=SPECIAL_TOKENS + ("<cfg_null>",),
        audio_layout=AudioLayout(
            delays=delays, closing="after", cfg_null="<cfg_null>", cfg_extent="prompt"
        ),
    )


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def after(request, vocab, tokenizer):
    """(vocabulary, model, builder) of one layout closed after the block."""
    v = _vocab(vocab, LAYOUTS[request.param])
    torch.manual_seed(0)
    model = build_ualm_model(
        v,
        backbone={"config": tiny_qwen2_config(hidden_size=64, intermediate_size=128)},
        audio_encoder={"config": tiny_whisper_config()},
        adapter={"type": "mlp"},
    ).double()
    with torch.no_grad():  # a non-zero null row, as an import's
        model.backbone.get_input_embeddings().weight[v.cfg_null_id].normal_()
    return v, model.eval(), SequenceBuilder(v, tokenizer)


def _prompts(builder, captions):
    return [
        builder.build_example("text_to_audio", {"caption": c}, prompt_only=True)
        for c in captions
    ]


def _seed(seed):
    return torch.Generator().manual_seed(seed)


def test_reply_structure(after, tokenizer, captions):
    """Marker, the delayed steps of the codes (holes sampled), then the
    closing step: ``<eos>`` in stream 0, id 0 elsewhere; frames = steps minus
    the delay; every id in its own stream's codebook, pad included."""
    vocab, model, builder = after
    delay = max(vocab.audio_delays)
    gen = UALMGenerator(model, tokenizer, frame_rate=25.0)
    settings = DecodeSettings(
        audio_sampling=HOT, cfg_scale=2.0, min_audio_seconds=0.2, max_audio_seconds=0.2
    )
    results = gen.generate(
        _prompts(builder, captions), settings, "audio", generator=_seed(1)
    )
    pads = 0
    for r in results:
        (seg,) = r.segments
        assert seg.closing == "<eos>" and seg.codes.shape == (5, vocab.n_codebooks)
        assert int(r.ids[0, 0]) == vocab.modality_id("audio")
        assert r.ids[-1].tolist() == [vocab.eos_id] + [0] * (vocab.n_codebooks - 1)
        content = r.ids[1:-1]
        assert len(content) == 5 + delay
        for k in range(vocab.n_codebooks):
            start, stop = vocab.codebook_range(k)
            assert bool(((content[:, k] >= start) & (content[:, k] < stop)).all())
        codes = vocab.ids_to_codes(
            delay_deinterleave(content, delays=vocab.audio_delays)
        )
        pads += int((codes == vocab.codebook_size).sum())
        assert torch.equal(
            codes.masked_fill(codes == vocab.codebook_size, 0), seg.codes
        )
    assert pads > 0  # sampled: the model's choice, decoded as code 0


def test_batch_equals_one_by_one_and_the_reduced_update(
    after, tokenizer, captions, monkeypatch
):
    """Rows that close at different steps: batched = alone, and looking at
    the rows every step (``_horizon`` 1) changes nothing."""
    vocab, model, builder = after
    prompts = _prompts(builder, captions)
    gen = UALMGenerator(model, tokenizer, frame_rate=25.0)
    settings = DecodeSettings(
        audio_sampling=HOT, cfg_scale=2.0, min_audio_seconds=0.04, max_audio_seconds=0.8
    )
    greedy = settings.replace(audio_sampling=SamplingConfig(greedy=True))
    batched = gen.generate(prompts, greedy, "audio")
    for prompt, result in zip(prompts, batched):
        (alone,) = gen.generate([prompt], greedy, "audio")
        assert torch.equal(result.ids, alone.ids)
    sampled = [gen.generate(prompts, settings, generator=_seed(s)) for s in range(3)]
    lengths = {len(r.ids) for rs in sampled for r in rs}
    assert len(lengths) > 1  # the rows close at different steps
    monkeypatch.setattr(generate_module.Conversation, "_horizon", lambda self, v: 1)
    again = [gen.generate(prompts, settings, generator=_seed(s)) for s in range(3)]
    for a, b in zip(sampled, again):
        for x, y in zip(a, b):
            assert torch.equal(x.ids, y.ids)


def test_fast_step_gives_the_reference_tokens(after, tokenizer, captions):
    vocab, model, builder = after
    prompts = _prompts(builder, captions)
    settings = DecodeSettings(
        audio_sampling=HOT, cfg_scale=3.0, min_audio_seconds=0.04, max_audio_seconds=0.4
    )
    out = {}
    for backend in ("hf", "fast"):
        gen = UALMGenerator(model, tokenizer, frame_rate=25.0, backend=backend)
        out[backend] = gen.generate(prompts, settings, "audio", generator=_seed(2))
    for a, b in zip(out["hf"], out["fast"]):
        assert torch.equal(a.ids, b.ids)


def test_the_unconditional_branch_nulls_the_whole_prompt(after, captions):
    """``cfg_extent="prompt"``: every position, an assistant turn's too,
    gets ``<cfg_null>`` in stream 0 and id 0 elsewhere; ``"condition"``
    keeps the assistant's turn; the default layout writes ``<pad>``."""
    vocab, _, builder = after
    messages = [
        Message("user", [TextSegment("describe a cat")]),
        Message("assistant", [TextSegment("a cat purrs")]),
        Message("user", [TextSegment("now make it")]),
    ]
    prompt = builder.build(messages, cfg_dropout=True, add_generation_prompt=True)
    answer = ~prompt.condition_mask
    assert bool(answer.any())
    null = unconditional_ids(prompt, vocab)
    assert bool((null[:, 0] == vocab.cfg_null_id).all()) and not bool(null[:, 1:].any())
    kept = dataclasses.replace(
        vocab,
        audio_layout=dataclasses.replace(vocab.audio_layout, cfg_extent="condition"),
    )
    partly = unconditional_ids(prompt, kept)
    assert torch.equal(partly[answer], prompt.ids[answer])
    assert bool((partly[~answer, 0] == vocab.cfg_null_id).all())
    default = unconditional_ids(prompt)
    assert not bool(default[~answer].any())
    batch = batch_prompts([prompt], with_unconditional=True, vocab=vocab)
    assert torch.equal(batch.ids[1], null)


def test_pads_are_sampled_only_where_the_layout_says(after, gen, captions, builder):
    """The fused heads allow the pads for the layout closed after the block
    and never for the default one."""
    vocab, model, _ = after
    stride = vocab.codebook_stride
    heads = UALMGenerator(model, frame_rate=25.0).weights.audio_heads(1)
    assert not bool(heads.never[:, stride - 1].any())
    assert bool(gen.weights.audio_heads(1).never[:, stride - 1].all())
