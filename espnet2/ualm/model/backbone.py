"""The decoder-only Transformer: a Hugging Face causal LM, vocabulary extended.

Any ``AutoModelForCausalLM`` whose base model takes ``inputs_embeds`` and
``position_ids`` works (Qwen2 / Qwen2.5 and the Llama family); it is loaded
from a local directory (never downloaded) or built from a config for small
CPU models. Its embedding table is rebuilt in UALM's layout: special rows
first, the pretrained text rows copied unchanged, then the audio rows.
"""

import logging
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from espnet2.ualm.data.safe_io import local_dir
from espnet2.ualm.model.hf_config import build_hf_config
from espnet2.ualm.tokens.vocabulary import UALMVocabulary

NEW_ROW_INITS = ("mean", "normal")


def _dtype(dtype: Optional[Union[str, torch.dtype]]) -> Optional[torch.dtype]:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return value


def load_causal_lm(
    pretrained_dir: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    attn_implementation: str = "sdpa",
    dtype: Optional[Union[str, torch.dtype]] = None,
) -> nn.Module:
    """A causal LM from a local checkpoint directory or from a config mapping.

    ``config`` holds the HF config fields plus ``model_type`` (default
    ``qwen2``). ``attn_implementation``: ``sdpa`` (CPU), ``flash_attention_2``
    (GPU), ``eager``.
    """
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    if (pretrained_dir is None) == (config is None):
        raise ValueError(
            "give exactly one of pretrained_dir and config for the backbone"
        )
    if pretrained_dir is not None:
        return AutoModelForCausalLM.from_pretrained(
            local_dir(pretrained_dir, "backbone checkpoint"),
            attn_implementation=attn_implementation,
            dtype=_dtype(dtype),
            local_files_only=True,
        )
    config = dict(config)
    model_type = config.pop("model_type", "qwen2")
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"backbone: unknown model_type {model_type!r}")
    hf_config = build_hf_config(CONFIG_MAPPING[model_type], config, "backbone config")
    lm = AutoModelForCausalLM.from_config(
        hf_config, attn_implementation=attn_implementation
    )
    if dtype is not None:
        lm = lm.to(_dtype(dtype))
    return lm


def _new_rows(
    old: Optional[torch.Tensor],
    n: int,
    dim: int,
    std: float,
    init: str,
    like: torch.Tensor,
) -> torch.Tensor:
    rows = torch.randn(n, dim, dtype=torch.float32, device=like.device) * std
    if init == "mean" and old is not None:
        rows += old.float().mean(0)
    return rows.to(like.dtype)


def extend_vocabulary(
    lm: nn.Module,
    vocabulary: UALMVocabulary,
    copy_text_rows: bool = True,
    new_row_init: str = "mean",
) -> None:
    """Replaces ``lm``'s input (and untied output) embeddings by UALM's layout.

    With ``copy_text_rows``, rows ``text_offset + i`` are the pretrained rows
    ``i`` (``i < text_vocab_size``). Other rows are new: the mean of the
    pretrained rows plus noise (``mean``; keeps new logits in the pretrained
    range) or plain noise (``normal``), with the config's
    ``initializer_range``. Row 0 (``<pad>``) is zero and gets no gradient.
    """
    if new_row_init not in NEW_ROW_INITS:
        raise ValueError(f"new_row_init must be one of {NEW_ROW_INITS}")
    old_in = lm.get_input_embeddings().weight
    old_out_module = lm.get_output_embeddings()
    tied = old_out_module is not None and old_out_module.weight is old_in
    dim = old_in.shape[1]
    std = float(getattr(lm.config, "initializer_range", 0.02))
    n_text = vocabulary.text_vocab_size
    if copy_text_rows and old_in.shape[0] < n_text:
        raise ValueError(
            f"the backbone has {old_in.shape[0]} embedding rows, fewer than the text "
            f"tokenizer's {n_text} ids: tokenizer and checkpoint do not match"
        )

    def rebuild(old: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            new = _new_rows(
                old[:n_text] if copy_text_rows else None,
                vocabulary.size,
                dim,
                std,
                new_row_init,
                old,
            )
            if copy_text_rows:
                start = vocabulary.text_offset
                new[start : start + n_text] = old[:n_text]
            new[vocabulary.pad_id] = 0
        return new

    embed = nn.Embedding(
        vocabulary.size,
        dim,
        padding_idx=vocabulary.pad_id,
        dtype=old_in.dtype,
        device=old_in.device,
    )
    embed.weight = nn.Parameter(rebuild(old_in.detach()))
    lm.set_input_embeddings(embed)
    if old_out_module is not None:
        head = nn.Linear(
            dim, vocabulary.size, bias=False, dtype=old_in.dtype, device=old_in.device
        )
        if tied:
            head.weight = embed.weight
        else:
            head.weight = nn.Parameter(rebuild(old_out_module.weight.detach()))
        lm.set_output_embeddings(head)
    lm.config.vocab_size = vocabulary.size
    logging.info(
        f"backbone vocabulary: {old_in.shape[0]} -> {vocabulary.size} rows "
        f"(text rows {'copied' if copy_text_rows else 'new'}, "
        f"head {'tied' if tied else 'separate'})"
    )


def build_backbone(
    vocabulary: UALMVocabulary,
    pretrained_dir: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    attn_implementation: str = "sdpa",
    dtype: Optional[Union[str, torch.dtype]] = None,
    gradient_checkpointing: bool = False,
    new_row_init: Optional[str] = None,
) -> nn.Module:
    """Loads or builds the LM and extends its vocabulary to ``vocabulary``.

    Text rows are copied from a pretrained checkpoint; a config-built LM has
    no pretrained rows (``new_row_init`` then defaults to ``normal``).
    """
    lm = load_causal_lm(pretrained_dir, config, attn_implementation, dtype)
    pretrained = pretrained_dir is not None
    extend_vocabulary(
        lm,
        vocabulary,
        copy_text_rows=pretrained,
        new_row_init=new_row_init or ("mean" if pretrained else "normal"),
    )
    if gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5.x
            lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return lm
