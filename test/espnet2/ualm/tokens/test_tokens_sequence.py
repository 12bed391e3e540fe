"""Sequence builder: chat template, streams, delay pattern and masks per task."""

import dataclasses

import pytest
import torch

from espnet2.ualm.tokens.conversation import (
    AudioInputSegment,
    AudioSegment,
    Message,
    TextSegment,
)
from espnet2.ualm.tokens.delay import delay_deinterleave
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.tokens.vocabulary import AudioLayout


def names(vocab, seq, stream=0):
    return [vocab.token_name(i) for i in seq.ids[:, stream].tolist()]


def test_text_to_audio_layout(vocab, tokenizer):
    codes = torch.randint(0, 5, (4, 3), generator=torch.Generator().manual_seed(0))
    seq = SequenceBuilder(vocab, tokenizer).build_example(
        "text_to_audio", {"caption": "hi", "audio": codes}
    )
    prompt = "Generate audio for this caption. hi"
    n_prompt = 1 + 2 + len(prompt) + 1  # bos, <user><text>, text, <eos>
    stream0 = names(vocab, seq)
    assert stream0[:3] == ["<bos>", "<user>", "<text>"]
    assert stream0[n_prompt - 1 : n_prompt + 2] == ["<eos>", "<assistant>", "<audio>"]
    block = seq.ids[n_prompt + 2 :]
    assert len(seq) == n_prompt + 2 + 4 + 3  # T_a + K positions for the audio block
    # stream 0 emits <eos> right after the last codebook-0 code, then pads
    assert stream0[n_prompt + 2 + 4] == "<eos>"
    assert stream0[-2:] == ["<audio_pad_0>"] * 2
    frames = delay_deinterleave(block)
    assert torch.equal(vocab.ids_to_codes(frames[:4]), codes)
    assert frames[4, 0] == vocab.eos_id
    assert frames[4, 1:].tolist() == list(vocab.audio_pad_ids()[1:])
    # text positions leave the other streams at <pad>
    assert not bool(seq.ids[: n_prompt + 2, 1:].any())
    # targets: the <audio> marker, T_a*K codes, the closing <eos>
    assert not bool(seq.loss_mask[: n_prompt + 1].any())
    assert int(seq.loss_mask.sum()) == 1 + 4 * 3 + 1
    assert int(seq.loss_mask[:, 0].sum()) == 1 + 4 + 1
    assert bool(seq.loss_mask[n_prompt + 1, 0])  # <audio> marker
    # CFG condition: everything before the assistant's modality marker
    assert seq.condition_mask.tolist() == [True] * (n_prompt + 1) + [False] * (
        len(seq) - n_prompt - 1
    )
    assert [(t.role, t.modality, t.target) for t in seq.turns] == [
        ("user", "text", False),
        ("assistant", "audio", True),
    ]


def test_audio_caption_layout(vocab, tokenizer):
    example = {"caption": "ok", "audio": AudioInputSegment("clip", 3)}
    seq = SequenceBuilder(vocab, tokenizer).build_example("audio_caption", example)
    stream0 = names(vocab, seq)
    assert stream0[:7] == ["<bos>", "<user>", "<audio_input>"] + [
        "<audio_placeholder>"
    ] * 3 + ["<eot>"]
    assert stream0[7:9] == ["<user>", "<text>"]
    assert stream0[-5:] == [
        "<assistant>",
        "<text>",
        "<text_111>",
        "<text_107>",
        "<eos>",
    ]
    assert [(a.key, a.start, a.num_frames) for a in seq.audio_inputs] == [
        ("clip", 3, 3)
    ]
    assert seq.loss_mask[:, 0].tolist() == [False] * (len(seq) - 4) + [True] * 4
    assert not bool(seq.loss_mask[:, 1:].any()) and not bool(seq.ids[:, 1:].any())
    assert not bool(seq.condition_mask.any())  # understanding tasks have no CFG


def test_multi_turn_dialogue_trains_every_assistant_turn(vocab, tokenizer):
    messages = [
        Message("system", (TextSegment("s"),)),
        Message("user", (TextSegment("a"),)),
        Message("assistant", (TextSegment("b"),)),
        Message("user", (TextSegment("c"),)),
        Message("assistant", (TextSegment("d"),)),
    ]
    seq = SequenceBuilder(vocab, tokenizer).build(messages)
    stream0 = names(vocab, seq)
    assert stream0.count("<eos>") == 5 and "<eot>" not in stream0
    targets = [n for n, m in zip(stream0, seq.loss_mask[:, 0].tolist()) if m]
    assert targets == ["<text>", "<text_98>", "<eos>", "<text>", "<text_100>", "<eos>"]


def test_reasoning_turn_interleaves_text_and_audio(vocab, tokenizer):
    codes = torch.zeros(2, 3, dtype=torch.long)
    messages = [
        Message("user", (TextSegment("x"),)),
        Message(
            "assistant",
            (
                TextSegment("p"),
                AudioSegment(codes),
                AudioInputSegment("v1", 2),
                TextSegment("q"),
                AudioSegment(codes + 1),
            ),
        ),
    ]
    seq = SequenceBuilder(vocab, tokenizer).build(messages, cfg_dropout=True)
    turns = seq.turns[1:]
    assert [t.modality for t in turns] == [
        "text",
        "audio",
        "audio_input",
        "text",
        "audio",
    ]
    assert [t.target for t in turns] == [True, True, False, True, True]
    closings = [
        seq.ids[t.end - 1 if t.modality != "audio" else t.end - 3, 0] for t in turns
    ]
    assert [vocab.token_name(int(c)) for c in closings] == ["<eot>"] * 4 + ["<eos>"]
    listen = turns[2]
    assert not bool(seq.loss_mask[listen.start : listen.end].any())
    assert seq.audio_inputs[0].start == listen.start + 2
    # listening to its own audio is part of the answer, not the condition
    assert not bool(seq.condition_mask[listen.start + 1 : listen.end].any())


def test_loss_region_all(vocab, tokenizer):
    example = {"caption": "ok", "audio": AudioInputSegment("clip", 3)}
    seq = SequenceBuilder(vocab, tokenizer, loss_region="all").build_example(
        "audio_caption", example
    )
    mask0 = seq.loss_mask[:, 0]
    placeholders = seq.ids[:, 0] == vocab.audio_placeholder_id
    assert not bool(mask0[0]) and not bool((mask0 & placeholders).any())
    assert int(mask0.sum()) == len(seq) - 1 - 3


def test_generation_prompt_is_a_prefix_of_the_training_sequence(vocab, tokenizer):
    builder = SequenceBuilder(vocab, tokenizer)
    example = {"caption": "rain", "audio": torch.zeros(3, 3, dtype=torch.long)}
    full = builder.build_example("text_to_audio", example)
    prompt = builder.build_example(
        "text_to_audio", {"caption": "rain"}, prompt_only=True
    )
    assert names(vocab, prompt)[-1] == "<assistant>"
    assert torch.equal(prompt.ids, full.ids[: len(prompt)])


def test_builder_errors(vocab, tokenizer):
    from espnet2.ualm.tokens.vocabulary import UALMVocabulary

    with pytest.raises(ValueError, match="text tokenizer has 128 ids"):
        SequenceBuilder(UALMVocabulary(100, 3, 5), tokenizer)
    with pytest.raises(ValueError, match="loss_region"):
        SequenceBuilder(vocab, tokenizer, loss_region="user")
    builder = SequenceBuilder(vocab, tokenizer)
    bad = [Message("assistant", (AudioSegment(torch.zeros(2, 4, dtype=torch.long)),))]
    with pytest.raises(ValueError, match="4 codebooks"):
        builder.build(bad)


def _example(task, vocab):
    codes = torch.randint(0, 5, (3, 3), generator=torch.Generator().manual_seed(0))
    listen = AudioInputSegment("clip", 2)
    dialogue = [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "text", "text": "q1"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a1"}]},
    ]
    reasoning = [
        {"role": "user", "content": [{"type": "text", "text": "rain"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "plan"},
                {"type": "audio", "audio": "v1"},
                {"type": "audio_input", "audio": "v1"},
                {"type": "text", "text": "ok"},
            ],
        },
    ]
    return {
        "text_to_audio": {"caption": "c", "audio": codes},
        "audio_caption": {"caption": "c", "audio": listen},
        "asr": {"text": "t", "audio": listen},
        "audio_qa": {"question": "q?", "answer": "a", "audio": listen},
        "rich_text_to_audio": {"caption": "c", "rich_caption": "r", "audio": codes},
        "text_dialogue": {"messages": dialogue},
        "audio_dialogue": {
            "messages": dialogue[:1]
            + [
                {
                    "role": "user",
                    "content": [{"type": "audio", "audio": "clip"}]
                    + dialogue[1]["content"],
                }
            ]
            + dialogue[2:],
            "audio_input_frames": {"clip": 2},
        },
        "reasoning": {
            "messages": reasoning,
            "audio_codes": {"v1": codes},
            "audio_input_frames": {"v1": 2},
        },
    }[task]


@pytest.mark.parametrize(
    "task",
    [
        "text_to_audio",
        "audio_caption",
        "asr",
        "audio_qa",
        "rich_text_to_audio",
        "text_dialogue",
        "audio_dialogue",
        "reasoning",
    ],
)
def test_every_builtin_task_builds_a_consistent_sequence(task, vocab, tokenizer):
    from espnet2.ualm.tokens.tasks import TASKS

    seq = SequenceBuilder(vocab, tokenizer).build_example(task, _example(task, vocab))
    assert seq.ids.shape == seq.loss_mask.shape and seq.ids.shape[1] == 3
    assert bool(((seq.ids >= 0) & (seq.ids < vocab.size)).all())
    assert seq.ids[0, 0] == vocab.bos_id
    closings = [i for i in seq.ids[:, 0].tolist() if i in (vocab.eos_id, vocab.eot_id)]
    assert len(closings) == len(seq.turns) and closings[-1] == vocab.eos_id
    # targets only inside the assistant's turns, never on placeholders
    target_positions = seq.loss_mask.any(-1).nonzero().flatten().tolist()
    assistant = [t for t in seq.turns if t.role == "assistant"]
    assert target_positions and all(
        any(t.start < p < t.end for t in assistant) for p in target_positions
    )
    placeholders = seq.ids[:, 0] == vocab.audio_placeholder_id
    assert not bool((seq.loss_mask[:, 0] & placeholders).any())
    assert int(placeholders.sum()) == sum(a.num_frames for a in seq.audio_inputs)
    # every 3 audio targets weigh as one stream-0 target
    audio = vocab.is_audio(seq.ids) & seq.loss_mask
    n0 = int(seq.loss_mask[:, 0].sum())
    weight = float((seq.loss_mask & ~audio).sum()) + float(audio.sum()) / 3
    assert weight == pytest.approx(n0)
    assert bool(seq.condition_mask.any()) == TASKS.templates[task].cfg_dropout


@pytest.mark.parametrize("delays", [None, (0, 0, 0)])
def test_text_to_audio_layout_closed_after_the_block(vocab, tokenizer, delays):
    """``AudioLayout(closing="after")`` (ESPnet-SpeechLM's): the delayed
    codes, holes as targets, then ``<eos>`` with id 0 in the other streams;
    the same positions as the default layout."""
    layout = AudioLayout(delays=delays, closing="after")
    after = dataclasses.replace(vocab, audio_layout=layout)
    codes = torch.randint(0, 5, (4, 3), generator=torch.Generator().manual_seed(0))
    example = {"caption": "hi", "audio": codes}
    seq = SequenceBuilder(after, tokenizer).build_example("text_to_audio", example)
    default = SequenceBuilder(vocab, tokenizer).build_example("text_to_audio", example)
    start = seq.turns[-1].start + 2  # <assistant> <audio>
    block, mask = seq.ids[start:], seq.loss_mask[start:]
    delay = max(after.audio_delays)
    assert len(block) == 4 + delay + 1
    if delays is not None:
        assert len(seq) == len(default) - (3 - 1)
    else:
        assert len(seq) == len(default)
        assert not torch.equal(seq.ids, default.ids)
    assert block[-1].tolist() == [vocab.eos_id, 0, 0]
    frames = delay_deinterleave(block[:-1], delays=after.audio_delays)
    assert torch.equal(vocab.ids_to_codes(frames), codes)
    assert bool(mask[:-1].all()) and mask[-1].tolist() == [True, False, False]
    assert torch.equal(seq.ids[:start], default.ids[:start])
