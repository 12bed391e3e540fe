#!/usr/bin/env python3
"""Audio-token generation speed: UALM's generator against MusicGen's decoder.

    tools/venv/bin/python bench/bench_generation.py [--quick] [--what_if]
        [--threads N] [--repeats N] [--json PATH]

Generates a 10 s clip (500 frames at 50 Hz, 8 codebooks x 1024 codes, delay
pattern: 507 delayed steps) with classifier-free guidance (scale 3, one
forward per step over the doubled batch) at batch 1 and batch 8, with

- ``UALMGenerator`` (text-to-audio prompt, ``modalities="audio"``, a Qwen2
  backbone built by ``build_ualm_model``), and
- transformers' ``MusicgenForCausalLM.generate`` (the standalone MusicGen
  decoder) with ``guidance_scale``: its ``prepare_inputs_for_generation``
  repeats the decoder inputs to a doubled batch, one forward serves both
  halves and ``ClassifierFreeGuidanceLogitsProcessor`` mixes the halves'
  logits. Without a text encoder both halves see the same (BOS) prompt, so the
  guided logits equal the conditional ones, but every step costs what real CFG
  costs (the benchmark checks the forward's batch is doubled);

same width, depth and heads (``BenchConfig``: hidden 512, 6 layers, 8 heads,
multi-head attention, MLP parameters matched: MusicGen's GELU MLP ffn 2048,
Qwen2's SwiGLU 2/3 of it), random weights from a fixed seed, float32, sdpa
attention, the same sampling (temperature 0.8, top-k 20), and the full
length forced (UALM: min = max audio seconds; MusicGen: min_new_tokens =
max_new_tokens, no EOS). Geometry (codebooks, codebook size, frame rate)
comes from the mini recipe's codec config through the codec object, as
``UALMVocabulary.for_codec`` takes it.

What a run counts: a UALM reply is the ``<audio>`` marker, the 500 frames, the
closing frame and 7 delay steps, so 1 prefill + 508 decode steps for 500
frames; MusicGen's standalone decoder needs 1 + 506 (no marker, no closing
frame). fps = clip frames x batch / wall seconds of the ``generate`` call
(prefill included). Per-step time = wall / forward passes.

Memory-bandwidth floor: read bandwidth of the same machine and thread count
(``torch.sum`` over a 256 MiB tensor, median; copy reported too), and the
bytes one UALM decode step must read: backbone weights, the head rows the
audio streams need (each stream's codebook block, read once for both CFG
halves), the gathered embedding rows and the KV cache at the mean context
length. floor = bytes / bandwidth; "% of floor" = floor / measured step.

Rounds: each round measures the bandwidth, then per batch size runs the
models one after the other (the order reversed every other round), and the
reported figure is the median over rounds (2 rounds: ~3 min on 2 idle CPU
cores, ~6 min when other jobs share them; ``--quick``: 1 s clips, one
round).

Where a UALM step goes: the timed UALM runs are instrumented (wrappers of ~1
us per call, ~50 calls per step) to split the decode step into embedding sum,
backbone (HF Qwen2 forward), its KV-cache update (``DynamicLayer.update``),
decoder bookkeeping, head matmuls, CFG + sampling, the generator's Python
(constraints, row bookkeeping) and the rest of the loop. Each round also
times, interleaved, the same work done other ways on the same weights: the
backbone's linear layers alone (``F.linear`` as in the model, and oneDNN-
prepacked), the DynamicCache's ``torch.cat`` at the mean context against
writing one position into a preallocated buffer, and the generator's
``_next_frames`` against ``fused_audio_sample`` (all streams' heads in one
matmul with the stream embeddings folded into a logit bias, CFG, top-k and one
multinomial; its logits are checked against the generator's). torch.profiler
counts ops (aten and oneDNN) per step for each model (short clip).

``--what_if`` adds a third row: UALM with those three changes applied on the
benchmark side (``FusedHeadsGenerator``, oneDNN-packed backbone linears,
``PreallocatedDecoder``): sketches that show what the changes are worth, not
the package's code.

Threads: 1 by default (``--threads``): on the 2 shared cores this was written
on, two OpenMP threads made a small matmul up to 5x slower whenever another
process held the other core. Both models always run with the same setting.
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
import zlib
from collections import Counter, defaultdict
from typing import Any, Callable, Dict, Iterable, List, Tuple

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer

from espnet2.ualm.codec.abs_codec import AbsCodec
from espnet2.ualm.codec.config import codec_from_config
from espnet2.ualm.inference import GenerationConfig, SamplingConfig, UALMGenerator
from espnet2.ualm.inference import generate as generate_module
from espnet2.ualm.inference.decoder import Decoder, batch_prompts
from espnet2.ualm.model.factory import build_ualm_model
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.text.tokenizer import TextTokenizer
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.tokens.vocabulary import UALMVocabulary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Everything the benchmark fixes (``--quick`` replaces a few fields)."""

    # codec geometry (8 codebooks x 1024 codes, 50 Hz): the mini recipe's codec
    codec_config: str = "egs2/ualm/mini/conf/codec.yaml"
    clip_seconds: float = 10.0
    # text ids in the UALM vocabulary: the mini recipe's BPE (ualm.sh)
    text_vocab_size: int = 2000
    # model shape, the same for both (multi-head attention in both)
    hidden_size: int = 512
    num_layers: int = 6
    num_heads: int = 8
    ffn_dim: int = 2048  # MusicGen fc1/fc2; Qwen2's SwiGLU: 2/3 of it
    # sampling (release: temperature 0.8, top-k 20; paper: CFG scale 3)
    cfg_scale: float = 3.0
    temperature: float = 0.8
    top_k: int = 20
    batch_sizes: Tuple[int, ...] = (1, 8)
    repeats: int = 2  # rounds; each alternates the two models
    profile_seconds: float = 1.0  # clip length of the torch.profiler runs
    seed: int = 0

    @property
    def qwen2_intermediate(self) -> int:
        """SwiGLU width with the parameters of a 2-matrix MLP of ``ffn_dim``
        (3 * d * i = 2 * d * f), rounded to a multiple of 32."""
        return int(round(2 * self.ffn_dim / 3 / 32)) * 32


QUICK = {"clip_seconds": 1.0, "repeats": 1, "profile_seconds": 0.5}

# AudioCaps-style captions, one per batch row
CAPTIONS = (
    "A dog barks repeatedly while rain falls on a tin roof",
    "Birds chirp and a stream flows in the background",
    "A man speaks followed by a car engine starting",
    "Church bells ring loudly as wind blows",
    "Footsteps on gravel and a door slams shut",
    "A crowd cheers and applauds at a stadium",
    "Thunder rumbles in the distance during heavy rain",
    "A baby cries and a woman speaks softly",
)


class WordHashTokenizer(TextTokenizer):
    """One id per word (crc32 modulo the vocabulary); prompts only."""

    def __init__(self, vocab_size: int):
        self._size = int(vocab_size)

    @property
    def vocab_size(self) -> int:
        return self._size

    def encode(self, text: str) -> List[int]:
        return [zlib.crc32(w.encode()) % self._size for w in text.lower().split()]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(f"<{int(i)}>" for i in ids)


# ----- models -----------------------------------------------------------------


def build_ualm(cfg: BenchConfig, vocab: UALMVocabulary) -> UALMModel:
    torch.manual_seed(cfg.seed)
    backbone = {
        "config": {
            "model_type": "qwen2",
            "vocab_size": 32,  # replaced by the UALM vocabulary
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.qwen2_intermediate,
            "num_hidden_layers": cfg.num_layers,
            "num_attention_heads": cfg.num_heads,
            "num_key_value_heads": cfg.num_heads,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,
        },
        "attn_implementation": "sdpa",
    }
    return build_ualm_model(vocab, backbone=backbone).eval()


def build_musicgen(cfg: BenchConfig, codec: AbsCodec) -> torch.nn.Module:
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

    pad = codec.codebook_size  # MusicGen's pad = bos = vocab_size
    config = MusicgenDecoderConfig(
        vocab_size=codec.codebook_size,
        num_codebooks=codec.n_codebooks,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        ffn_dim=cfg.ffn_dim,
        max_position_embeddings=4096,
        pad_token_id=pad,
        bos_token_id=pad,
        dropout=0.0,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(cfg.seed)
    return MusicgenForCausalLM(config).eval()


def _nbytes(params: Iterable[Tuple[str, torch.Tensor]]) -> int:
    return sum(p.numel() * p.element_size() for _, p in params)


def ualm_step_bytes(model: UALMModel, rows: int, context: float) -> Dict[str, float]:
    """Bytes one decode step must read (``rows``: both CFG halves)."""
    vocab, cfg = model.vocabulary, model.backbone.config
    dim = cfg.hidden_size
    elem = model.head_weight.element_size()
    base = model.backbone.base_model
    layers = _nbytes(
        (n, p) for n, p in base.named_parameters() if "embed_tokens" not in n
    )
    kv_dim = cfg.num_key_value_heads * (dim // cfg.num_attention_heads)
    needed_heads = (vocab.n_codebooks * vocab.codebook_stride + 2) * dim * elem
    # cond and uncond: separate matmuls, stream 0 over the whole vocabulary
    implemented_rows = vocab.size + (vocab.n_codebooks - 1) * vocab.codebook_stride
    implemented_heads = 2 * implemented_rows * dim * elem
    out = {
        "backbone_weights": layers,
        "head_rows_needed": needed_heads + model.stream_embeddings.numel() * elem,
        "embedding_rows": rows * vocab.n_codebooks * dim * elem,
        "kv_cache": cfg.num_hidden_layers * 2 * rows * context * kv_dim * elem,
        "head_rows_as_implemented": implemented_heads,
    }
    out["total"] = sum(
        out[k]
        for k in ("backbone_weights", "head_rows_needed", "embedding_rows", "kv_cache")
    )
    return out


def musicgen_step_bytes(model: torch.nn.Module) -> int:
    """Weights a MusicGen decoder step reads (cross-attention unused)."""
    return _nbytes(
        (n, p)
        for n, p in model.named_parameters()
        if "encoder_attn" not in n and "embed_tokens" not in n
    )


# ----- runs -------------------------------------------------------------------


def ualm_config(cfg: BenchConfig, seconds: float) -> GenerationConfig:
    return GenerationConfig(
        modalities="audio",
        min_audio_seconds=seconds,
        max_audio_seconds=seconds,
        cfg_scale=cfg.cfg_scale,
        audio_sampling=SamplingConfig(temperature=cfg.temperature, top_k=cfg.top_k),
    )


def run_ualm(gen, prompts, cfg: BenchConfig, frames: int) -> float:
    config = ualm_config(cfg, frames / gen.frame_rate)
    generator = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    results = gen.generate(prompts, config, generator=generator)
    seconds = time.perf_counter() - start
    for r in results:
        codes = r.segments[0].codes
        assert codes.shape == (frames, gen.n_streams), codes.shape
        assert r.ids.shape[0] == 1 + frames + gen.n_streams  # marker + delayed
    return seconds


def run_musicgen(model, batch: int, cfg: BenchConfig, frames: int) -> float:
    k, pad = model.num_codebooks, model.config.pad_token_id
    steps = frames + k - 1  # delay pattern
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    out = model.generate(
        torch.full((batch * k, 1), pad, dtype=torch.long),
        do_sample=True,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        guidance_scale=cfg.cfg_scale,
        max_new_tokens=steps,
        min_new_tokens=steps,
        pad_token_id=pad,
        bos_token_id=pad,
        decoder_start_token_id=pad,
        num_return_sequences=1,
        use_cache=True,
    )
    seconds = time.perf_counter() - start
    assert out.shape == (batch, k, frames), out.shape
    return seconds


def musicgen_forward_rows(model, batch: int, cfg: BenchConfig) -> int:
    """Rows of MusicGen's decoder forward (checks that CFG doubles them)."""
    seen: List[int] = []
    hook = model.model.decoder.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["input_ids"].shape[0]),
        with_kwargs=True,
    )
    try:
        # fewer than K frames: MusicGen skips its delay mask
        run_musicgen(model, batch, cfg, frames=model.num_codebooks)
    finally:
        hook.remove()
    return seen[-1] // model.num_codebooks


# ----- machine ----------------------------------------------------------------


def _median_time(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_bandwidth(n_bytes: int = 256 << 20, reps: int = 7) -> Dict[str, float]:
    """Read (sum) and copy (read + write) bandwidth in GB/s, medians."""
    x = torch.ones(n_bytes // 4)
    y = torch.empty_like(x)
    x.sum()
    y.copy_(x)
    return {
        "read_sum_gbs": n_bytes / _median_time(x.sum, reps) / 1e9,
        "copy_gbs": 2 * n_bytes / _median_time(lambda: y.copy_(x), reps) / 1e9,
    }


def measure_gflops(n: int = 1024, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / _median_time(lambda: a @ b, reps) / 1e9


def dispatch_overhead_us(n: int = 20000) -> float:
    """Median cost of one tiny aten op (dispatcher + Python call), in µs."""
    a, b, c = torch.ones(4), torch.ones(4), torch.empty(4)

    def loop():
        for _ in range(n):
            torch.add(a, b, out=c)

    return _median_time(loop, 5) / n * 1e6


# ----- where a UALM decode step goes ------------------------------------------


class _Timers:
    """Wall time of every call of the wrapped functions, by name."""

    def __init__(self):
        self.calls: Dict[str, List[float]] = defaultdict(list)
        self._undo: List[Callable[[], None]] = []

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        inner = getattr(owner, attr)
        calls = self.calls[name]

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                calls.append(time.perf_counter() - start)

        had_own = attr in vars(owner)
        setattr(owner, attr, timed)
        self._undo.append(
            (lambda: setattr(owner, attr, inner))
            if had_own
            else (lambda: delattr(owner, attr))
        )

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


STEP_PARTS = (
    "embedding_sum",  # UALMModel.embed of the new frame (embedding_bag)
    "backbone",  # HF Qwen2 forward, one position, without the cache update
    "kv_cache_update",  # DynamicLayer.update: torch.cat of the whole cache
    "decoder_bookkeeping",  # Decoder.step: positions, attention mask
    "head_matmuls",  # UALMModel.stream_logits, per stream, cond and uncond
    "cfg_and_sampling",  # guide + sample (mask, temperature, top-k, multinomial)
    "next_frames_python",  # constraints per row, index lists, masks
    "row_bookkeeping",  # _advance per row
    "loop_other",  # the rest of the generate loop (frames to host, CFG copy)
)


def timed_ualm(gen, prompts, cfg: BenchConfig, frames: int) -> Tuple[float, Dict]:
    """``run_ualm`` with each part of the decode step timed (ms per step).

    The wrappers add ~1 us per wrapped call, ~50 calls per step.
    """
    model = gen.model
    timers = _Timers()
    timers.wrap(Decoder, "prefill", "prefill")
    timers.wrap(Decoder, "step", "step")
    timers.wrap(Decoder, "_run", "backbone")
    timers.wrap(DynamicLayer, "update", "kv_update")
    timers.wrap(model, "embed", "embed")
    timers.wrap(model, "stream_logits", "heads")
    timers.wrap(generate_module, "sample", "sample")
    timers.wrap(generate_module, "guide", "guide")
    timers.wrap(gen, "_next_frames", "next_frames")
    timers.wrap(gen, "_advance", "advance")
    try:
        total = run_ualm(gen, prompts, cfg, frames)
    finally:
        timers.restore()
    c = {k: sum(v) for k, v in timers.calls.items()}
    steps = len(timers.calls["step"])
    # the first embed and backbone calls are the prefill's
    embed = c["embed"] - timers.calls["embed"][0]
    backbone = c["backbone"] - timers.calls["backbone"][0]
    n_layers = model.backbone.config.num_hidden_layers
    kv_update = sum(timers.calls["kv_update"][n_layers:])  # after the prefill's
    sampling = c["sample"] + c["guide"]
    parts = {
        "embedding_sum": embed,
        "backbone": backbone - kv_update,
        "kv_cache_update": kv_update,
        "decoder_bookkeeping": c["step"] - embed - backbone,
        "head_matmuls": c["heads"],
        "cfg_and_sampling": sampling,
        "next_frames_python": c["next_frames"] - c["heads"] - sampling,
        "row_bookkeeping": c["advance"],
        "loop_other": total
        - c["prefill"]
        - c["step"]
        - c["next_frames"]
        - c["advance"],
    }
    per_step = {k: 1e3 * parts[k] / steps for k in STEP_PARTS}
    return total, {
        "decode_steps": steps,
        "prefill_ms": 1e3 * c["prefill"],
        "per_step_ms": per_step,
        "head_matmul_calls_per_step": len(timers.calls["heads"]) / steps,
        "sample_calls_per_step": len(timers.calls["sample"]) / steps,
    }


_OP_GROUPS = (
    ("matmul", ("aten::linear", "aten::addmm", "aten::mm", "aten::matmul", "mkldnn::")),
    ("attention", ("aten::scaled_dot_product_attention", "aten::_scaled_dot")),
    ("cat", ("aten::cat",)),
    ("sampling", ("aten::topk", "aten::multinomial", "aten::softmax", "aten::sort")),
)


def op_profile(fn: Callable[[], Any], steps: int) -> Dict[str, Any]:
    """Ops per step (aten and oneDNN) and their self CPU ms per step by group
    (torch.profiler; its own overhead inflates the times, the counts are exact)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], acc_events=True) as prof:
        fn()
    count = 0
    self_us: Counter = Counter()
    for evt in prof.key_averages():
        if not evt.key.startswith(("aten::", "mkldnn::")):
            continue
        group = next(
            (g for g, names in _OP_GROUPS if any(evt.key.startswith(n) for n in names)),
            "other",
        )
        count += evt.count
        self_us[group] += evt.self_cpu_time_total
    return {
        "ops_per_step": count / steps,
        "self_ms_per_step": {g: v / 1e3 / steps for g, v in sorted(self_us.items())},
    }


# ----- references: the same work done other ways, on the same weights ----------


def _interleaved(variants: Dict[str, Callable[[], Any]], reps: int) -> Dict:
    """Median ms of each variant, the variants alternating rep by rep."""
    times: Dict[str, List[float]] = {k: [] for k in variants}
    for fn in variants.values():
        fn()
    for _ in range(reps):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def _backbone_linears(model: UALMModel) -> List[torch.nn.Linear]:
    base = model.backbone.base_model
    return [m for m in base.modules() if isinstance(m, torch.nn.Linear)]


def pack_linears(model: UALMModel, rows: int) -> List[Tuple]:
    """oneDNN-prepacked copies of the backbone's linear weights (what
    ``torch.compile``'s freezing does on CPU), for ``rows`` rows."""
    return [
        (torch.ops.mkldnn._reorder_linear_weight(m.weight.detach(), rows), m.bias)
        for m in _backbone_linears(model)
    ]


def stream_logit_bias(model: UALMModel) -> torch.Tensor:
    """``[K * (C + 1)]``: each audio head row's dot with its stream embedding.

    ``stream_logits`` computes ``(h + e_k) @ W_k.T``; the head is linear, so
    this is ``h @ W_k.T + (e_k @ W_k.T)``, a constant logit bias per stream
    (stream 0: no embedding, zero bias), computed once per model.
    """
    vocab = model.vocabulary
    k, stride = vocab.n_codebooks, vocab.codebook_stride
    heads = model.head_weight[vocab.audio_offset : vocab.size].view(k, stride, -1)
    emb = model.stream_embeddings
    shift = torch.cat([torch.zeros_like(emb[:1]), emb])
    return torch.einsum("ksd,kd->ks", heads, shift).reshape(-1)


def fused_guided_logits(
    model: UALMModel, hidden: torch.Tensor, bias: torch.Tensor, scale: float
) -> torch.Tensor:
    """``[2B, D]`` (cond rows, then uncond) -> CFG logits ``[B, K, C + 1]`` of
    every stream over its own codebook block, from one matmul over the head's
    audio rows (read once for both halves)."""
    vocab = model.vocabulary
    heads = model.head_weight[vocab.audio_offset : vocab.size]
    logits = torch.addmm(bias, hidden, heads.T).view(
        2, hidden.shape[0] // 2, vocab.n_codebooks, vocab.codebook_stride
    )
    return torch.lerp(logits[1], logits[0], scale)  # uncond + s * (cond - uncond)


def fused_audio_sample(
    model: UALMModel,
    hidden: torch.Tensor,
    bias: torch.Tensor,
    cfg: BenchConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """One frame ``[B, K]`` (codes) for all streams of all rows in one pass.

    Benchmark-side sketch of a fused head + CFG + sampling: the codebook pad
    masked, temperature, top-k, one multinomial over the B*K top-k sets (the
    same distribution as masking to top-k and sampling the full row). At
    mid-segment this is what the generator's per-stream loop computes; at
    the segment's edges stream 0 would add its closing-token columns and the
    forced pads would overwrite their streams.
    """
    guided = fused_guided_logits(model, hidden, bias, cfg.cfg_scale)
    guided[..., -1] = -math.inf  # the codebook's pad
    values, index = torch.topk(guided / cfg.temperature, cfg.top_k, dim=-1)
    probs = torch.softmax(values, dim=-1).view(-1, cfg.top_k)
    pick = torch.multinomial(probs, 1, generator=generator)
    return index.gather(-1, pick.view(*index.shape[:2], 1)).squeeze(-1)


def check_fused_logits(gen, cfg: BenchConfig, bias: torch.Tensor) -> float:
    """Largest difference between the fused CFG logits and the generator's."""
    model, k = gen.model, gen.n_streams
    torch.manual_seed(cfg.seed)
    hidden = torch.randn(4, model.backbone.config.hidden_size)
    with torch.no_grad():
        fused = fused_guided_logits(model, hidden, bias, cfg.cfg_scale)
        diff = 0.0
        for s in range(k):
            cond = model.stream_logits(hidden[:2], s, "codebook")
            uncond = model.stream_logits(hidden[2:], s, "codebook")
            if s == 0:  # full vocabulary: keep codebook 0's block
                lo, hi = model.vocabulary.codebook_range(0)
                cond, uncond = cond[:, lo:hi], uncond[:, lo:hi]
            ref = generate_module.guide(cond, uncond, cfg.cfg_scale)
            diff = max(diff, float((fused[:, s] - ref).abs().max()))
    return diff


def references(gen, cfg: BenchConfig, batch: int, context: int, packed, bias, reps):
    """ms per step of one UALM decode step's pieces done other ways, interleaved:
    backbone linears (F.linear vs oneDNN-packed), the HF DynamicCache's
    torch.cat at the mean context vs writing into a preallocated buffer, and
    heads + CFG + sampling (the generator's ``_next_frames`` vs fused)."""
    model = gen.model
    rows = 2 * batch
    bcfg = model.backbone.config
    linears = _backbone_linears(model)
    x = {m.in_features: torch.randn(rows, m.in_features) for m in linears}
    head_dim = bcfg.hidden_size // bcfg.num_attention_heads
    kv_shape = (rows, bcfg.num_key_value_heads, int(context), head_dim)
    caches = [torch.randn(kv_shape) for _ in range(2 * bcfg.num_hidden_layers)]
    grown = (rows, kv_shape[1], kv_shape[2] + 1, head_dim)
    buffers = [torch.randn(grown) for _ in caches]
    new = torch.randn(rows, kv_shape[1], 1, head_dim)
    hidden = torch.randn(rows, bcfg.hidden_size)
    config = ualm_config(cfg, cfg.clip_seconds)
    bounds = config.audio_frame_bounds(gen.frame_rate)
    audio_rows = [
        generate_module._Row(phase=generate_module._Phase.AUDIO, step=100)
        for _ in range(batch)
    ]
    g = torch.Generator().manual_seed(cfg.seed)

    def linear_plain():
        for m in linears:
            F.linear(x[m.in_features], m.weight, m.bias)

    def linear_packed():
        for m, (w, b) in zip(linears, packed):
            torch.ops.mkldnn._linear_pointwise(x[m.in_features], w, b, "none", [], "")

    def kv_cat():
        for c in caches:
            torch.cat([c, new], dim=-2)

    def kv_write():
        for buf in buffers:
            buf[:, :, -1:].copy_(new)

    with torch.no_grad():
        out = _interleaved(
            {
                "backbone_linears": linear_plain,
                "backbone_linears_packed": linear_packed,
                "kv_cache_cat": kv_cat,
                "kv_cache_preallocated": kv_write,
                "heads_sampling_generator": lambda: gen._next_frames(
                    hidden, audio_rows, config, bounds, True, g
                ),
                "heads_sampling_fused": lambda: fused_audio_sample(
                    model, hidden, bias, cfg, g
                ),
            },
            reps,
        )
    return out


# ----- what-if: UALM with the suggested changes, sketched on the bench side -----


class GrowableKVLayer(DynamicLayer):
    """A KV-cache layer written in place into a preallocated buffer and read as
    a view of its filled part: the ``DynamicLayer`` interface without the
    ``torch.cat`` that copies the whole cache at every step."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = int(capacity)
        self.length = 0

    def lazy_initialization(self, key_states, value_states) -> None:
        super().lazy_initialization(key_states, value_states)
        rows, heads, _, dim = key_states.shape
        self._k = key_states.new_empty(rows, heads, self.capacity, dim)
        self._v = value_states.new_empty(rows, heads, self.capacity, dim)

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:  # grow by doubling (rare: capacity is planned)
            self.capacity = max(end, 2 * self.capacity)
            k, v = self._k, self._v
            self._k = k.new_empty(*k.shape[:2], self.capacity, k.shape[-1])
            self._v = v.new_empty(*v.shape[:2], self.capacity, v.shape[-1])
            self._k[:, :, : self.length] = k[:, :, : self.length]
            self._v[:, :, : self.length] = v[:, :, : self.length]
        self._k[:, :, self.length : end] = key_states
        self._v[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values


class PreallocatedDecoder(Decoder):
    """``Decoder`` with ``GrowableKVLayer`` layers (``capacity`` positions)."""

    capacity = 1024

    def prefill(self, batch):
        from transformers import DynamicCache

        if not self.use_cache:
            return super().prefill(batch)
        embeds = self.model.embed(
            batch.ids,
            batch.audio_input,
            batch.audio_input_lengths,
            batch.audio_input_spans,
        )
        self.attention_mask = batch.attention_mask
        self.position_ids = batch.position_ids
        self.embeds = None
        self.cache = DynamicCache(config=self.model.backbone.config)
        self.cache.layers = [GrowableKVLayer(self.capacity) for _ in self.cache.layers]
        return self._run(embeds, batch.position_ids)


class FusedHeadsGenerator(UALMGenerator):
    """``UALMGenerator`` whose steps in the middle of an audio segment (every
    row in audio, past the first K - 1 delay steps, before the minimum length,
    so every stream samples its own codebook and nothing is forced) go through
    ``fused_audio_sample``; every other step is the generator's own."""

    def __init__(self, *args, cfg: BenchConfig, **kwargs):
        super().__init__(*args, **kwargs)
        self.cfg = cfg
        self.bias = stream_logit_bias(self.model).detach()
        vocab = self.vocab
        self.offsets = torch.tensor(
            [vocab.codebook_range(s)[0] for s in range(self.n_streams)]
        )

    def _next_frames(self, hidden, rows, config, frame_bounds, use_cfg, generator):
        low = frame_bounds[0]
        mid = all(
            r.phase is generate_module._Phase.AUDIO
            and r.closed_at is None
            and self.n_streams - 1 <= r.step < low
            for r in rows
        )
        if not (use_cfg and mid):
            return super()._next_frames(
                hidden, rows, config, frame_bounds, use_cfg, generator
            )
        codes = fused_audio_sample(self.model, hidden, self.bias, self.cfg, generator)
        return codes + self.offsets


class _Patched:
    """Sets attributes for the duration of a ``with`` block."""

    def __init__(self, changes: List[Tuple[Any, str, Any]]):
        self.changes = changes
        self.saved: List[Tuple[Any, str, bool, Any]] = []

    def __enter__(self):
        for owner, attr, value in self.changes:
            had = attr in vars(owner)
            self.saved.append((owner, attr, had, vars(owner).get(attr)))
            setattr(owner, attr, value)
        return self

    def __exit__(self, *exc):
        for owner, attr, had, value in reversed(self.saved):
            if had:
                setattr(owner, attr, value)
            else:
                delattr(owner, attr)
        self.saved = []


def run_what_if(fused_gen, prompts, cfg: BenchConfig, frames: int, packed) -> float:
    """``run_ualm`` with fused heads, oneDNN-packed backbone linears and the
    preallocated KV cache."""

    def packed_forward(weight, bias):
        return lambda x: torch.ops.mkldnn._linear_pointwise(
            x, weight, bias, "none", [], ""
        )

    changes = [
        (m, "forward", packed_forward(w, b))
        for m, (w, b) in zip(_backbone_linears(fused_gen.model), packed)
    ]
    changes.append((generate_module, "Decoder", PreallocatedDecoder))
    with _Patched(changes):
        return run_ualm(fused_gen, prompts, cfg, frames)


# ----- main -------------------------------------------------------------------


def _median(values: List[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 s clips, one round (smoke test)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=None, help="rounds")
    parser.add_argument(
        "--what_if",
        action="store_true",
        help="also time UALM with the suggested changes (bench-side sketch)",
    )
    parser.add_argument(
        "--json",
        default=os.path.join(REPO, "bench", "results", "bench_generation.json"),
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import transformers

    transformers.logging.set_verbosity_error()  # min_new_tokens notice per call
    torch.set_num_threads(args.threads)
    wall_start = time.perf_counter()

    cfg = BenchConfig(**(QUICK if args.quick else {}))
    if args.repeats is not None:
        cfg = dataclasses.replace(cfg, repeats=args.repeats)
    codec = codec_from_config(os.path.join(REPO, cfg.codec_config))
    vocab = UALMVocabulary.for_codec(cfg.text_vocab_size, codec)
    k = vocab.n_codebooks
    frames = int(round(cfg.clip_seconds * codec.frame_rate))
    tokenizer = WordHashTokenizer(cfg.text_vocab_size)
    builder = SequenceBuilder(vocab, tokenizer)
    prompts = [
        builder.build_example("text_to_audio", {"caption": c}, prompt_only=True)
        for c in CAPTIONS
    ]
    ualm = build_ualm(cfg, vocab)
    gen = UALMGenerator(ualm, tokenizer, frame_rate=codec.frame_rate)
    musicgen = build_musicgen(cfg, codec)
    n_params = {
        "ualm": sum(p.numel() for p in ualm.parameters()),
        "musicgen": sum(p.numel() for p in musicgen.parameters()),
    }
    print(
        f"geometry from {cfg.codec_config}: {k} codebooks x {codec.codebook_size}, "
        f"{codec.frame_rate:g} Hz; clip {cfg.clip_seconds:g} s = {frames} frames; "
        f"{args.threads} thread(s)\nmodels: hidden {cfg.hidden_size}, "
        f"{cfg.num_layers} layers, {cfg.num_heads} heads; UALM (Qwen2, SwiGLU "
        f"{cfg.qwen2_intermediate}, vocabulary {vocab.size}) "
        f"{n_params['ualm'] / 1e6:.1f} M params; MusicGen decoder (ffn "
        f"{cfg.ffn_dim}) {n_params['musicgen'] / 1e6:.1f} M params"
    )

    # warm-up (first calls allocate) and the CFG batching check
    mg_rows = {}
    for b in cfg.batch_sizes:
        run_ualm(gen, prompts[:b], cfg, k)
        mg_rows[b] = musicgen_forward_rows(musicgen, b, cfg)
        assert mg_rows[b] == 2 * b, f"MusicGen CFG did not double the batch: {mg_rows}"
    bias = stream_logit_bias(ualm).detach()
    fused_diff = check_fused_logits(gen, cfg, bias)
    assert fused_diff < 1e-3, f"fused CFG logits differ by {fused_diff}"
    packed = {b: pack_linears(ualm, 2 * b) for b in cfg.batch_sizes}
    forwards = {"ualm": 1 + frames + k, "musicgen": frames + k - 1}
    prompt_len = {b: batch_prompts(prompts[:b]).ids.shape[1] for b in cfg.batch_sizes}
    # mean context of a UALM decode step
    context = {b: prompt_len[b] + forwards["ualm"] / 2 for b in cfg.batch_sizes}

    models = ("ualm", "musicgen") + (("ualm_what_if",) if args.what_if else ())
    if args.what_if:
        fused_gen = FusedHeadsGenerator(
            ualm, tokenizer, frame_rate=codec.frame_rate, cfg=cfg
        )
        PreallocatedDecoder.capacity = max(prompt_len.values()) + forwards["ualm"]
        for b in cfg.batch_sizes:
            run_what_if(fused_gen, prompts[:b], cfg, 2 * k, packed[b])
    times: Dict[str, Dict[int, List[float]]] = {m: defaultdict(list) for m in models}
    parts: Dict[int, List[Dict]] = defaultdict(list)
    refs: Dict[int, List[Dict]] = defaultdict(list)
    bandwidth: List[Dict[str, float]] = []
    gflops: List[float] = []
    for r in range(cfg.repeats):
        order = models if r % 2 == 0 else models[::-1]
        for b in cfg.batch_sizes:
            bandwidth.append(measure_bandwidth())
            for name in order:
                if name == "ualm":
                    seconds, split = timed_ualm(gen, prompts[:b], cfg, frames)
                    parts[b].append(split)
                elif name == "musicgen":
                    seconds = run_musicgen(musicgen, b, cfg, frames)
                else:
                    seconds = run_what_if(
                        fused_gen, prompts[:b], cfg, frames, packed[b]
                    )
                times[name][b].append(seconds)
                print(f"  round {r + 1}: {name:12s} batch {b}: {seconds:6.2f} s")
            refs[b].append(references(gen, cfg, b, context[b], packed[b], bias, reps=9))
        gflops.append(measure_gflops())
    bandwidth.append(measure_bandwidth())

    read_bw = _median([m["read_sum_gbs"] for m in bandwidth])
    forwards["ualm_what_if"] = forwards["ualm"]
    results: Dict[str, Any] = {}
    for name in models:
        results[name] = {}
        for b in cfg.batch_sizes:
            sec = _median(times[name][b])
            results[name][b] = {
                "seconds": times[name][b],
                "median_s": sec,
                "fps": frames * b / sec,
                "x_realtime": frames * b / sec / codec.frame_rate,
                "forwards": forwards[name],
                "step_ms": 1e3 * sec / forwards[name],
                "fps_over_musicgen": _median(times["musicgen"][b]) / sec,
            }
    ratios = {b: results["ualm"][b]["fps_over_musicgen"] for b in cfg.batch_sizes}
    floor: Dict[int, Dict[str, Any]] = {}
    for b in cfg.batch_sizes:
        nbytes = ualm_step_bytes(ualm, 2 * b, context[b])
        floor_ms = 1e3 * nbytes["total"] / (read_bw * 1e9)
        step_ms = results["ualm"][b]["step_ms"]
        weights = nbytes["backbone_weights"] + nbytes["head_rows_needed"]
        flops = 2 * 2 * b * weights / 4  # 2 FLOPs per weight per row, float32
        floor[b] = {
            "bytes": nbytes,
            "mean_context": context[b],
            "read_bandwidth_gbs": read_bw,
            "floor_ms": floor_ms,
            "ualm_step_ms": step_ms,
            "fraction_of_floor": floor_ms / step_ms,
            "floor_fps": frames * b / (forwards["ualm"] * floor_ms / 1e3),
            "compute_floor_ms": 1e3 * flops / (_median(gflops) * 1e9),
        }
        if args.what_if:
            what_if_ms = results["ualm_what_if"][b]["step_ms"]
            floor[b]["ualm_what_if_step_ms"] = what_if_ms
            floor[b]["what_if_fraction_of_floor"] = floor_ms / what_if_ms

    print(
        f"\n{'model':12s} {'batch':>5s} {'rows':>4s} {'fwd':>4s} {'median s':>8s} "
        f"{'fps':>7s} {'x rt':>5s} {'ms/step':>7s} {'vs MusicGen':>11s}"
    )
    for name in models:
        for b in cfg.batch_sizes:
            r = results[name][b]
            print(
                f"{name:12s} {b:5d} {2 * b:4d} {r['forwards']:4d} {r['median_s']:8.2f} "
                f"{r['fps']:7.1f} {r['x_realtime']:5.2f} {r['step_ms']:7.2f} "
                f"{r['fps_over_musicgen']:10.2f}x"
            )
    print(
        "UALM / MusicGen fps: "
        + ", ".join(f"batch {b} {v:.2f}x" for b, v in ratios.items())
        + " (target >= 1.5x)"
    )
    print(
        f"read bandwidth {read_bw:.1f} GB/s (torch.sum, median of "
        f"{len(bandwidth)}; copy "
        f"{_median([m['copy_gbs'] for m in bandwidth]):.1f} GB/s), matmul "
        f"{_median(gflops):.0f} GFLOP/s"
    )
    for b, f in floor.items():
        mb = f["bytes"]
        print(
            f"batch {b}: a step reads {mb['total'] / 1e6:.1f} MB (backbone "
            f"{mb['backbone_weights'] / 1e6:.1f}, head rows "
            f"{mb['head_rows_needed'] / 1e6:.1f}, KV {mb['kv_cache'] / 1e6:.1f}) -> "
            f"floor {f['floor_ms']:.2f} ms ({f['floor_fps']:.0f} fps); UALM "
            f"{f['ualm_step_ms']:.2f} ms = {100 * f['fraction_of_floor']:.0f} % of "
            "floor"
            + (" (target >= 80 %)" if b == 1 else "")
            + f"; compute floor {f['compute_floor_ms']:.2f} ms"
            + (
                f"; what-if {100 * f['what_if_fraction_of_floor']:.0f} % of floor"
                if args.what_if
                else ""
            )
        )

    # where a UALM step goes (medians over the timed runs) and the references
    profile_frames = int(round(cfg.profile_seconds * codec.frame_rate))
    profiles: Dict[int, Dict[str, Any]] = {}
    for b in cfg.batch_sizes:
        per_step = {
            p: _median([s["per_step_ms"][p] for s in parts[b]]) for p in STEP_PARTS
        }
        ref = {key: _median([x[key] for x in refs[b]]) for key in refs[b][0]}
        ops = {
            "ualm": op_profile(
                lambda b=b: run_ualm(gen, prompts[:b], cfg, profile_frames),
                profile_frames + k,
            ),
            "musicgen": op_profile(
                lambda b=b: run_musicgen(musicgen, b, cfg, profile_frames),
                profile_frames + k - 1,
            ),
        }
        if args.what_if:
            ops["ualm_what_if"] = op_profile(
                lambda b=b: run_what_if(
                    fused_gen, prompts[:b], cfg, profile_frames, packed[b]
                ),
                profile_frames + k,
            )
        profiles[b] = {
            "per_step_ms": per_step,
            "split_runs": parts[b],
            "references_ms": ref,
            "reference_runs": refs[b],
            "ops": ops,
            "profile_frames": profile_frames,
        }
        total = sum(per_step.values())
        print(f"\nUALM decode step, batch {b}: {total:.2f} ms (timed runs, medians)")
        for part, ms in per_step.items():
            print(f"  {part:22s} {ms:7.2f} ms  {100 * ms / total:5.1f} %")
        at_bandwidth = 1e3 * floor[b]["bytes"]["backbone_weights"] / (read_bw * 1e9)
        print(
            f"  same work other ways (ms): backbone linears "
            f"{ref['backbone_linears']:.2f} (oneDNN-packed "
            f"{ref['backbone_linears_packed']:.2f}; weights at bandwidth "
            f"{at_bandwidth:.2f}),"
            f" KV cat {ref['kv_cache_cat']:.2f} (preallocated "
            f"{ref['kv_cache_preallocated']:.2f}), heads+CFG+sampling "
            f"{ref['heads_sampling_generator']:.2f} (fused "
            f"{ref['heads_sampling_fused']:.2f})"
        )
        for name, o in ops.items():
            groups = ", ".join(f"{g} {v:.2f}" for g, v in o["self_ms_per_step"].items())
            print(
                f"  {name:12s} {o['ops_per_step']:5.0f} ops/step; self "
                f"ms/step ({profile_frames}-frame clip, under torch.profiler): {groups}"
            )
    dispatch_us = dispatch_overhead_us()
    print(f"one tiny aten op from Python: {dispatch_us:.1f} us")
    wall = time.perf_counter() - wall_start
    print(f"benchmark wall time {wall:.0f} s")

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(
            {
                "config": dataclasses.asdict(cfg),
                "quick": args.quick,
                "threads": args.threads,
                "machine": {
                    "cpu": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(),
                    "load_average": os.getloadavg(),
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                },
                "geometry": {
                    "n_codebooks": k,
                    "codebook_size": codec.codebook_size,
                    "frame_rate": codec.frame_rate,
                    "frames": frames,
                },
                "parameters": n_params,
                "musicgen_step_weight_bytes": musicgen_step_bytes(musicgen),
                "musicgen_forward_rows": mg_rows,
                "prompt_positions": prompt_len,
                "results": results,
                "fps_ratio_ualm_over_musicgen": ratios,
                "bandwidth": bandwidth,
                "matmul_gflops": gflops,
                "floor": floor,
                "profile": profiles,
                "fused_logits_max_abs_diff": fused_diff,
                "dispatch_overhead_us": dispatch_us,
                "wall_s": wall,
            },
            f,
            indent=2,
        )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
