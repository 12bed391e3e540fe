"""The CPU-fitted codec: fit, pitch and timing kept, save/load, interface."""

import json
import os

import numpy as np
import pytest
import torch

from espnet2.ualm.codec import SpecRVQCodec, build_codec, codec_choices
from espnet2.ualm.codec.metrics import onset_time, pitch_error

SR = 16000
TINY = dict(n_codebooks=4, codebook_size=128, kmeans_iters=8)


def _tone(freq, seconds=1.0, onset=0.0, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    x = amp * np.sin(2 * np.pi * freq * t)
    x[: int(onset * SR)] = 0.0
    return x.astype("float32")


def _chirp(f0, f1, seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return (0.3 * np.sin(phase)).astype("float32")


def _training_clips():
    rng = np.random.default_rng(0)
    tones = [
        _tone(rng.uniform(150, 1500), 1.0, rng.uniform(0, 0.5), rng.uniform(0.05, 0.5))
        for _ in range(60)
    ]
    chirps = [_chirp(rng.uniform(100, 800), rng.uniform(800, 3000)) for _ in range(30)]
    return tones + chirps


@pytest.fixture(scope="module")
def fitted() -> SpecRVQCodec:
    codec = SpecRVQCodec(**TINY)
    stats = codec.fit(_training_clips(), max_frames=5000, seed=0)
    assert stats["frames_used"] == 4500 and stats["residual_mse"] > 0
    return codec


def _round_trip(codec, x):
    codes, lengths = codec.encode(torch.from_numpy(x)[None], torch.tensor([len(x)]))
    out, _ = codec.decode(codes, lengths)
    return out[0, : len(x)].numpy()


def test_default_geometry_is_xcodec_like():
    codec = SpecRVQCodec()
    assert (codec.sample_rate, codec.frame_rate, codec.hop_length) == (16000, 50, 320)
    assert (codec.n_codebooks, codec.codebook_size) == (8, 1024)


def test_unfitted_codec_says_so():
    codec = SpecRVQCodec(**TINY)
    with pytest.raises(RuntimeError, match="not fitted"):
        codec.encode(torch.zeros(1, 320), torch.tensor([320]))
    with pytest.raises(RuntimeError, match="not fitted"):
        codec.save_pretrained("unused")


def test_keeps_pitch_of_held_out_tone(fitted):
    # Tiny codebooks: within a third of a semitone (8 x 1024 on the mini
    # corpus: about 5 cents); a semitone off would be 100.
    for freq in (523.25, 987.8):  # not among the training tones' pitches
        x = _tone(freq, 1.0)
        err = pitch_error(x, _round_trip(fitted, x), SR)
        assert err["tonal_frames"] > 50
        assert err["pitch_cents"] < 35 and err["pitch_gross"] < 0.1, err


def test_keeps_onset_time(fitted):
    x = _tone(660.0, 1.2, onset=0.37)
    assert abs(onset_time(x, SR) - 0.37) < 0.002
    error = abs(onset_time(_round_trip(fitted, x), SR) - 0.37)
    assert error < 2 / fitted.frame_rate  # within two code frames


def test_length_contract_and_batching(fitted):
    rng = np.random.default_rng(1)
    lengths = [16000, 3195, 0, 7001]
    wav = torch.zeros(4, max(lengths))
    for i, n in enumerate(lengths):
        wav[i, :n] = torch.from_numpy(_tone(rng.uniform(200, 900), n / SR))
    codes, code_lengths = fitted.encode(wav, torch.tensor(lengths))
    assert code_lengths.tolist() == [50, 10, 0, 22]
    assert codes.shape == (4, 50, 4) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < 128
    out, out_lengths = fitted.decode(codes, code_lengths)
    assert out.shape == (4, 50 * 320)
    assert out_lengths.tolist() == [50 * 320, 10 * 320, 0, 22 * 320]
    for i, n in enumerate(lengths):
        if n == 0:
            continue
        one, one_len = fitted.encode(wav[i : i + 1, :n], torch.tensor([n]))
        assert torch.equal(one[0], codes[i, : code_lengths[i]])
        one_out, _ = fitted.decode(one, one_len)
        assert torch.equal(one_out[0], out[i, : one_out.shape[1]])


def test_decode_rejects_codes_out_of_range(fitted):
    with pytest.raises(ValueError, match="lie in"):
        fitted.decode(torch.full((1, 3, 4), 128), torch.tensor([3]))


def test_save_load_round_trip(fitted, tmp_path):
    fitted.save_pretrained(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["codebook_size"] == 128
    loaded = build_codec("spec_rvq", {"model_dir": str(tmp_path)})
    assert isinstance(loaded, SpecRVQCodec) and loaded.n_codebooks == 4
    x = torch.from_numpy(_chirp(300, 1200))[None]
    n = torch.tensor([x.shape[1]])
    codes, lengths = fitted.encode(x, n)
    loaded_codes, _ = loaded.encode(x, n)
    assert torch.equal(codes, loaded_codes)
    assert torch.equal(
        fitted.decode(codes, lengths)[0], loaded.decode(codes, lengths)[0]
    )
    with pytest.raises(ValueError, match="codebook_size=1024"):
        SpecRVQCodec(model_dir=str(tmp_path), codebook_size=1024)


def test_state_dict_carries_the_fit(fitted):
    fresh = SpecRVQCodec(**TINY)
    fresh.load_state_dict(fitted.state_dict())
    assert fresh.fitted
    x = torch.from_numpy(_tone(440.0, 0.5))[None]
    n = torch.tensor([x.shape[1]])
    assert torch.equal(fresh.encode(x, n)[0], fitted.encode(x, n)[0])


def test_fit_is_deterministic_given_a_seed():
    clips = _training_clips()[:30]
    a, b = SpecRVQCodec(**TINY), SpecRVQCodec(**TINY)
    a.fit(clips, max_frames=2000, seed=3)
    b.fit(clips, max_frames=2000, seed=3)
    assert torch.equal(a.codebooks, b.codebooks)


def test_registered_with_the_other_codecs():
    assert set(codec_choices.choices()) >= {"xcodec", "spec_rvq"}
    assert codec_choices.get_class("spec_rvq") is SpecRVQCodec
