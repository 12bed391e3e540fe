"""The decode step over fixed buffers (``static_step``): the same hidden states
as ``FastBackbone.step``, the CUDA-graph protocol (capture once, replay every
step; faked on a CPU), the fall-back when the cache outgrows it or is
reordered, and ``torch.compile`` giving the eager tokens."""

import copy

import pytest
import torch

from espnet2.ualm.inference import static_step as static_module
from espnet2.ualm.inference.decoder import batch_prompts
from espnet2.ualm.inference.generate import UALMGenerator
from espnet2.ualm.inference.sampling import GREEDY
from espnet2.ualm.testing.decoding import make_decoder


@pytest.fixture(scope="module")
def model32(model):
    return copy.deepcopy(model).float().eval()


@pytest.fixture
def eager_static(monkeypatch):
    """The ``compile`` backend runs the static step without compiling it."""
    monkeypatch.setattr(
        static_module, "_compiled_forward", lambda: static_module._forward
    )


class FakeGraph:
    """Stands in for ``torch.cuda.CUDAGraph`` on a CPU: a replay reruns the
    captured function into the captured output."""

    def __init__(self, fn):
        self.fn = fn
        self.replays = 0

    def replay(self):
        self.replays += 1
        out = self.fn()
        self.output.copy_(out)


@pytest.fixture
def fake_capture(monkeypatch):
    graphs = []

    def capture(fn):
        graph = FakeGraph(fn)
        graph.output = fn().clone()  # a real capture runs nothing; harmless here
        graphs.append(graph)
        return graph, graph.output

    monkeypatch.setattr(static_module, "capture_cuda_graph", capture)
    return graphs


def _frames(vocab, rows, g):
    frames = torch.zeros(rows, vocab.n_codebooks, dtype=torch.long)
    for k in range(vocab.n_codebooks):
        start, stop = vocab.codebook_range(k)
        frames[:, k] = torch.randint(start, stop, (rows,), generator=g)
    return frames


def _steps(model, prompts, n_steps, select_at=None, backend="fast"):
    """Hidden states of ``n_steps`` random frames (CFG rows), and the decoder;
    ``select_at``: a beam-search reorder before that step."""
    batch = batch_prompts(prompts, with_unconditional=True)
    g = torch.Generator().manual_seed(0)
    out = []
    with torch.no_grad():
        decoder = make_decoder(model, backend)
        out.append(decoder.prefill(batch))
        for i in range(n_steps):
            if i == select_at:
                decoder.select(torch.arange(batch.ids.shape[0]).flip(0))
            frames = _frames(model.vocabulary, batch.ids.shape[0], g)
            out.append(decoder.step(frames))
    return torch.stack(out), decoder


def test_static_step_equals_the_fast_step(model, t2a_prompts, eager_static):
    """Left padding (three prompt lengths), CFG rows, GQA: attention over the
    whole capacity with masked zero columns gives the fast step's states."""
    fast, _ = _steps(model, t2a_prompts, 12)
    static, decoder = _steps(model, t2a_prompts, 12, backend="compile")
    assert decoder.static_step is not None
    assert decoder.static_step.capacity == static_module.CAPACITY_QUANTUM
    assert torch.allclose(static, fast, atol=1e-10, rtol=1e-10)
    # the cache's own view is what the HF forward would read next
    assert decoder.cache.layers[0].keys.shape[2] == decoder.length


def test_cuda_graph_captures_once_and_replays_every_step(
    model, t2a_prompts, fake_capture
):
    fast, _ = _steps(model, t2a_prompts, 9)
    graphed, decoder = _steps(model, t2a_prompts, 9, backend="cuda_graph")
    assert len(fake_capture) == 1 and fake_capture[0].replays == 9
    assert torch.allclose(graphed, fast, atol=1e-10, rtol=1e-10)
    # the returned state is a copy: the next replay does not overwrite it
    assert graphed[-1].data_ptr() != decoder.static_step.output.data_ptr()


def test_outgrown_or_reordered_cache_falls_back_to_the_fast_step(
    model, t2a_prompts, eager_static, monkeypatch
):
    monkeypatch.setattr(static_module, "CAPACITY_QUANTUM", 16)
    calls = []
    step_call = static_module.StaticStep.__call__

    def counted(self, *args):
        calls.append(args[1])  # the column written
        return step_call(self, *args)

    monkeypatch.setattr(static_module.StaticStep, "__call__", counted)
    fast, _ = _steps(model, t2a_prompts, 20)
    static, decoder = _steps(model, t2a_prompts, 20, backend="compile")
    capacity = decoder.cache.layers[0].capacity
    # static steps until the capacity (a multiple of 16) is full, then the fast step
    assert calls and calls[-1] == 15 + calls[0] // 16 * 16 < decoder.length - 1
    assert decoder.static_step is None and capacity > calls[-1] + 1
    assert torch.allclose(static, fast, atol=1e-10, rtol=1e-10)
    calls.clear()
    fast, _ = _steps(model, t2a_prompts, 6, select_at=3)
    static, decoder = _steps(model, t2a_prompts, 6, select_at=3, backend="compile")
    assert len(calls) == 3 and decoder.static_step is None
    assert torch.allclose(static, fast, atol=1e-10, rtol=1e-10)


def test_backend_is_checked(model, tokenizer):
    with pytest.raises(ValueError, match="CUDA device"):
        UALMGenerator(model, tokenizer, frame_rate=25.0, backend="cuda_graph")
    with pytest.raises(ValueError, match="backend must be one of"):
        UALMGenerator(model, tokenizer, frame_rate=25.0, backend="static")
    assert UALMGenerator(model, backend="compile").backend == "compile"


def test_compiled_step_gives_the_eager_tokens(model32, tokenizer, t2a_prompts):
    """The real ``torch.compile`` (inductor, C++ on a CPU; prepacked oneDNN
    linears as an opaque op): greedy audio replies equal the eager ones, and
    a second call of the same shape reuses the compiled graph."""
    from torch._dynamo.utils import counters

    config = dict(modalities="audio", audio_sampling=GREEDY, max_audio_seconds=0.6)
    eager = UALMGenerator(model32, tokenizer, frame_rate=25.0)
    compiled = UALMGenerator(model32, tokenizer, frame_rate=25.0, backend="compile")
    want = eager.generate(t2a_prompts, **config)
    before = counters["stats"]["unique_graphs"]
    got = compiled.generate(t2a_prompts, **config)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > before  # the step did go through dynamo
    again = compiled.generate(t2a_prompts, **config)
    assert counters["stats"]["unique_graphs"] == graphs  # no recompilation
    for a, b, c in zip(want, got, again):
        assert torch.equal(a.ids, b.ids) and torch.equal(a.ids, c.ids)
