"""build_ualm_model from plain config mappings and local checkpoints; collate."""

import contextlib
import logging
import os
from typing import List

import pytest
import torch

from espnet2.ualm.model.backbone import load_causal_lm
from espnet2.ualm.model.batch import collate_sequences
from espnet2.ualm.model.factory import build_ualm_model
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.testing.tiny_model import tiny_qwen2_config, tiny_whisper_config
from espnet2.ualm.tokens.conversation import AudioInputSegment


def test_build_from_local_checkpoints_and_vocabulary_json(
    vocab, tiny_qwen2_dir, tiny_whisper_dir, tmp_path
):
    path = vocab.save(str(tmp_path))
    model = build_ualm_model(
        path,
        backbone={"pretrained_dir": tiny_qwen2_dir, "attn_implementation": "eager"},
        audio_encoder={"pretrained_dir": tiny_whisper_dir},
        adapter={"type": "linear"},
        audio_token_weight=0.5,
    )
    assert isinstance(model, UALMModel) and model.vocabulary == vocab
    assert model.audio_token_weight == 0.5 and isinstance(
        model.adapter.net, torch.nn.Linear
    )
    pretrained = load_causal_lm(tiny_qwen2_dir).get_input_embeddings().weight
    table = model.backbone.get_input_embeddings().weight
    assert torch.equal(table[vocab.text_offset : vocab.audio_offset], pretrained)
    assert model.save_vocabulary(str(tmp_path / "v.json")).endswith("v.json")


def test_text_only_model_and_defaults(vocab):
    model = build_ualm_model(vocab.to_dict(), backbone={"config": tiny_qwen2_config()})
    assert model.audio_encoder is None and model.adapter is None
    assert model.audio_token_weight == pytest.approx(1 / 3)  # 1 / n_codebooks
    assert model.flatten_batch is False  # sdpa


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"backbone": {"config": tiny_qwen2_config(), "pretrained": "x"}},
            "backbone: unknown keys",
        ),
        (
            {"backbone": {"config": tiny_qwen2_config()}, "adapter": {"type": "mlp"}},
            "adapter given without an audio_encoder",
        ),
        (
            {
                "backbone": {"config": tiny_qwen2_config()},
                "audio_encoder": {"config": tiny_whisper_config(), "stride": 2},
            },
            "audio_encoder: unknown keys \\['stride'\\]",
        ),
        (
            {
                "backbone": {"config": tiny_qwen2_config()},
                "audio_encoder": {"config": tiny_whisper_config()},
                "adapter": {"kind": "mlp"},
            },
            "adapter: unknown keys \\['kind'\\]",
        ),
        (
            {"backbone": {"config": tiny_qwen2_config()}, "cfg_dropout": 0.1},
            "model: unknown keys \\['cfg_dropout'\\]",
        ),
    ],
)
def test_unknown_config_keys_are_named(vocab, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_ualm_model(vocab, **kwargs)


def test_collate_packs_rows_and_shifts_audio_spans(builder):
    cap = builder.build_example(
        "audio_caption", {"caption": "x", "audio": AudioInputSegment("a", 2)}
    )
    batch = collate_sequences([[cap, cap], [cap]], {"a": torch.ones(700)}, 8)
    n = len(cap)
    assert batch["ids"].shape[1] == -(-2 * n // 8) * 8
    assert batch["ids_lengths"].tolist() == [2 * n, n]
    assert batch["position_ids"][0].tolist()[: 2 * n] == list(range(n)) * 2
    assert batch["position_ids"][1, n:].tolist() == list(
        range(n, batch["ids"].shape[1])
    )
    start = cap.audio_inputs[0].start
    assert batch["audio_input_spans"].tolist() == [
        [0, start, 2],
        [0, n + start, 2],
        [1, start, 2],
    ]
    assert batch["audio_input"].shape == (3, 700)
    with pytest.raises(KeyError, match="no waveform for audio input 'a'"):
        collate_sequences([[cap]])


MINI_CONFIG = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "..", "egs2", "ualm", "mini", "conf"
)


@contextlib.contextmanager
def transformers_warnings():
    """Messages transformers logs meanwhile (its once-only warnings included)."""
    records: List[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logging.Logger.warning_once.cache_clear()  # transformers' once-only cache
    handler = Collect(logging.WARNING)
    logging.getLogger("transformers").addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger("transformers").removeHandler(handler)


@pytest.mark.parametrize("name", ["train_unified.yaml", "train_align.yaml"])
def test_the_mini_model_builds_without_token_id_warnings(name):
    import yaml

    from espnet2.ualm.model.factory import build_model_from_config, model_config_of
    from espnet2.ualm.tokens.vocabulary import UALMVocabulary

    with open(os.path.join(MINI_CONFIG, name)) as f:
        conf = model_config_of(yaml.safe_load(f))
    vocab = UALMVocabulary(text_vocab_size=32, n_codebooks=2, codebook_size=8)
    with transformers_warnings() as messages:
        build_model_from_config(conf, vocab)
    assert not [m for m in messages if "_token_id" in m], messages
