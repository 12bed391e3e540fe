"""Shared fixtures of the model tests: tiny Qwen2, tiny Whisper, tiny codec geometry."""

import math
from typing import Iterable, List

import pytest
import torch

from espnet2.ualm.model.factory import build_ualm_model
from espnet2.ualm.testing.tiny_model import (
    save_tiny_qwen2,
    save_tiny_whisper,
    tiny_qwen2_config,
    tiny_whisper_config,
)
from espnet2.ualm.text.tokenizer import TextTokenizer
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.tokens.vocabulary import UALMVocabulary

TEXT_VOCAB = 64


class CharTokenizer(TextTokenizer):
    """One id per character code (mod ``vocab_size``)."""

    @property
    def vocab_size(self) -> int:
        return TEXT_VOCAB

    def encode(self, text: str) -> List[int]:
        return [ord(c) % TEXT_VOCAB for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(chr(i) for i in ids)


def _direct_loss(
    hidden, ids, loss_mask, head, stream_emb, vocab, audio_weight, softmax="codebook"
):
    """Position by position, with full logits: the definition of the loss.

    Streams 1..K-1: a softmax over their own codebook's ids (``softmax=
    "codebook"``, the default) or over all audio ids (``"audio"``).
    """
    is_audio = torch.arange(vocab.size) >= vocab.audio_offset
    total, n_stream0 = 0.0, 0
    for b, t, k in loss_mask.nonzero().tolist():
        if t == 0:
            continue
        h = hidden[b, t - 1] + (stream_emb[k - 1] if k else 0)
        logits = head @ h
        if k:
            allowed = is_audio.clone()
            if softmax == "codebook":
                start, stop = vocab.codebook_range(k)
                allowed = (torch.arange(vocab.size) >= start) & (
                    torch.arange(vocab.size) < stop
                )
            logits = logits.masked_fill(~allowed, -math.inf)
        target = int(ids[b, t, k])
        nll = -torch.log_softmax(logits.double(), -1)[target]
        total = total + (audio_weight if is_audio[target] else 1.0) * nll
        n_stream0 += k == 0
    return total / n_stream0


@pytest.fixture
def direct_loss():
    """The loss by its definition, for comparison with the model's."""
    return _direct_loss


@pytest.fixture
def tokenizer() -> CharTokenizer:
    return CharTokenizer()


@pytest.fixture
def vocab() -> UALMVocabulary:
    """Tiny codec geometry: 3 codebooks of 5 codes."""
    return UALMVocabulary(text_vocab_size=TEXT_VOCAB, n_codebooks=3, codebook_size=5)


@pytest.fixture
def builder(vocab, tokenizer) -> SequenceBuilder:
    return SequenceBuilder(vocab, tokenizer)


@pytest.fixture
def make_model(vocab):
    """Builds a tiny random UALM (fp32, sdpa) with encoder and adapter."""

    def make(seed: int = 0, **model_conf):
        torch.manual_seed(seed)
        return build_ualm_model(
            vocab,
            backbone={"config": tiny_qwen2_config()},
            audio_encoder={"config": tiny_whisper_config()},
            adapter={"type": "mlp"},
            **model_conf,
        )

    return make


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory) -> str:
    return save_tiny_qwen2(str(tmp_path_factory.mktemp("tiny_qwen2")))


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory) -> str:
    return save_tiny_whisper(str(tmp_path_factory.mktemp("tiny_whisper")))
