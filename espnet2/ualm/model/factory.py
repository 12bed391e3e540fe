"""``build_ualm_model``: the whole model from plain config mappings.

The ESPnet task passes its YAML sections here::

    build_ualm_model(
        vocabulary="exp/ualm/vocabulary.json",     # or a UALMVocabulary / dict
        backbone={"pretrained_dir": "Qwen2.5-1.5B", "attn_implementation": "sdpa"},
        audio_encoder={"pretrained_dir": "whisper-large-v3", "pool_stride": 2},
        adapter={"type": "mlp"},
        cfg_dropout_prob=0.05,
    )

``backbone`` takes ``pretrained_dir`` or ``config`` (HF config fields and
``model_type``), ``attn_implementation``, ``dtype``,
``gradient_checkpointing``, ``new_row_init``. ``audio_encoder`` takes
``pretrained_dir`` or ``config`` (WhisperConfig fields, with
``sample_rate``, ``hop_length``, ``n_fft`` for the log-mel, and
``conv_init``), ``pool_stride``,
``freeze``, ``window_batch_size``. ``adapter`` takes ``type`` (``mlp`` or
``linear``) and ``hidden_size``. Other keyword arguments go to ``UALMModel``.
"""

import inspect
from typing import Any, Callable, Mapping, Optional

from espnet2.ualm.model.adapter import AudioAdapter
from espnet2.ualm.model.audio_encoder import WhisperAudioEncoder
from espnet2.ualm.model.backbone import build_backbone
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.tokens.vocabulary import VocabularyLike, as_vocabulary


def _call(what: str, fn: Callable, conf: Mapping[str, Any], **fixed) -> Any:
    """``fn(**fixed, **conf)`` with an error naming the unknown keys."""
    params = inspect.signature(fn).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(conf) - set(params))
        if unknown:
            known = sorted(set(params) - set(fixed) - {"self", "cls"})
            raise ValueError(f"{what}: unknown keys {unknown}; known: {known}")
    return fn(**fixed, **conf)


def build_audio_encoder(conf: Mapping[str, Any]) -> WhisperAudioEncoder:
    conf = dict(conf)
    pretrained_dir, config = conf.pop("pretrained_dir", None), conf.pop("config", None)
    if (pretrained_dir is None) == (config is None):
        raise ValueError("audio_encoder: give exactly one of pretrained_dir and config")
    if pretrained_dir is not None:
        for key in ("sample_rate", "hop_length", "n_fft"):
            if key in conf:
                raise ValueError(
                    f"audio_encoder: {key} comes from the checkpoint's "
                    "preprocessor_config.json"
                )
        return _call(
            "audio_encoder",
            WhisperAudioEncoder.from_pretrained,
            {},
            model_dir=pretrained_dir,
            **conf,
        )
    allowed = (
        "sample_rate",
        "hop_length",
        "n_fft",
        "conv_init",
        "pool_stride",
        "freeze",
        "window_batch_size",
    )
    unknown = sorted(set(conf) - set(allowed))
    if unknown:
        raise ValueError(f"audio_encoder: unknown keys {unknown}; known: {allowed}")
    return WhisperAudioEncoder.from_config(config, **conf)


def build_ualm_model(
    vocabulary: VocabularyLike,
    backbone: Mapping[str, Any],
    audio_encoder: Optional[Mapping[str, Any]] = None,
    adapter: Optional[Mapping[str, Any]] = None,
    **model_conf: Any,
) -> UALMModel:
    """Builds backbone (vocabulary extended), encoder, adapter and the model."""
    vocab = as_vocabulary(vocabulary)
    if adapter and audio_encoder is None:
        raise ValueError("adapter given without an audio_encoder")
    lm = _call("backbone", build_backbone, backbone, vocabulary=vocab)
    encoder = adapter_module = None
    if audio_encoder is not None:
        encoder = build_audio_encoder(audio_encoder)
        adapter_module = _call(
            "adapter",
            AudioAdapter,
            adapter or {},
            input_size=encoder.output_size,
            output_size=lm.get_input_embeddings().weight.shape[1],
        )
        adapter_module.to(lm.get_input_embeddings().weight.dtype)
    return _call(
        "model",
        UALMModel,
        model_conf,
        vocabulary=vocab,
        backbone=lm,
        audio_encoder=encoder,
        adapter=adapter_module,
    )
