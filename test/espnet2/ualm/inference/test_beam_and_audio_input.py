"""Text beam search, and prompts with continuous audio input (understanding)."""

import dataclasses

import pytest
import torch

from espnet2.ualm.inference.decoder import batch_prompts
from espnet2.ualm.inference.generate import UALMGenerator
from espnet2.ualm.inference.sampling import GREEDY, SamplingConfig
from espnet2.ualm.inference.settings import DecodeSettings
from espnet2.ualm.testing.decoding import make_decoder
from espnet2.ualm.tokens.conversation import AudioInputSegment
from espnet2.ualm.tokens.sequence import BuiltSequence

K = 4  # the tiny model's codebooks (conftest)
GREEDY_ALL = dict(text_sampling=GREEDY, audio_sampling=GREEDY)

N_SAMPLES = 1500  # 3 encoder frames of the tiny Whisper at 16 kHz


@pytest.fixture(scope="module")
def caption_prompts(builder, model):
    """Two captioning prompts (audio input) and a text dialogue prompt."""
    frames = model.audio_encoder.num_frames(N_SAMPLES)
    caption = [
        builder.build_example(
            "audio_caption",
            {"audio": AudioInputSegment(key, frames)},
            prompt_only=True,
        )
        for key in ("a", "b")
    ]
    dialogue = builder.build_example(
        "text_dialogue",
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hello there"}]}
            ]
        },
        prompt_only=True,
    )
    return [caption[0], dialogue, caption[1]]


@pytest.fixture(scope="module")
def waveforms():
    g = torch.Generator().manual_seed(0)
    return {key: torch.randn(N_SAMPLES, generator=g) for key in ("a", "b")}


def _ids(segment):
    return segment.token_ids


def test_beam_one_is_greedy(gen, t2a_prompts):
    greedy = gen.generate(
        t2a_prompts, modalities="text", max_text_tokens=8, text_sampling=GREEDY
    )
    beam = gen.beam_search(t2a_prompts, beam_size=1, max_tokens=8)
    for g, b in zip(greedy, beam):
        assert g.segments[0].token_ids == b.token_ids
        assert b.text == g.segments[0].text and b.closing == "<eos>"


def test_beam_batch_equals_one_by_one(gen, model, tokenizer, t2a_prompts):
    batched = gen.beam_search(t2a_prompts, beam_size=3, max_tokens=6)
    for prompt, result in zip(t2a_prompts, batched):
        (alone,) = gen.beam_search([prompt], beam_size=3, max_tokens=6)
        assert alone.token_ids == result.token_ids
        assert alone.score == pytest.approx(result.score)
        assert len(result.token_ids) <= 6
    reference = UALMGenerator(model, tokenizer, backend="hf").beam_search(
        t2a_prompts, beam_size=3, max_tokens=6
    )
    assert [r.token_ids for r in reference] == [r.token_ids for r in batched]
    assert [r.score for r in reference] == pytest.approx([r.score for r in batched])


def test_beam_score_is_the_log_probability(gen, model, t2a_prompts, vocab):
    (best,) = gen.beam_search(t2a_prompts[:1], beam_size=3, max_tokens=5)
    text = [vocab.text_offset + t for t in best.token_ids]
    stream0 = [vocab.modality_id("text"), *text, vocab.eos_id]
    reply = torch.zeros(len(stream0), vocab.n_codebooks, dtype=torch.long)
    reply[:, 0] = torch.tensor(stream0)
    ids = torch.cat([t2a_prompts[0].ids, reply])[None]
    with torch.no_grad():
        hidden = model.hidden_states(model.embed(ids), torch.arange(ids.shape[1])[None])
        logits = model.stream_logits(hidden[0], 0)
    allowed = torch.zeros(vocab.size, dtype=torch.bool)
    allowed[vocab.text_offset : vocab.audio_offset] = True
    allowed[vocab.eos_id] = True
    logp = torch.log_softmax(logits.masked_fill(~allowed, -torch.inf), -1)
    start = len(t2a_prompts[0])  # position predicting the first text token
    terms = [float(logp[start + i, t]) for i, t in enumerate(stream0[1:])]
    if len(text) == 5:  # <eos> forced at max_tokens: the only choice, log 1
        terms[-1] = 0.0
    assert best.score == pytest.approx(sum(terms), rel=1e-5)


def test_audio_input_features_fill_the_placeholders(model, caption_prompts, waveforms):
    batch = batch_prompts(caption_prompts, waveforms)
    assert batch.audio_input_spans.shape == (2, 3)
    with torch.no_grad():
        hidden = make_decoder(model).prefill(batch)
        other = {"a": waveforms["b"], "b": waveforms["b"]}
        changed = make_decoder(model).prefill(batch_prompts(caption_prompts, other))
    assert not torch.allclose(hidden[0], changed[0])  # "a" was replaced
    assert torch.allclose(hidden[1:], changed[1:])
    with pytest.raises(KeyError, match="no waveform"):
        batch_prompts(caption_prompts, {"a": waveforms["a"]})


def test_understanding_batch_equals_one_by_one(gen, caption_prompts, waveforms):
    kwargs = dict(modalities="text", max_text_tokens=6, text_sampling=GREEDY)
    batched = gen.generate(caption_prompts, waveforms=waveforms, **kwargs)
    for prompt, result in zip(caption_prompts, batched):
        (alone,) = gen.generate([prompt], waveforms=waveforms, **kwargs)
        assert torch.equal(alone.ids, result.ids)
    beams = gen.beam_search(
        caption_prompts, beam_size=2, max_tokens=5, waveforms=waveforms
    )
    (alone,) = gen.beam_search(
        caption_prompts[2:], beam_size=2, max_tokens=5, waveforms=waveforms
    )
    assert beams[2].token_ids == alone.token_ids


def test_understanding_with_cfg_drops_the_audio_of_the_unconditional_row(
    gen, caption_prompts, waveforms
):
    batch = batch_prompts(caption_prompts, waveforms, with_unconditional=True)
    assert batch.audio_input_spans[:, 0].tolist() == [0, 2]  # conditional rows only
    results = gen.generate(
        caption_prompts,
        waveforms=waveforms,
        modalities=("text", "audio"),
        max_text_tokens=4,
        max_audio_seconds=0.12,
        text_sampling=GREEDY,
        audio_sampling=GREEDY,
    )
    assert [[s.modality for s in r.segments] for r in results] == [
        ["text", "audio"]
    ] * 3


def _joined(first, *rest_ids, audio_from=None):
    """``first`` (a built prompt) followed by more ``[T, K]`` ids and, from
    ``audio_from`` (a built prompt), its ids with its audio-input spans."""
    ids = torch.cat([first.ids, *rest_ids])
    spans = list(first.audio_inputs)
    if audio_from is not None:
        spans += [
            dataclasses.replace(s, start=s.start + len(ids))
            for s in audio_from.audio_inputs
        ]
        ids = torch.cat([ids, audio_from.ids])
    n = len(ids)
    no = torch.zeros(n, dtype=torch.bool)
    return BuiltSequence(ids, no[:, None].expand(n, ids.shape[1]), no, tuple(spans), ())


@pytest.mark.parametrize("backend", ["fast", "hf"])
def test_a_paused_conversation_goes_on_from_its_cache(
    model, tokenizer, vocab, t2a_prompts, caption_prompts, waveforms, backend
):
    """Self-reflection's loop: stop after an audio segment, append new input
    (an encoded clip; a text turn; nothing), go on from the KV cache. Each
    row's continuation is what decoding the whole conversation from scratch
    gives, whatever the other rows appended (right padding)."""
    gen = UALMGenerator(model, tokenizer, frame_rate=25.0, backend=backend)
    settings = DecodeSettings(
        max_audio_seconds=0.32,
        max_text_tokens=5,
        text_sampling=GREEDY,
        audio_sampling=SamplingConfig(temperature=2.0),
    )
    seed = torch.Generator().manual_seed(0)
    conv = gen.start(t2a_prompts, settings, ("audio", "text"), generator=seed)
    first = conv.run(pause_after_audio=True)
    # rows paused at different steps: the early ones skipped positions
    assert len({len(r.ids) for r in first}) > 1
    for r in first:
        (audio,) = r.segments
        assert audio.modality == "audio" and audio.closing == "<eot>"
    assistant = vocab.role_id("assistant")
    text_turn = torch.zeros(4, K, dtype=torch.long)
    text_turn[:, 0] = torch.tensor(
        [vocab.text_offset + 1, vocab.text_offset + 2, vocab.eot_id, assistant]
    )
    clip = caption_prompts[0]  # ends with <assistant>; its audio input is "a"
    inputs = [clip, text_turn, None]
    conv.append(inputs, waveforms=[waveforms, {}, {}])
    second = conv.run()
    role = torch.zeros(1, K, dtype=torch.long)
    role[0, 0] = assistant
    fresh_prompts = [
        _joined(t2a_prompts[0], first[0].ids, audio_from=clip),
        _joined(t2a_prompts[1], first[1].ids, text_turn),
        _joined(t2a_prompts[2], first[2].ids, role),
    ]
    fresh = gen.generate(fresh_prompts, settings, "text", waveforms=[waveforms, {}, {}])
    for b, (cont, ref) in enumerate(zip(second, fresh)):
        (segment,) = cont.segments
        assert segment.modality == "text" and segment.closing == "<eos>"
        assert segment.token_ids == ref.segments[0].token_ids, b
        # a row that appended nothing is given the role token first
        expected = ref.ids if inputs[b] is not None else torch.cat([role, ref.ids])
        assert torch.equal(cont.ids, expected)
    with pytest.raises(ValueError, match="not paused"):
        conv.append([text_turn, None, None])
    assert all(not r.segments and len(r.ids) == 0 for r in conv.run())  # all done
