"""The one audio loader and the one JSON-lines reader (espnet2.ualm.data.io)."""

import json

import numpy as np
import pytest
import soundfile
import torch
from scipy.signal import resample_poly

from espnet2.ualm.data.io import (
    AudioReadError,
    JsonlError,
    audio_info,
    iter_jsonl,
    load_audio,
    read_audio,
    read_jsonl,
    resample,
)
from espnet2.ualm.data.rejects import RejectLog


def _stereo(n=4800, rate=48000):
    t = np.arange(n) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([left, 0.25 * left], axis=1)


def test_a_file_is_read_mono_at_the_asked_rate(tmp_path):
    path = str(tmp_path / "a.wav")
    soundfile.write(path, _stereo(), 48000, subtype="FLOAT")
    stored, rate = read_audio(path)
    assert rate == 48000 and stored.shape == (4800, 2) and stored.dtype == np.float64
    wav, rate = load_audio(path, 16000)
    assert rate == 16000 and wav.shape == (1600,) and wav.dtype == np.float32
    expected = resample_poly(stored.mean(axis=1), 1, 3)
    np.testing.assert_allclose(wav, expected, atol=1e-6)
    both, _ = load_audio(path, 16000, mono=False, dtype=np.float64)
    np.testing.assert_array_equal(both, resample_poly(stored, 1, 3, axis=0))
    native, rate = load_audio(path, dtype=np.float64)
    assert rate == 48000
    np.testing.assert_array_equal(native, stored.mean(axis=1))
    assert audio_info(path).samplerate == 48000


def test_arrays_and_tensors_are_accepted(tmp_path):
    x = np.linspace(-0.5, 0.5, 320)
    wav, rate = load_audio(x, 16000)
    assert rate == 16000
    np.testing.assert_allclose(wav, x, atol=1e-7)
    wav, _ = load_audio(torch.tensor(np.stack([x, -x])), 16000)  # [channels, samples]
    np.testing.assert_allclose(wav, 0.0, atol=1e-7)
    wav, _ = load_audio((x, 8000), 16000)
    assert wav.shape == (640,)
    with pytest.raises(AudioReadError, match="no sample rate"):
        load_audio(x)
    with pytest.raises(AudioReadError, match=r"audio array must be \[samples\]"):
        load_audio(np.zeros((1, 2, 3)), 16000)


def test_bad_clips_raise_naming_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not audio at all")
    with pytest.raises(AudioReadError, match=r"corrupt\.wav unreadable: ") as err:
        load_audio(str(corrupt), 16000)
    assert err.value.detail and err.value.name == str(corrupt)
    with pytest.raises(AudioReadError, match=r"missing\.wav unreadable"):
        read_audio(str(tmp_path / "missing.wav"))
    with pytest.raises(AudioReadError, match=r"missing\.wav unreadable"):
        audio_info(str(tmp_path / "missing.wav"))
    empty = str(tmp_path / "empty.wav")
    soundfile.write(empty, np.zeros(0), 16000)
    with pytest.raises(AudioReadError, match=r"empty\.wav is empty"):
        load_audio(empty, 16000)
    assert load_audio(empty, 16000, allow_empty=True)[0].shape == (0,)
    nan = str(tmp_path / "nan.wav")
    soundfile.write(nan, np.full(100, np.nan), 16000, subtype="FLOAT")
    with pytest.raises(AudioReadError, match=r"nan\.wav holds NaN"):
        load_audio(nan, 16000)


def test_strict_converts_nothing(tmp_path):
    path = str(tmp_path / "s.wav")
    soundfile.write(path, _stereo(), 48000)
    with pytest.raises(AudioReadError, match=r"s\.wav is at 48000 Hz, expected 16000"):
        load_audio(path, 16000, strict=True)
    with pytest.raises(AudioReadError, match=r"s\.wav has 2 channels, expected mono"):
        load_audio(path, 48000, strict=True)
    assert load_audio(path, 48000, mono=False, strict=True)[0].shape == (4800, 2)


def test_resample_is_polyphase_and_its_length_is_exact():
    x = np.random.default_rng(0).standard_normal(22051)
    np.testing.assert_array_equal(resample(x, 22050, 16000), resample_poly(x, 320, 441))
    assert len(resample(x, 22050, 16000)) == -(-22051 * 320 // 441)
    assert resample(x.astype(np.float32), 16000, 16000).dtype == np.float64


def test_jsonl_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"id": "a"}\n\n{"id": "b"\n\xff\xfe{"id": "c"}\n[1, 2]\n'
    )
    with pytest.raises(JsonlError, match=r"d\.jsonl:3: malformed JSON line"):
        list(iter_jsonl(path))
    items = list(iter_jsonl(path, errors="yield"))
    assert [n for n, _ in items] == [1, 3, 4, 5]
    assert items[0][1] == {"id": "a"} and items[3][1] == [1, 2]
    bad_json, bad_utf8 = items[1][1], items[2][1]
    assert isinstance(bad_json, JsonlError) and not bad_json.encoding
    assert bad_utf8.encoding and bad_utf8.where.endswith("d.jsonl:4")
    assert "non-UTF-8" in bad_utf8.reason and '"id": "c"' in bad_utf8.text
    with pytest.raises(ValueError, match="errors must be"):
        list(iter_jsonl(path, errors="ignore"))


def test_read_jsonl_wants_unique_ids_or_reports_to_the_reject_log(tmp_path):
    path = tmp_path / "m.jsonl"
    rows = [{"id": "a"}, {"id": "b", "x": 1}, {"id": "a", "x": 2}, {"no": "id"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{oops\n")
    with pytest.raises(JsonlError, match=r"m\.jsonl:3: duplicate id a"):
        read_jsonl(path)
    rejects = RejectLog("t")
    assert read_jsonl(path, rejects) == rows[:2]
    by_source = {e.source: e.reason for e in rejects.items}
    assert by_source[f"{path}:3"].startswith("duplicate id")
    assert by_source[f"{path}:4"] == 'not a JSON object with an "id"'
    assert by_source[f"{path}:5"].startswith("malformed JSON line")
    ok = tmp_path / "ok.jsonl"
    ok.write_text(json.dumps(rows[0]) + "\n")
    assert read_jsonl(str(ok)) == rows[:1]
