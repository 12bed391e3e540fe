"""Decode-step machinery: preallocated KV cache, a lean backbone step, fused
audio heads and prepacked linear weights.

Generation spends its time in one-position decode steps. Three things make a
step cheap here:

* ``PreallocatedKVLayer``: a KV-cache layer with the ``DynamicLayer``
  interface (so the Hugging Face forward can use it for the prefill and as a
  fallback) that writes each new position into a buffer sized for the whole
  reply (grown by doubling if a reply outlives it) and hands attention a view
  of the filled part, instead of ``torch.cat``-ing the whole cache per step.
* ``FastBackbone``: the decode step of a Qwen2 / Llama backbone written out
  with few ops per layer (QKV and gate/up as one call each, ``F.rms_norm``, RoPE from a
  precomputed table as ``x * cos + roll(x) * sin``, the new key/value written
  into the buffers, ``scaled_dot_product_attention`` without a mask unless a
  row is left-padded, one fused gate/up linear). It computes what the HF
  forward computes (tested against it); any other architecture, or a config
  it does not know (sliding windows, dynamic RoPE, q/k norms), falls back to
  the HF forward over the preallocated cache.
* ``linear_fn``: on CPU, float32 / bfloat16 weights prepacked for oneDNN
  (``torch.ops.mkldnn._reorder_linear_weight`` once, then
  ``_linear_pointwise``: what ``torch.compile``'s freezing does), which
  streams the weights of a few-row matmul about twice as fast as MKL's
  sgemm; anywhere else, or if the op fails its self-check, ``F.linear``.
  Prepacked weights are copies: ``WeightCache`` rebuilds them when a weight
  changes (its version counter moves).

``static_step.StaticStep`` runs the same step over fixed buffers, for CUDA
graphs and ``torch.compile``.

``AudioHeads`` is the head of every audio stream as one matrix: the
``K`` codebook blocks of the LM head (codes and pad), stream 0's block
followed by the ``<eos>``/``<eot>`` rows, each other stream's by two zero
rows, so logits of all streams of all rows come from one matmul
``[R, D] x [K * (C + 3), D]^T`` viewed ``[R, K, C + 3]``. The stream
embedding folds into a constant bias because the head is linear:
``(h + e_k) W_k^T = h W_k^T + e_k W_k^T``.
"""

import logging
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer

from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.tokens.vocabulary import CLOSING_AFTER

LinearFn = Callable[[torch.Tensor], torch.Tensor]

# decoder layers whose decode step FastBackbone reproduces
_SUPPORTED_LAYERS = ("Qwen2DecoderLayer", "LlamaDecoderLayer")
_STATIC_ROPE = ("default", "linear", "llama3", "yarn")


# ----- KV cache ------------------------------------------------------------------


class PreallocatedKVLayer(DynamicLayer):
    """``DynamicLayer`` that writes into a buffer of ``capacity`` positions.

    ``keys``/``values`` are views of the filled part, so the HF forward sees
    exactly what a ``DynamicLayer`` would hold.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = max(int(capacity), 1)
        self.length = 0
        self.k_buf: Optional[torch.Tensor] = None
        self.v_buf: Optional[torch.Tensor] = None

    def lazy_initialization(self, key_states, value_states) -> None:
        super().lazy_initialization(key_states, value_states)
        rows, heads, _, dim = key_states.shape
        self.k_buf = key_states.new_empty(rows, heads, self.capacity, dim)
        self.v_buf = value_states.new_empty(rows, heads, self.capacity, dim)

    def reserve(self, end: int) -> None:
        """Makes room for ``end`` positions (doubling the buffers)."""
        if end <= self.capacity:
            return
        self.capacity = max(end, 2 * self.capacity)
        for name in ("k_buf", "v_buf"):
            old = getattr(self, name)
            new = old.new_empty(*old.shape[:2], self.capacity, old.shape[-1])
            new[:, :, : self.length] = old[:, :, : self.length]
            setattr(self, name, new)

    def set_length(self, end: int) -> None:
        self.length = end
        self.keys = self.k_buf[:, :, :end]
        self.values = self.v_buf[:, :, :end]

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        self.reserve(end)
        self.k_buf[:, :, self.length : end] = key_states
        self.v_buf[:, :, self.length : end] = value_states
        self.set_length(end)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if not self.is_initialized:
            return
        index = beam_idx.to(self.k_buf.device)
        self.k_buf = self.k_buf.index_select(0, index)
        self.v_buf = self.v_buf.index_select(0, index)
        self.set_length(self.length)

    batch_select_indices = reorder_cache

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("PreallocatedKVLayer does not crop")

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.reorder_cache(torch.arange(self.k_buf.shape[0]).repeat_interleave(repeats))


def preallocated_cache(model: UALMModel, capacity: int):
    """A ``DynamicCache`` whose layers are ``PreallocatedKVLayer``s."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.backbone.config)
    cache.layers = [PreallocatedKVLayer(capacity) for _ in cache.layers]
    return cache


# ----- linear layers -------------------------------------------------------------


def _mkldnn_usable(weight: torch.Tensor) -> bool:
    return (
        weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


@torch.library.custom_op("ualm::onednn_linear", mutates_args=())
def onednn_linear(
    x: torch.Tensor, packed: torch.Tensor, bias: Optional[torch.Tensor], n_out: int
) -> torch.Tensor:
    """``mkldnn._linear_pointwise`` as an opaque op for ``torch.compile``:
    inductor cannot lower the prepacked (opaque) weight itself, but calls this
    as an external kernel between the kernels it fuses (``StaticStep``)."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


@onednn_linear.register_fake
def _onednn_linear_fake(x, packed, bias, n_out):
    return x.new_empty(x.shape[0], n_out)


def linear_fn(
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    rows: int,
    prepack: bool = True,
    weight_dtype: Optional[torch.dtype] = None,
) -> Tuple[LinearFn, str]:
    """``x -> x W^T + b`` for inputs of about ``rows`` rows, and its kind.

    With ``prepack`` on a CPU float32/bfloat16 weight: oneDNN-prepacked
    (checked once against ``F.linear``); otherwise ``F.linear`` on the weight
    as it is. ``weight_dtype=torch.bfloat16`` (with ``prepack``, on CPU): a
    bfloat16 copy is packed, the input cast to it and the output cast back,
    so only the matmul runs in bfloat16 (``bench/bench_decode_matmul.py``: it
    streams its weight ~1.5-2x faster than float32's best kernel on one core).
    """
    weight = weight.detach()
    bias = None if bias is None else bias.detach()
    dtype = weight.dtype if weight_dtype is None else weight_dtype
    if (
        prepack
        and _mkldnn_usable(weight)
        and _mkldnn_usable(weight.new_empty(0, dtype=dtype))
    ):
        try:
            w = weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            packed = torch.ops.mkldnn._reorder_linear_weight(w, max(rows, 1))
            n_out = w.shape[0]

            def op(x: torch.Tensor) -> torch.Tensor:
                if torch.compiler.is_compiling():
                    return onednn_linear(x, packed, b, n_out)
                # eagerly the op itself: the custom op adds ~7 us a call
                return torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")

            if dtype == weight.dtype:
                packed_fn = op
            else:  # only the matmul in ``dtype``

                def packed_fn(x: torch.Tensor) -> torch.Tensor:
                    return op(x.to(dtype)).to(x.dtype)

            probe = torch.randn(
                max(rows, 1), w.shape[1], dtype=weight.dtype, device=w.device
            )
            got = packed_fn(probe).float()
            want = F.linear(probe.to(dtype), w, b).float()
            tol = 1e-3 if dtype == torch.float32 else 5e-2
            if got.shape == want.shape and torch.allclose(
                got, want, rtol=tol, atol=tol * float(want.abs().max() + 1)
            ):
                suffix = "" if dtype == weight.dtype else "-" + str(dtype).split(".")[1]
                return packed_fn, "onednn" + suffix
            logging.warning("oneDNN-prepacked linear disagrees with F.linear: not used")
        except (RuntimeError, AttributeError) as err:  # pragma: no cover - platform
            logging.warning(f"oneDNN-prepacked linear unavailable ({err}): F.linear")
    return (lambda x: F.linear(x, weight, bias)), "linear"


# ----- the backbone's decode step -------------------------------------------------


def _layer_unsupported(layer, config) -> Optional[str]:
    name = type(layer).__name__
    if name not in _SUPPORTED_LAYERS:
        return f"layer type {name}"
    attn, mlp = layer.self_attn, layer.mlp
    for mod, attrs in (
        (attn, ("q_proj", "k_proj", "v_proj", "o_proj", "scaling", "head_dim")),
        (mlp, ("gate_proj", "up_proj", "down_proj")),
        (layer, ("input_layernorm", "post_attention_layernorm")),
    ):
        missing = [a for a in attrs if not hasattr(mod, a)]
        if missing:
            return f"{type(mod).__name__} has no {missing}"
    if getattr(attn, "sliding_window", None) is not None:
        return "sliding-window attention"
    if hasattr(attn, "q_norm") or hasattr(attn, "k_norm"):
        return "q/k norms"
    if getattr(config, "hidden_act", None) != "silu":
        return f"activation {getattr(config, 'hidden_act', None)}"
    if mlp.gate_proj.bias is not None or attn.o_proj.bias is not None:
        return "MLP / output biases"
    return None


def fast_backbone_unsupported(model: UALMModel) -> Optional[str]:
    """Why ``FastBackbone`` cannot run this model's backbone (``None``: it can)."""
    base = model.backbone.base_model
    config = model.backbone.config
    for attr in ("layers", "norm", "rotary_emb", "embed_tokens"):
        if not hasattr(base, attr):
            return f"the backbone has no {attr}"
    rope = getattr(config, "rope_parameters", None) or {}
    rope_type = rope.get("rope_type", "default") if isinstance(rope, dict) else None
    if rope_type not in _STATIC_ROPE:
        return f"RoPE type {rope_type}"
    for layer in base.layers:
        why = _layer_unsupported(layer, config)
        if why:
            return why
    return None


def _stacked_linear(
    linears: Sequence[torch.nn.Linear],
    rows: int,
    prepack: bool,
    weight_dtype: Optional[torch.dtype] = None,
) -> Tuple[LinearFn, str]:
    """The outputs of ``linears`` (same input) concatenated, as one function.

    Prepacked (CPU): one oneDNN call on the stacked weights (a copy, as the
    packing is anyway). Otherwise the original weights are used as they are
    (no copy of the weights: on a GPU that would double the backbone's
    memory) and the outputs concatenated.
    """
    weights = [m.weight.detach() for m in linears]
    if prepack and _mkldnn_usable(weights[0]):
        biases = [m.bias for m in linears]
        bias = None
        if any(b is not None for b in biases):
            bias = torch.cat(
                [
                    b.detach() if b is not None else w.new_zeros(w.shape[0])
                    for b, w in zip(biases, weights)
                ]
            )
        return linear_fn(torch.cat(weights), bias, rows, prepack, weight_dtype)
    parts = [linear_fn(m.weight, m.bias, rows, prepack=False)[0] for m in linears]
    return (lambda x: torch.cat([f(x) for f in parts], dim=-1)), "linear"


class _Layer:
    """One decoder layer's prepared weights."""

    def __init__(
        self, layer, rows: int, prepack: bool, weight_dtype: Optional[torch.dtype]
    ):
        attn, mlp = layer.self_attn, layer.mlp
        wd = weight_dtype
        self.qkv, self.kind = _stacked_linear(
            (attn.q_proj, attn.k_proj, attn.v_proj), rows, prepack, wd
        )
        self.o, _ = linear_fn(attn.o_proj.weight, None, rows, prepack, wd)
        self.gate_up, _ = _stacked_linear(
            (mlp.gate_proj, mlp.up_proj), rows, prepack, wd
        )
        self.down, _ = linear_fn(mlp.down_proj.weight, None, rows, prepack, wd)
        self.intermediate = mlp.gate_proj.weight.shape[0]
        self.n_q = attn.q_proj.weight.shape[0] // attn.head_dim
        self.n_kv = attn.k_proj.weight.shape[0] // attn.head_dim
        self.scaling = float(attn.scaling)
        self.ln1 = layer.input_layernorm
        self.ln2 = layer.post_attention_layernorm


class FastBackbone:
    """The one-position decode step of a Qwen2/Llama backbone, few ops per layer.

    ``step(embeds [R, D], cache_layers, length, positions [R], mask)`` runs
    every layer on the new position of each row, writes its key and value at
    column ``length`` of the ``PreallocatedKVLayer`` buffers and returns the
    final hidden state ``[R, D]`` (the backbone's final norm applied).
    ``attn_bias``: ``[R, n_kv, 1, >= length + 1]`` additive attention mask
    (0, or -inf on left padding) in the model dtype, or ``None``.
    """

    def __init__(
        self,
        model: UALMModel,
        rows: int,
        prepack: bool = True,
        weight_dtype: Optional[torch.dtype] = None,
    ):
        why = fast_backbone_unsupported(model)
        if why:
            raise ValueError(f"FastBackbone does not support this backbone: {why}")
        base = model.backbone.base_model
        self.base = base
        self.layers = [
            _Layer(layer, rows, prepack, weight_dtype) for layer in base.layers
        ]
        self.linear_kind = self.layers[0].kind if self.layers else "linear"
        self.n_kv = self.layers[0].n_kv
        if any(layer.n_kv != self.n_kv for layer in self.layers):
            raise ValueError("FastBackbone needs the same KV heads in every layer")
        first = base.layers[0].self_attn
        self.head_dim = int(first.head_dim)
        self.half = self.head_dim // 2
        self.dtype = base.embed_tokens.weight.dtype
        self.device = base.embed_tokens.weight.device
        self._cos: Optional[torch.Tensor] = None
        self._sin: Optional[torch.Tensor] = None

    def rope_table(self, n_positions: int) -> None:
        """cos and sign-folded sin for positions ``[0, n_positions)``."""
        if self._cos is not None and self._cos.shape[0] >= n_positions:
            return
        n = max(n_positions, 2 * (0 if self._cos is None else self._cos.shape[0]))
        probe = torch.zeros(1, dtype=self.dtype, device=self.device)
        positions = torch.arange(n, device=self.device)[None]
        cos, sin = self.base.rotary_emb(probe, positions)
        cos, sin = cos[0], sin[0]  # [n, head_dim], in the model dtype
        # rotate_half(x) * sin == roll(x, half) * cat(-sin[:half], sin[half:])
        sin = torch.cat([-sin[:, : self.half], sin[:, self.half :]], dim=-1)
        self._cos, self._sin = cos.contiguous(), sin.contiguous()

    def _norm(self, x: torch.Tensor, norm) -> torch.Tensor:
        eps = norm.variance_epsilon
        if x.dtype == torch.float32:
            return F.rms_norm(x, (x.shape[-1],), norm.weight, eps)
        # as the HF RMSNorm does: statistics in float32, weight in the model dtype
        return norm.weight * F.rms_norm(x.float(), (x.shape[-1],), None, eps).to(
            x.dtype
        )

    def qkv_rope(
        self, layer: "_Layer", h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Layer input ``[R, D]`` -> query ``[R, n_q, Dh]`` and the new key and
        value ``[R, n_kv, Dh]`` of the position (RoPE applied to q and k)."""
        rows, dim = h.shape[0], self.head_dim
        n_q, n_kv = layer.n_q, layer.n_kv
        qkv = layer.qkv(self._norm(h, layer.ln1))
        qk = qkv[:, : (n_q + n_kv) * dim].view(rows, n_q + n_kv, dim)
        qk = torch.addcmul(qk * cos, qk.roll(self.half, -1), sin)
        value = qkv[:, (n_q + n_kv) * dim :].view(rows, n_kv, dim)
        return qk[:, :n_q], qk[:, n_q:], value

    def attend_and_mlp(
        self,
        layer: "_Layer",
        h: torch.Tensor,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        bias: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """The rest of the layer: attention of the one query over ``keys`` /
        ``values`` ``[R, n_kv, L, Dh]`` (views of the cache buffers) with the
        additive ``bias`` ``[R * n_kv, 1, L]`` (or ``None``), then the MLP."""
        rows, dim = h.shape[0], self.head_dim
        n_q, n_kv = layer.n_q, layer.n_kv
        end = keys.shape[2]
        # attention of one query position as two batched matmuls over the
        # buffers (no copy; q heads grouped by their KV head): on CPU several
        # times faster than sdpa's kernel for a single query
        q = q.reshape(rows * n_kv, n_q // n_kv, dim)
        keys = keys.view(rows * n_kv, end, dim)
        values = values.view(rows * n_kv, end, dim)
        if bias is None:
            scores = torch.bmm(q, keys.transpose(1, 2)).mul_(layer.scaling)
        else:
            scores = torch.baddbmm(bias, q, keys.transpose(1, 2), alpha=layer.scaling)
        if scores.dtype in (torch.float16, torch.bfloat16):
            probs = torch.softmax(scores, -1, dtype=torch.float32).to(scores.dtype)
        else:
            probs = torch.softmax(scores, -1)
        attn = torch.bmm(probs, values)  # [R * n_kv, group, dim]
        h = h + layer.o(attn.view(rows, n_q * dim))
        gate_up = layer.gate_up(self._norm(h, layer.ln2))
        n = layer.intermediate
        return h + layer.down(F.silu(gate_up[:, :n]) * gate_up[:, n:])

    def final_norm(self, h: torch.Tensor) -> torch.Tensor:
        return self._norm(h, self.base.norm)

    def step(
        self,
        embeds: torch.Tensor,
        cache_layers: Sequence[PreallocatedKVLayer],
        length: int,
        positions: torch.Tensor,
        attn_bias: Optional[torch.Tensor],
    ) -> torch.Tensor:
        rows = embeds.shape[0]
        cos = self._cos.index_select(0, positions)[:, None]  # [R, 1, Dh]
        sin = self._sin.index_select(0, positions)[:, None]
        h = embeds
        end = length + 1
        bias = None
        if attn_bias is not None:
            bias = attn_bias[..., :end].view(rows * self.n_kv, 1, end)
        for layer, kv in zip(self.layers, cache_layers):
            q, key, value = self.qkv_rope(layer, h, cos, sin)
            kv.reserve(end)
            kv.k_buf[:, :, length] = key
            kv.v_buf[:, :, length] = value
            kv.set_length(end)
            keys, values = kv.k_buf[:, :, :end], kv.v_buf[:, :, :end]
            h = self.attend_and_mlp(layer, h, q, keys, values, bias)
        return self.final_norm(h)


# ----- fused audio heads ----------------------------------------------------------


class AudioHeads:
    """Every audio stream's head as one ``[K * W, D]`` matrix (``W = C + 3``).

    Column ``c`` of stream ``k``'s block: code ``c`` of codebook ``k``
    (``c < C``), its pad (``c == C``), then for stream 0 ``<eos>`` and
    ``<eot>``, for the others two unused columns. ``never`` marks the columns
    no stream may sample (unused; pads, unless the vocabulary's
    ``AudioLayout`` has every stream predict them); ``column_ids`` maps a
    flat column to its vocabulary id.
    """

    def __init__(
        self,
        model: UALMModel,
        rows: int,
        prepack: bool = True,
        weight_dtype: Optional[torch.dtype] = None,
    ):
        vocab = model.vocabulary
        k, stride = vocab.n_codebooks, vocab.codebook_stride
        self.n_streams, self.codebook_size = k, vocab.codebook_size
        self.width = stride + 2
        weight = model.head_weight.detach()
        dim = weight.shape[1]
        audio = weight[vocab.audio_offset : vocab.size].view(k, stride, dim)
        extra = weight.new_zeros(k, 2, dim)
        extra[0] = weight[[vocab.eos_id, vocab.eot_id]]
        fused = torch.cat([audio, extra], dim=1)  # [K, W, D]
        emb = model.stream_embeddings.detach()
        shift = torch.cat([torch.zeros_like(emb[:1]), emb]).to(weight.dtype)
        bias = torch.einsum("kwd,kd->kw", fused, shift)
        self.weight = fused.reshape(k * self.width, dim)
        self.bias = bias.reshape(-1)
        self.linear, self.kind = linear_fn(
            self.weight, self.bias, rows, prepack, weight_dtype
        )
        device = weight.device
        never = torch.zeros(k, self.width, dtype=torch.bool, device=device)
        # pads: the generator writes the holes itself, unless every stream
        # predicts them (AudioLayout closing="after")
        never[:, stride - 1] = vocab.audio_layout.closing != CLOSING_AFTER
        never[1:, stride:] = True  # unused columns of streams 1..K-1
        self.never = never
        ids = torch.zeros(k, self.width, dtype=torch.long, device=device)
        for s in range(k):
            start, stop = vocab.codebook_range(s)
            ids[s, :stride] = torch.arange(start, stop, device=device)
        ids[0, stride] = vocab.eos_id
        ids[0, stride + 1] = vocab.eot_id
        self.column_ids = ids.reshape(-1)
        self.stream_base = torch.arange(k, device=device) * self.width
        self.pad_ids = torch.tensor(vocab.audio_pad_ids(), device=device)
        self.streams = torch.arange(k, device=device)
        # a stream's own ids, codes and pad: all that is not a closing token
        code_cols = torch.zeros(self.width, dtype=torch.bool, device=device)
        code_cols[:stride] = True
        self.code_columns = code_cols

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[R, D]`` -> ``[R, K, W]``."""
        return self.linear(hidden).view(hidden.shape[0], self.n_streams, self.width)


# ----- cache of prepared weights ----------------------------------------------------


class WeightCache:
    """Prepared (fused, prepacked) weights of one model, per row count.

    ``refresh`` (the generator calls it once per ``generate`` call) drops
    them when any parameter of the model changed in place (its version
    counter moved) or was replaced; ``keep`` row counts are kept per kind
    (default 2: up to two prepacked copies of the linear weights on CPU;
    packing 93 MB takes ~80-180 ms, so alternating between two batch sizes
    does not repack every call).
    """

    def __init__(
        self,
        model: UALMModel,
        prepack: bool = True,
        keep: int = 2,
        weight_dtype: Optional[torch.dtype] = None,
    ):
        self.model = model
        self.prepack = prepack
        self.weight_dtype = weight_dtype
        self.keep = keep
        self._entries: Dict[Tuple, object] = {}
        self._stamp: Optional[Tuple] = None
        self.fast_unsupported = fast_backbone_unsupported(model)
        if self.fast_unsupported:
            logging.info(
                f"decode steps through the HF forward: {self.fast_unsupported}"
            )
        self.refresh()

    def refresh(self) -> None:
        """Drops the prepared weights if the model's parameters changed."""
        stamp = tuple(
            (id(p), p.data_ptr(), p._version, p.dtype, p.device)
            for p in self.model.parameters()
        )
        if stamp != self._stamp:
            self._entries.clear()
            self._stamp = stamp

    def get(self, kind: str, rows: int):
        key = (kind, rows)
        entry = self._entries.pop(key, None)
        if entry is None:
            cls = FastBackbone if kind == "backbone" else AudioHeads
            entry = cls(self.model, rows, self.prepack, self.weight_dtype)
        self._entries[key] = entry  # most recent last
        same_kind = [k for k in self._entries if k[0] == kind]
        for old in same_kind[: -self.keep]:
            del self._entries[old]
        return entry

    def backbone(self, rows: int) -> Optional[FastBackbone]:
        if self.fast_unsupported:
            return None
        return self.get("backbone", rows)

    def audio_heads(self, rows: int) -> AudioHeads:
        return self.get("heads", rows)
