"""Audio encoder: Whisper's features, checkpoint loading, windows and 25 Hz frames."""

import numpy as np
import pytest
import torch

from espnet2.ualm.model.audio_encoder import WhisperAudioEncoder
from espnet2.ualm.testing.tiny_model import tiny_whisper_config


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


def _tone_clips(enc: WhisperAudioEncoder) -> torch.Tensor:
    """Two clips of one window: a 300 Hz and a 2 kHz tone burst."""
    t = torch.arange(enc.window_samples) / enc.sample_rate
    burst = (t < 0.1).float() * 0.3
    return torch.stack([burst * torch.sin(2 * torch.pi * f * t) for f in (300, 2000)])


def _relative_distance(enc: WhisperAudioEncoder) -> float:
    """How far apart the frames of two different clips are, relative to a frame."""
    wav = _tone_clips(enc)
    with torch.no_grad():
        feats, _ = enc(wav, torch.full((2,), wav.shape[1]))
    return float(((feats[0] - feats[1]).norm(dim=-1) / feats[0].norm(dim=-1)).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_random_encoder_frames_depend_on_the_audio(seed):
    """He-initialised input convs (the default of a random encoder) make the
    frames of two different clips differ far more than Whisper's init does,
    where the fixed position embeddings swamp the audio."""
    config = tiny_whisper_config()
    torch.manual_seed(seed)
    he = WhisperAudioEncoder.from_config(config)
    torch.manual_seed(seed)
    whisper = WhisperAudioEncoder.from_config(config, conv_init="whisper")
    assert float(whisper.encoder.conv1.weight.std()) == pytest.approx(0.02, rel=0.3)
    assert _relative_distance(he) > 0.2
    assert _relative_distance(he) > 3 * _relative_distance(whisper)


def test_unknown_conv_init_is_rejected():
    with pytest.raises(ValueError, match="conv_init"):
        WhisperAudioEncoder.from_config(tiny_whisper_config(), conv_init="xavier")


def test_a_missing_checkpoint_directory_is_named():
    from espnet2.ualm.model.audio_encoder import encoder_geometry

    with pytest.raises(FileNotFoundError, match="directory no/such/whisper does not"):
        WhisperAudioEncoder.from_pretrained("no/such/whisper")
    with pytest.raises(FileNotFoundError, match="directory no/such/whisper does not"):
        encoder_geometry({"pretrained_dir": "no/such/whisper"})


def test_a_typo_in_the_config_is_refused_by_name():
    config = tiny_whisper_config()
    config["encoder_layer"] = config.pop("encoder_layers")
    with pytest.raises(ValueError, match="encoder_layer"):
        WhisperAudioEncoder.from_config(config)


def test_qwen3_omni_encoder_is_transformers_on_the_feature_extractor(tmp_path):
    """The ``qwen3_omni`` encoder: a saved audio tower loads, its frame count
    is the geometry's, and its frames are transformers' encoder on
    ``WhisperFeatureExtractor(do_normalize=True)`` features of each clip."""
    from transformers import WhisperFeatureExtractor
    from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import (
        Qwen3OmniMoeAudioEncoderConfig,
    )
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
        Qwen3OmniMoeAudioEncoder,
    )

    from espnet2.ualm.model.audio_encoder import Qwen3OmniAudioEncoder, encoder_geometry

    config = Qwen3OmniMoeAudioEncoderConfig(
        num_mel_bins=8,
        encoder_layers=1,
        encoder_attention_heads=2,
        encoder_ffn_dim=32,
        d_model=16,
        output_dim=12,
        downsample_hidden_size=8,
        max_source_positions=200,
    )
    torch.manual_seed(0)
    reference = Qwen3OmniMoeAudioEncoder(config).eval()
    reference.save_pretrained(tmp_path)
    fe = WhisperFeatureExtractor(feature_size=8)
    fe.save_pretrained(tmp_path)
    enc = Qwen3OmniAudioEncoder.from_pretrained(str(tmp_path)).eval()
    geometry = encoder_geometry({"pretrained_dir": str(tmp_path)}, "qwen3_omni")
    assert geometry == enc.geometry and enc.frame_rate == 13.0
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (27000, 9000)]
    wav = torch.zeros(2, 27000)
    for i, clip in enumerate(clips):
        wav[i, : len(clip)] = torch.from_numpy(clip)
    with torch.no_grad():
        frames, lengths = enc(wav, torch.tensor([27000, 9000]))
    # 168 mel frames: one chunk of 100 (13 frames) + 68 (9); 56 mel frames: 7
    assert lengths.tolist() == [enc.num_frames(n) for n in (27000, 9000)] == [22, 7]
    for i, clip in enumerate(clips):
        feats = fe([clip], sampling_rate=16000, do_normalize=True, return_tensors="pt")[
            "input_features"
        ][0, :, : len(clip) // 160]
        with torch.no_grad():
            expected = reference(
                feats, feature_lens=torch.tensor([feats.shape[1]])
            ).last_hidden_state
        got = frames[i, : lengths[i]]
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
