"""The decode step with fixed shapes and addresses: for CUDA graphs and
``torch.compile``.

``FastBackbone.step`` attends over the filled part of the KV buffers (a view
one position longer every step) and takes the write column as a Python int,
so every step has new shapes. Run eagerly that is cheapest on a CPU, but on a
GPU a one-position step of a 0.5-7B backbone is a few hundred small kernel
launches whose launch cost (several us each, plus Python) exceeds the time the
step's weights take to stream (~1 ms for Qwen2.5-1.5B in bfloat16 on an
H100): the step is launch-bound. The standard cure (gpt-fast, vLLM, HF's
static cache) is to replay the whole step as one CUDA graph, which needs every
tensor at a fixed address with a fixed shape.

``StaticStep`` is the same step over fixed buffers: the frame's embedding, the
positions and the write column are copied into tensors that live as long as
the step; keys and values are written with ``index_copy_`` at the column
tensor; attention reads the whole KV capacity with an additive bias that is
``-inf`` on columns not written yet (and on left padding) and opened column by
column inside the step. Unwritten cache columns are zeroed, so masked columns
contribute exact zeros: the result equals ``FastBackbone.step`` up to float
summation order (tested). The price is attention over the capacity instead of
the filled length (the KV reads of a step double on average), small against
the weights at batch 1.

Modes (the generator's ``backend``: ``cuda_graph``, ``compile``,
``compile+cuda_graph``):

* ``cuda_graph``: the step is captured once per decoder (after a warm-up on a
  side stream, as ``torch.cuda.graphs`` requires) and replayed every step.
  CUDA only.
* ``compile_step``: the step goes through ``torch.compile`` (inductor,
  ``fullgraph``, static shapes): fused elementwise kernels, C++ on a CPU,
  Triton on a GPU. One compiled graph per (rows, capacity, dtype); capacities
  are rounded up to ``CAPACITY_QUANTUM`` so replies of similar length share
  it. With both, the compiled kernels are what the CUDA graph captures. On a
  CPU it was 0.70-0.92x the eager ``FastBackbone`` step
  (``bench/bench_decode_step.py``, ``bench/README.md``).
* neither: the static step runs eagerly (the reference the tests compare
  with; no faster than ``FastBackbone`` on a CPU, where it is not used).

A cache that would outgrow the capacity, or a beam-search reorder (it
replaces the buffers), ends the static step; the decoder then goes on with
``FastBackbone.step`` over the same cache.
"""

import logging
import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from espnet2.ualm.inference.fast import FastBackbone, PreallocatedKVLayer

# capacities are rounded up to a multiple of this in static mode, so that
# compiled graphs are reused by prompts and replies of similar length
CAPACITY_QUANTUM = 256


def static_capacity(capacity: int) -> int:
    """``capacity`` rounded up to a multiple of ``CAPACITY_QUANTUM``."""
    return int(math.ceil(max(capacity, 1) / CAPACITY_QUANTUM)) * CAPACITY_QUANTUM


def _forward(
    fast: FastBackbone,
    embeds: torch.Tensor,
    position: torch.Tensor,
    column: torch.Tensor,
    bias: torch.Tensor,
    cos_table: torch.Tensor,
    sin_table: torch.Tensor,
    k_bufs: Sequence[torch.Tensor],
    v_bufs: Sequence[torch.Tensor],
) -> torch.Tensor:
    """One decode step; writes keys, values and the bias column in place."""
    rows = embeds.shape[0]
    cos = cos_table.index_select(0, position)[:, None]  # [R, 1, Dh]
    sin = sin_table.index_select(0, position)[:, None]
    bias.index_fill_(-1, column, 0.0)  # the new position is visible to itself
    flat_bias = bias.view(rows * fast.n_kv, 1, bias.shape[-1])
    h = embeds
    for layer, k_buf, v_buf in zip(fast.layers, k_bufs, v_bufs):
        q, key, value = fast.qkv_rope(layer, h, cos, sin)
        k_buf.index_copy_(2, column, key[:, :, None])
        v_buf.index_copy_(2, column, value[:, :, None])
        h = fast.attend_and_mlp(layer, h, q, k_buf, v_buf, flat_bias)
    return fast.final_norm(h)


# one torch.compile wrapper for the process: its cache of compiled graphs is
# shared by every StaticStep (guards: the FastBackbone object, shapes, dtypes)
_COMPILED: Dict[str, Callable] = {}


def _compiled_forward() -> Callable:
    if "forward" not in _COMPILED:
        _COMPILED["forward"] = torch.compile(_forward, fullgraph=True, dynamic=False)
    return _COMPILED["forward"]


def capture_cuda_graph(
    fn: Callable[[], torch.Tensor],
) -> Tuple["torch.cuda.CUDAGraph", torch.Tensor]:
    """``fn`` captured as a CUDA graph: the graph and the tensor its replays
    write. ``torch.cuda.graphs``' recipe: warm-up calls on a side stream
    (library handles, workspaces, compilation), then one capture (which does
    not run the kernels: the first replay does). ``fn`` must be safe to run
    more than once with the same inputs (``StaticStep._run`` rewrites the
    same column)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = fn()
    return graph, output


class StaticStep:
    """``FastBackbone``'s decode step over fixed buffers (module docstring).

    Built after the prefill, when ``length`` positions are in the cache;
    ``attn_bias``: the decoder's ``[R, n_kv, 1, >= length]`` left-padding bias
    (or ``None``). ``__call__(embeds, length, positions)`` is
    ``FastBackbone.step`` with the decoder's arguments.
    """

    def __init__(
        self,
        fast: FastBackbone,
        cache_layers: Sequence[PreallocatedKVLayer],
        capacity: int,
        length: int,
        attn_bias: Optional[torch.Tensor],
        cuda_graph: bool = False,
        compile_step: bool = False,
    ):
        if length >= capacity:
            raise ValueError(f"no room to decode: {length} of {capacity} positions")
        self.fast = fast
        self.cache_layers = list(cache_layers)
        rows = cache_layers[0].k_buf.shape[0]
        self.rows = rows
        for kv in self.cache_layers:
            kv.reserve(capacity)
        # reserve may have doubled past ``capacity``: the buffers' size counts
        capacity = self.cache_layers[0].k_buf.shape[2]
        self.capacity = capacity
        for kv in self.cache_layers:
            # unwritten columns hold zeros: masked columns then add exact zeros
            kv.k_buf[:, :, kv.length :].zero_()
            kv.v_buf[:, :, kv.length :].zero_()
        self.k_bufs = [kv.k_buf for kv in self.cache_layers]
        self.v_bufs = [kv.v_buf for kv in self.cache_layers]
        fast.rope_table(capacity)  # positions never exceed the column index
        self.cos, self.sin = fast._cos, fast._sin
        dtype, device = fast.dtype, fast.device
        self.bias = torch.full(
            (rows, fast.n_kv, 1, capacity), -math.inf, dtype=dtype, device=device
        )
        self.bias[..., :length] = 0.0 if attn_bias is None else attn_bias[..., :length]
        hidden = fast.base.config.hidden_size
        self.embeds = torch.zeros(rows, hidden, dtype=dtype, device=device)
        self.position = torch.zeros(rows, dtype=torch.long, device=device)
        self.column = torch.zeros(1, dtype=torch.long, device=device)
        self.forward = _compiled_forward() if compile_step else _forward
        self.cuda_graph = cuda_graph
        self.graph: Optional["torch.cuda.CUDAGraph"] = None
        self.output: Optional[torch.Tensor] = None

    def fits(self, cache_layers: Sequence[PreallocatedKVLayer], end: int) -> bool:
        """Whether this step still serves the cache (same buffers, room for
        ``end`` positions)."""
        return end <= self.capacity and all(
            kv.k_buf is k for kv, k in zip(cache_layers, self.k_bufs)
        )

    def _run(self) -> torch.Tensor:
        return self.forward(
            self.fast,
            self.embeds,
            self.position,
            self.column,
            self.bias,
            self.cos,
            self.sin,
            self.k_bufs,
            self.v_bufs,
        )

    def __call__(
        self, embeds: torch.Tensor, length: int, positions: torch.Tensor
    ) -> torch.Tensor:
        self.embeds.copy_(embeds)
        self.position.copy_(positions)
        self.column.fill_(length)
        if self.cuda_graph:
            if self.graph is None:
                self.graph, self.output = capture_cuda_graph(self._run)
                logging.info(f"decode step captured as a CUDA graph ({self.rows} rows)")
            self.graph.replay()
            hidden = self.output.clone()  # the next replay overwrites it
        else:
            hidden = self._run()
        for kv in self.cache_layers:
            kv.set_length(length + 1)
        return hidden
