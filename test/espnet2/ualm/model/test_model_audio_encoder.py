"""Audio encoder: Whisper's features, checkpoint loading, windows and 25 Hz frames."""

import numpy as np
import torch

from espnet2.ualm.model.audio_encoder import WhisperAudioEncoder
from espnet2.ualm.model.tiny import tiny_whisper_config


def _encoder() -> WhisperAudioEncoder:
    torch.manual_seed(0)
    return WhisperAudioEncoder.from_config(tiny_whisper_config())


def test_geometry_is_read_from_the_configs():
    enc = _encoder()
    assert enc.sample_rate == 16000 and enc.frame_rate == 25.0
    assert enc.window_samples == 24 * 2 * 160  # positions x conv stride x hop
    assert enc.frames_per_window == 12
    assert (
        enc.num_frames(1) == 1 and enc.num_frames(640) == 1 and enc.num_frames(641) == 2
    )


def test_log_mel_matches_whisper_feature_extractor():
    from transformers import WhisperFeatureExtractor

    enc = _encoder()
    fe = WhisperFeatureExtractor(feature_size=8)
    wav = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    window = np.zeros(enc.window_samples, dtype=np.float32)
    window[:5000] = wav
    expected = fe._np_extract_fbank_features(window[None], "cpu")
    got = enc.log_mel(torch.from_numpy(window)[None])
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


def test_pretrained_encoder_loads_only_the_encoder(tiny_whisper_dir):
    from transformers import WhisperModel

    enc = WhisperAudioEncoder.from_pretrained(tiny_whisper_dir)
    reference = WhisperModel.from_pretrained(tiny_whisper_dir).encoder
    for name, value in reference.state_dict().items():
        assert torch.equal(enc.encoder.state_dict()[name], value), name
    assert not any(p.requires_grad for p in enc.parameters())


def test_sliding_windows_and_batch_independence():
    enc = _encoder()
    window = enc.window_samples
    long = torch.randn(int(2.5 * window))
    short = torch.randn(1000)
    wav = torch.zeros(2, len(long))
    wav[0], wav[1, :1000] = long, short
    feats, lengths = enc(wav, torch.tensor([len(long), 1000]))
    assert lengths.tolist() == [enc.num_frames(len(long)), 2] == [30, 2]
    assert feats.shape == (2, 30, 16)
    # the second window's frames are that window encoded alone
    alone, _ = enc(long[window : 2 * window][None], torch.tensor([window]))
    torch.testing.assert_close(feats[0, 12:24], alone[0])
    # a row does not depend on the batch's padding
    alone, _ = enc(short[None], torch.tensor([1000]))
    torch.testing.assert_close(feats[1, :2], alone[0])


def test_frozen_encoder_stays_in_eval_mode():
    enc = _encoder()
    enc.train()
    assert not enc.encoder.training
    feats, _ = enc(torch.randn(1, 800), torch.tensor([800]))
    assert not feats.requires_grad
