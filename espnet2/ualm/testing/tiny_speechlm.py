"""Tiny ESPnet-SpeechLM (Bagpiper-shaped) setups, for the import test and the
peer benchmark: a Qwen3 backbone directory and the training config that
ESPnet's ``SpeechLMJobTemplate`` builds its ``ParallelLLM`` from."""

import os
from typing import Any, Dict, Optional

import torch

from espnet2.ualm.testing.tiny_text import save_tiny_hf_tokenizer

# what ESPnet's ContinuousAudioIO.find_length keys its frame count on
QWEN3_OMNI_TAG = "Qwen/Qwen3-Omni-30B-A3B-Instruct"


def save_tiny_qwen3(
    model_dir: str, vocab_size: Optional[int] = None, seed: int = 0, **shape: Any
) -> str:
    """A random ``Qwen3ForCausalLM`` and a byte-level BPE tokenizer in one
    directory (``save_pretrained``); ``vocab_size`` defaults to the tokenizer's."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    save_tiny_hf_tokenizer(model_dir)
    n_tokens = len(AutoTokenizer.from_pretrained(model_dir))
    if vocab_size is not None and vocab_size < n_tokens:
        raise ValueError(f"vocab_size must be >= the tokenizer's {n_tokens}")
    config = dict(
        vocab_size=vocab_size or n_tokens,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    config.update(shape)
    torch.manual_seed(seed)
    Qwen3ForCausalLM(Qwen3Config(**config)).save_pretrained(model_dir)
    return model_dir


def speechlm_train_config(
    qwen3_dir: str,
    codec_dir: str,
    encoder: bool = True,
    delay_interleave: bool = True,
    **data_loading: Any,
) -> Dict[str, Any]:
    """Bagpiper's ``train.yaml`` shape (text, X-codec audio, delay-interleaved
    unless ``delay_interleave`` is false, Qwen3-Omni input audio when
    ``encoder``) over local directories, sdpa and float32 so that it builds
    on a CPU."""
    ios: Dict[str, Any] = {
        "text": {"tokenizer_name": qwen3_dir},
        "discrete_audio": {
            "codec_choice": "Xcodec",
            "codec_hf_model_tag": codec_dir,
            "ssl_choice": None,
            "ssl_hf_model_tag": None,
            "delay_interleave": delay_interleave,
            "stream_weights": [0.125] * 8,
        },
    }
    if encoder:
        ios["continuous_audio"] = {
            "encoder_choice": "huggingface",
            "encoder_hf_model_tag": QWEN3_OMNI_TAG,
            "attn_implementation": "sdpa",
            "dtype": "float32",
        }
    return {
        "job_type": "speechlm",
        "multimodal_io": ios,
        "model": {
            "model_choice": "parallel",
            "model_hf_tag": qwen3_dir,
            "model_conf": {"attn_implementation": "sdpa", "dtype": "float32"},
        },
        "preprocessor": {
            "audio_input": "continuous_audio",
            "audio_output": "discrete_audio",
            "loss_region": "assistant",
            "audio_cfg": 0.05,
        },
        "data_loading": {"batchfy_method": "bucket", "batch_size": 1, **data_loading},
    }


def tiny_speechlm_dirs(root: str, **qwen3: Any) -> Dict[str, str]:
    """The backbone and X-codec directories under ``root``."""
    from espnet2.ualm.testing.tiny_codec import save_tiny_xcodec

    return {
        "qwen3": save_tiny_qwen3(os.path.join(root, "qwen3"), **qwen3),
        "codec": save_tiny_xcodec(os.path.join(root, "xcodec")),
    }
