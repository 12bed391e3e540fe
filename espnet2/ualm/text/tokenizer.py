"""Text tokenizers: a sentencepiece BPE trained on the recipe's texts (for
from-scratch LMs) or a Hugging Face tokenizer directory (Qwen2.5 and other
pretrained LLMs), behind one small interface.

A tokenizer directory (stage 3's output) holds ``tokenizer.yaml``:
``{type: sentencepiece, model: bpe.model}`` or ``{type: hf, dir: <path>}``.
"""

import os
from abc import ABC, abstractmethod
from typing import Iterable, List

import yaml

from espnet2.ualm.data.safe_io import FileFormatError, local_dir, read_yaml

CONFIG_NAME = "tokenizer.yaml"


class TextTokenizer(ABC):
    """Text <-> token ids of the tokenizer's own vocabulary (0-based)."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids the tokenizer can produce."""

    @abstractmethod
    def encode(self, text: str) -> List[int]: ...

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str: ...


class SentencePieceTextTokenizer(TextTokenizer):
    def __init__(self, model_path: str):
        import sentencepiece

        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"sentencepiece model {model_path} not found")
        self.model_path = model_path
        try:
            self.sp = sentencepiece.SentencePieceProcessor(model_file=model_path)
        except (RuntimeError, OSError) as e:
            raise FileFormatError(
                f"{model_path}: not a readable sentencepiece model: {e}"
            ) from e

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> List[int]:
        return self.sp.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([int(i) for i in ids])


class HFTextTokenizer(TextTokenizer):
    """A ``transformers`` tokenizer from a local directory (never downloads)."""

    def __init__(self, model_dir: str):
        from transformers import AutoTokenizer

        self.model_dir = local_dir(model_dir, "tokenizer")
        try:
            self.tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        except (OSError, ValueError) as e:  # a broken tokenizer.json, vocab...
            raise FileFormatError(f"{model_dir}: cannot load the tokenizer: {e}") from e

    @property
    def vocab_size(self) -> int:
        return len(self.tok)

    def encode(self, text: str) -> List[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)


def load_text_tokenizer(path: str) -> TextTokenizer:
    """Loads a stage-3 tokenizer directory, a ``.model`` file or an HF directory."""
    config = os.path.join(path, CONFIG_NAME)
    if os.path.isfile(config):
        conf = read_yaml(config) or {}
        if conf.get("type") == "sentencepiece":
            return SentencePieceTextTokenizer(os.path.join(path, conf["model"]))
        if conf.get("type") == "hf":
            return HFTextTokenizer(conf["dir"])
        raise ValueError(f"{config}: unknown tokenizer type {conf.get('type')!r}")
    if os.path.isfile(path) and path.endswith(".model"):
        return SentencePieceTextTokenizer(path)
    if os.path.isdir(path):
        return HFTextTokenizer(path)
    raise FileNotFoundError(f"no text tokenizer at {path}")


def train_sentencepiece(
    texts: Iterable[str],
    output_dir: str,
    vocab_size: int,
    model_type: str = "bpe",
    character_coverage: float = 1.0,
) -> SentencePieceTextTokenizer:
    """Trains a sentencepiece model on ``texts`` into ``output_dir``."""
    import sentencepiece

    os.makedirs(output_dir, exist_ok=True)
    corpus = os.path.join(output_dir, "train_text.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        n = 0
        for t in texts:
            t = " ".join(t.split())
            if t:
                f.write(t + "\n")
                n += 1
    if n == 0:
        raise ValueError("no training text for the sentencepiece model")
    sentencepiece.SentencePieceTrainer.train(
        input=corpus,
        model_prefix=os.path.join(output_dir, model_type),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        # ids 0-2 are the tokenizer's own; UALM's specials live in its own range
        pad_id=-1,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        hard_vocab_limit=False,
        num_threads=2,
        minloglevel=2,
    )
    with open(os.path.join(output_dir, CONFIG_NAME), "w", encoding="utf-8") as f:
        yaml.safe_dump({"type": "sentencepiece", "model": f"{model_type}.model"}, f)
    return SentencePieceTextTokenizer(os.path.join(output_dir, f"{model_type}.model"))


def write_hf_pointer(hf_dir: str, output_dir: str) -> HFTextTokenizer:
    """Stage 3 for pretrained LLMs: record which HF tokenizer directory to use."""
    tok = HFTextTokenizer(os.path.abspath(hf_dir))
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, CONFIG_NAME), "w", encoding="utf-8") as f:
        yaml.safe_dump({"type": "hf", "dir": os.path.abspath(hf_dir)}, f)
    return tok
