"""Shared fixtures of the token-layer tests."""

from typing import Iterable, List

import pytest

from espnet2.ualm.text.tokenizer import TextTokenizer
from espnet2.ualm.tokens.vocabulary import UALMVocabulary


class CharTokenizer(TextTokenizer):
    """One id per character code (mod ``vocab_size``): predictable lengths."""

    def __init__(self, vocab_size: int = 128):
        self._size = vocab_size

    @property
    def vocab_size(self) -> int:
        return self._size

    def encode(self, text: str) -> List[int]:
        return [ord(c) % self._size for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(chr(i) for i in ids)


@pytest.fixture
def tokenizer() -> CharTokenizer:
    return CharTokenizer(128)


@pytest.fixture
def vocab() -> UALMVocabulary:
    """A small codec geometry: 3 codebooks of 5 codes."""
    return UALMVocabulary(text_vocab_size=128, n_codebooks=3, codebook_size=5)
