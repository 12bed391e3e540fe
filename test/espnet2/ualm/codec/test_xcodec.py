"""X-codec through transformers, on a tiny random model saved to disk."""

import pytest
import torch

from espnet2.ualm.codec import AbsCodec, XcodecCodec, build_codec, codec_choices


@pytest.fixture(scope="module")
def codec(tiny_xcodec_dir) -> XcodecCodec:
    return XcodecCodec(model_dir=tiny_xcodec_dir)


def _batch(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    wav = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wav[i, :n] = 0.3 * torch.randn(n, generator=g)
    return wav, torch.tensor(lengths)


def test_geometry_read_from_model_config(codec):
    assert isinstance(codec, AbsCodec)
    assert codec.sample_rate == 16000
    assert codec.hop_length == 320
    assert codec.frame_rate == 50.0
    assert codec.codebook_size == 1024
    assert codec.n_codebooks == 8  # 4 kbps at 50 Hz x 10 bits


def test_bandwidth_picks_codebooks(tiny_xcodec_dir):
    assert XcodecCodec(tiny_xcodec_dir, bandwidth=2.0).n_codebooks == 4
    with pytest.raises(ValueError, match="target_bandwidths"):
        XcodecCodec(tiny_xcodec_dir, bandwidth=3.0)
    with pytest.raises(ValueError, match="model_dir"):
        build_codec("xcodec", {})


def test_frozen_and_stays_in_eval(codec):
    codec.train()
    assert not codec.training and not codec.model.training
    assert not any(p.requires_grad for p in codec.parameters())


def test_round_trip_length_contract_and_code_range(codec):
    lengths = [3200, 3195, 4001, 321]
    wav, wav_lengths = _batch(lengths)
    codes, code_lengths = codec.encode(wav, wav_lengths)
    expected = [codec.num_frames(n) for n in lengths]
    assert expected == [10, 10, 13, 2]
    assert code_lengths.tolist() == expected
    assert codes.shape == (4, 13, 8) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < codec.codebook_size
    assert (codes[1, 10:] == 0).all()  # past a row's length
    out, out_lengths = codec.decode(codes, code_lengths)
    assert out.shape == (4, 13 * 320)
    assert out_lengths.tolist() == [t * 320 for t in expected]
    assert torch.isfinite(out).all()


def test_batched_equals_one_by_one(codec):
    lengths = [4000, 2500, 4000, 1000]
    wav, wav_lengths = _batch(lengths, seed=1)
    codes, code_lengths = codec.encode(wav, wav_lengths)
    out, _ = codec.decode(codes, code_lengths)
    for i, n in enumerate(lengths):
        one, one_len = codec.encode(wav[i : i + 1, :n], torch.tensor([n]))
        assert torch.equal(one[0], codes[i, : int(one_len[0])])
        one_out, _ = codec.decode(one, one_len)
        torch.testing.assert_close(one_out[0], out[i, : one_out.shape[1]])


def test_built_by_name(tiny_xcodec_dir):
    codec = build_codec("xcodec", {"model_dir": tiny_xcodec_dir, "bandwidth": 1.0})
    assert isinstance(codec, XcodecCodec) and codec.n_codebooks == 2
    assert codec_choices.get_class("xcodec") is XcodecCodec


@pytest.mark.parametrize("missing", ["no/such/xcodec", "xcodec_not_here"])
def test_a_missing_model_dir_is_named_and_never_fetched(missing):
    """Checked before transformers sees the path (it would take it for a hub
    repo id: "Repo id must be in the form ...", or a download)."""
    with pytest.raises(FileNotFoundError, match=f"directory {missing} does not exist"):
        XcodecCodec(model_dir=missing)
