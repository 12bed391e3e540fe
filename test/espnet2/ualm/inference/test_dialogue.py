"""The clarifying dialogue's loop on the tiny random model: each answer
continues the one KV cache (no re-prefill) in the training layout, batched
equals one by one, ``max_turns`` bounds the questions. The untrained model
asks (closes a text with ``<eos>``) or writes its caption (``<eot>``) as its
random weights decide; the prompts below make it do both."""

import pytest
import torch

from espnet2.ualm.inference.decoder import batch_prompts
from espnet2.ualm.inference.dialogue import answer_turn, clarify
from espnet2.ualm.testing.decoding import (
    full_forward_hidden,
    greedy_short,
    record_cache,
)
from espnet2.ualm.text.clarify import dialogue_messages
from espnet2.ualm.tokens.tasks import DIALOGUE_TEMPLATE, TASKS

PROMPTS = ("a cat", "rain falling on a tin roof, far away", "dog barks", "some beeps")
TEMPLATE = TASKS.templates[DIALOGUE_TEMPLATE]


def _prompt(builder, prompt, turns=()):
    messages = dialogue_messages(prompt, list(turns))
    return builder.build_example(TEMPLATE, {"messages": messages}, prompt_only=True)


@pytest.fixture(scope="module")
def prompts(builder):
    return [_prompt(builder, p) for p in PROMPTS]


_settings = greedy_short


def user(row, question):
    return f"yes {row}"


def _summary(d):
    codes = None if d.codes is None else d.codes.tolist()
    return d.questions, d.answers, d.rich_caption, codes


@pytest.mark.parametrize("cfg_scale", [None, 3.0])
def test_each_answer_continues_the_cache_as_a_fresh_prefill_would(
    gen, builder, model, prompts, monkeypatch, cfg_scale
):
    """One prefill; each answer grows the cache by exactly its own turn
    (the longest of the batch's, rows without one masked); the state after
    it is one cache-free forward over the conversation in the training
    layout, and what follows equals greedy decoding from a fresh prefill."""
    log = record_cache(monkeypatch)
    settings = _settings(cfg_scale)
    out = clarify(gen, builder, prompts, user, settings, max_turns=1)
    monkeypatch.undo()
    assert len(log.prefills) == 1
    asked = [b for b, d in enumerate(out) if d.turns]
    assert asked  # the random model asks first
    ((width, _),) = log.extends  # one answer each, all in one append
    turns = {b: answer_turn(builder, TEMPLATE, out[b].answers[0]) for b in asked}
    assert width == max(len(t) for t in turns.values())
    (hidden,) = log.extended
    for b in asked:
        d = out[b]
        assert d.turns == 1 and d.rich_caption is not None and d.codes is not None
        fresh = _prompt(builder, PROMPTS[b], zip(d.questions, d.answers))
        # the conversation so far is the prompt, the question and this turn
        assert len(fresh) > len(prompts[b]) + len(turns[b])
        full = full_forward_hidden(model, batch_prompts([fresh]), [])
        assert torch.allclose(hidden[b], full[0, 0], atol=1e-9), b
        (ref,) = gen.generate([fresh], settings, ("text", "audio"))
        rich, audio = ref.segments
        assert rich.text == d.rich_caption and torch.equal(audio.codes, d.codes)
    for b in set(range(len(out))) - set(asked):  # wrote its caption at once
        (ref,) = gen.generate([prompts[b]], settings, ("text", "audio"))
        assert ref.segments[0].text == out[b].rich_caption
        assert torch.equal(ref.segments[1].codes, out[b].codes)


def test_batched_dialogue_equals_one_by_one(gen, builder, prompts):
    settings = _settings(3.0)
    batched = clarify(gen, builder, prompts, user, settings, max_turns=3)
    for b, prompt in enumerate(prompts):
        (alone,) = clarify(
            gen, builder, [prompt], lambda _, q, b=b: user(b, q), settings, 3
        )
        assert _summary(alone) == _summary(batched[b])


@pytest.mark.parametrize("max_turns", [0, 1, 2, 3])
def test_max_turns_bounds_the_questions(gen, builder, prompts, max_turns):
    asked = []

    def record(row, question):
        asked.append((row, question))
        return user(row, question)

    out = clarify(gen, builder, prompts, record, _settings(3.0), max_turns)
    assert len(asked) == sum(d.turns for d in out)
    for b, d in enumerate(out):
        assert d.turns <= max_turns
        assert d.questions == [q for r, q in asked if r == b]
        assert d.answers == [user(b, q) for q in d.questions]
        assert d.rich_caption is not None and d.codes is not None
    if max_turns == 3:  # both paths: asked to the bound, or stopped asking
        assert {d.turns for d in out} > {max_turns}
    with pytest.raises(ValueError, match="max_turns"):
        clarify(gen, builder, prompts, user, _settings(None), -1)


def test_an_empty_answer_is_refused(gen, builder, prompts):
    with pytest.raises(ValueError, match="the user's answer must be non-empty"):
        clarify(gen, builder, prompts, lambda r, q: " ", _settings(None), 2)


def test_force_and_pause_after_reply(gen, t2a_prompts):
    """A row paused at ``<eos>`` can be ended; ``force`` takes paused or
    fresh rows only and fixes the segments, closing the last with ``<eos>``."""
    conv = gen.start(t2a_prompts, _settings(None), None)
    conv.force(range(len(t2a_prompts)), ("text", "audio"))
    results = conv.run(pause_after_reply=True)
    for r in results:
        assert [s.modality for s in r.segments] == ["text", "audio"]
        assert [s.closing for s in r.segments] == ["<eot>", "<eos>"]
    conv.end(range(len(t2a_prompts)))
    with pytest.raises(ValueError, match="row 0 is not paused"):
        conv.force([0], ("audio",))
    text_only = gen.start(t2a_prompts, _settings(None), ("text",))
    with pytest.raises(ValueError, match="audio in a conversation started for text"):
        text_only.force([0], ("audio",))
