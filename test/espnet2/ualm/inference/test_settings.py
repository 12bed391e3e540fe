"""Decoding settings: one class for decode.yaml, the API and the generator."""

import pytest

from espnet2.ualm.inference.settings import BACKENDS, DecodeSettings, check_plan
from espnet2.ualm.tokens.delay import delay_length


def test_from_dict_checks_keys_and_values():
    s = DecodeSettings.from_dict({"text_sampling": {"temperature": 0.5}})
    assert s.text_sampling.temperature == 0.5
    with pytest.raises(ValueError, match="unknown keys \\['compile_step'\\]"):
        DecodeSettings.from_dict({"compile_step": True})
    with pytest.raises(ValueError, match="backend must be one of"):
        DecodeSettings(backend="eager")
    with pytest.raises(ValueError, match="enhancer must be one of"):
        DecodeSettings(enhancer="vae")
    with pytest.raises(ValueError, match="min_audio_seconds"):
        DecodeSettings(min_audio_seconds=2.0, max_audio_seconds=1.0)
    assert "auto" in BACKENDS and DecodeSettings().backend == "auto"


def test_replace_is_checked_like_from_dict():
    s = DecodeSettings().replace(cfg_scale=None, max_text_tokens=3)
    assert s.cfg_scale is None and s.max_text_tokens == 3
    with pytest.raises(ValueError, match="unknown keys"):
        DecodeSettings().replace(beam=2)


def test_plans():
    assert check_plan(None) is None
    assert check_plan("audio") == ("audio",)
    assert check_plan(["text", "audio"]) == ("text", "audio")
    with pytest.raises(ValueError, match="empty plan"):
        check_plan(())
    with pytest.raises(ValueError, match="cannot be generated"):
        check_plan(("audio_input",))


def test_longest_reply_counts_every_position():
    """Marker, content, closing token (and an audio segment's delay steps),
    plus the role token between segments."""
    s = DecodeSettings(max_audio_seconds=2.0, max_text_tokens=10, max_segments=3)
    k, rate = 4, 25.0
    audio = 1 + delay_length(50 + 1, k)  # marker, 50 frames + the closing one
    text = 1 + 10 + 1
    assert s.longest_reply(("audio",), rate, k) == audio
    assert s.longest_reply(("text", "audio"), rate, k) == text + 1 + audio
    assert s.longest_reply(None, rate, k) == 3 * audio + 2
    assert s.longest_reply(("text",), None, k) == text
    with pytest.raises(ValueError, match="frame_rate"):
        s.longest_reply(("audio",), None, k)
