"""Fixtures of the generation tests: a tiny random UALM (K=4 codebooks of 16
codes, hidden 64, 2 layers) with a tiny Whisper encoder, and prompts."""

from typing import Iterable, List, Tuple

import pytest
import torch

from espnet2.ualm.inference.generate import UALMGenerator
from espnet2.ualm.model.factory import build_ualm_model
from espnet2.ualm.testing.tiny_model import tiny_qwen2_config, tiny_whisper_config
from espnet2.ualm.text.tokenizer import TextTokenizer
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.tokens.vocabulary import UALMVocabulary

TEXT_VOCAB = 32
N_CODEBOOKS = 4
CODEBOOK_SIZE = 16
FRAME_RATE = 25.0  # a codec's frames per second, as the caller passes it
CAPTIONS = (  # test_generate.py repeats them
    "a cat",
    "rain falling on a tin roof, far away",
    "dog barks",
)


class CharTokenizer(TextTokenizer):
    """One id per character code (mod ``vocab_size``); decode inverts encode."""

    @property
    def vocab_size(self) -> int:
        return TEXT_VOCAB

    def encode(self, text: str) -> List[int]:
        return [ord(c) % TEXT_VOCAB for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(chr(i) for i in ids)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def vocab() -> UALMVocabulary:
    return UALMVocabulary(
        text_vocab_size=TEXT_VOCAB,
        n_codebooks=N_CODEBOOKS,
        codebook_size=CODEBOOK_SIZE,
    )


@pytest.fixture(scope="session")
def tokenizer() -> CharTokenizer:
    return CharTokenizer()


@pytest.fixture(scope="session")
def builder(vocab, tokenizer) -> SequenceBuilder:
    return SequenceBuilder(vocab, tokenizer)


@pytest.fixture(scope="session")
def model(vocab):
    """Tiny random model in float64, so greedy ties never depend on batching."""
    torch.manual_seed(0)
    model = build_ualm_model(
        vocab,
        backbone={"config": tiny_qwen2_config(hidden_size=64, intermediate_size=128)},
        audio_encoder={"config": tiny_whisper_config()},
        adapter={"type": "mlp"},
    )
    return model.double().eval()


@pytest.fixture(scope="session")
def gen(model, tokenizer) -> UALMGenerator:
    return UALMGenerator(model, tokenizer, frame_rate=FRAME_RATE)


@pytest.fixture(scope="session")
def captions() -> Tuple[str, ...]:
    return ("a cat", "rain falling on a tin roof, far away", "dog barks")


@pytest.fixture(scope="session")
def t2a_prompts(builder, captions):
    """Text-to-audio prompts of three different lengths."""
    return [
        builder.build_example("text_to_audio", {"caption": c}, prompt_only=True)
        for c in captions
    ]
