"""Backbone loading: pretrained text rows kept, new rows added, head handled."""

import pytest
import torch

from espnet2.ualm.model.backbone import build_backbone, load_causal_lm
from espnet2.ualm.testing.tiny_model import save_tiny_qwen2, tiny_qwen2_config
from espnet2.ualm.tokens.vocabulary import UALMVocabulary


def test_pretrained_text_rows_are_copied_exactly(vocab, tiny_qwen2_dir):
    original = load_causal_lm(tiny_qwen2_dir)
    old_in = original.get_input_embeddings().weight
    old_out = original.get_output_embeddings().weight
    lm = build_backbone(vocab, pretrained_dir=tiny_qwen2_dir)
    new_in = lm.get_input_embeddings().weight
    new_out = lm.get_output_embeddings().weight
    assert new_in.shape == new_out.shape == (vocab.size, 32)
    assert lm.config.vocab_size == vocab.size
    text = slice(vocab.text_offset, vocab.audio_offset)
    assert torch.equal(new_in[text], old_in[: vocab.text_vocab_size])
    assert torch.equal(new_out[text], old_out[: vocab.text_vocab_size])
    assert not bool(new_in[0].any())  # <pad> is a zero row
    assert new_in[vocab.audio_offset :].std() > 0  # new audio rows initialised
    # the rest of the network is the pretrained one
    assert torch.equal(
        lm.model.layers[0].mlp.up_proj.weight,
        original.model.layers[0].mlp.up_proj.weight,
    )


def test_tied_head_stays_tied(vocab, tmp_path):
    path = save_tiny_qwen2(str(tmp_path), tie_word_embeddings=True)
    lm = build_backbone(vocab, pretrained_dir=path)
    assert lm.get_output_embeddings().weight is lm.get_input_embeddings().weight


def test_config_built_backbone_and_attention_choice(vocab):
    lm = build_backbone(vocab, config=tiny_qwen2_config(), attn_implementation="eager")
    assert lm.config._attn_implementation == "eager"
    assert lm.get_input_embeddings().weight.shape[0] == vocab.size
    lm = build_backbone(vocab, config=tiny_qwen2_config(), dtype="bfloat16")
    assert lm.get_input_embeddings().weight.dtype == torch.bfloat16


def test_tokenizer_larger_than_checkpoint_is_refused(tiny_qwen2_dir):
    vocab = UALMVocabulary(text_vocab_size=65, n_codebooks=3, codebook_size=5)
    with pytest.raises(ValueError, match="fewer than the text tokenizer's 65 ids"):
        build_backbone(vocab, pretrained_dir=tiny_qwen2_dir)
    with pytest.raises(ValueError, match="exactly one of"):
        load_causal_lm()


def test_a_missing_checkpoint_directory_is_named(vocab):
    with pytest.raises(FileNotFoundError, match="directory no/such/qwen does not"):
        build_backbone(vocab, pretrained_dir="no/such/qwen")


def test_a_typo_in_the_config_is_refused_by_name(vocab):
    config = tiny_qwen2_config()
    config["num_hiden_layers"] = config.pop("num_hidden_layers")
    with pytest.raises(ValueError, match="num_hiden_layers"):
        build_backbone(vocab, config=config)
