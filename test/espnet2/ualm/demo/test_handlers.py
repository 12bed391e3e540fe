"""The demo's handlers on the tiny packed model: every tab's function,
batching of requests that share settings, and per-request errors that spare
the rest of the batch."""

import copy
import os
import shutil

import numpy as np
import pytest
import soundfile

from espnet2.ualm.demo.handlers import (
    ChatState,
    DemoModel,
    chat,
    model_card,
    settings_text,
    text_to_audio,
    understand,
)
from espnet2.ualm.pretrained.model_card import add_results_to_card


def test_text_to_audio_candidates_files_and_errors(demo_model):
    results = text_to_audio(
        demo_model,
        ["two high beeps", "   ", "beep " * 2000],
        cfg_scales=[3.0, 3.0, 3.0],
        seeds=[5, 5, 5],
        n_candidates=[2, 1, 1],
        enhance=[False, False, False],
    )
    good, empty, long = results
    assert good.error is None
    assert [c.seed for c in good.candidates] == [5, 6]
    rate = demo_model.ualm.codec.sample_rate
    frame_rate = demo_model.ualm.codec.frame_rate
    for c in good.candidates:
        info = soundfile.info(c.wav)
        assert (info.samplerate, info.channels) == (rate, 1) == (c.sample_rate, 1)
        codes = np.load(c.codes)
        assert codes.shape[1] == demo_model.ualm.vocab.n_codebooks
        # the codec's hop: one frame is rate / frame_rate samples
        assert info.frames == codes.shape[0] * rate / frame_rate > 0
        assert c.seconds == pytest.approx(info.duration)
        with open(c.spectrogram, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "empty caption" in empty.error and not empty.candidates
    assert "exceeds the model's" in long.error


def test_enhancer_on_gives_48k_stereo(demo_model):
    # the tiny packed model has no enhancer: "on" is the resampling baseline
    assert demo_model.enhancer_name == "resample"
    (out,) = text_to_audio(demo_model, ["one beep"], [3.0], [0], [1], [True])
    info = soundfile.info(out.candidates[0].wav)
    assert (info.samplerate, info.channels) == (48000, 2)


def test_enhancer_on_uses_the_packed_enhancer_when_there_is_one(demo_model):
    from espnet2.ualm.enhancer.resample import ResampleEnhancer

    ualm = copy.copy(demo_model.ualm)  # shares the weights
    ualm.packed_enhancer = ResampleEnhancer(input_sample_rate=16000)
    model = DemoModel(ualm, demo_model.root, demo_model.workdir)
    assert model.enhancer_name == "packed"
    assert "the packed Enhancement VAE" in settings_text(model)
    (out,) = text_to_audio(model, ["one beep"], [3.0], [0], [1], [True])
    assert out.error is None and out.candidates[0].channels == 2


def test_requests_with_the_same_settings_share_one_call(demo_model, monkeypatch):
    calls = []
    real = demo_model.ualm.generate_audio

    def spy(captions, **settings):
        calls.append((list(captions), settings["seed"]))
        return real(captions, **settings)

    monkeypatch.setattr(demo_model.ualm, "generate_audio", spy)
    results = text_to_audio(
        demo_model,
        ["a", "b", "c"],
        [3.0, 3.0, 3.0],
        seeds=[0, 0, 1],
        n_candidates=[2, 1, 1],
        enhance=[False] * 3,
    )
    assert all(r.error is None for r in results)
    # seed 0: a's first candidate and b; seed 1: a's second and c
    assert sorted(calls, key=lambda c: c[1]) == [(["a", "b"], 0), (["a", "c"], 1)]


def test_bad_settings_are_errors(demo_model):
    results = text_to_audio(
        demo_model, ["a", "b"], [3.0, 3.0], [0, "x"], [9, 1], [False, False]
    )
    assert "1..4" in results[0].error
    assert "bad setting" in results[1].error


def test_understanding_tasks_and_errors(demo_model, clip, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    results = understand(
        demo_model,
        [clip, clip, clip, None, str(broken), clip],
        ["caption", "transcribe", "answer", "caption", "caption", "answer"],
        ["", "", "How many sounds?", "", "", "  "],
    )
    for r in results[:3]:
        assert r.error is None and isinstance(r.text, str)
    assert "upload or record" in results[3].error
    assert "broken.wav unreadable" in results[4].error
    assert "type a question" in results[5].error


def test_chat_turns_with_audio_and_text(demo_model, clip):
    message = {"text": "How many sounds?", "files": [clip]}
    (first,) = chat(demo_model, [message], [None], ["text, then audio"])
    assert first.error is None, first.error
    shown = [(role, kind) for role, kind, _ in first.state.display]
    assert shown == [
        ("user", "audio"),
        ("user", "text"),
        ("assistant", "text"),
        ("assistant", "audio"),
    ]
    reply_wav = first.state.display[-1][2]
    assert soundfile.info(reply_wav).frames > 0
    # the second turn goes on from the first; an empty message is an error
    # that leaves its conversation as it was
    second, empty = chat(
        demo_model,
        [{"text": "And now?", "files": []}, {"text": " ", "files": []}],
        [first.state, first.state],
        ["text", "text"],
    )
    assert second.error is None, second.error
    assert [m["role"] for m in second.state.messages] == ["user", "assistant", "user"]
    assert second.state.display[: len(first.state.display)] == first.state.display
    assert "type a message" in empty.error and empty.state is first.state
    assert len(first.state.messages) == 2  # copied by the second turn, not changed


def test_chat_unreadable_audio_is_an_error(demo_model, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    (out,) = chat(
        demo_model, [{"text": "hi", "files": [str(broken)]}], [None], ["text"]
    )
    assert "broken.wav unreadable" in out.error
    assert out.state.display == [] and isinstance(out.state, ChatState)


def test_model_panel_shows_the_card_results_and_settings(demo_model, tmp_path):
    root = shutil.copytree(demo_model.root, tmp_path / "packed")
    results = tmp_path / "RESULTS.md"
    results.write_text("# RESULTS\n\n| task | metric |\n|---|---|\n| asr | 0.5 |\n")
    add_results_to_card(str(root), str(results))
    card = model_card(DemoModel(demo_model.ualm, str(root), demo_model.workdir))
    assert card.startswith("# ualm-tiny") and "library_name" not in card
    assert "## Results" in card and "| asr | 0.5 |" in card
    text = settings_text(demo_model)
    assert "max_audio_seconds: 0.4" in text and "batch_size: 4" in text
    assert "resampling baseline" in text
    os.remove(os.path.join(root, "README.md"))
    assert "no model card" in model_card(DemoModel(None, str(root), ""))
