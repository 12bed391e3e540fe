"""A tiny byte-level BPE tokenizer in Hugging Face's format, for tests and CPU
dry runs of the recipes that use a pretrained LLM's tokenizer (Qwen2.5's
cannot be downloaded here).
"""

from typing import Iterable

TINY_TEXTS = (
    "a dog barks while rain falls on a roof",
    "people talk in a busy street and a car passes",
    "HE HOPED THERE WOULD BE STEW FOR DINNER",
    "what sound is this? yes, no, one, two, three",
)


def save_tiny_hf_tokenizer(
    model_dir: str, texts: Iterable[str] = TINY_TEXTS, vocab_size: int = 300
) -> str:
    """Trains a byte-level BPE on ``texts`` and saves it with ``save_pretrained``.

    Byte-level, as Qwen2.5's: every string encodes, whatever its characters.
    Saved into a Qwen2 checkpoint directory, ``AutoTokenizer`` loads it as
    ``Qwen2Tokenizer``, the released model's class.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    ).save_pretrained(model_dir)
    return model_dir
