"""The whole UALM model from plain config mappings.

``build_model_from_config`` is the one builder of a *model config*, the
ESPnet-style keys of ``MODEL_CONFIG_KEYS`` (a training YAML's model part, or
a packed model's ``model/config.yaml``): training (``UALMTask.build_model``)
and packed-model loading (``pretrained/load.py``) both call it, so a config
is checked in one place and rejected with the same message by both::

    build_model_from_config(
        {
            "backbone": "hf_causal_lm",
            "backbone_conf": {"pretrained_dir": "Qwen2.5-1.5B"},
            "audio_encoder": "whisper",
            "audio_encoder_conf": {"pretrained_dir": "whisper-large-v3"},
            "audio_adapter": "mlp",
            "model_conf": {"cfg_dropout_prob": 0.05},
        },
        vocabulary="exp/ualm/vocabulary.json",  # or a UALMVocabulary / dict
    )

It checks the part names and calls ``build_ualm_model`` with the sections.
``backbone`` takes ``pretrained_dir`` or ``config`` (HF config fields and
``model_type``), ``attn_implementation``, ``dtype``,
``gradient_checkpointing``, ``new_row_init``. ``audio_encoder`` takes
``pretrained_dir`` or ``config`` (WhisperConfig fields, with
``sample_rate``, ``hop_length``, ``n_fft`` for the log-mel, and
``conv_init``), ``pool_stride``,
``freeze``, ``window_batch_size``; ``audio_encoder: qwen3_omni`` (the
Qwen3-Omni audio tower of ESPnet-SpeechLM checkpoints) takes ``pretrained_dir``
or ``config`` (``Qwen3OmniMoeAudioEncoderConfig`` fields) with ``sample_rate``,
``hop_length``, ``n_fft``, and ``freeze``. ``adapter`` takes ``type`` (``mlp`` or
``linear``) and ``hidden_size``. Other keyword arguments go to ``UALMModel``.
"""

import inspect
from typing import Any, Callable, Dict, Mapping, Optional

from transformers import AutoModelForCausalLM

from espnet2.train.class_choices import ClassChoices
from espnet2.ualm.model.adapter import AudioAdapter
from espnet2.ualm.model.audio_encoder import (
    Qwen3OmniAudioEncoder,
    WhisperAudioEncoder,
    encoder_geometry,
)
from espnet2.ualm.model.backbone import build_backbone
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.tokens.vocabulary import VocabularyLike, as_vocabulary

MODEL_CONFIG_KEYS = (
    "backbone",
    "backbone_conf",
    "audio_encoder",
    "audio_encoder_conf",
    "audio_adapter",
    "audio_adapter_conf",
    "model_conf",
)
NONE_NAMES = ("none", "null", "nil")

backbone_choices = ClassChoices(
    name="backbone",
    classes=dict(hf_causal_lm=AutoModelForCausalLM),
    default="hf_causal_lm",
)
audio_encoder_choices = ClassChoices(
    name="audio_encoder",
    classes=dict(whisper=WhisperAudioEncoder, qwen3_omni=Qwen3OmniAudioEncoder),
    default="whisper",
    optional=True,
)
audio_adapter_choices = ClassChoices(
    name="audio_adapter",
    classes=dict(mlp=AudioAdapter, linear=AudioAdapter),
    default="mlp",
)


def _call(what: str, fn: Callable, conf: Mapping[str, Any], **fixed) -> Any:
    """``fn(**fixed, **conf)`` with an error naming the unknown keys."""
    params = inspect.signature(fn).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(conf) - set(params))
        if unknown:
            known = sorted(set(params) - set(fixed) - {"self", "cls"})
            raise ValueError(f"{what}: unknown keys {unknown}; known: {known}")
    return fn(**fixed, **conf)


def build_audio_encoder(conf: Mapping[str, Any], kind: str = "whisper") -> Any:
    """The encoder of an ``audio_encoder_conf`` (``kind``: a name of
    ``audio_encoder_choices``); its geometry is checked against
    ``encoder_geometry``, which the data side and the recipe read."""
    encoder = _build_audio_encoder(conf, audio_encoder_choices.get_class(kind))
    expected = encoder_geometry(conf, kind)
    if encoder.geometry != expected:
        raise RuntimeError(
            f"audio_encoder: the built encoder has {encoder.geometry}, its config "
            f"gives {expected}"
        )
    return encoder


def _build_audio_encoder(conf: Mapping[str, Any], cls: Any) -> Any:
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
            cls.from_pretrained,
            {},
            model_dir=pretrained_dir,
            **conf,
        )
    allowed = ("sample_rate", "hop_length", "n_fft", "freeze")
    if cls is WhisperAudioEncoder:
        allowed += ("conv_init", "pool_stride", "window_batch_size")
    unknown = sorted(set(conf) - set(allowed))
    if unknown:
        raise ValueError(f"audio_encoder: unknown keys {unknown}; known: {allowed}")
    return cls.from_config(config, **conf)


def build_ualm_model(
    vocabulary: VocabularyLike,
    backbone: Mapping[str, Any],
    audio_encoder: Optional[Mapping[str, Any]] = None,
    adapter: Optional[Mapping[str, Any]] = None,
    audio_encoder_kind: str = "whisper",
    **model_conf: Any,
) -> UALMModel:
    """Builds backbone (vocabulary extended), encoder (``audio_encoder_kind``
    of ``audio_encoder_choices``), adapter and the model."""
    vocab = as_vocabulary(vocabulary)
    if adapter and audio_encoder is None:
        raise ValueError("adapter given without an audio_encoder")
    lm = _call("backbone", build_backbone, backbone, vocabulary=vocab)
    encoder = adapter_module = None
    if audio_encoder is not None:
        encoder = build_audio_encoder(audio_encoder, audio_encoder_kind)
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


def model_config_of(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The model part (``MODEL_CONFIG_KEYS``) of a whole training config."""
    return {k: config.get(k) for k in MODEL_CONFIG_KEYS}


def with_model_of(
    training: Mapping[str, Any], base: Mapping[str, Any]
) -> Dict[str, Any]:
    """A post-training config (training keys only, ``model_conf`` entries
    allowed) completed with the model part of ``base`` (stage 7's config), so
    the post-trained model has that model's shape by construction. A model key
    of ``training`` other than ``model_conf`` is an error."""
    own = sorted(set(training) & set(MODEL_CONFIG_KEYS) - {"model_conf"})
    if own:
        raise ValueError(
            f"{own} come from the model being post-trained (its config.yaml); "
            "remove them from the post-training config"
        )
    merged = {k: base[k] for k in MODEL_CONFIG_KEYS if k in base}
    merged["model_conf"] = {
        **(base.get("model_conf") or {}),
        **(training.get("model_conf") or {}),
    }
    return {**{k: v for k, v in training.items() if k != "model_conf"}, **merged}


def _chosen(choices: ClassChoices, config: Mapping[str, Any]) -> Optional[str]:
    """The name ``config`` picks from ``choices`` (its default when absent;
    ``None`` for "none" where optional), or an error listing the names."""
    name = config.get(choices.name, choices.default)
    if name is None or (choices.optional and str(name).lower() in NONE_NAMES):
        if not choices.optional:
            raise ValueError(f"model config: {choices.name} is required")
        return None
    if str(name).lower() not in choices.classes:
        raise ValueError(
            f"model config: {choices.name} must be one of "
            f"{sorted(choices.classes)}, got {name!r}"
        )
    return str(name).lower()


def build_model_from_config(
    config: Mapping[str, Any], vocabulary: VocabularyLike
) -> UALMModel:
    """The UALM model of a model config (``MODEL_CONFIG_KEYS``) in the layout
    ``vocabulary``; every check of such a config is here or below it."""
    unknown = sorted(set(config) - set(MODEL_CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"model config: unknown keys {unknown}; known: {list(MODEL_CONFIG_KEYS)}"
        )
    _chosen(backbone_choices, config)  # one backbone kind: any causal LM of HF
    encoder = adapter = None
    encoder_kind = _chosen(audio_encoder_choices, config)
    if encoder_kind is not None:
        encoder = dict(config.get("audio_encoder_conf") or {})
        adapter = dict(config.get("audio_adapter_conf") or {})
        kind = _chosen(audio_adapter_choices, config)
        if adapter.setdefault("type", kind) != kind:
            raise ValueError(
                f"model config: audio_adapter {kind} but audio_adapter_conf has "
                f"type {adapter['type']}"
            )
    return build_ualm_model(
        vocabulary,
        backbone=config.get("backbone_conf") or {},
        audio_encoder=encoder,
        adapter=adapter,
        audio_encoder_kind=encoder_kind or "whisper",
        **(config.get("model_conf") or {}),
    )
