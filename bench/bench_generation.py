#!/usr/bin/env python3
"""Audio-token generation speed: UALM's generator against MusicGen's decoder.

    tools/venv/bin/python bench/bench_generation.py [--quick] [--no_ablations]
        [--shape bench|qwen2.5-0.5b] [--linear_dtype bfloat16] [--dtype ...]
        [--threads N] [--repeats N] [--json PATH]

Generates a 10 s clip (the codec config's frame rate and codebooks, delay
pattern: frames + K - 1 delayed steps) with classifier-free guidance (scale 3, one
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
Qwen2's SwiGLU 2/3 of it; ``--shape qwen2.5-0.5b``: Qwen2.5-0.5B's backbone,
24 layers, width 896, 14 heads, UALM with its 2 KV heads), random weights
from a fixed seed, float32, sdpa attention, the same sampling (temperature
0.8, top-k 20), and the full length forced (UALM: min = max audio seconds;
MusicGen: min_new_tokens = max_new_tokens, no EOS). Geometry (codebooks,
codebook size, frame rate) comes from the mini recipe's codec config through
the codec object, as ``UALMVocabulary.for_codec`` takes it.

What a run counts: a UALM reply is the ``<audio>`` marker, the 500 frames, the
closing frame and 7 delay steps, so 1 prefill + 508 decode steps for 500
frames; MusicGen's standalone decoder needs 1 + 506 (no marker, no closing
frame). fps = clip frames x batch / wall seconds of the ``generate`` call
(prefill included). Per-step time = wall / forward passes.

Ablations (on by default; ``--no_ablations`` skips them), same run, same
weights, same prompts:

- ``ualm_hf_step`` (``backend="hf"``): the same decode loop (fused audio
  heads, vectorised CFG and sampling, preallocated KV cache, row state on the
  device) with the HF forward per step and ``F.linear`` heads;
- ``ualm``: the default backend (``fast``): ``FastBackbone``, the lean decode
  step, with oneDNN-prepacked linear weights.

Memory-bandwidth floor: read bandwidth of the same machine and thread count
(``torch.sum`` over a 256 MiB tensor, median; copy reported too), and the
bytes one UALM decode step must read: backbone weights, the head rows the
audio streams need (each stream's codebook block + stream 0's closing rows,
read once for both CFG halves), the gathered embedding rows and the KV cache
at the mean context length. floor = bytes / bandwidth; "% of floor" = floor /
measured step.

Rounds: each round measures the bandwidth, then per batch size runs the
models one after the other (the order reversed every other round), and the
reported figure is the median over rounds (``--quick``: 1 s clips, one
round).

Where a UALM step goes: the timed default-UALM runs are instrumented
(wrappers of ~1 us per call, ~30 calls per step) to split the decode step
into embedding sum + decoder bookkeeping, the backbone's linear layers,
the rest of the backbone step (norms, RoPE, KV writes, attention, residuals),
the fused audio-head matmul, CFG + masks + sampling, and the rest of the loop.
torch.profiler counts ops (aten and oneDNN) per step for each model (short
clip).

Threads: 1 by default (``--threads``): on the 2 shared cores this was written
on, two OpenMP threads made a small matmul up to 5x slower whenever another
process held the other core. Both models always run with the same setting.
"""

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import time
import zlib
from collections import Counter, defaultdict
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch

from espnet2.ualm.codec.abs_codec import AbsCodec
from espnet2.ualm.codec.config import codec_from_config
from espnet2.ualm.inference.decoder import Decoder, batch_prompts
from espnet2.ualm.inference.fast import AudioHeads, FastBackbone
from espnet2.ualm.inference.generate import Conversation, UALMGenerator
from espnet2.ualm.inference.sampling import SamplingConfig
from espnet2.ualm.inference.settings import DecodeSettings
from espnet2.ualm.model.factory import build_ualm_model
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.text.tokenizer import TextTokenizer
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.tokens.vocabulary import UALMVocabulary

import common

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Everything the benchmark fixes (``--quick`` replaces a few fields)."""

    # codec geometry (codebooks, codebook size, frame rate): the mini recipe's codec
    codec_config: str = "egs2/ualm/mini/conf/codec.yaml"
    clip_seconds: float = 10.0
    # text ids in the UALM vocabulary: the mini recipe's BPE (ualm.sh)
    text_vocab_size: int = 2000
    # model shape, the same width, depth and query heads for both (``SHAPES``)
    shape: str = "bench"
    hidden_size: int = 512
    num_layers: int = 6
    num_heads: int = 8
    num_kv_heads: Optional[int] = None  # UALM's KV heads (None: multi-head)
    ffn_dim: int = 2048  # MusicGen fc1/fc2; Qwen2's SwiGLU: 2/3 of it
    intermediate_size: Optional[int] = None  # Qwen2's SwiGLU (None: from ffn_dim)
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
        if self.intermediate_size is not None:
            return self.intermediate_size
        return int(round(2 * self.ffn_dim / 3 / 32)) * 32

    @property
    def kv_heads(self) -> int:
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads


QUICK = {"clip_seconds": 1.0, "repeats": 1, "profile_seconds": 0.5}

# --shape: "bench" (30 M parameters, what every earlier figure used) and the
# backbone of Qwen2.5-0.5B, the size of a real UALM backbone (the paper's LMs
# are Qwen2.5 1.5B-7B): 24 layers, width 896, 14 query heads over 2 KV heads,
# SwiGLU 4864; MusicGen gets the same width, depth and heads (multi-head
# attention: it has no grouped KV) and the MLP parameters of the SwiGLU
# (2 x 896 x 7296 = 3 x 896 x 4864).
SHAPES = {
    "bench": {},
    "qwen2.5-0.5b": {
        "hidden_size": 896,
        "num_layers": 24,
        "num_heads": 14,
        "num_kv_heads": 2,
        "intermediate_size": 4864,
        "ffn_dim": 7296,
    },
}

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
            "num_key_value_heads": cfg.kv_heads,
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


def ualm_step_bytes(
    model: UALMModel, rows: int, context: float, weight_elem: Optional[int] = None
) -> Dict[str, float]:
    """Bytes one decode step must read (``rows``: both CFG halves): backbone
    weights, each stream's codebook block of the head + stream 0's two closing
    rows (read once for both halves), the gathered embedding rows and the KV
    cache at ``context`` positions. ``weight_elem``: bytes per element of the
    linear weights as the generator reads them (``--linear_dtype``)."""
    vocab, cfg = model.vocabulary, model.backbone.config
    dim = cfg.hidden_size
    elem = model.head_weight.element_size()
    base = model.backbone.base_model
    layers = (
        _nbytes((n, p) for n, p in base.named_parameters() if "embed_tokens" not in n)
        * (weight_elem or elem)
        // elem
    )
    elem_kv, elem = elem, weight_elem or elem
    kv_dim = cfg.num_key_value_heads * (dim // cfg.num_attention_heads)
    needed_heads = (vocab.n_codebooks * vocab.codebook_stride + 2) * dim * elem
    # cond and uncond: separate matmuls, stream 0 over the whole vocabulary
    # before: stream 0 over the whole vocabulary, each stream once per CFG half
    before_rows = vocab.size + (vocab.n_codebooks - 1) * vocab.codebook_stride
    before_heads = 2 * before_rows * dim * elem
    # now: AudioHeads, K blocks of (codes, pad, 2 closing rows), read once
    implemented_heads = vocab.n_codebooks * (vocab.codebook_stride + 2) * dim * elem
    out = {
        "backbone_weights": layers,
        "head_rows_needed": needed_heads + model.stream_embeddings.numel() * elem,
        "embedding_rows": rows * vocab.n_codebooks * dim * elem_kv,
        "kv_cache": cfg.num_hidden_layers * 2 * rows * context * kv_dim * elem_kv,
        "head_rows_as_implemented": implemented_heads,
        "head_rows_before": before_heads,
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


def ualm_config(cfg: BenchConfig, seconds: float) -> DecodeSettings:
    return DecodeSettings(
        min_audio_seconds=seconds,
        max_audio_seconds=seconds,
        cfg_scale=cfg.cfg_scale,
        audio_sampling=SamplingConfig(temperature=cfg.temperature, top_k=cfg.top_k),
    )


def run_ualm(gen, prompts, cfg: BenchConfig, frames: int) -> float:
    config = ualm_config(cfg, frames / gen.frame_rate)
    generator = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    results = gen.generate(prompts, config, "audio", generator=generator)
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


def measure_bandwidth(n_bytes: int = 256 << 20, reps: int = 7) -> Dict[str, float]:
    """Read (sum) and copy (read + write) bandwidth in GB/s, medians."""
    x = torch.ones(n_bytes // 4)
    y = torch.empty_like(x)
    copy_s = common.median_seconds(lambda: y.copy_(x), reps)
    return {
        "read_sum_gbs": common.read_bandwidth_gbs(n_bytes=n_bytes, repeats=reps),
        "copy_gbs": 2 * n_bytes / copy_s / 1e9,
    }


def measure_gflops(n: int = 1024, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / common.median_seconds(lambda: a @ b, reps) / 1e9


def dispatch_overhead_us(n: int = 20000) -> float:
    """Median cost of one tiny aten op (dispatcher + Python call), in µs."""
    a, b, c = torch.ones(4), torch.ones(4), torch.empty(4)

    def loop():
        for _ in range(n):
            torch.add(a, b, out=c)

    return common.median_seconds(loop, 5, warmup=False) / n * 1e6


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
    "embedding_and_decoder",  # Decoder.step minus the backbone: embedding_bag, mask
    "backbone_linears",  # FastBackbone: fused QKV, o, fused gate/up, down
    "backbone_rest",  # FastBackbone: norms, RoPE, KV writes, sdpa, residuals
    "audio_heads_matmul",  # AudioHeads.logits: one matmul, all streams, both halves
    "cfg_masks_sampling",  # lerp, constraint masks, top-k, softmax, multinomial
    "loop_other",  # the rest of the decode loop (row state, frame copies, host checks)
)


def timed_ualm(gen, prompts, cfg: BenchConfig, frames: int) -> Tuple[float, Dict]:
    """``run_ualm`` with each part of the decode step timed (ms per step).

    The wrappers add ~1 us per wrapped call, ~30 calls per step.
    """
    timers = _Timers()
    rows = 2 * len(prompts)
    backbone = gen.weights.backbone(rows)
    assert backbone is not None, "the benchmark model should take the fast path"
    timers.wrap(Decoder, "prefill", "prefill")
    timers.wrap(Decoder, "step", "step")
    timers.wrap(FastBackbone, "step", "backbone")
    for layer in backbone.layers:
        for attr in ("qkv", "o", "gate_up", "down"):
            timers.wrap(layer, attr, "linears")
    timers.wrap(AudioHeads, "logits", "heads")
    timers.wrap(Conversation, "_audio_ids", "audio_sample")
    try:
        total = run_ualm(gen, prompts, cfg, frames)
    finally:
        timers.restore()
    c = {k: sum(v) for k, v in timers.calls.items()}
    steps = len(timers.calls["step"])
    parts = {
        "embedding_and_decoder": c["step"] - c["backbone"],
        "backbone_linears": c["linears"],
        "backbone_rest": c["backbone"] - c["linears"],
        "audio_heads_matmul": c["heads"],
        "cfg_masks_sampling": c["audio_sample"] - c["heads"],
        "loop_other": total - c["prefill"] - c["step"] - c["audio_sample"],
    }
    per_step = {k: 1e3 * parts[k] / steps for k in STEP_PARTS}
    return total, {
        "decode_steps": steps,
        "prefill_ms": 1e3 * c["prefill"],
        "per_step_ms": per_step,
        "linear_kind": backbone.linear_kind,
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


# ----- main -------------------------------------------------------------------


def _median(values: List[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 s clips, one round (smoke test)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--shape",
        default="bench",
        choices=tuple(SHAPES),
        help="model shape of both generators (SHAPES)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="rounds")
    parser.add_argument(
        "--no_ablations",
        action="store_true",
        help="only UALM (default settings) and MusicGen",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="weights and activations of both models (bfloat16: with "
        "--no_ablations; the floor counts the bytes of this dtype)",
    )
    parser.add_argument(
        "--json",
        default=common.default_json("bench_generation"),
    )
    parser.add_argument(
        "--linear_dtype",
        default=None,
        choices=("bfloat16",),
        help="UALM's prepacked linear weights in this dtype, the rest in --dtype "
        "(UALMGenerator(linear_weight_dtype=...)); the floor counts them so",
    )
    args = parser.parse_args()
    if args.dtype != "float32" and not args.no_ablations:
        parser.error("--dtype bfloat16 needs --no_ablations (the old generator)")
    dtype = getattr(torch, args.dtype)
    linear_dtype = getattr(torch, args.linear_dtype) if args.linear_dtype else None
    weight_elem = None if linear_dtype is None else linear_dtype.itemsize
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import transformers

    transformers.logging.set_verbosity_error()  # min_new_tokens notice per call
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # past_key_values
    torch.set_num_threads(args.threads)
    wall_start = time.perf_counter()

    cfg = BenchConfig(
        shape=args.shape, **SHAPES[args.shape], **(QUICK if args.quick else {})
    )
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
    ualm = build_ualm(cfg, vocab).to(dtype)
    fr = codec.frame_rate
    gens = {
        "ualm": UALMGenerator(
            ualm, tokenizer, frame_rate=fr, linear_weight_dtype=linear_dtype
        )
    }
    if not args.no_ablations:
        gens["ualm_hf_step"] = UALMGenerator(
            ualm, tokenizer, frame_rate=fr, backend="hf"
        )
    musicgen = build_musicgen(cfg, codec).to(dtype)
    n_params = {
        "ualm": sum(p.numel() for p in ualm.parameters()),
        "musicgen": sum(p.numel() for p in musicgen.parameters()),
    }
    print(
        f"geometry from {cfg.codec_config}: {k} codebooks x {codec.codebook_size}, "
        f"{codec.frame_rate:g} Hz; clip {cfg.clip_seconds:g} s = {frames} frames; "
        f"{args.threads} thread(s), {args.dtype}"
        f"{', linear weights ' + args.linear_dtype if linear_dtype else ''}\n"
        f"models: hidden {cfg.hidden_size}, "
        f"{cfg.num_layers} layers, {cfg.num_heads} heads ({cfg.shape}); UALM "
        f"(Qwen2, {cfg.kv_heads} KV heads, SwiGLU "
        f"{cfg.qwen2_intermediate}, vocabulary {vocab.size}) "
        f"{n_params['ualm'] / 1e6:.1f} M params; MusicGen decoder (ffn "
        f"{cfg.ffn_dim}) {n_params['musicgen'] / 1e6:.1f} M params"
    )

    # warm-up (first calls allocate and prepack) and the CFG batching check
    mg_rows = {}
    for b in cfg.batch_sizes:
        for gen in gens.values():
            run_ualm(gen, prompts[:b], cfg, 2 * k)
        mg_rows[b] = musicgen_forward_rows(musicgen, b, cfg)
        assert mg_rows[b] == 2 * b, f"MusicGen CFG did not double the batch: {mg_rows}"
    forwards = {"musicgen": frames + k - 1}
    for name in gens:
        forwards[name] = 1 + frames + k
    prompt_len = {b: batch_prompts(prompts[:b]).ids.shape[1] for b in cfg.batch_sizes}
    # mean context of a UALM decode step
    context = {b: prompt_len[b] + forwards["ualm"] / 2 for b in cfg.batch_sizes}

    models = ("ualm", "musicgen") + tuple(n for n in gens if n != "ualm")
    times: Dict[str, Dict[int, List[float]]] = {m: defaultdict(list) for m in models}
    parts: Dict[int, List[Dict]] = defaultdict(list)
    bandwidth: List[Dict[str, float]] = []
    gflops: List[float] = []
    for r in range(cfg.repeats):
        order = models if r % 2 == 0 else models[::-1]
        for b in cfg.batch_sizes:
            bandwidth.append(measure_bandwidth())
            for name in order:
                if name == "ualm":
                    seconds, split = timed_ualm(gens[name], prompts[:b], cfg, frames)
                    parts[b].append(split)
                elif name == "musicgen":
                    seconds = run_musicgen(musicgen, b, cfg, frames)
                else:
                    seconds = run_ualm(gens[name], prompts[:b], cfg, frames)
                times[name][b].append(seconds)
                print(f"  round {r + 1}: {name:16s} batch {b}: {seconds:6.2f} s")
        gflops.append(measure_gflops())
    bandwidth.append(measure_bandwidth())

    read_bw = _median([m["read_sum_gbs"] for m in bandwidth])
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
        nbytes = ualm_step_bytes(ualm, 2 * b, context[b], weight_elem)
        floor_ms = 1e3 * nbytes["total"] / (read_bw * 1e9)
        weights = nbytes["backbone_weights"] + nbytes["head_rows_needed"]
        # 2 FLOPs per weight per row
        flops = 2 * 2 * b * weights / (weight_elem or ualm.head_weight.element_size())
        floor[b] = {
            "bytes": nbytes,
            "mean_context": context[b],
            "read_bandwidth_gbs": read_bw,
            "floor_ms": floor_ms,
            "floor_fps": frames * b / (forwards["ualm"] * floor_ms / 1e3),
            "compute_floor_ms": 1e3 * flops / (_median(gflops) * 1e9),
            "step_ms": {n: results[n][b]["step_ms"] for n in models if n != "musicgen"},
            "fraction_of_floor": {
                n: floor_ms / results[n][b]["step_ms"]
                for n in models
                if n != "musicgen"
            },
        }

    print(
        f"\n{'model':16s} {'batch':>5s} {'rows':>4s} {'fwd':>4s} {'median s':>8s} "
        f"{'fps':>7s} {'x rt':>5s} {'ms/step':>7s} {'vs MusicGen':>11s} {'floor':>6s}"
    )
    for name in models:
        for b in cfg.batch_sizes:
            r = results[name][b]
            frac = floor[b]["fraction_of_floor"].get(name)
            print(
                f"{name:16s} {b:5d} {2 * b:4d} {r['forwards']:4d} {r['median_s']:8.2f} "
                f"{r['fps']:7.1f} {r['x_realtime']:5.2f} {r['step_ms']:7.2f} "
                f"{r['fps_over_musicgen']:10.2f}x "
                + (f"{100 * frac:5.0f}%" if frac is not None else "     -")
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
            f"{f['step_ms']['ualm']:.2f} ms = "
            f"{100 * f['fraction_of_floor']['ualm']:.0f} % of floor"
            + (" (target >= 80 %)" if b == 1 else "")
            + f"; compute floor {f['compute_floor_ms']:.2f} ms"
        )

    # where a UALM step goes (medians over the timed runs), ops per step
    profile_frames = int(round(cfg.profile_seconds * codec.frame_rate))
    profiles: Dict[int, Dict[str, Any]] = {}
    for b in cfg.batch_sizes:
        per_step = {
            p: _median([s["per_step_ms"][p] for s in parts[b]]) for p in STEP_PARTS
        }
        ops = {
            name: op_profile(
                lambda b=b, gen=gen: run_ualm(gen, prompts[:b], cfg, profile_frames),
                profile_frames + k,
            )
            for name, gen in gens.items()
        }
        ops["musicgen"] = op_profile(
            lambda b=b: run_musicgen(musicgen, b, cfg, profile_frames),
            profile_frames + k - 1,
        )
        profiles[b] = {
            "per_step_ms": per_step,
            "split_runs": parts[b],
            "ops": ops,
            "profile_frames": profile_frames,
        }
        total = sum(per_step.values())
        print(f"\nUALM decode step, batch {b}: {total:.2f} ms (timed runs, medians)")
        for part, ms in per_step.items():
            print(f"  {part:22s} {ms:7.2f} ms  {100 * ms / total:5.1f} %")
        at_bandwidth = 1e3 * floor[b]["bytes"]["backbone_weights"] / (read_bw * 1e9)
        print(f"  backbone weights at the read bandwidth: {at_bandwidth:.2f} ms")
        for name, o in ops.items():
            groups = ", ".join(f"{g} {v:.2f}" for g, v in o["self_ms_per_step"].items())
            print(
                f"  {name:16s} {o['ops_per_step']:5.0f} ops/step; self "
                f"ms/step ({profile_frames}-frame clip, under torch.profiler): {groups}"
            )
    dispatch_us = dispatch_overhead_us()
    print(f"one tiny aten op from Python: {dispatch_us:.1f} us")
    wall = time.perf_counter() - wall_start
    print(f"benchmark wall time {wall:.0f} s")

    common.write_json(
        args.json,
        {
            "config": dataclasses.asdict(cfg),
            "quick": args.quick,
            "threads": args.threads,
            "dtype": args.dtype,
            "linear_dtype": args.linear_dtype,
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
            "dispatch_overhead_us": dispatch_us,
            "wall_s": wall,
        },
    )


if __name__ == "__main__":
    main()
