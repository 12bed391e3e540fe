"""Import of ESPnet-SpeechLM second-generation checkpoints (Bagpiper) as a
packed UALM model (``layout.py``), so that our scoring, recipe and
post-training run on real weights.

The peer's checkpoint is the ``{"module": state}`` file that ESPnet's
``espnet2/speechlm/bin/export_checkpoint.py`` writes, plus the training
config (``train.yaml``: ``multimodal_io`` in id order, ``model``,
``preprocessor``), the Hugging Face backbone directory (config and
tokenizer), the X-codec directory and the Qwen3-Omni configs. Nothing of the
checkpoint is executed: it is read with ``torch.load(weights_only=True)``.

What maps to what:

* the peer's vocabulary is rebuilt by ESPnet's own code
  (``SpeechLMJobTemplate._build_vocabulary`` over its ``HuggingFaceTextIO``
  and ``DiscreteAudioIO``), checked against the layout its config records;
  our vocabulary has the same text tokenizer and codec geometry, and every
  embedding and head row is copied through the two token names (never by
  position): a text token whose name differs is an error naming it;
* the backbone (``model.*``, ``lm_head``) is the same transformers class,
  trained on as the peer was: streams 1.. against all codec ids
  (``audio_softmax: audio``), the per-stream weight its ``stream_weights``;
  stream embeddings ``stream_emb`` rows 1.. are ours (row 0 is zeroed in the
  peer's forward, absent in ours); ``adaptor.continuous_audio`` is our linear
  adapter; the Qwen3-Omni audio tower is our ``qwen3_omni`` encoder; the
  codec's weights are written as an ``XcodecModel`` directory;
* the peer's chat template (``<|bos|>``, then ``<|role|><|modality|>
  content<|eos|>``) is ours; its continuous-audio marker ``<|audio|>`` is our
  ``<audio_input>`` and its placeholder ``<|pad|>`` our
  ``<audio_placeholder>``; its task templates and inference config become a
  task file and ``decode.yaml``.

* the peer's audio layout is recorded in the vocabulary (``AudioLayout``,
  ``vocabulary_of``): its delays (``delay_interleave``: stream ``k`` delayed
  ``k`` steps; else parallel), the closing token after the delayed block
  (``closing="after"``: every stream predicts its delay pads, the generator
  samples them), and its unconditional CFG branch: every prompt position
  (the ``<assistant>`` token included) nulled with ``<cfg_null>``, a special
  token of ours whose row is the peer's ``<|pad|>`` row 0 (not zero: ESPnet
  initialises it and never trains it; our ``<pad>`` stays zero). So the
  sequence builder trains an import on the peer's layout (stage 7) and our
  one generator decodes it as ESPnet's ``ParallelLLM.inference`` does.

What does not carry over: with CFG, a second audio segment of one reply
(after ``<eot>``) continues our unconditional branch, where ESPnet nulls the
whole history again (``_prepare_cfg_cache`` per segment); ESPnet's CFG
condition dropout in training keeps the audio turn's ``<|assistant|>``,
ours drops the role tokens with the condition (and ``<cfg_null>``'s row is
trained with the rest). ``test_speechlm.py`` compares logits, greedy
captions and greedy text-to-audio codes with ESPnet's own code.
"""

import logging
import math
import os
import pickle
import shutil
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import yaml

from espnet2.ualm.data.safe_io import FileFormatError, read_json, read_yaml
from espnet2.ualm.tokens.vocabulary import (
    AUDIO,
    CFG_PROMPT,
    CLOSING_AFTER,
    SPECIAL,
    SPECIAL_TOKENS,
    TEXT,
    AudioLayout,
    UALMVocabulary,
)

CHECKPOINT_KEY = "module"
# the special token of an import's unconditional CFG branch (AudioLayout)
CFG_NULL = "<cfg_null>"
# ours -> the peer's special token whose row it takes
SPECIAL_ROWS: Dict[str, str] = {
    "<pad>": "<|pad|>",
    "<bos>": "<|bos|>",
    "<eos>": "<|eos|>",
    "<eot>": "<|eot|>",
    "<system>": "<|system|>",
    "<user>": "<|user|>",
    "<assistant>": "<|assistant|>",
    "<text>": "<|text|>",
    "<audio>": "<|audio|>",
    # the peer marks input audio with <|audio|> as well, and writes <|pad|>
    # (its id 0) where the encoder's features go
    "<audio_input>": "<|audio|>",
    "<audio_placeholder>": "<|pad|>",
    # ESPnet's CFG branch is all <|pad|>: in stream 0 its row 0 (not zero)
    CFG_NULL: "<|pad|>",
}
TEXT_IO, AUDIO_IO, ENCODER_IO = "text", "discrete_audio", "continuous_audio"
ENCODER_PREFIXES = (
    f"multimodal_io_dict.{ENCODER_IO}.model.audio_tower.",  # transformers 4 thinker
    f"multimodal_io_dict.{ENCODER_IO}.model.model.audio_tower.",  # transformers 5
)
CODEC_PREFIX = f"multimodal_io_dict.{AUDIO_IO}.codec_model."


class SpeechLMImportError(FileFormatError):
    """A peer checkpoint or config cannot be imported; names the file or token."""


def read_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """The tensors of an exported ESPnet-SpeechLM checkpoint (tensors only)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:
        # weights_only refuses any pickled object that is not tensors
        raise SpeechLMImportError(
            f"{path}: not a readable tensor checkpoint: {e}"
        ) from e
    if not isinstance(obj, Mapping) or not isinstance(obj.get(CHECKPOINT_KEY), Mapping):
        raise SpeechLMImportError(
            f"{path}: expected {{'{CHECKPOINT_KEY}': state_dict}} as "
            "espnet2/speechlm/bin/export_checkpoint.py writes it"
        )
    state = dict(obj[CHECKPOINT_KEY])
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise SpeechLMImportError(f"{path}: entries that are not tensors: {bad[:5]}")
    return state


def peer_vocabulary(
    train_config: Mapping[str, Any], text_dir: str, codec_dir: str
) -> Dict[str, Any]:
    """The peer's ``vocab_meta``, built by ESPnet's own classes from the
    local text tokenizer and codec directories (the config's hub tags are
    replaced by them); the layout the config records is checked on the way."""
    try:
        from espnet2.speechlm.model.speechlm.multimodal_io.audio import (
            DiscreteAudioIO,
        )
        from espnet2.speechlm.model.speechlm.multimodal_io.text import (
            HuggingFaceTextIO,
        )
        from espnet2.speechlm.model.speechlm.speechlm_job import SpeechLMJobTemplate
    except ImportError as e:
        raise SpeechLMImportError(
            f"ESPnet-SpeechLM's code is needed to rebuild the checkpoint's vocabulary "
            f"(ESPnet >= 202611, and liger-kernel, which it imports): {e}"
        ) from e
    ios = dict(train_config.get("multimodal_io") or {})
    if TEXT_IO not in ios or AUDIO_IO not in ios:
        raise SpeechLMImportError(
            f"train config: multimodal_io needs {TEXT_IO} and {AUDIO_IO}, has "
            f"{list(ios)}"
        )
    audio_conf = dict(ios[AUDIO_IO])
    if audio_conf.get("ssl_choice") is not None:
        raise SpeechLMImportError(
            "train config: discrete_audio with SSL tokens has no UALM layout "
            "(codec streams only)"
        )
    if audio_conf.get("codec_choice") != "Xcodec":
        raise SpeechLMImportError(
            f"train config: codec_choice {audio_conf.get('codec_choice')!r}; only "
            "Xcodec maps to a UALM codec"
        )
    built = {}
    for name, conf in ios.items():  # the order is the id order
        if name == TEXT_IO:
            built[name] = HuggingFaceTextIO(tokenizer_name=text_dir)
        elif name == AUDIO_IO:
            conf = {**conf, "codec_hf_model_tag": codec_dir, "device": "cpu"}
            built[name] = DiscreteAudioIO(**conf)
        elif name != ENCODER_IO:
            raise SpeechLMImportError(f"train config: unknown multimodal_io {name!r}")
    job = SpeechLMJobTemplate.__new__(SpeechLMJobTemplate)
    job.config, job.multimodal_io = dict(train_config), built
    try:
        job._build_vocabulary()
    except ValueError as e:
        raise SpeechLMImportError(f"train config: {e}") from e
    meta = dict(job.vocab_meta)
    meta["delay_interleave"] = bool(built[AUDIO_IO].delay_interleave)
    meta["codec_bandwidth"] = float(built[AUDIO_IO].codec_bandwidth)
    return meta


def peer_name(vocab: UALMVocabulary, token_id: int) -> Optional[str]:
    """The name the peer's vocabulary gives our id's token (text: ``None``,
    compared by the tokenizer's names); ``None`` where the peer has none."""
    kind, codebook, code = vocab.info(token_id)
    if kind == SPECIAL:
        if code < len(vocab.special_tokens):
            return SPECIAL_ROWS.get(vocab.special_tokens[code])
        return f"<|unused_{code}|>"
    if kind == AUDIO:
        suffix = "pad" if code == vocab.codebook_size else str(code)
        return f"<codec_layer{codebook}_{suffix}>"
    return None


def row_map(
    vocab: UALMVocabulary, meta: Mapping[str, Any], text_names: List[str]
) -> List[Optional[int]]:
    """For each of our ids, the peer's id of the same token (``None``: the
    peer has no such token). ``text_names``: our tokenizer's token names in
    id order; each must be the peer's name at its text id."""
    peer = list(meta["vocab"])
    index = {name: i for i, name in enumerate(peer)}
    text_start, text_end = int(meta["text_start"]), int(meta["text_end"])
    if len(text_names) != vocab.text_vocab_size:
        raise SpeechLMImportError(
            f"{len(text_names)} tokenizer names for {vocab.text_vocab_size} text ids"
        )
    if vocab.text_vocab_size > text_end - text_start:
        raise SpeechLMImportError(
            f"the tokenizer has {vocab.text_vocab_size} ids, the checkpoint's text "
            f"range only {text_end - text_start}"
        )
    out: List[Optional[int]] = []
    for token_id in range(vocab.size):
        kind, _, code = vocab.info(token_id)
        if kind == TEXT:
            theirs = peer[text_start + code]
            if theirs != text_names[code]:
                raise SpeechLMImportError(
                    f"text token {code}: the checkpoint's vocabulary has {theirs!r}, "
                    f"the tokenizer {text_names[code]!r} (first differing token): "
                    "not the tokenizer the checkpoint was trained with"
                )
            out.append(text_start + code)
            continue
        name = peer_name(vocab, token_id)
        out.append(index.get(name) if name is not None else None)
    missing = [
        vocab.token_name(i)
        for i, peer_id in enumerate(out)
        if peer_id is None and vocab.info(i).kind == AUDIO
    ]
    if missing:
        raise SpeechLMImportError(
            f"the checkpoint's vocabulary lacks audio token {missing[0]} "
            f"({len(missing)} missing): another codec geometry"
        )
    return out


def audio_layout_of(meta: Mapping[str, Any]) -> AudioLayout:
    """The peer's audio layout (``meta["delay_interleave"]``, recorded by
    ``peer_vocabulary``): ``multimodal_io/audio.py``'s delays,
    ``speechlm_job.py``'s ``<|eos|>`` after the block, ``parallel.py``'s
    all-``<|pad|>`` CFG cache of the whole prompt."""
    n_streams = int(meta["num_stream"])
    interleave = bool(meta["delay_interleave"])
    return AudioLayout(
        delays=tuple(range(n_streams)) if interleave else (0,) * n_streams,
        closing=CLOSING_AFTER,
        cfg_null=CFG_NULL,
        cfg_extent=CFG_PROMPT,
    )


def vocabulary_of(meta: Mapping[str, Any], text_vocab_size: int) -> UALMVocabulary:
    """Our layout for the peer's codec streams, audio layout (``meta`` as
    ``peer_vocabulary`` returns it) and our text tokenizer."""
    intervals = [tuple(x) for x in meta["vocab_intervals"][AUDIO_IO]]
    sizes = {end - start - 1 for start, end in intervals}  # pad first, then codes
    if len(sizes) != 1:
        raise SpeechLMImportError(f"codec streams of unequal sizes: {intervals}")
    if len(intervals) != int(meta["num_stream"]):
        raise SpeechLMImportError(
            f"{len(intervals)} codec streams but {meta['num_stream']} model streams"
        )
    return UALMVocabulary(
        text_vocab_size=int(text_vocab_size),
        n_codebooks=len(intervals),
        codebook_size=sizes.pop(),
        special_tokens=SPECIAL_TOKENS + (CFG_NULL,),
        audio_layout=audio_layout_of(meta),
    )


def _take(rows: torch.Tensor, mapping: List[Optional[int]]) -> torch.Tensor:
    """Our table from the peer's: row ``i`` is the peer's row ``mapping[i]``
    (zero where the peer has no such token)."""
    index = torch.tensor([-1 if m is None else m for m in mapping])
    out = rows.new_zeros(len(mapping), rows.shape[1])
    have = index >= 0
    out[have] = rows[index[have]]
    return out


def convert_state(
    peer: Mapping[str, torch.Tensor],
    ours: Mapping[str, torch.Tensor],
    mapping: List[Optional[int]],
    tied: bool,
) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """Our model's state dict from the peer's tensors, and the codec's.

    ``ours``: the state dict of our model as built (names and shapes). Every
    peer tensor is used or named in the error; every one of ours is filled.
    """
    state: Dict[str, torch.Tensor] = {}
    codec: Dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in peer.items():
        if key == "model.embed_tokens.weight":
            table = _take(value, mapping)
            table[0] = 0  # our <pad> row: zero, no gradient (padding_idx)
            state["backbone.model.embed_tokens.weight"] = table
        elif key == "lm_head.weight":
            if not tied:
                state["backbone.lm_head.weight"] = _take(value, mapping)
        elif key.startswith("model."):
            state["backbone." + key] = value
        elif key == "stream_emb.weight":
            state["stream_embeddings"] = value[1:]  # stream 0: none (zeroed)
        elif key.startswith(f"adaptor.{ENCODER_IO}."):
            state["adapter.net." + key[len(f"adaptor.{ENCODER_IO}.") :]] = value
        elif key.startswith(CODEC_PREFIX):
            codec[key[len(CODEC_PREFIX) :]] = value
        elif key == "vocab_weight":
            continue  # per-id loss weights (training), see import_checkpoint
        else:
            prefix = next((p for p in ENCODER_PREFIXES if key.startswith(p)), None)
            if prefix is None:
                unknown.append(key)
            else:
                state["audio_encoder.encoder." + key[len(prefix) :]] = value
    if unknown:
        raise SpeechLMImportError(
            f"checkpoint tensors with no UALM counterpart: {unknown[:8]}"
        )
    if tied:
        state.pop("backbone.lm_head.weight", None)
    state["vocabulary_fingerprint"] = ours["vocabulary_fingerprint"]
    missing = sorted(set(ours) - set(state))
    if tied:
        missing = [k for k in missing if k != "backbone.lm_head.weight"]
    if missing:
        raise SpeechLMImportError(f"the checkpoint lacks tensors for {missing[:8]}")
    for key, value in state.items():
        if key in ours and tuple(ours[key].shape) != tuple(value.shape):
            raise SpeechLMImportError(
                f"{key}: checkpoint shape {tuple(value.shape)}, model "
                f"{tuple(ours[key].shape)}"
            )
    return state, codec


def _hf_config(path: str) -> Dict[str, Any]:
    conf = read_json(os.path.join(path, "config.json"))
    for key in ("architectures", "transformers_version", "_name_or_path"):
        conf.pop(key, None)
    return conf


def model_config(
    backbone_dir: str,
    encoder_dir: Optional[str],
    tied: bool,
    dtype: Optional[str],
) -> Dict[str, Any]:
    """Our model config (``MODEL_CONFIG_KEYS``) for the peer's parts; the
    geometry is read from the backbone's and encoder's own configs."""
    from transformers import WhisperFeatureExtractor

    from espnet2.ualm.model.audio_encoder import qwen3_omni_audio_config

    backbone = _hf_config(backbone_dir)
    backbone["tie_word_embeddings"] = bool(tied)  # the peer rebuilds its head
    conf: Dict[str, Any] = {
        "backbone": "hf_causal_lm",
        "backbone_conf": {"config": backbone, "attn_implementation": "sdpa"},
        "audio_encoder": None,
        "audio_encoder_conf": None,
        "audio_adapter": None,
        "audio_adapter_conf": None,
        "model_conf": {},
    }
    if dtype is not None:
        conf["backbone_conf"]["dtype"] = dtype
    if encoder_dir is not None:
        fe = WhisperFeatureExtractor.from_pretrained(encoder_dir, local_files_only=True)
        audio = qwen3_omni_audio_config(
            read_json(os.path.join(encoder_dir, "config.json"))
        )
        conf.update(
            audio_encoder="qwen3_omni",
            audio_encoder_conf={
                "config": audio,
                "sample_rate": int(fe.sampling_rate),
                "hop_length": int(fe.hop_length),
                "n_fft": int(fe.n_fft),
            },
            audio_adapter="linear",
            audio_adapter_conf={"type": "linear"},
        )
    return conf


def task_templates(train_config: Mapping[str, Any]) -> Dict[str, Any]:
    """The peer's task templates (``SPEECHLM_TASK_CONFIGS``) as our task
    file (``tokens/tasks.py``; the packed model's ``task_templates.yaml``),
    each a template and a task named ``speechlm_<task>``: its ``textN`` /
    ``audioN`` entries become fields; user audio is encoder input
    (``preprocessor.audio_input``), assistant audio codec codes. The tasks
    read a data directory's ``text`` (the first text field; others their own
    file), ``wav`` and ``codes``; an audio reply is scored as generation, a
    text reply to audio as captioning."""
    from espnet2.speechlm.model.speechlm.task_conf_speechlm import (
        SPEECHLM_TASK_CONFIGS,
    )

    pre = train_config.get("preprocessor") or {}
    audio_input = pre.get("audio_input", ENCODER_IO)
    templates: Dict[str, Any] = {}
    tasks: Dict[str, Any] = {}
    for task, entries in SPEECHLM_TASK_CONFIGS.items():
        messages: List[Dict[str, Any]] = []
        for role, entry in entries:
            if entry.startswith("text"):
                segment = {"text": "{" + entry + "}"}
            elif role == "assistant" or audio_input != ENCODER_IO:
                segment = {"audio": "{" + entry + "}"}
            else:
                segment = {"audio_input": "{" + entry + "}"}
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"].append(segment)
            else:
                messages.append({"role": role, "content": [segment]})
        cfg = any("audio" in seg for m in messages for seg in m["content"])
        name = f"speechlm_{task}"
        templates[name] = {
            "messages": messages,
            "cfg_dropout": bool(cfg and float(pre.get("audio_cfg", 0.0)) > 0),
        }
        tasks[name] = _task_of(name, messages)
    return {"templates": templates, "tasks": tasks}


def _task_of(template: str, messages: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The task declaration of one translated peer template (``task_templates``)."""
    fields: Dict[str, str] = {}
    files: List[str] = []
    for m in messages:
        for seg in m["content"]:
            ((kind, value),) = seg.items()
            if kind == "text":
                field = value.strip("{}")
                fields[field] = "text" if not fields else field
                name = fields[field]
            else:
                name = "wav" if kind == "audio_input" else "codes"
            files += [name] if name not in files else []
    answer = [s for m in messages if m["role"] == "assistant" for s in m["content"]]
    if any("audio" in seg for seg in answer):
        kind = {"group": "generation", "scoring": "generation"}
    elif "wav" in files:
        kind = {"group": "understanding", "scoring": "captioning"}
    else:
        kind = {"group": "text"}
    return {"template": template, "files": files, "fields": fields, **kind}


def decode_settings(
    inference_config: Mapping[str, Any], frame_rate: float, delay_steps: int = 0
) -> Dict[str, Any]:
    """The peer's inference config as our ``decode.yaml`` (``DecodeSettings``):
    its guidance ``logits * s + uncond * (1 - s)`` is our ``cfg_scale`` ``s``;
    its audio ``max_step`` / ``min_step`` count delayed steps, ours seconds
    of frames: ``delay_steps`` (``max(delays)``) fewer."""

    def sampling(conf: Mapping[str, Any]) -> Dict[str, Any]:
        if float(conf.get("temperature", 1.0)) == 0:
            return {"greedy": True}
        return {
            "temperature": float(conf["temperature"]),
            "top_k": int(conf["topk"]) if conf.get("topk") else None,
        }

    out: Dict[str, Any] = {}
    text, audio = inference_config.get("text"), inference_config.get("audio")
    if text:
        out["text_sampling"] = sampling(text)
        out["max_text_tokens"] = int(text.get("max_step", 256))
        out["min_text_tokens"] = int(text.get("min_step", 1))
    if audio:
        out["audio_sampling"] = sampling(audio)
        cfg = float(audio.get("cfg", 1))
        out["cfg_scale"] = cfg if cfg > 1 else None
        steps = int(audio.get("max_step", 500))
        out["max_audio_seconds"] = max(0, steps - delay_steps) / frame_rate
        if "min_step" in audio:
            steps = max(0, int(audio["min_step"]) - delay_steps)
            out["min_audio_seconds"] = min(steps / frame_rate, out["max_audio_seconds"])
    if int(inference_config.get("num_hypo", 1)) > 1:
        out["best_of"] = int(inference_config["num_hypo"])
    return out


def _copy_text_tokenizer(src: str, dst: str) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(src, local_files_only=True).save_pretrained(dst)


def import_checkpoint(
    checkpoint: str,
    train_config: str,
    backbone_dir: str,
    codec_dir: str,
    out_dir: str,
    encoder_dir: Optional[str] = None,
    inference_config: Optional[str] = None,
    text_dir: Optional[str] = None,
    model_name: str = "ualm_from_speechlm",
    init_dir: Optional[str] = None,
    finetune_config: Optional[str] = None,
) -> str:
    """Writes the packed UALM model of a peer checkpoint into ``out_dir``.

    ``backbone_dir``: the backbone's HF directory (``model.model_hf_tag``;
    config, and the tokenizer unless ``text_dir``); ``codec_dir``: the
    X-codec directory (``codec_hf_model_tag``; its config); ``encoder_dir``:
    the Qwen3-Omni directory (``config.json``, ``preprocessor_config.json``:
    its weights come from the checkpoint), needed when the config has
    ``continuous_audio``. ``init_dir``: also write the recipe's stage-7
    starting point there (``write_init_dir``). Returns ``out_dir``.
    """
    from transformers import XcodecConfig, XcodecModel

    from espnet2.ualm.model.factory import build_model_from_config
    from espnet2.ualm.pretrained.layout import save_weights, write_index
    from espnet2.ualm.pretrained.model_card import write_model_card
    from espnet2.ualm.text.tokenizer import HFTextTokenizer

    config = read_yaml(train_config) or {}
    if config.get("job_type") != "speechlm":
        raise SpeechLMImportError(
            f"{train_config}: job_type {config.get('job_type')!r}, expected speechlm"
        )
    if (config.get("model") or {}).get("model_choice", "parallel") != "parallel":
        raise SpeechLMImportError(f"{train_config}: model_choice must be parallel")
    text_dir = text_dir or backbone_dir
    has_encoder = ENCODER_IO in (config.get("multimodal_io") or {})
    if has_encoder and encoder_dir is None:
        raise SpeechLMImportError(
            f"{train_config}: the model has continuous_audio: give encoder_dir (the "
            "Qwen3-Omni config.json and preprocessor_config.json)"
        )
    meta = peer_vocabulary(config, text_dir, codec_dir)
    peer = read_checkpoint(checkpoint)
    rows = peer.get("model.embed_tokens.weight")
    if rows is None or rows.shape[0] != meta["vocab_size"]:
        raise SpeechLMImportError(
            f"{checkpoint}: embedding rows "
            f"{None if rows is None else rows.shape[0]}, the config's vocabulary "
            f"{meta['vocab_size']}"
        )
    tokenizer = HFTextTokenizer(text_dir)
    vocab = vocabulary_of(meta, tokenizer.vocab_size)
    names = tokenizer.tok.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))
    mapping = row_map(vocab, meta, names)
    dropped = (meta["text_end"] - meta["text_start"]) - vocab.text_vocab_size
    if dropped:
        logging.info(f"{dropped} text rows past the tokenizer's ids are not imported")
    model_conf = (config.get("model") or {}).get("model_conf") or {}
    tied = bool(model_conf.get("tie_word_embeddings", False))
    dtype = None if rows.dtype == torch.float32 else str(rows.dtype).split(".")[-1]
    conf = model_config(backbone_dir, encoder_dir if has_encoder else None, tied, dtype)
    weights = meta["vocab_weight"]
    audio_start = int(meta["vocab_intervals"][AUDIO_IO][0][0])
    audio_weights = torch.unique(weights[audio_start : meta["mm_end"]]).tolist()
    if len(audio_weights) == 1 and math.isclose(
        audio_weights[0], 1.0 / vocab.n_codebooks
    ):
        pass  # our default audio_token_weight
    elif len(audio_weights) == 1:
        conf["model_conf"]["audio_token_weight"] = float(audio_weights[0])
    else:
        logging.warning(f"per-stream loss weights {audio_weights} are not imported")
    # the peer trains streams 1.. against every codec id (its multimodal range)
    conf["model_conf"]["audio_softmax"] = "audio"
    model = build_model_from_config(conf, vocab)
    state, codec_state = convert_state(peer, model.state_dict(), mapping, tied)
    model.load_state_dict(state, strict=True)

    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(os.path.join(out_dir, "model"))
    with open(os.path.join(out_dir, "model", "config.yaml"), "w") as f:
        yaml.safe_dump(conf, f, sort_keys=False)
    vocab.save(os.path.join(out_dir, "model", "vocabulary.json"))
    save_weights(model, os.path.join(out_dir, "model", "model.safetensors"))
    _copy_text_tokenizer(text_dir, os.path.join(out_dir, "text_tokenizer"))

    codec = XcodecModel(XcodecConfig.from_pretrained(codec_dir, local_files_only=True))
    missing, unexpected = codec.load_state_dict(codec_state, strict=False)
    if missing or unexpected:
        raise SpeechLMImportError(
            f"{checkpoint}: codec tensors do not fit {codec_dir}'s XcodecModel "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    os.makedirs(os.path.join(out_dir, "codec"))
    codec.save_pretrained(os.path.join(out_dir, "codec", "model"))
    with open(os.path.join(out_dir, "codec", "codec.yaml"), "w") as f:
        yaml.safe_dump(
            {"codec": "xcodec", "codec_conf": {"bandwidth": meta["codec_bandwidth"]}}, f
        )
    with open(os.path.join(out_dir, "task_templates.yaml"), "w") as f:
        yaml.safe_dump(task_templates(config), f, sort_keys=False)
    decode = inference_config is not None
    if decode:
        frame_rate = float(codec.config.frame_rate)
        settings = decode_settings(
            read_yaml(inference_config) or {}, frame_rate, max(vocab.audio_delays)
        )
        with open(os.path.join(out_dir, "decode.yaml"), "w") as f:
            yaml.safe_dump(settings, f, sort_keys=False)
    write_model_card(out_dir, model_name=model_name, model=model, train_config={})
    with open(os.path.join(out_dir, "README.md"), "a", encoding="utf-8") as f:
        f.write(
            "\n## Source\n\nImported from an ESPnet-SpeechLM checkpoint "
            f"({os.path.basename(checkpoint)}) by espnet2.bin.ualm_import_speechlm. "
            f"Its audio layout: delay_interleave={meta['delay_interleave']}.\n"
        )
    write_index(
        out_dir,
        codec_model_dir=True,
        enhancer=False,
        decode=decode,
        extra={"task_templates": "task_templates.yaml"},
    )
    if init_dir is not None:
        write_init_dir(model, conf, init_dir, finetune_config)
    return out_dir


def write_init_dir(
    model: torch.nn.Module,
    conf: Mapping[str, Any],
    init_dir: str,
    finetune_config: Optional[str] = None,
) -> None:
    """The recipe's stage-7 starting point: ``valid.loss.best.pth`` (the
    state dict ESPnet's ``--init_param`` reads, tensors only) and, from a
    stage-7 config (``conf/train_unified.yaml``), ``train_unified.yaml``:
    its training keys with this model's part (``with_model_of``)."""
    from espnet2.ualm.model.factory import MODEL_CONFIG_KEYS, with_model_of

    os.makedirs(init_dir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(init_dir, "valid.loss.best.pth"))
    if finetune_config is None:
        return
    training = read_yaml(finetune_config) or {}
    model_conf = training.get("model_conf") or {}
    training = {k: v for k, v in training.items() if k not in MODEL_CONFIG_KEYS}
    training["model_conf"] = {
        k: v for k, v in model_conf.items() if k not in (conf.get("model_conf") or {})
    }
    merged = with_model_of(training, conf)
    with open(os.path.join(init_dir, "train_unified.yaml"), "w") as f:
        yaml.safe_dump(merged, f, sort_keys=False)
