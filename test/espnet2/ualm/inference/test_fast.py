"""The decode-step machinery: preallocated cache, FastBackbone, fused audio
heads, prepacked weights, and the fast generator against the reference one."""

import copy

import pytest
import torch

from espnet2.ualm.inference import decoder as decoder_module
from espnet2.ualm.inference import fast as fast_module
from espnet2.ualm.inference.decoder import batch_prompts
from espnet2.ualm.inference.fast import (
    AudioHeads,
    WeightCache,
    fast_backbone_unsupported,
    linear_fn,
)
from espnet2.ualm.inference.generate import UALMGenerator
from espnet2.ualm.inference.sampling import GREEDY, SamplingConfig
from espnet2.ualm.model.ualm_model import native_bfloat16
from espnet2.ualm.testing.decoding import full_forward_hidden, make_decoder

HOT = SamplingConfig(temperature=2.0)
RELEASE = SamplingConfig(temperature=0.8, top_k=5)
SHORT = dict(max_audio_seconds=0.32, max_text_tokens=6)


def _seed(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def model32(model):
    return copy.deepcopy(model).float().eval()


def _random_frames(model, n_rows, n_steps, seed=0):
    vocab = model.vocabulary
    g = _seed(seed)
    out = []
    for _ in range(n_steps):
        frames = torch.zeros(n_rows, vocab.n_codebooks, dtype=torch.long)
        for k in range(vocab.n_codebooks):
            start, stop = vocab.codebook_range(k)
            frames[:, k] = torch.randint(start, stop, (n_rows,), generator=g)
        out.append(frames)
    return out


def _steps(model, prompts, n_steps, backend="fast", seed=0, **decoder_kwargs):
    """Hidden states of the prefill and ``n_steps`` random frames (CFG rows),
    and the same from one full forward (the reference)."""
    batch = batch_prompts(prompts, with_unconditional=True)
    frames = _random_frames(model, batch.ids.shape[0], n_steps, seed)
    out = []
    with torch.no_grad():
        decoder = make_decoder(model, backend, **decoder_kwargs)
        out.append(decoder.prefill(batch))
        for f in frames:
            out.append(decoder.step(f))
    return torch.stack(out), full_forward_hidden(model, batch, frames)


def test_the_tiny_backbone_takes_the_fast_path(model):
    assert fast_backbone_unsupported(model) is None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fast_step_equals_the_hf_forward_and_recomputation(
    model, model32, t2a_prompts, dtype
):
    """Left padding (three prompt lengths), CFG rows, GQA, a cache that has to
    grow (capacity 1), prepacked weights in float32."""
    m = model if dtype == "float64" else model32
    tol = 1e-10 if dtype == "float64" else 1e-4
    fast, recomputed = _steps(m, t2a_prompts, 12, capacity=1)
    hf, _ = _steps(m, t2a_prompts, 12, "hf")
    assert torch.allclose(fast, hf, atol=tol, rtol=tol)
    assert torch.allclose(hf, recomputed, atol=tol, rtol=tol)
    assert torch.allclose(fast, recomputed, atol=tol, rtol=tol)


def test_fast_step_without_prepacking_uses_the_weights_in_place(model32, t2a_prompts):
    weights = WeightCache(model32, prepack=False)
    backbone = weights.backbone(6)
    assert backbone.linear_kind == "linear"
    fast, _ = _steps(model32, t2a_prompts, 6, weights=weights)
    hf, _ = _steps(model32, t2a_prompts, 6, "hf")
    assert torch.allclose(fast, hf, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", ["fast", "hf"])
def test_beam_select_reorders_the_preallocated_cache(model, t2a_prompts, backend):
    batch = batch_prompts(t2a_prompts)
    frames = torch.zeros(3, model.vocabulary.n_codebooks, dtype=torch.long)
    frames[:, 0] = model.vocabulary.text_offset + 3
    index = torch.tensor([2, 2, 0])
    with torch.no_grad():
        decoder = make_decoder(model, backend, capacity=2)
        decoder.prefill(batch)
        decoder.step(frames)
        decoder.select(index)
        selected = decoder.step(frames)
    rows = batch_prompts([t2a_prompts[i] for i in index.tolist()])
    reference = full_forward_hidden(model, rows, [frames, frames])[-1]
    assert torch.allclose(selected, reference, atol=1e-10)


def test_fused_audio_heads_equal_stream_logits(model):
    heads = AudioHeads(model, rows=3)
    vocab = model.vocabulary
    hidden = torch.randn(3, model.head_weight.shape[1], dtype=torch.float64)
    with torch.no_grad():
        fused = heads.logits(hidden)
        for k in range(vocab.n_codebooks):
            ref = model.stream_logits(hidden, k, "codebook")
            if k == 0:
                start, stop = vocab.codebook_range(0)
                closing = ref[:, [vocab.eos_id, vocab.eot_id]]
                ref = torch.cat([ref[:, start:stop], closing], dim=1)
                assert torch.allclose(fused[:, 0], ref, atol=1e-10)
            else:
                assert torch.allclose(fused[:, k, :-2], ref, atol=1e-10)
    ids = heads.column_ids.view(vocab.n_codebooks, heads.width)
    assert ids[0, -2:].tolist() == [vocab.eos_id, vocab.eot_id]
    assert bool(heads.never[:, vocab.codebook_size].all())  # pads never sampled


def test_prepacked_linear_matches_f_linear():
    w, b = torch.randn(40, 24), torch.randn(40)
    fn, kind = linear_fn(w, b, rows=4)
    x = torch.randn(4, 24)
    assert torch.allclose(fn(x), torch.nn.functional.linear(x, w, b), atol=1e-4)
    if torch.backends.mkldnn.is_available():
        assert kind == "onednn"
    fn64, kind64 = linear_fn(w.double(), None, rows=4)
    assert kind64 == "linear"  # no oneDNN float64: plain F.linear


def test_prepared_weights_follow_weight_changes(model32):
    m = copy.deepcopy(model32)
    cache = WeightCache(m)
    first = cache.backbone(2)
    assert cache.backbone(2) is first
    with torch.no_grad():
        m.backbone.base_model.layers[0].mlp.down_proj.weight.mul_(2)
    assert cache.backbone(2) is first  # checked once per generate call
    cache.refresh()
    assert cache.backbone(2) is not first
    heads = cache.audio_heads(2)
    with torch.no_grad():
        m.stream_embeddings.add_(1)
    cache.refresh()
    assert cache.audio_heads(2) is not heads


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(modalities="audio", audio_sampling=RELEASE, min_audio_seconds=0.08),
        dict(modalities=("text", "audio"), audio_sampling=HOT, text_sampling=HOT),
        dict(modalities=None, max_segments=3, audio_sampling=HOT, text_sampling=HOT),
    ],
)
def test_fast_generator_gives_the_reference_tokens(
    model, tokenizer, t2a_prompts, kwargs
):
    """Sampling with a seed: the fast backend (FastBackbone, prepacked heads)
    gives the same replies as the HF forward with plain heads."""
    fast = UALMGenerator(model, tokenizer, frame_rate=25.0)
    ref = UALMGenerator(model, tokenizer, frame_rate=25.0, backend="hf")
    assert (fast.backend, ref.backend) == ("fast", "hf")
    for seed in range(2):
        a = fast.generate(t2a_prompts, generator=_seed(seed), **SHORT, **kwargs)
        b = ref.generate(t2a_prompts, generator=_seed(seed), **SHORT, **kwargs)
        for x, y in zip(a, b):
            assert torch.equal(x.ids, y.ids)
            assert [s.closing for s in x.segments] == [s.closing for s in y.segments]


def test_unsupported_backbone_falls_back_to_the_hf_forward(
    model, tokenizer, t2a_prompts, monkeypatch
):
    config = dict(modalities="audio", audio_sampling=GREEDY, **SHORT)
    expected = UALMGenerator(model, tokenizer, frame_rate=25.0).generate(
        t2a_prompts, **config
    )
    for module in (fast_module, decoder_module):
        monkeypatch.setattr(
            module, "fast_backbone_unsupported", lambda model: "pretend"
        )
    gen = UALMGenerator(model, tokenizer, frame_rate=25.0)
    assert gen.backend == "hf" and gen.weights.backbone(2) is None
    with pytest.raises(ValueError, match="backend 'fast' is not available: pretend"):
        UALMGenerator(model, tokenizer, frame_rate=25.0, backend="fast")
    for a, b in zip(gen.generate(t2a_prompts, **config), expected):
        assert torch.equal(a.ids, b.ids)


def test_float32_generation_with_prepacked_weights(model32, tokenizer, t2a_prompts):
    """The CPU fast path as the benchmark runs it: batched == one by one."""
    gen = UALMGenerator(model32, tokenizer, frame_rate=25.0)
    config = dict(modalities="audio", audio_sampling=GREEDY, text_sampling=GREEDY)
    batched = gen.generate(t2a_prompts, **SHORT, **config)
    for prompt, result in zip(t2a_prompts, batched):
        (alone,) = gen.generate([prompt], **SHORT, **config)
        assert torch.equal(alone.ids, result.ids)


@pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="oneDNN (CPU) only"
)
def test_bfloat16_linear_weights_of_a_float32_model(model32, tokenizer, t2a_prompts):
    """``linear_weight_dtype=bfloat16``: the matmuls run on bfloat16 copies,
    inputs and outputs stay float32, the step stays close to float32's, and
    generation runs (batched == one by one)."""
    w, b = torch.randn(40, 24), torch.randn(40)
    fn, kind = linear_fn(w, b, rows=4, weight_dtype=torch.bfloat16)
    x = torch.randn(4, 24)
    y = fn(x)
    ref = torch.nn.functional.linear(x, w, b)
    if not native_bfloat16("cpu"):
        # a CPU without AVX512: oneDNN has no bfloat16 path; float32 F.linear
        assert kind == "linear" and torch.equal(y, ref)
        return
    assert kind == "onednn-bfloat16" and y.dtype == torch.float32
    assert torch.allclose(y, ref, atol=0.05 * float(ref.abs().max()))
    assert not torch.equal(y, ref)  # it did run in bfloat16
    # where it cannot pack (prepack off, a float64 weight), the weight is used
    # as it is, with no dtype clash
    plain, kind = linear_fn(w, b, rows=4, prepack=False, weight_dtype=torch.bfloat16)
    assert kind == "linear" and torch.equal(plain(x), ref)
    f64, kind = linear_fn(w.double(), None, rows=4, weight_dtype=torch.bfloat16)
    assert kind == "linear" and f64(x.double()).dtype == torch.float64
    cache = WeightCache(model32, weight_dtype=torch.bfloat16)
    assert cache.backbone(2).linear_kind == "onednn-bfloat16"
    bf16, _ = _steps(model32, t2a_prompts, 6, weights=cache)
    f32, _ = _steps(model32, t2a_prompts, 6, weights=WeightCache(model32))
    assert bf16.dtype == torch.float32
    assert 0 < (bf16 - f32).norm() < 0.05 * f32.norm()
    gen = UALMGenerator(
        model32, tokenizer, frame_rate=25.0, linear_weight_dtype=torch.bfloat16
    )
    config = dict(modalities="audio", audio_sampling=GREEDY, text_sampling=GREEDY)
    batched = gen.generate(t2a_prompts, **SHORT, **config)
    for prompt, result in zip(t2a_prompts, batched):
        (alone,) = gen.generate([prompt], **SHORT, **config)
        assert torch.equal(alone.ids, result.ids)
