"""The Python API: every task, per-item errors that spare the batch, batched
== one-by-one under greedy decoding, and the enhancer on the output path."""

import numpy as np
import pytest
import soundfile
import torch

from espnet2.ualm import UALM
from espnet2.ualm.inference.pipeline import DecodeSettings
from espnet2.ualm.inference.requests import Request


@pytest.fixture(scope="module")
def ualm(packed_dir):
    return UALM.from_pretrained(packed_dir)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "beep.wav"
    t = np.arange(8000) / 16000
    soundfile.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    return str(path)


def test_every_task_answers(ualm, clip):
    audio = ualm.generate_audio(["two high beeps"])[0]
    assert audio.ok and audio.codes.shape[1] == ualm.vocab.n_codebooks
    assert audio.sample_rate == ualm.codec.sample_rate
    assert audio.audio.ndim == 1 and audio.audio.size > 0
    rich = ualm.generate_audio_with_reasoning(["a beep"])[0]
    assert rich.ok and rich.text is not None and rich.codes is not None
    for out in (
        ualm.caption([clip])[0],
        ualm.transcribe([(np.zeros(4000, np.float32), 8000)])[0],
        ualm.answer([(clip, "How many sounds?")])[0],
    ):
        assert out.ok, out.error
        assert isinstance(out.text, str) and out.codes is None
    chat = ualm.chat(
        [
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "audio", "audio": "a"},
                        {"type": "text", "text": "How many sounds?"},
                    ],
                }
            ]
        ],
        audio={"a": clip},
        modalities=("text", "audio"),
    )[0]
    assert chat.ok, chat.error
    assert [s.modality for s in chat.segments] == ["text", "audio"]


def test_bad_items_get_errors_and_the_rest_completes(ualm, tmp_path, clip):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    requests = [
        Request("good1", "text_to_audio", {"caption": "one low beep"}),
        Request("empty", "text_to_audio", {"caption": "   "}),
        Request("unknown", "karaoke", {"caption": "x"}),
        Request("long", "text_to_audio", {"caption": "beep " * 2000}),
        Request("good2", "asr", {"audio": clip}),
        Request("unreadable", "asr", {"audio": str(broken)}),
        Request("missing", "asr", {"audio": str(tmp_path / "nope.wav")}),
        Request("nofield", "asr", {}),
    ]
    outputs = ualm.run(requests)
    by_id = {o.id: o for o in outputs}
    assert [o.id for o in outputs] == [r.id for r in requests]
    assert by_id["good1"].ok and by_id["good2"].ok
    assert "empty caption" in by_id["empty"].error
    assert "unknown task 'karaoke'" in by_id["unknown"].error
    assert "exceeds the model's" in by_id["long"].error
    assert "broken.wav unreadable" in by_id["unreadable"].error
    assert "nope.wav unreadable" in by_id["missing"].error
    assert "missing field 'audio'" in by_id["nofield"].error
    for key in ("empty", "unknown", "long", "unreadable", "missing", "nofield"):
        assert by_id[key].error.startswith(f"item '{key}'")


def test_a_failure_inside_generation_spares_the_batch(ualm, monkeypatch):
    real = ualm._generate

    def flaky(prepared):
        if any(p.request.id == "bad" for p in prepared):
            raise RuntimeError("boom")
        return real(prepared)

    monkeypatch.setattr(ualm, "_generate", flaky)
    requests = [
        Request(i, "text_to_audio", {"caption": c})
        for i, c in (("a", "one beep"), ("bad", "two beeps"), ("c", "a hum"))
    ]
    outputs = ualm.run(requests)
    assert outputs[0].ok and outputs[2].ok
    assert "RuntimeError: boom" in outputs[1].error


def test_batched_equals_one_by_one_under_greedy(ualm, clip):
    captions = ["one low beep", "three high beeps in a row, then silence", "hum"]
    greedy = dict(audio_sampling={"greedy": True})
    batched = ualm.generate_audio(captions, batch_size=3, **greedy)
    for caption, out in zip(captions, batched):
        alone = ualm.generate_audio([caption], batch_size=1, **greedy)[0]
        assert torch.equal(alone.codes, out.codes)
    texts = ualm.caption([clip, (np.zeros(3000), 16000)], batch_size=2)
    for audio, out in zip([clip, (np.zeros(3000), 16000)], texts):
        assert ualm.caption([audio], batch_size=1)[0].text == out.text


def test_sampling_is_reproducible_for_a_seed(ualm):
    a = ualm.generate_audio(["two beeps"], seed=7)[0]
    b = ualm.generate_audio(["two beeps"], seed=7)[0]
    assert torch.equal(a.codes, b.codes)


def test_enhancer_choice_changes_the_delivered_audio(ualm):
    plain = ualm.generate_audio(["one beep"], enhancer="none")[0]
    stereo = ualm.generate_audio(["one beep"], enhancer="resample")[0]
    assert torch.equal(plain.codes, stereo.codes)
    assert stereo.sample_rate == 48000 and stereo.audio.shape[0] == 2
    assert stereo.audio.shape[1] == 3 * plain.audio.shape[0]
    np.testing.assert_array_equal(stereo.codec_audio, plain.codec_audio)


def test_decode_settings_reject_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        DecodeSettings.from_dict({"beam": 3})
    s = DecodeSettings.from_dict({"text_sampling": {"temperature": 0.5}})
    assert s.text_sampling.temperature == 0.5


def test_bfloat16_linear_weights_setting(ualm):
    """``linear_weight_dtype: bfloat16`` reaches the generator (its own, the
    original keeps float32) and still generates; other values are rejected."""
    with pytest.raises(ValueError, match="linear_weight_dtype"):
        DecodeSettings.from_dict({"linear_weight_dtype": "float16"})
    fast = ualm.with_settings(linear_weight_dtype="bfloat16")
    assert fast.generator is not ualm.generator
    assert fast.generator.weights.weight_dtype == torch.bfloat16
    assert ualm.generator.weights.weight_dtype is None
    assert ualm.with_settings(seed=3).generator is ualm.generator
    out = fast.generate_audio(["one beep"], enhancer="none")[0]
    assert out.ok and out.codes.shape[0] > 0


def test_backend_setting(ualm):
    """``backend`` reaches a generator of its own; an unknown backend, and
    ``cuda_graph`` on a CPU model, are errors."""
    with pytest.raises(ValueError, match="backend must be one of"):
        DecodeSettings.from_dict({"backend": "static"})
    compiled = ualm.with_settings(backend="compile")
    assert compiled.generator is not ualm.generator
    assert compiled.generator.backend == "compile" and ualm.generator.backend == "fast"
    with pytest.raises(ValueError, match="'cuda_graph' needs a model on a CUDA"):
        ualm.with_settings(backend="cuda_graph")


def test_beam_search_for_text(ualm, clip):
    out = ualm.caption([clip], beam_size=3)[0]
    assert out.ok and isinstance(out.text, str)


def test_a_list_is_required(ualm):
    with pytest.raises(TypeError, match="list of captions"):
        ualm.generate_audio("a dog")


def test_answer_is_the_training_qa_dialogue_with_the_system_prompt(ualm, clip):
    """``answer`` lays a question out as the QA dialogues of training: the
    settings' system prompt, then the clip and the question."""
    system = {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    user = {
        "role": "user",
        "content": [
            {"type": "audio", "audio": "clip"},
            {"type": "text", "text": "How many sounds?"},
        ],
    }
    prompted = ualm.with_settings(system_prompt="Be brief.", max_text_tokens=8)
    sent = []
    prompted.run = lambda requests, **kw: sent.extend(requests) or []
    prompted.answer([(clip, "How many sounds?")])
    prompted.chat([[user]], audio={"clip": clip})
    prompted.chat([[system, user]], audio={"clip": clip})

    def prompt_ids(request):
        return prompted.requests.prepare(request, 0).prompt.ids

    expected = prompt_ids(
        Request("0", "chat", {"messages": [system, user]}, {"clip": clip})
    )
    without = prompt_ids(Request("0", "chat", {"messages": [user]}, {"clip": clip}))
    assert len(without) < len(expected)
    for request in sent:  # answer, chat without and with its own system message
        assert torch.equal(prompt_ids(request), expected)
    assert sent[0].plan is None and prompted.requests.plan(sent[0]) == ("text",)

    del prompted.run
    got = prompted.answer([(clip, "How many sounds?"), (clip, "")])
    assert got[0].ok and isinstance(got[0].text, str)
    assert "empty text" in got[1].error
    # no system prompt in the settings: none is added
    bare = ualm.with_settings(system_prompt=None)
    bare.run = lambda requests, **kw: sent.extend(requests) or []
    bare.answer([(clip, "How many sounds?")])
    assert torch.equal(prompt_ids(sent[-1]), without)


def test_chat_takes_plain_string_content_and_rejects_malformed_items(ualm):
    """A message's content may be a plain string (as in Hugging Face chat
    templates); a malformed conversation gets its own error, the rest replies."""
    hello = [{"role": "user", "content": "Hello"}]
    as_parts = [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    outputs = ualm.chat(
        [
            hello,
            as_parts,
            [{"role": "user", "content": 5}],
            ["Hello"],
            [{"role": "user", "content": ["Hello"]}],
            {"role": "user", "content": "Hello"},  # a message, not a conversation
        ],
        modalities=("text",),
    )
    assert len(outputs) == 6
    assert outputs[0].ok, outputs[0].error
    assert outputs[0].text == outputs[1].text  # the same prompt as the parts form
    errors = [o.error or "" for o in outputs[2:]]
    assert "content must be a string or a list of parts, got int" in errors[0]
    assert "a message must be a mapping" in errors[1]
    assert "a content part must be a mapping" in errors[2]
    assert "no messages" in errors[3]
    for i, error in enumerate(errors, 2):
        assert error.startswith(f"item '{i}'"), error


def test_reflect_returns_every_intermediate_batched_as_one_by_one(ualm):
    """UALM.reflect with the tiny packed model and its real codec: the plan,
    each attempt's audio, caption and critique; batched == one by one (greedy);
    the tiny model writes no parseable critique, so every round is made."""
    captions = ["two high beeps", "one low tone"]
    outs = ualm.reflect(captions, max_rounds=1, batch_size=2)
    for caption, out in zip(captions, outs):
        assert out.ok, out.error
        r = out.reflection
        assert isinstance(r.rich_caption, str) and not r.stopped_early
        assert len(r.attempts) == 2 and r.rounds == 1
        assert [a.codes.shape for a in r.attempts] == [
            a.codes.shape for a in out.attempts
        ]
        assert out.attempts[-1] is out and torch.equal(out.codes, r.final.codes)
        assert all(a.audio is not None and a.audio.size > 0 for a in out.attempts)
        assert isinstance(r.attempts[0].heard_caption, str)
        assert isinstance(r.attempts[0].critique, str) and r.final.critique is None
        (alone,) = ualm.reflect([caption], max_rounds=1, batch_size=1)
        assert alone.reflection.rich_caption == r.rich_caption
        for a, b in zip(alone.reflection.attempts, r.attempts):
            assert torch.equal(a.codes, b.codes)
            assert (a.heard_caption, a.critique) == (b.heard_caption, b.critique)
    (once,) = ualm.reflect(captions[:1], max_rounds=0)
    assert len(once.attempts) == 1 and once.reflection.rounds == 0


def test_reflect_hears_the_codec_waveform_decoded_once(ualm, monkeypatch):
    """The listening turn is the codec's waveform of the attempt: silence in
    its place changes the state after the turn (the tiny trained model's
    greedy text does not depend on it, so the test compares the hidden
    state); each attempt is decoded once (heard, then delivered)."""
    from espnet2.ualm.inference.decoder import Decoder

    captions = ["two high beeps", "one low tone"]
    after_turn = []
    extend = Decoder.extend

    def spy(self, batch):
        after_turn.append(extend(self, batch))
        return after_turn[-1]

    monkeypatch.setattr(Decoder, "extend", spy)
    heard = ualm.reflect(captions, max_rounds=1)
    # the control setting hears silence in place of each attempt (and still
    # delivers the attempt's own audio)
    control = ualm.reflect(captions, max_rounds=1, reflection_listens_to="silence")
    assert all(c.attempts[0].audio.any() for c in control)
    calls = []
    real = UALM.decode_codes

    def silent(self, codes):
        calls.append(codes.shape)
        return np.zeros_like(real(self, codes))

    monkeypatch.setattr(UALM, "decode_codes", silent)
    deaf = ualm.reflect(captions, max_rounds=1)
    assert len(calls) == 2 * len(captions)  # v1 (heard, then its output), v2
    for a, b in zip(heard, deaf):
        v1 = a.reflection.attempts[0].codes
        assert torch.equal(v1, b.reflection.attempts[0].codes)
        assert not b.attempts[0].audio.any() and a.attempts[0].audio.any()
    with_audio, with_control, with_silence = after_turn
    for row in range(len(captions)):  # the conditional rows
        assert not torch.allclose(with_audio[row], with_silence[row])
        assert torch.equal(with_control[row], with_silence[row])


def test_enrich_and_dialogue(ualm):
    """UALM.enrich: a rich caption then a clip; UALM.dialogue: every question
    reaches ``answer`` with its row, at most ``max_turns``; batched == one
    by one (greedy); the flow runs through UALM.run with with_user too."""
    (rich,) = ualm.enrich(["some beeps"])
    assert rich.ok, rich.error
    assert [s.modality for s in rich.segments] == ["text", "audio"]
    prompts = ["some beeps", "a clip with tones and chirps"]
    asked = []

    def answer(row, question):
        asked.append((row, question))
        return "Two."

    outs = ualm.dialogue(prompts, answer, max_turns=2, batch_size=2)
    assert len(asked) == sum(o.dialogue.turns for o in outs)
    for row, (prompt, out) in enumerate(zip(prompts, outs)):
        assert out.ok, out.error
        d = out.dialogue
        assert d.turns <= 2 and d.answers == ["Two."] * d.turns
        assert d.questions == [q for r, q in asked if r == row]
        assert out.codes is not None and out.audio.size > 0
        assert torch.equal(out.codes, d.codes)
        (alone,) = ualm.dialogue([prompt], lambda r, q: "Two.", max_turns=2)
        assert alone.dialogue.questions == d.questions
        assert alone.dialogue.rich_caption == d.rich_caption
        assert torch.equal(alone.codes, out.codes)
    (none,) = ualm.dialogue(prompts[:1], answer, max_turns=0)
    assert none.dialogue.turns == 0 and none.dialogue.rich_caption is not None
    from espnet2.ualm.inference.pipeline import dialogue_request

    (no_user,) = ualm.run([dialogue_request("x", "some beeps")])
    assert "needs a user to answer" in no_user.error
    (by_id,) = (
        ualm.with_user(lambda item, q, n: f"{item} {n}.")
        .run([dialogue_request("Three", "some beeps")], dialogue_turns=1)
    )  # fmt: skip
    assert by_id.ok and by_id.dialogue.answers in ([], ["Three 0."])
