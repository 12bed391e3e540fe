"""The UALM model: HF causal-LM backbone over multi-stream text/audio tokens,
Whisper-encoder audio input with an adapter, and the weighted multi-stream loss.
"""

from espnet2.ualm.model.adapter import AudioAdapter
from espnet2.ualm.model.audio_encoder import WhisperAudioEncoder, load_whisper_encoder
from espnet2.ualm.model.backbone import (
    build_backbone,
    extend_vocabulary,
    load_causal_lm,
)
from espnet2.ualm.model.batch import collate_sequences
from espnet2.ualm.model.cfg_dropout import drop_condition, example_index
from espnet2.ualm.model.factory import (
    build_audio_encoder,
    build_model_from_config,
    build_ualm_model,
)
from espnet2.ualm.model.loss import linear_cross_entropy, multistream_loss
from espnet2.ualm.model.ualm_model import UALMModel

__all__ = [
    "AudioAdapter",
    "UALMModel",
    "WhisperAudioEncoder",
    "build_audio_encoder",
    "build_backbone",
    "build_model_from_config",
    "build_ualm_model",
    "collate_sequences",
    "drop_condition",
    "example_index",
    "extend_vocabulary",
    "linear_cross_entropy",
    "load_causal_lm",
    "load_whisper_encoder",
    "multistream_loss",
]
