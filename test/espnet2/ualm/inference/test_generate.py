"""Generation on a tiny random UALM: layout, masks, CFG, cache, batching."""

import pytest
import torch

from espnet2.ualm.inference import generate as generate_module
from espnet2.ualm.inference.decoder import batch_prompts, unconditional_ids
from espnet2.ualm.inference.generate import UALMGenerator
from espnet2.ualm.inference.sampling import GREEDY, SamplingConfig
from espnet2.ualm.inference.settings import DecodeSettings, check_plan
from espnet2.ualm.testing.decoding import full_forward_hidden
from espnet2.ualm.tokens.delay import delay_interleave
from espnet2.ualm.tokens.tasks import get_task_template

K = 4  # the tiny model's codebooks (conftest)
# short replies keep every test fast
SHORT = dict(max_audio_seconds=0.32, max_text_tokens=6)
GREEDY_ALL = dict(text_sampling=GREEDY, audio_sampling=GREEDY)
HOT = SamplingConfig(temperature=2.0)


@pytest.fixture(autouse=True)
def _geometry(vocab, gen):
    assert vocab.n_codebooks == K and gen.frame_rate == 25.0


def _seed(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _audio_block(vocab, result, index: int = -1) -> torch.Tensor:
    """The delayed frames of the reply's audio segment: after its marker."""
    markers = (result.ids[:, 0] == vocab.modality_id("audio")).nonzero().flatten()
    start = int(markers[index]) + 1
    n_frames = result.segments[index].codes.shape[0]
    return result.ids[start : start + n_frames + K]


def _t2a_messages(caption: str, result):
    messages = get_task_template("text_to_audio").render(
        {"caption": caption}, prompt_only=True
    )
    return messages + [result.as_message()]


def test_unconditional_prompt_is_all_pad_of_the_same_length(t2a_prompts):
    for prompt in t2a_prompts:
        uncond = unconditional_ids(prompt)
        assert uncond.shape == prompt.ids.shape and not bool(uncond.any())


def test_prompts_are_left_padded(t2a_prompts):
    batch = batch_prompts(t2a_prompts, with_unconditional=True)
    lengths = [len(p) for p in t2a_prompts]
    length = max(lengths)
    assert batch.ids.shape == (6, length, K)
    for r in range(6):
        n = lengths[r % 3]
        assert batch.attention_mask[r].tolist() == [0] * (length - n) + [1] * n
        assert batch.position_ids[r, -n:].tolist() == list(range(n))
        if r < 3:
            assert torch.equal(batch.ids[r, -n:], t2a_prompts[r].ids)
    assert not bool(batch.ids[3:].any())


def test_audio_reply_shapes_and_builder_layout(
    gen, builder, captions, t2a_prompts, vocab
):
    results = gen.generate(t2a_prompts, modalities="audio", generator=_seed(0), **SHORT)
    for caption, prompt, result in zip(captions, t2a_prompts, results):
        (segment,) = result.segments
        assert segment.modality == "audio" and segment.closing == "<eos>"
        n_frames = segment.codes.shape[0]
        assert segment.codes.shape == (n_frames, K) and n_frames <= 8
        assert result.ids.shape == (1 + n_frames + K, K)
        # the reply continues the prompt exactly as the builder lays it out
        full = builder.build(_t2a_messages(caption, result))
        assert torch.equal(full.ids, torch.cat([prompt.ids, result.ids]))


def test_every_code_lies_in_its_codebook(gen, t2a_prompts, vocab):
    results = gen.generate(
        t2a_prompts,
        modalities="audio",
        audio_sampling=HOT,
        min_audio_seconds=0.2,
        generator=_seed(1),
        **SHORT,
    )
    for result in results:
        codes = result.segments[0].codes
        assert bool(((codes >= 0) & (codes < vocab.codebook_size)).all())
        block = _audio_block(vocab, result)
        for k in range(1, K):
            start, stop = vocab.codebook_range(k)
            assert bool(((block[:, k] >= start) & (block[:, k] < stop)).all())


def test_delay_structure(gen, t2a_prompts, vocab):
    results = gen.generate(
        t2a_prompts, modalities="audio", audio_sampling=HOT, generator=_seed(2), **SHORT
    )
    pads = vocab.audio_pad_ids()
    for result in results:
        block = _audio_block(vocab, result)
        codes = result.segments[0].codes
        n_frames = codes.shape[0]
        for k in range(1, K):
            assert block[:k, k].tolist() == [pads[k]] * k  # first k steps: pad
        assert int(block[n_frames, 0]) == vocab.eos_id
        assert block[n_frames + 1 :, 0].tolist() == [pads[0]] * (K - 1)
        closing = torch.tensor([[vocab.eos_id, *pads[1:]]])
        frames = torch.cat([vocab.codes_to_ids(codes), closing])
        assert torch.equal(block, delay_interleave(frames, pads))


def test_cfg_scale_one_is_the_conditional_model(gen, t2a_prompts):
    config = DecodeSettings(**SHORT, **GREEDY_ALL)
    guided = gen.generate(t2a_prompts, config, "audio", cfg_scale=1.0)
    plain = gen.generate(t2a_prompts, config, "audio", cfg_scale=None)
    for a, b in zip(guided, plain):
        assert torch.equal(a.ids, b.ids)


def test_cfg_scale_zero_is_the_unconditional_model(gen, t2a_prompts):
    config = DecodeSettings(**SHORT, **GREEDY_ALL)
    guided = gen.generate(t2a_prompts, config, "audio", cfg_scale=0.0)
    uncond = gen.generate(
        [unconditional_ids(p) for p in t2a_prompts], config, "audio", cfg_scale=None
    )
    for a, b in zip(guided, uncond):
        assert torch.equal(a.ids, b.ids)
    conditional = gen.generate(t2a_prompts, config, "audio", cfg_scale=None)
    assert any(not torch.equal(a.ids, b.ids) for a, b in zip(guided, conditional))


@pytest.mark.parametrize("backend", ["hf", "fast"])
@pytest.mark.parametrize("modalities", ["audio", "text", None])
def test_decode_steps_equal_one_full_forward(
    model, tokenizer, t2a_prompts, monkeypatch, backend, modalities
):
    """Every hidden state the loop computed step by step (KV cache, left
    padding, finished rows fed pads) is what one forward over the prompt and
    the reply computes."""
    gen = UALMGenerator(model, tokenizer, frame_rate=25.0, backend=backend)
    seen = []
    for name in ("prefill", "step"):
        method = getattr(generate_module.Decoder, name)

        def spy(self, *args, _method=method):
            hidden = _method(self, *args)
            seen.append(hidden)
            return hidden

        monkeypatch.setattr(generate_module.Decoder, name, spy)
    config = DecodeSettings(max_segments=3, cfg_scale=None, **SHORT, **GREEDY_ALL)
    results = gen.generate(t2a_prompts, config, modalities)
    batch = batch_prompts(t2a_prompts)
    frames = []
    for t in range(len(seen) - 1):
        frame = torch.zeros(len(results), K, dtype=torch.long)
        for b, r in enumerate(results):
            if t < len(r.ids):
                frame[b] = r.ids[t]
        frames.append(frame)
    reference = full_forward_hidden(model, batch, frames)
    assert torch.allclose(torch.stack(seen), reference, atol=1e-10)
    assert max(len(r.ids) for r in results) == len(seen)


@pytest.mark.parametrize(
    "modalities,cfg_scale", [("audio", 3.0), ("text", None), (("text", "audio"), 3.0)]
)
def test_batch_equals_one_by_one(gen, t2a_prompts, modalities, cfg_scale):
    config = DecodeSettings(cfg_scale=cfg_scale, **SHORT, **GREEDY_ALL)
    lengths = {len(p) for p in t2a_prompts}
    assert len(lengths) == len(t2a_prompts)  # different lengths: left padding
    batched = gen.generate(t2a_prompts, config, modalities)
    for prompt, result in zip(t2a_prompts, batched):
        (alone,) = gen.generate([prompt], config, modalities)
        assert torch.equal(result.ids, alone.ids)
        assert len(result.segments) == len(alone.segments)


@pytest.mark.parametrize("modalities", ["audio", None])
def test_looking_at_the_rows_every_step_changes_nothing(
    gen, t2a_prompts, monkeypatch, modalities
):
    """Between the host's looks at the row state (``_horizon``) the loop
    moves the rows by the reduced update; looking, and updating fully, at
    every step gives the same sampled replies."""
    config = DecodeSettings(
        max_segments=3,
        min_audio_seconds=0.2,
        max_audio_seconds=0.8,
        audio_sampling=HOT,
        text_sampling=HOT,
        max_text_tokens=6,
    )
    reduced = []
    advance = generate_module.Conversation._advance

    def spy(self, frame, pause_after_audio, may_change=True):
        reduced.append(not may_change)
        return advance(self, frame, pause_after_audio, may_change)

    monkeypatch.setattr(generate_module.Conversation, "_advance", spy)
    results = {}
    for every_step in (False, True):
        if every_step:
            monkeypatch.setattr(
                generate_module.Conversation, "_horizon", lambda self, view: 1
            )
        results[every_step] = [
            gen.generate(t2a_prompts, config, modalities, generator=_seed(seed))
            for seed in range(3)
        ]
        if not every_step:
            assert sum(reduced) > 0  # the reduced update did run
    for a, b in zip(results[False], results[True]):
        for x, y in zip(a, b):
            assert torch.equal(x.ids, y.ids)
            assert [s.closing for s in x.segments] == [s.closing for s in y.segments]


def test_same_seed_same_reply(gen, t2a_prompts):
    config = DecodeSettings(audio_sampling=HOT, text_sampling=HOT, **SHORT)
    a = gen.generate(t2a_prompts, config, generator=_seed(5))
    b = gen.generate(t2a_prompts, config, generator=_seed(5))
    c = gen.generate(t2a_prompts, config, generator=_seed(6))
    assert all(torch.equal(x.ids, y.ids) for x, y in zip(a, b))
    assert any(not torch.equal(x.ids, y.ids) for x, y in zip(a, c))


@pytest.mark.parametrize("frame_rate,expected", [(25.0, 5), (50.0, 10)])
def test_min_equal_max_seconds_gives_that_length(
    model, tokenizer, t2a_prompts, frame_rate, expected
):
    gen = UALMGenerator(model, tokenizer, frame_rate=frame_rate)
    results = gen.generate(
        t2a_prompts,
        modalities="audio",
        min_audio_seconds=0.2,
        max_audio_seconds=0.2,
        audio_sampling=HOT,
        generator=_seed(7),
    )
    assert [r.segments[0].codes.shape[0] for r in results] == [expected] * 3


def test_min_and_max_seconds_bound_the_length(gen, t2a_prompts):
    lengths = []
    for seed in range(3):
        results = gen.generate(
            t2a_prompts,
            modalities="audio",
            min_audio_seconds=0.08,  # 2 frames at 25 Hz
            max_audio_seconds=0.3,  # 7.5 -> 7 frames
            audio_sampling=HOT,
            generator=_seed(seed),
        )
        lengths += [r.segments[0].codes.shape[0] for r in results]
        # a clip closed by the maximum is marked cut; one the model closed is not
        assert all(
            r.segments[0].truncated == (r.segments[0].codes.shape[0] == 7)
            for r in results
        )
    assert min(lengths) >= 2 and max(lengths) <= 7


@pytest.mark.parametrize("modality", ["audio", "text"])
def test_forced_modality(gen, t2a_prompts, vocab, modality):
    results = gen.generate(t2a_prompts, modalities=modality, **SHORT, **GREEDY_ALL)
    for result in results:
        assert [s.modality for s in result.segments] == [modality]
        assert int(result.ids[0, 0]) == vocab.modality_id(modality)
    value = results[0].segments[0].value
    assert isinstance(value, torch.Tensor if modality == "audio" else str)


def test_reply_of_text_then_audio(gen, builder, captions, t2a_prompts, vocab):
    results = gen.generate(
        t2a_prompts, modalities=("text", "audio"), generator=_seed(8), **SHORT
    )
    for caption, prompt, result in zip(captions, t2a_prompts, results):
        text, audio = result.segments
        assert isinstance(text.value, str) and text.closing == "<eot>"
        assert audio.value.shape[1] == K and audio.closing == "<eos>"
        full = builder.build(_t2a_messages(caption, result))
        assert torch.equal(full.ids, torch.cat([prompt.ids, result.ids]))


def test_model_chooses_modalities_and_segments(
    gen, builder, captions, t2a_prompts, vocab
):
    markers = {vocab.modality_id("text"), vocab.modality_id("audio")}
    for seed in range(2):
        results = gen.generate(
            t2a_prompts,
            max_segments=3,
            text_sampling=HOT,
            audio_sampling=HOT,
            generator=_seed(seed),
            **SHORT,
        )
        for caption, prompt, result in zip(captions, t2a_prompts, results):
            assert int(result.ids[0, 0]) in markers
            assert 1 <= len(result.segments) <= 3
            closings = [s.closing for s in result.segments]
            assert closings == ["<eot>"] * (len(closings) - 1) + ["<eos>"]
            full = builder.build(_t2a_messages(caption, result))
            assert torch.equal(full.ids, torch.cat([prompt.ids, result.ids]))


def test_text_bounds(gen, t2a_prompts):
    results = gen.generate(
        t2a_prompts,
        modalities="text",
        min_text_tokens=3,
        max_text_tokens=4,
        text_sampling=HOT,
        generator=_seed(9),
    )
    assert all(3 <= len(r.segments[0].token_ids) <= 4 for r in results)
    assert [r.segments[0].truncated for r in results] == [
        len(r.segments[0].token_ids) == 4 for r in results
    ]


def test_a_segment_cut_at_its_bound_is_marked(gen, t2a_prompts):
    """min == max: every segment is closed by its bound, not by the model."""
    text = gen.generate(
        t2a_prompts, modalities="text", min_text_tokens=3, max_text_tokens=3,
        text_sampling=HOT, generator=_seed(9),
    )  # fmt: skip
    audio = gen.generate(
        t2a_prompts, modalities="audio", min_audio_seconds=0.2,
        max_audio_seconds=0.2, audio_sampling=HOT, generator=_seed(9),
    )  # fmt: skip
    assert all(r.segments[0].truncated for r in text + audio)


def test_refusals(gen, model, t2a_prompts):
    with pytest.raises(ValueError, match="<assistant>"):
        gen.generate([t2a_prompts[0].ids[:-1]])
    with pytest.raises(ValueError, match="frame_rate"):
        UALMGenerator(model).generate(t2a_prompts)
    with pytest.raises(ValueError, match="cannot be generated"):
        check_plan("audio_input")
    with pytest.raises(ValueError, match="cannot be generated"):
        gen.generate(t2a_prompts, modalities=("text", "audio_input"))
    # text only needs no frame rate
    (result,) = UALMGenerator(model).generate(t2a_prompts[:1], modalities="text")
    assert isinstance(result.segments[0].value, list)  # no tokenizer: token ids


def test_unconditional_rows_get_the_reply_but_not_its_role_tokens(
    gen, t2a_prompts, vocab, monkeypatch
):
    """Training pads role tokens with the condition; the CFG branch does too."""
    fed = []
    step = generate_module.Decoder.step

    def spy(self, frames, hole=None):
        fed.append(frames.clone())
        return step(self, frames, hole)

    monkeypatch.setattr(generate_module.Decoder, "step", spy)
    results = gen.generate(
        t2a_prompts, modalities=("text", "audio"), cfg_scale=2.0, **SHORT
    )
    n = len(t2a_prompts)
    assistant = vocab.role_id("assistant")
    for b, result in enumerate(results):
        cond = torch.stack([f[b] for f in fed])[: len(result.ids)]
        uncond = torch.stack([f[n + b] for f in fed])[: len(result.ids)]
        assert torch.equal(cond, result.ids[: len(cond)])
        is_role = cond[:, 0] == assistant
        assert int(is_role.sum()) == 1  # between the text and the audio turn
        assert not bool(uncond[is_role].any())
        assert torch.equal(uncond[~is_role], cond[~is_role])
