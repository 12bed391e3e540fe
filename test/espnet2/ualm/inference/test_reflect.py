"""Self-reflection's loop on the tiny random model: it continues the one KV
cache (no re-prefill), lays the conversation out as training does, hears
the waveform (not the codes), is batched, stops early and is bounded.

The codec is a stand-in (``fake_codec``: codes -> a deterministic waveform)
and the early stop is driven by a stub ``stop`` rule: an untrained model
writes no parseable critique. ``test_pipeline.py`` runs ``UALM.reflect``
with the tiny packed model's real codec."""

import pytest
import torch

from espnet2.ualm.inference.decoder import batch_prompts
from espnet2.ualm.inference.reflect import (
    REFLECTION_TEMPLATE,
    check_reflection_template,
    listening_turn,
    reflect,
    reflection_plan,
)
from espnet2.ualm.testing.decoding import (
    full_forward_hidden,
    greedy_short,
    record_cache,
)
from espnet2.ualm.tokens.conversation import AudioInputSegment
from espnet2.ualm.tokens.sequence import BuiltSequence
from espnet2.ualm.tokens.tasks import REFLECTION_LISTEN, TASKS

SAMPLES_PER_FRAME = 640  # 16 kHz at the test's 25 frames per second
KEYS = ("cat", "rain", "dog")


def fake_codec(codes: torch.Tensor) -> torch.Tensor:
    """A waveform that depends on every code (the codec's stand-in)."""
    t = torch.arange(codes.shape[0] * SAMPLES_PER_FRAME, dtype=torch.float64)
    freq = 1.0 + codes.double().repeat_interleave(SAMPLES_PER_FRAME, 0).sum(-1)
    return 0.3 * torch.sin(t * freq / 100.0)


def silence(codes: torch.Tensor) -> torch.Tensor:
    return torch.zeros(codes.shape[0] * SAMPLES_PER_FRAME, dtype=torch.float64)


@pytest.fixture(scope="module")
def prompts(builder, captions):
    return [
        builder.build_example(REFLECTION_TEMPLATE, {"caption": c}, prompt_only=True)
        for c in captions
    ]


_settings = greedy_short


def never(critique):
    return False


def _summary(r):
    return (
        r.rich_caption,
        [(a.codes.tolist(), a.heard_caption, a.critique) for a in r.attempts],
        r.stopped_early,
    )


def test_the_template_is_the_loops_layout():
    template = TASKS.templates[REFLECTION_TEMPLATE]
    check_reflection_template(template)
    with pytest.raises(ValueError, match="a reflection answer is"):
        check_reflection_template(TASKS.templates["rich_text_to_audio"])
    assert reflection_plan(2) == ("text", "audio") + ("text", "text", "audio") * 2
    assert TASKS.get("reflect").name == "self_reflection"


@pytest.mark.parametrize("cfg_scale", [None, 3.0])
def test_continuing_the_cache_equals_prefilling_the_training_layout(
    gen, builder, model, prompts, captions, monkeypatch, cfg_scale
):
    """One prefill; each listening turn grows the cache by exactly its own
    positions; the state after it is that of one forward over the whole
    conversation as the template lays it out for training, and what follows
    equals greedy decoding from a fresh prefill of it."""
    log = record_cache(monkeypatch)
    settings = _settings(cfg_scale)
    out = reflect(gen, builder, prompts, fake_codec, settings, 1, keys=KEYS, stop=never)
    assert len(log.prefills) == 1
    (grown,) = log.extends
    turns = []
    for r, key in zip(out, KEYS):
        wav = fake_codec(r.attempts[0].codes)
        frames = model.audio_encoder.num_frames(wav.numel())
        turns.append(
            listening_turn(
                builder,
                TASKS.templates[REFLECTION_TEMPLATE],
                f"{key}/{REFLECTION_LISTEN}1",
                frames,
            )
        )
    assert grown == (max(len(t) for t in turns),) * 2
    monkeypatch.undo()
    template = TASKS.templates[REFLECTION_TEMPLATE]
    fresh, waves = [], []
    for r, key, caption in zip(out, KEYS, captions):
        assert len(r.attempts) == 2 and r.rounds == 1
        v1, v2 = r.attempts
        wav = fake_codec(v1.codes)
        listened = f"{key}/{REFLECTION_LISTEN}1"
        example = {
            "caption": caption,
            "rich_caption": r.rich_caption,
            "attempt": v1.codes,
            REFLECTION_LISTEN: AudioInputSegment(
                listened, model.audio_encoder.num_frames(wav.numel())
            ),
            "heard_caption": v1.heard_caption,
            "critique": v1.critique,
            "audio": v2.codes,
        }
        built = builder.build(template.render(example), cfg_dropout=True)
        listen_turn = next(t for t in built.turns if t.modality == "audio_input")
        end = listen_turn.end + 1  # the next turn's <assistant>
        fresh.append(
            BuiltSequence(
                built.ids[:end],
                built.loss_mask[:end],
                built.condition_mask[:end],
                built.audio_inputs,
                (),
            )
        )
        waves.append({listened: wav})
    # the same logits: the state after the listening turn is one forward,
    # no cache, over the whole conversation so far in the training layout
    (hidden,) = log.extended
    for b, (prefix, wave) in enumerate(zip(fresh, waves)):
        full = full_forward_hidden(model, batch_prompts([prefix], wave), [])
        assert torch.allclose(hidden[b], full[0, 0], atol=1e-9), b
    ref = gen.generate(fresh, settings, ("text", "text", "audio"), waves)
    for r, want in zip(out, ref):
        heard, critique, audio = want.segments
        v1, v2 = r.attempts
        assert (v1.heard_caption, v1.critique) == (heard.text, critique.text)
        assert torch.equal(v2.codes, audio.codes)


def test_batched_reflection_equals_one_by_one(gen, builder, prompts):
    settings = _settings(3.0)
    batched = reflect(gen, builder, prompts, fake_codec, settings, 1, stop=never)
    for b, prompt in enumerate(prompts):
        (alone,) = reflect(
            gen, builder, [prompt], fake_codec, settings, 1, keys=[str(b)], stop=never
        )
        assert _summary(alone) == _summary(batched[b])


def test_the_caption_of_an_attempt_hears_its_waveform(gen, builder, prompts):
    """The same codes decoded to another waveform (silence) change what the
    model writes about them: the listening turn is the waveform, re-encoded."""
    settings = _settings(None)
    heard = reflect(gen, builder, prompts, fake_codec, settings, 1, stop=never)
    deaf = reflect(gen, builder, prompts, silence, settings, 1, stop=never)
    for a, b in zip(heard, deaf):
        assert a.rich_caption == b.rich_caption
        assert torch.equal(a.attempts[0].codes, b.attempts[0].codes)
    assert any(
        a.attempts[0].heard_caption != b.attempts[0].heard_caption
        for a, b in zip(heard, deaf)
    )


def test_a_row_stops_when_its_critique_finds_no_mismatch_and_rounds_are_bounded(
    gen, builder, prompts
):
    """A stub rule stops the second row at its first critique (the tiny model
    writes no parseable critique); the others go on for ``max_rounds``,
    exactly as if nobody had stopped."""
    settings = _settings(3.0)
    free = reflect(gen, builder, prompts, fake_codec, settings, 2, stop=never)
    seen = []

    def stop_second(critique):
        seen.append(critique)
        return len(seen) == 2  # the second live row at the first round

    out = reflect(gen, builder, prompts, fake_codec, settings, 2, stop=stop_second)
    assert len(seen) == 3 + 2  # every row at round 1, the two left at round 2
    assert out[1].stopped_early and len(out[1].attempts) == 1 and out[1].rounds == 1
    assert out[1].final.critique == free[1].attempts[0].critique
    for b in (0, 2):
        assert not out[b].stopped_early
        assert len(out[b].attempts) == 3 and out[b].rounds == 2
        assert out[b].final.critique is None  # the last attempt is not heard
        assert _summary(out[b]) == _summary(free[b])
    (none,) = reflect(gen, builder, prompts[:1], fake_codec, settings, 0)
    assert len(none.attempts) == 1 and none.rounds == 0
    with pytest.raises(ValueError, match="max_rounds"):
        reflect(gen, builder, prompts, fake_codec, settings, -1)


def test_only_paused_rows_can_be_ended(gen, prompts):
    conv = gen.start(prompts, _settings(None), ("text", "audio"))
    with pytest.raises(ValueError, match="row 0 is not paused"):
        conv.end([0])
    conv.run()
    with pytest.raises(ValueError, match="row 1 is not paused \\(DONE\\)"):
        conv.end([1])
