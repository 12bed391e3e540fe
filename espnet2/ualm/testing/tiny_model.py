"""Tiny random backbones and encoders, for tests and CPU dry runs.

No Qwen2.5 or Whisper weights can be downloaded here; these checkpoints have
the real classes and file formats, so the loading code under test is the
one that loads the released models.
"""

from typing import Any, Dict

import torch


def tiny_qwen2_config(**overrides: Any) -> Dict[str, Any]:
    """A two-layer Qwen2 config (grouped-query attention, untied head)."""
    config = dict(
        model_type="qwen2",
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    config.update(overrides)
    return config


def save_tiny_qwen2(model_dir: str, seed: int = 0, **overrides: Any) -> str:
    """Saves a random tiny ``Qwen2ForCausalLM`` with ``save_pretrained``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = tiny_qwen2_config(**overrides)
    config.pop("model_type")
    torch.manual_seed(seed)
    Qwen2ForCausalLM(Qwen2Config(**config)).save_pretrained(model_dir)
    return model_dir


def tiny_whisper_config(**overrides: Any) -> Dict[str, Any]:
    """One encoder layer; windows of 48 mel frames (0.48 s at 16 kHz, hop 160)."""
    config = dict(
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_mel_bins=8,
        max_source_positions=24,
        max_target_positions=16,
        vocab_size=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    config.update(overrides)
    return config


def save_tiny_whisper(model_dir: str, seed: int = 0, **overrides: Any) -> str:
    """Saves a random tiny ``WhisperModel`` and its feature extractor config."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    config = WhisperConfig(**tiny_whisper_config(**overrides))
    torch.manual_seed(seed)
    WhisperModel(config).save_pretrained(model_dir)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(model_dir)
    return model_dir
