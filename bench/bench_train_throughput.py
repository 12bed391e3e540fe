#!/usr/bin/env python3
"""Training throughput of UALM against the bare Hugging Face causal LM.

    tools/venv/bin/python bench/bench_train_throughput.py   # ~3-5 min, 2 cores
        [--shapes mini mini-whisper-tiny qwen0.5b-2l] [--repeats 3]
        [--rows B] [--length T]
        [--encoder config|tiny|base|none] [--logits_chunk_size N]
        [--mix 0.6,0.15,0.25] [--no_what_if] [--threads N] [--json PATH]
        [--codec_config egs2/ualm/mini/conf/codec.yaml]

One training step, forward + backward (no optimizer), of ``UALMModel`` on a
packed multi-stream batch against ``Qwen2ForCausalLM`` of the same width,
depth and vocabulary rows (special + text + K x (codebook size + 1) audio:
the same embedding and LM-head tables) on the same ``[B, T]`` positions: the
stream-0 ids, the stream-0 targets as labels (-100 elsewhere), the same
packed position ids (so the same block-diagonal attention) and HF's standard
loss (logits at every position). Throughput = positions / step time.

Timing: all variants of a group run interleaved, the order rotated (and
reversed) every round, after one untimed round; medians of ``--repeats``.
Both the wall time and the process CPU time are recorded. The CPU time is
the figure to read on a shared machine: other processes stretch the wall
time (1-2.5x when this was written), hardly the CPU time (mostly within a
few % across repeats, and the same with 1 or 2 threads). For it, the
script runs itself again with ``RUN_ENV``: OpenMP threads sleep instead of
spinning when they wait, and glibc keeps freed memory instead of returning (and
page-faulting again) every big logits or gradient tensor, as a caching
allocator would (``--default_env`` to skip).

Where the extra time goes: each UALM part and its HF counterpart is timed
in isolation (forward + backward, same inputs):

- input embeddings: ``UALMModel.embed`` (the sum of the K streams'
  embeddings, ``embedding_bag``, and the table's <pad>-gradient hook)
  against ``embed_tokens`` of stream 0;
- head + loss: ``multistream_loss`` on a fixed hidden state against
  ``lm_head`` + HF's ``loss_function``; split into stream 0 alone (full
  vocabulary, logits at its targets only) and streams 1..K-1 (the model's
  ``audio_softmax``: by default each over its own codebook's 1,025 rows);
- audio encoder (frozen Whisper, zero-padded windows) + adapter + writing
  the frames at the placeholders: ``embed`` with the continuous input minus
  ``embed`` of the same ids without it;
- rest: the step's difference minus the parts (stats, guard, CFG dropout);
- data: building the examples (``SequenceBuilder``: template, tokenizer,
  delay pattern) and ``collate_sequences`` against laying out stream-0 ids
  and labels as an HF collator does (per batch; DataLoader workers run it).

Packed attention: both models get the same position ids and no attention
mask, so transformers builds the same block-diagonal mask for both (inside
the backbone, not a UALM cost).

What-ifs (same model and weights): the other ``audio_softmax`` (``audio``:
streams 1..K-1 over all 8,200 audio rows, the default before), the step
without the encoder (features precomputed: the placeholders' rows stand
in), the step under bfloat16 autocast (the model's ``autocast_dtype``;
matmuls in bfloat16, the loss in float32), and the loss in one chunk
(no checkpoint recomputation) when some ``linear_cross_entropy`` call
has more rows than ``logits_chunk_size``.

Geometry: codebooks, codebook size and codec frame rate from the codec of
``--codec_config`` (default: the mini recipe's, whose training config the
``mini`` shape reads; ``{codec: spec_rvq, codec_conf: {}}`` gives X-codec's
8 x 1024 at 50 Hz), the encoder frame rate from the built encoder.

Batch (``make_rows``): rows packed to exactly ``T`` positions with
text-to-audio (caption -> codes; clips 10 s at the codec's frame rate, 15 %
shorter), audio captioning (continuous input at the encoder's frame rate)
and text dialogues, by default 60 /
15 / 25 % of the positions (``--mix``); clips are cut to fit the row and
their share; a text dialogue fills each row's end. Text: random words of a
word-level tokenizer.

Shapes: ``mini``: the mini recipe's default training config, read from
``egs2/ualm/mini/conf/train_unified.yaml``: its Qwen2 backbone (hidden 256,
4 layers, 4 heads / 2 KV, MLP 1024, tied head when this was written), its
Whisper encoder and MLP adapter, its ``model_conf`` but ``autocast_dtype``
(float32 like the HF step; the what-if has it), its batch (``rows_per_batch``
x ``max_tokens_per_row``); text vocabulary 1,000 (the recipe's BPE size).
``qwen0.5b-2l``: Qwen2.5-0.5B's width (896, 14 heads / 2 KV, MLP
4864, 151,936 text rows, tied head) cut to 2 layers, random weights, 1 x
512 positions (its 160k-row head makes a step ~5-7 CPU-s), Whisper-tiny's
encoder shape (d 384, 4 layers, 30 s windows), CFG dropout 0.05 (release).
Both: the codec config's geometry, fp32, sdpa attention, random weights,
the encoder frozen. ``mini-whisper-tiny``: ``mini`` with Whisper-tiny's
encoder shape and 30 s windows (this script's mini shape before the recipe
had a training config). ``--encoder tiny|base`` puts a Whisper-tiny/-base shape with
30 s windows into either shape, ``none`` drops the understanding examples.
"""

import argparse
import dataclasses
import gc
import logging
import os
import statistics
import sys
import time
import zlib
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

import numpy as np
import torch
import yaml
from transformers import Qwen2Config, Qwen2ForCausalLM

from espnet2.ualm.codec.config import codec_from_config
from espnet2.ualm.model.batch import collate_sequences
from espnet2.ualm.model.factory import build_ualm_model
from espnet2.ualm.model.loss import multistream_loss
from espnet2.ualm.text.tokenizer import TextTokenizer
from espnet2.ualm.tokens.conversation import AudioInputSegment
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.tokens.vocabulary import UALMVocabulary

import common

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI_CODEC_CONFIG = os.path.join(REPO, "egs2", "ualm", "mini", "conf", "codec.yaml")
MINI_CONFIG = os.path.join(REPO, "egs2", "ualm", "mini", "conf", "train_unified.yaml")
MINI_TEXT_VOCAB = 1000  # egs2/ualm/mini/run.sh: --bpe_vocab_size 1000


def mini_shape(path: str = MINI_CONFIG) -> Dict:
    """The mini recipe's training config: backbone, encoder, model_conf, batch."""
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    backbone = {
        k: v
        for k, v in conf["backbone_conf"]["config"].items()
        if k not in ("model_type", "vocab_size", "max_position_embeddings")
    }
    encoder = dict(conf["audio_encoder_conf"])
    return dict(
        backbone=backbone,
        text_vocab=MINI_TEXT_VOCAB,
        rows=int(conf["rows_per_batch"]),
        length=int(conf["max_tokens_per_row"]),
        encoder=encoder,
        adapter={"type": conf.get("audio_adapter", "mlp")},
        # float32 like the HF step; the what-if runs the config's autocast
        model_conf={
            k: v
            for k, v in (conf.get("model_conf") or {}).items()
            if k != "autocast_dtype"
        },
        config=os.path.relpath(path, REPO),
    )


SHAPES: Dict[str, Dict] = {
    "mini": mini_shape(),
    "qwen0.5b-2l": dict(
        backbone=dict(  # Qwen2.5-0.5B's config.json, 2 of its 24 layers
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=2,
            num_attention_heads=14,
            num_key_value_heads=2,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
        ),
        text_vocab=151936,
        rows=1,
        length=512,
        encoder="tiny",
        model_conf={"cfg_dropout_prob": 0.05},  # release
    ),
}
ENCODERS = {  # WhisperConfig fields (encoder side)
    "tiny": dict(d_model=384, encoder_layers=4, encoder_attention_heads=6,
                 encoder_ffn_dim=1536),
    "base": dict(d_model=512, encoder_layers=6, encoder_attention_heads=8,
                 encoder_ffn_dim=2048),
}  # fmt: skip
# the mini config with Whisper-tiny's shape and 30 s windows (the earlier
# mini shape of this script, before the recipe had a training config)
SHAPES["mini-whisper-tiny"] = dict(SHAPES["mini"], encoder="tiny")
PROMPT_WORDS = 5  # "Generate audio for this caption." (T2A_PROMPT, CAPTION_PROMPT)


class WordTokenizer(TextTokenizer):
    """One id per whitespace-separated word (crc32 mod the vocabulary)."""

    def __init__(self, size: int):
        self.size = size

    @property
    def vocab_size(self) -> int:
        return self.size

    def encode(self, text: str) -> List[int]:
        return [zlib.crc32(w.encode()) % self.size for w in text.split()]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(f"w{i}" for i in ids)


# ----- the batch ------------------------------------------------------------------


def _words(rng: np.random.Generator, n: int) -> str:
    return " ".join(f"w{i}" for i in rng.integers(0, 1 << 30, max(1, n)))


def _caption_words(rng: np.random.Generator) -> int:
    return int(np.clip(np.rint(rng.normal(20, 6)), 5, 60))


def _clip_seconds(rng: np.random.Generator) -> float:
    return 10.0 if rng.random() >= 0.15 else float(rng.uniform(2, 10))


@dataclasses.dataclass(frozen=True)
class Geometry:
    """What the batch takes of the codec and the encoder (frames per second)."""

    n_codebooks: int
    codebook_size: int
    codec_fps: float
    encoder_fps: float


def make_rows(
    rows: int,
    length: int,
    shares: Sequence[float],
    geometry: Geometry,
    seed: int = 0,
) -> List[List[Tuple[str, Dict]]]:
    """Example specs (task, fields) packed into ``rows`` rows of ``length``.

    Greedy: each next example is of the kind furthest below its share of
    positions so far; clips are shortened to fit the row and the kind's
    share of the whole batch; a text dialogue fills the end of each row
    exactly. Lengths come from the builder's layout:
    t2a = 1 + (3 + prompt + caption) + (2 + frames + K); caption =
    1 + (3 + frames) + (3 + prompt) + (3 + caption); dialogue = 7 + words.
    """
    rng = np.random.default_rng(seed)
    k, codec_fps, encoder_fps = (
        geometry.n_codebooks,
        geometry.codec_fps,
        geometry.encoder_fps,
    )
    kinds = ("text_to_audio", "audio_caption", "text_dialogue")
    used = dict.fromkeys(kinds, 0)

    def budget(kind: str) -> int:  # positions still due to ``kind``
        return int(round(shares[kinds.index(kind)] * rows * length)) - used[kind]

    out = []
    for _ in range(rows):
        row, free = [], length
        while free > 0:
            total = max(1, sum(used.values()))
            kind = min(kinds, key=lambda k: used[k] / total - shares[kinds.index(k)])
            cap = _caption_words(rng)
            if kind == "text_to_audio":
                fixed = 1 + (3 + PROMPT_WORDS + cap) + 2 + k
                room = min(free, budget(kind)) - fixed
                frames = min(int(_clip_seconds(rng) * codec_fps), room)
                if frames >= codec_fps:  # at least 1 s
                    codes = rng.integers(0, geometry.codebook_size, (frames, k))
                    row.append((kind, dict(caption=_words(rng, cap), codes=codes)))
                    used[kind] += fixed + frames
                    free -= fixed + frames
                    continue
            elif kind == "audio_caption":
                fixed = 1 + 3 + (3 + PROMPT_WORDS) + (3 + cap)
                room = min(free, budget(kind)) - fixed
                frames = min(int(_clip_seconds(rng) * encoder_fps), room)
                if frames >= encoder_fps:
                    row.append((kind, dict(caption=_words(rng, cap), frames=frames)))
                    used[kind] += fixed + frames
                    free -= fixed + frames
                    continue
            # a text dialogue (50-800 words, log-uniform), or the row's end when
            # the clip chosen does not fit
            n = free - 7
            if kind == "text_dialogue":
                n = min(n, int(np.exp(rng.uniform(np.log(50), np.log(800)))))
            if free - n - 7 < 16:  # too little room left for another example
                n = free - 7
            if n < 2:
                break  # (rare) a few padding positions at the end
            n_user = max(1, n // 3)
            row.append(("text_dialogue", dict(user=n_user, assistant=n - n_user)))
            used["text_dialogue"] += n + 7
            free -= n + 7
        out.append(row)
    return out


def _planned_length(kind: str, fields: Dict) -> int:
    """Positions of one example as ``make_rows`` counts them."""
    if kind == "text_to_audio":
        cap = len(fields["caption"].split())
        frames, k = fields["codes"].shape
        return 1 + (3 + PROMPT_WORDS + cap) + 2 + frames + k
    if kind == "audio_caption":
        cap = len(fields["caption"].split())
        return 1 + (3 + fields["frames"]) + (3 + PROMPT_WORDS) + (3 + cap)
    return 7 + fields["user"] + fields["assistant"]


def build_batch(
    specs: List[List[Tuple[str, Dict]]],
    builder: SequenceBuilder,
    samples_per_frame: int,
    seed: int = 0,
) -> Tuple[Dict[str, torch.Tensor], Callable, Callable]:
    """The collated batch, a function that redoes build + collate, and one
    that only builds (the rows of ``BuiltSequence``)."""
    rng = np.random.default_rng(seed + 1)
    waves = {}
    texts = {}
    for r, row in enumerate(specs):
        for i, (kind, f) in enumerate(row):
            if kind == "audio_caption":
                key = f"wav{r}_{i}"
                n = f["frames"] * samples_per_frame
                waves[key] = torch.from_numpy(rng.standard_normal(n).astype("float32"))
            elif kind == "text_dialogue":
                texts[(r, i)] = (_words(rng, f["user"]), _words(rng, f["assistant"]))

    def build_rows():
        rows = []
        for r, row in enumerate(specs):
            seqs = []
            for i, (kind, f) in enumerate(row):
                if kind == "text_to_audio":
                    ex = {
                        "caption": f["caption"],
                        "audio": torch.from_numpy(f["codes"]),
                    }
                elif kind == "audio_caption":
                    seg = AudioInputSegment(f"wav{r}_{i}", f["frames"])
                    ex = {"caption": f["caption"], "audio": seg}
                else:
                    user, assistant = texts[(r, i)]
                    ex = {"messages": [
                        {"role": "user", "content": [{"type": "text", "text": user}]},
                        {"role": "assistant",
                         "content": [{"type": "text", "text": assistant}]},
                    ]}  # fmt: skip
                seqs.append(builder.build_example(kind, ex))
            rows.append(seqs)
        return rows

    def build():
        return collate_sequences(build_rows(), waves)

    lengths = [sum(len(s) for s in row) for row in build_rows()]
    planned = [sum(_planned_length(k, f) for k, f in row) for row in specs]
    if lengths != planned:
        raise AssertionError(f"built rows {lengths} != planned {planned}")

    return build(), build, build_rows


def strip_audio_input(
    batch: Dict[str, torch.Tensor], placeholder: int, filler: int
) -> Dict[str, torch.Tensor]:
    """Same positions without continuous input: placeholders become ``filler``."""
    out = {k: v for k, v in batch.items() if not k.startswith("audio_input")}
    ids = batch["ids"].clone()
    ids[..., 0][ids[..., 0] == placeholder] = filler
    out["ids"] = ids
    return out


def hf_inputs(batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Stream 0 of the UALM batch, labels = stream-0 targets, -100 elsewhere."""
    ids0 = batch["ids"][..., 0]
    length = ids0.shape[1]
    valid = torch.arange(length) < batch["ids_lengths"][:, None]
    target = batch["loss_mask"][..., 0] & valid
    return {
        "input_ids": ids0.contiguous(),
        "position_ids": batch["position_ids"],
        "labels": torch.where(target, ids0, torch.full_like(ids0, -100)),
    }


def hf_collate(rows: List[List[torch.Tensor]], length: int) -> Dict:
    """What an HF LM collator does: concatenate and pad 1-D ids, labels."""
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    pos = torch.zeros(len(rows), length, dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    for b, row in enumerate(rows):
        start = 0
        for x in row:
            ids[b, start : start + len(x)] = x
            labels[b, start : start + len(x)] = x
            pos[b, start : start + len(x)] = torch.arange(len(x))
            start += len(x)
    return {"input_ids": ids, "labels": labels, "position_ids": pos}


# ----- timing -----------------------------------------------------------------------


def run_interleaved(
    variants: Dict[str, Callable[[], object]], repeats: int, warmup: int
) -> Dict[str, Dict[str, List[float]]]:
    """Wall and process CPU seconds of each variant, ``repeats`` times.

    The order is rotated (and reversed every other round) so that slow
    phases of the shared machine fall on every variant alike.
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    out = {n: {"wall": [], "cpu": []} for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        if r % 2:
            order = order[::-1]
        for name in order:
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            variants[name]()
            out[name]["cpu"].append(time.process_time() - cpu)
            out[name]["wall"].append(time.perf_counter() - wall)
    return out


def _clear(*modules: torch.nn.Module) -> None:
    for m in modules:
        m.zero_grad(set_to_none=True)


def encoder_conf(shape: Dict, encoder: str):
    """``audio_encoder`` section: the shape's own (``config``), a Whisper size
    with 30 s windows, or None."""
    if encoder == "none":
        return None
    if encoder == "config":
        encoder = shape["encoder"]
    if isinstance(encoder, dict):
        return encoder
    return {"config": dict(ENCODERS[encoder], num_mel_bins=80)}


def encoder_name(encoder) -> str:
    """The built encoder's shape, for the report."""
    if encoder is None:
        return "none"
    c = encoder.encoder.config
    seconds = encoder.window_samples / encoder.sample_rate
    return f"Whisper d {c.d_model}, {c.encoder_layers} layers, {seconds:g} s windows"


def build_models(shape: Dict, encoder: str, model_conf: Dict, codec):
    vocab = UALMVocabulary.for_codec(shape["text_vocab"], codec)
    conf = dict(shape["backbone"], vocab_size=vocab.size, max_position_embeddings=32768)
    enc = encoder_conf(shape, encoder)
    torch.manual_seed(0)
    model = build_ualm_model(
        vocab,
        backbone={"config": dict(conf, model_type="qwen2")},
        audio_encoder=enc,
        adapter=shape.get("adapter", {"type": "mlp"}) if enc else None,
        **model_conf,
    ).train()
    torch.manual_seed(0)
    hf = Qwen2ForCausalLM(Qwen2Config(**conf, attn_implementation="sdpa")).train()
    return vocab, conf, model, hf


def batch_stats(batch, specs, vocab) -> Dict:
    ids0 = batch["ids"][..., 0]
    return {
        "rows": int(ids0.shape[0]),
        "length": int(ids0.shape[1]),
        "positions": int(batch["ids_lengths"].sum()),
        "examples": {
            k: sum(s[0] == k for r in specs for s in r)
            for k in ("text_to_audio", "audio_caption", "text_dialogue")
        },
        "codec_positions": int((ids0 >= vocab.audio_offset).sum()),
        "placeholder_positions": int((ids0 == vocab.audio_placeholder_id).sum()),
        "targets_per_stream": batch["loss_mask"][:, 1:].sum((0, 1)).tolist(),
        "audio_inputs": int(batch.get("audio_input_lengths", torch.zeros(0)).numel()),
        "vocab_rows": vocab.size,
    }


def bench_shape(name: str, args) -> Dict:
    shape = dict(SHAPES[name])
    shape["rows"] = args.rows or shape["rows"]
    shape["length"] = args.length or shape["length"]
    model_conf = dict(shape.get("model_conf") or {})
    if args.logits_chunk_size:
        model_conf["logits_chunk_size"] = args.logits_chunk_size
    codec = codec_from_config(args.codec_config, args.codec_model_dir)
    vocab, conf, model, hf = build_models(shape, args.encoder, model_conf, codec)
    info = {
        "codec_config": os.path.relpath(args.codec_config, REPO),
        "encoder": encoder_name(model.audio_encoder),
        "audio_softmax": model.audio_softmax,
        "logits_chunk_size": model.logits_chunk_size,
    }
    builder = SequenceBuilder(vocab, WordTokenizer(vocab.text_vocab_size))
    shares = [float(x) for x in args.mix.split(",")]
    if model.audio_encoder is None:
        shares[1] = 0.0
    encoder = model.audio_encoder
    geometry = Geometry(
        n_codebooks=vocab.n_codebooks,
        codebook_size=vocab.codebook_size,
        codec_fps=float(codec.frame_rate),
        encoder_fps=encoder.frame_rate if encoder else 0.0,  # no captioning then
    )
    specs = make_rows(shape["rows"], shape["length"], shares, geometry, args.seed)
    spf = encoder.samples_per_frame if encoder else 0
    batch, rebuild, build_rows = build_batch(specs, builder, spf, seed=args.seed)
    no_audio = strip_audio_input(batch, vocab.audio_placeholder_id, vocab.text_offset)
    hf_batch = hf_inputs(batch)
    stats = batch_stats(batch, specs, vocab)
    rows, length = batch["ids"].shape[:2]
    dim = conf["hidden_size"]
    w = model.audio_token_weight

    # ---- end to end: one training step, forward + backward ----
    def ualm_step(b=batch):
        _clear(model)
        loss, _, _ = model(**b)
        loss.sum().backward()

    def hf_step():
        _clear(hf)
        hf(**hf_batch, use_cache=False).loss.backward()

    def ualm_step_with(option: str, value, b=batch):
        """The model with one option set otherwise (same weights)."""

        def run():
            default = getattr(model, option)
            setattr(model, option, value)
            try:
                ualm_step(b)
            finally:
                setattr(model, option, default)

        return run

    valid_mask = (
        batch["loss_mask"]
        & (torch.arange(length) < batch["ids_lengths"][:, None])[..., None]
    )
    other_softmax = "audio" if model.audio_softmax == "codebook" else "codebook"
    e2e = {"hf": hf_step, "ualm": ualm_step}
    if args.what_if:
        e2e[f"ualm_{other_softmax}_softmax"] = ualm_step_with(
            "audio_softmax", other_softmax
        )
        if model.audio_encoder is not None:
            # encoder features precomputed: the placeholders' own rows stand in
            e2e["ualm_no_encoder"] = lambda: ualm_step(no_audio)
        if model.autocast_dtype is None:
            e2e["ualm_bf16_autocast"] = ualm_step_with("autocast_dtype", "bfloat16")
    times = run_interleaved(e2e, args.repeats, args.warmup)

    # ---- parts, each against its HF counterpart, forward + backward ----
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(rows, length, dim, generator=gen)
    grad_embed = torch.randn(rows, length, dim, generator=gen)
    mask0 = valid_mask.clone()
    mask0[..., 1:] = False
    head = model.head_weight

    def embed_ualm(b):
        def run():
            _clear(model)
            model.embed(
                b["ids"],
                b.get("audio_input"),
                b.get("audio_input_lengths"),
                b.get("audio_input_spans"),
            ).backward(grad_embed)

        return run

    def embed_hf():
        _clear(hf)
        hf.get_input_embeddings()(hf_batch["input_ids"]).backward(grad_embed)

    def loss_ualm(mask, chunk=model.logits_chunk_size, softmax=model.audio_softmax):
        def run():
            _clear(model)
            h = hidden.clone().requires_grad_(True)
            multistream_loss(
                h, batch["ids"], mask, head, model.stream_embeddings,
                vocab.audio_offset, w, chunk_size=chunk,
                audio_size=vocab.audio_size, audio_softmax=softmax,
            ).loss.backward()  # fmt: skip

        return run

    def loss_hf():
        _clear(hf)
        logits = hf.lm_head(hidden.clone().requires_grad_(True))
        hf.loss_function(
            logits=logits, labels=hf_batch["labels"], vocab_size=vocab.size
        ).backward()

    built = build_rows()
    waves = {}
    if "audio_input" in batch:
        keys = [s.key for row in built for seq in row for s in seq.audio_inputs]
        n = batch["audio_input_lengths"].tolist()
        waves = {k: batch["audio_input"][i, : n[i]] for i, k in enumerate(keys)}
    hf_rows = [[seq.ids[:, 0] for seq in row] for row in built]
    parts = {
        "embed_hf": embed_hf,
        "embed_ualm": embed_ualm(no_audio),
        "loss_hf": loss_hf,
        "loss_ualm": loss_ualm(valid_mask),
        "loss_ualm_stream0": loss_ualm(mask0),
        "data_hf_collate": lambda: hf_collate(hf_rows, length),
        "data_ualm_build": build_rows,
        "data_ualm_collate": lambda: collate_sequences(built, waves),
    }
    if model.audio_encoder is not None:
        parts["embed_ualm_audio_input"] = embed_ualm(batch)
    if args.what_if:
        parts[f"loss_ualm_{other_softmax}_softmax"] = loss_ualm(
            valid_mask, softmax=other_softmax
        )
        # rows of one linear_cross_entropy call: stream 0's targets, then each
        # audio stream's ("codebook") or all audio streams' together ("audio")
        per_stream = valid_mask[:, 1:].sum((0, 1))
        calls = [int(per_stream[0])] + (
            per_stream[1:].tolist()
            if model.audio_softmax == "codebook"
            else [int(per_stream[1:].sum())]
        )
        if max(calls) > model.logits_chunk_size:  # else the same as as-is
            parts["loss_ualm_one_chunk"] = loss_ualm(valid_mask, chunk=1 << 30)
    # the parts run the step's operations again: the warm-up above suffices
    times.update(run_interleaved(parts, args.repeats, warmup=0))
    return analyse(name, shape, conf, args, info, stats, times, list(e2e))


E2E_LABELS = {
    "hf": "HF Qwen2ForCausalLM (stream-0 ids)",
    "ualm": "UALM",
    "ualm_audio_softmax": "what-if: streams over all audio ids",
    "ualm_codebook_softmax": "what-if: streams over own codebook",
    "ualm_no_encoder": "what-if: encoder features given",
    "ualm_bf16_autocast": "what-if: autocast_dtype bfloat16",
}
PART_LABELS = {
    "embed": "input embeddings: sum of K streams",
    "stream0": "head + loss, stream 0 (targets only)",
    "streams": "head + loss, streams 1..K-1",
    "encoder": "audio encoder + adapter",
    "rest": "rest: stats, guard, CFG (+ noise)",
}


def _parts_delta(m: Dict[str, float]) -> Dict[str, float]:
    """UALM part minus its HF counterpart; ``rest`` = step delta minus parts."""
    d = {
        "embed": m["embed_ualm"] - m["embed_hf"],
        "stream0": m["loss_ualm_stream0"] - m["loss_hf"],
        "streams": m["loss_ualm"] - m["loss_ualm_stream0"],
    }
    if "embed_ualm_audio_input" in m:
        d["encoder"] = m["embed_ualm_audio_input"] - m["embed_ualm"]
    d["rest"] = (m["ualm"] - m["hf"]) - sum(d.values())
    return d


def analyse(name, shape, conf, args, info, stats, times, e2e_names) -> Dict:
    cpu = {k: statistics.median(v["cpu"]) for k, v in times.items()}
    wall = {k: statistics.median(v["wall"]) for k, v in times.items()}
    n_pos = stats["positions"]
    delta_cpu, delta_wall = _parts_delta(cpu), _parts_delta(wall)
    data = {
        m: t["data_ualm_build"] + t["data_ualm_collate"] - t["data_hf_collate"]
        for m, t in (("cpu", cpu), ("wall", wall))
    }
    overhead = {k: cpu[k] / cpu["hf"] - 1 for k in e2e_names[1:]}
    # what an HF loss computing logits at the targets only would save as well
    like_for_like = (cpu["ualm"] - delta_cpu["stream0"]) / cpu["hf"] - 1
    out = {
        "shape": name,
        "backbone": conf,
        "text_vocab": shape["text_vocab"],
        "encoder": info["encoder"],
        "model_conf": {
            "audio_softmax": info["audio_softmax"],
            "logits_chunk_size": info["logits_chunk_size"],
            **(shape.get("model_conf") or {}),
        },
        "config": shape.get("config"),
        "batch": stats,
        "threads": torch.get_num_threads(),
        "seconds": times,
        "median_cpu_s": cpu,
        "median_wall_s": wall,
        "tokens_per_cpu_second": {k: n_pos / cpu[k] for k in e2e_names},
        "tokens_per_second": {k: n_pos / wall[k] for k in e2e_names},
        "ualm_over_hf_throughput": cpu["hf"] / cpu["ualm"],
        "ualm_over_hf_throughput_wall": wall["hf"] / wall["ualm"],
        "overhead_cpu": overhead,
        "overhead_wall": {k: wall[k] / wall["hf"] - 1 for k in e2e_names[1:]},
        "overhead_cpu_without_stream0_target_only_saving": like_for_like,
        "extra_cpu_s_by_part": delta_cpu,
        "extra_wall_s_by_part": delta_wall,
        "data_extra_s_per_batch": data,
        "target_met": overhead["ualm"] <= 0.15,
    }

    b = stats
    text = n_pos - b["codec_positions"] - b["placeholder_positions"]
    print(
        f"\n[{name}] hidden {conf['hidden_size']}, {conf['num_hidden_layers']} layers,"
        f" {b['vocab_rows']} vocabulary rows "
        f"({'tied' if conf['tie_word_embeddings'] else 'untied'} head); "
        f"{b['rows']} x {b['length']} positions: {b['codec_positions']} codec frames, "
        f"{b['placeholder_positions']} encoder frames ({b['audio_inputs']} clips, "
        f"{info['encoder']}), {text} text/special; streams 1..K-1 softmax over "
        f"{info['audio_softmax']}; medians of {args.repeats}, "
        f"{torch.get_num_threads()} threads"
    )
    header = (
        f"{'step (forward + backward)':36s} {'CPU s':>6s} {'tok/CPU-s':>9s} "
        f"{'ratio':>5s} | {'wall s':>6s} {'tok/s':>6s} {'ratio':>5s}"
    )
    print(header + "\n" + "-" * len(header))
    for k in e2e_names:
        print(
            f"{E2E_LABELS[k]:36s} {cpu[k]:6.2f} {n_pos / cpu[k]:9.0f} "
            f"{cpu['hf'] / cpu[k]:5.2f} | {wall[k]:6.2f} {n_pos / wall[k]:6.0f} "
            f"{wall['hf'] / wall[k]:5.2f}"
        )
    print(
        f"UALM overhead {100 * overhead['ualm']:+.0f} % CPU time "
        f"({100 * (wall['ualm'] / wall['hf'] - 1):+.0f} % wall); target <= +15 %; "
        f"{100 * like_for_like:+.0f} % against an HF loss with logits at targets only"
    )
    header = (
        f"{'where the extra time goes (UALM - HF)':40s} {'CPU s':>7s} "
        f"{'% HF step':>9s} {'wall s':>7s}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for k, v in delta_cpu.items():
        print(
            f"{PART_LABELS[k]:40s} {v:+7.3f} {100 * v / cpu['hf']:+8.1f}% "
            f"{delta_wall[k]:+7.3f}"
        )
    print(
        f"{'data: build + collate (in workers)':40s} {data['cpu']:+7.3f} "
        f"{100 * data['cpu'] / cpu['hf']:+8.1f}% {data['wall']:+7.3f}"
    )
    print(
        "parts, CPU s: embed HF {embed_hf:.3f} UALM {embed_ualm:.3f}; head+loss HF "
        "{loss_hf:.3f} UALM {loss_ualm:.3f} (stream 0 alone {loss_ualm_stream0:.3f})"
        "; data HF collate {data_hf_collate:.4f}, UALM build {data_ualm_build:.4f} + "
        "collate {data_ualm_collate:.4f}".format(**cpu)
    )
    if args.what_if:
        one = cpu.get("loss_ualm_one_chunk")
        other = [k for k in cpu if k.startswith("loss_ualm_") and "softmax" in k][0]
        print(
            f"what-if head+loss, CPU s: as is {cpu['loss_ualm']:.3f}; "
            + ("" if one is None else f"one chunk (no recompute) {one:.3f}; ")
            + f"{other[len('loss_ualm_') :]} {cpu[other]:.3f}"
        )
    return out


RUN_ENV = {
    # glibc: keep freed blocks in the heap instead of returning every big
    # tensor to the OS (page faults on each new logits/gradient tensor, the
    # way neither a GPU caching allocator nor a long training run behaves)
    "MALLOC_MMAP_THRESHOLD_": str(1 << 34),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 34),
    # OpenMP threads sleep instead of spinning while waiting: CPU time then
    # counts work only, also when other processes hold the cores
    "OMP_WAIT_POLICY": "PASSIVE",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=["mini", "mini-whisper-tiny", "qwen0.5b-2l"],
        choices=SHAPES,
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds")
    parser.add_argument("--rows", type=int, default=None, help="override B")
    parser.add_argument("--length", type=int, default=None, help="override T")
    parser.add_argument(
        "--encoder",
        default="config",
        choices=["config", *ENCODERS, "none"],
        help="config: the shape's own (mini: its train config's; 0.5B: tiny)",
    )
    parser.add_argument(
        "--logits_chunk_size", type=int, default=None, help="model option"
    )
    parser.add_argument(
        "--mix",
        default="0.6,0.15,0.25",
        help="shares of positions: text-to-audio, audio captioning, text",
    )
    parser.add_argument(
        "--no_what_if",
        dest="what_if",
        action="store_false",
        help="skip the what-if variants (codebook heads, one chunk)",
    )
    parser.add_argument(
        "--default_env",
        action="store_true",
        help="do not set " + ", ".join(RUN_ENV) + " (see RUN_ENV)",
    )
    parser.add_argument(
        "--codec_config",
        default=MINI_CODEC_CONFIG,
        help="the codec whose geometry the batch has (codebooks, size, rate)",
    )
    parser.add_argument(
        "--codec_model_dir", default=None, help="its checkpoint, if it needs one"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--json",
        default=common.default_json("bench_train_throughput"),
    )
    args = parser.parse_args()
    if not args.default_env and any(os.environ.get(k) != v for k, v in RUN_ENV.items()):
        # glibc and OpenMP read these at start-up only: run again with them set
        os.execve(
            sys.executable, [sys.executable, *sys.argv], {**os.environ, **RUN_ENV}
        )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    load = os.getloadavg()
    results = [bench_shape(name, args) for name in args.shapes]
    wall = time.perf_counter() - start
    print(
        f"\nwall time {wall:.0f} s; load average {load[0]:.1f} -> "
        f"{os.getloadavg()[0]:.1f}"
    )
    common.write_json(
        args.json,
        {
            "args": vars(args),
            "wall_seconds": wall,
            "load_average": [load[0], os.getloadavg()[0]],
            "env": {k: os.environ.get(k) for k in RUN_ENV},
            "shapes": results,
        },
    )


if __name__ == "__main__":
    main()
