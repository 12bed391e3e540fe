"""build_hf_config: typos refused by name, released configs accepted."""

import pytest
from transformers import Qwen2Config, WhisperConfig

from espnet2.ualm.model.hf_config import build_hf_config

# the keys of Qwen2.5-0.5B's and Whisper large-v3's config.json (legacy keys
# such as rope_theta, torch_dtype and max_length included)
QWEN25 = dict(
    architectures=["Qwen2ForCausalLM"], attention_dropout=0.0, bos_token_id=151643,
    eos_token_id=151643, hidden_act="silu", hidden_size=896, initializer_range=0.02,
    intermediate_size=4864, max_position_embeddings=32768, max_window_layers=24,
    num_attention_heads=14, num_hidden_layers=24, num_key_value_heads=2,
    rms_norm_eps=1e-06, rope_theta=1000000.0, sliding_window=32768,
    tie_word_embeddings=True, torch_dtype="bfloat16", transformers_version="4.40.1",
    use_cache=True, use_sliding_window=False, vocab_size=151936,
)  # fmt: skip
WHISPER_V3 = dict(
    _name_or_path="openai/whisper-large-v3", activation_function="gelu",
    begin_suppress_tokens=[220, 50257], bos_token_id=50257, d_model=1280,
    decoder_attention_heads=20, decoder_ffn_dim=5120, decoder_layers=32,
    decoder_start_token_id=50258, encoder_attention_heads=20, encoder_ffn_dim=5120,
    encoder_layers=32, eos_token_id=50257, max_length=448, max_source_positions=1500,
    max_target_positions=448, num_hidden_layers=32, num_mel_bins=128,
    pad_token_id=50256, torch_dtype="float16", vocab_size=51866,
)  # fmt: skip


@pytest.mark.parametrize(
    "cls, conf", [(Qwen2Config, QWEN25), (WhisperConfig, WHISPER_V3)]
)
def test_released_configs_and_their_saved_form_are_accepted(cls, conf):
    config = build_hf_config(cls, conf, "test")
    saved = config.to_dict()  # what a packed model's config holds
    for key in ("architectures", "transformers_version", "_name_or_path"):
        saved.pop(key, None)
    again = build_hf_config(cls, saved, "test").to_dict()
    assert {k: again[k] for k in saved} == saved


def test_a_typo_is_named():
    with pytest.raises(ValueError, match=r"test: unknown Qwen2Config keys \['hiden'\]"):
        build_hf_config(Qwen2Config, {"hidden_size": 8, "hiden": 8}, "test")
