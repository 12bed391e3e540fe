"""Stage 3 with a pretrained LLM's tokenizer: a pointer to a Hugging Face
tokenizer directory, loaded without downloading, packed as the HF files."""

import os

import pytest

from espnet2.bin.ualm_text_tokenizer import main as tokenizer_main
from espnet2.ualm.pretrained.layout import copy_text_tokenizer
from espnet2.ualm.testing.tiny_model import save_tiny_qwen2
from espnet2.ualm.testing.tiny_text import save_tiny_hf_tokenizer
from espnet2.ualm.text.tokenizer import (
    HFTextTokenizer,
    SentencePieceTextTokenizer,
    load_text_tokenizer,
)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> str:
    """A Qwen2 checkpoint directory with its tokenizer (as Qwen2.5 ships)."""
    root = str(tmp_path_factory.mktemp("qwen"))
    return save_tiny_hf_tokenizer(save_tiny_qwen2(root, vocab_size=320))


def test_hf_pointer_loads_the_llm_tokenizer(qwen_dir, tmp_path):
    out = str(tmp_path / "text_tokenizer")
    tokenizer_main(["--hf_tokenizer_dir", qwen_dir, "--output_dir", out])
    tok = load_text_tokenizer(out)
    assert isinstance(tok, HFTextTokenizer) and tok.model_dir == qwen_dir
    assert type(tok.tok).__name__ == "Qwen2Tokenizer"
    assert tok.vocab_size <= 320  # fits the checkpoint's embedding rows
    for text in ("a dog barks", "CAFÉ — 東京 🎵", ""):  # byte-level: anything
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
    assert tok.encode("") == []  # no special tokens added: UALM adds its own


def test_packing_copies_the_tokenizer_files_not_the_pointer(qwen_dir, tmp_path):
    out = str(tmp_path / "text_tokenizer")
    tokenizer_main(["--hf_tokenizer_dir", qwen_dir, "--output_dir", out])
    packed = str(tmp_path / "packed_tokenizer")
    copy_text_tokenizer(out, packed)
    copied = load_text_tokenizer(packed)
    assert isinstance(copied, HFTextTokenizer) and copied.model_dir == packed
    assert copied.encode("rain falls") == load_text_tokenizer(out).encode("rain falls")
    assert not any(f.endswith(".safetensors") for f in os.listdir(packed))


def test_missing_or_unknown_tokenizers_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer directory"):
        HFTextTokenizer(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="no text tokenizer at"):
        load_text_tokenizer(str(tmp_path / "nothing.model"))
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "tokenizer.yaml").write_text("type: wordpiece\n")
    with pytest.raises(ValueError, match="unknown tokenizer type 'wordpiece'"):
        load_text_tokenizer(str(tmp_path / "odd"))
    with pytest.raises(FileNotFoundError, match="sentencepiece model"):
        SentencePieceTextTokenizer(str(tmp_path / "none.model"))


def test_a_missing_hf_tokenizer_directory_is_named_not_fetched(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory no/such/tok does not"):
        HFTextTokenizer("no/such/tok")
    (tmp_path / "tokenizer.yaml").write_text("type: hf\ndir: no/such/tok\n")
    with pytest.raises(FileNotFoundError, match="directory no/such/tok does not"):
        load_text_tokenizer(str(tmp_path))
