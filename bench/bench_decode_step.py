#!/usr/bin/env python3
"""One decode step of audio generation against its memory-bandwidth floor,
per way of running the step, on a CPU or a GPU.

    tools/venv/bin/python bench/bench_decode_step.py          # CPU: fast, compile
    tools/venv/bin/python bench/bench_decode_step.py --shape qwen2.5-0.5b \\
        --linear_dtype bfloat16
    tools/venv/bin/python bench/bench_decode_step.py --device cuda \\
        --dtype bfloat16 --shape qwen2.5-0.5b  # fast, cuda_graph, compile+cuda_graph
    # --backends fast,compile,cuda_graph,compile+cuda_graph  --batch_sizes 1 8
    # --clip_seconds 10 --repeats 3 --threads 1
    # writes bench/results/bench_decode_step_<shape>_<device>_<dtype>.json

``bench_generation.py`` compares UALM with MusicGen; this script asks the
other question, how close a step comes to the time its
bytes take at the machine's read bandwidth (target: 80 % at batch 1), for
each way ``UALMGenerator`` can run the step (its ``backend``):

* ``fast``: ``FastBackbone.step``, eager (the default);
* ``compile``: the static step through ``torch.compile``;
* ``cuda_graph``: the static step replayed as a CUDA graph;
* ``compile+cuda_graph``: both (the compiled kernels captured in the graph).

Same model, prompts and sampling as ``bench_generation.py`` (its
``BenchConfig``, ``SHAPES``, ``build_ualm``, ``run_ualm``): a 10 s clip with
CFG 3, temperature 0.8, top-k 20, the full length forced; step = wall time of
``generate`` / forward passes (prefill included, as there). Each backend gets
one untimed call first (packing, compilation, capture), then ``--repeats``
timed calls, the backends interleaved, medians.

Floor: the bytes a step must read (``bench_generation.ualm_step_bytes``:
backbone weights, the audio heads' rows, the embedding rows, the KV cache at
the mean context) over the read bandwidth of the same device, measured in the
same run (``torch.sum`` over 256 MiB on a CPU, 1 GiB on a GPU, medians). The
static backends read the KV cache over its whole capacity; the floor does not
count that, so it is the same for every backend.
"""

import argparse
import dataclasses
import os
import statistics
import sys
from typing import Any, Dict, List

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from espnet2.ualm.inference.generate import UALMGenerator  # noqa: E402

import bench_generation as bg  # noqa: E402  (the sibling benchmark's model and runs)
import common  # noqa: E402

DEFAULT_BACKENDS = {
    "cpu": ("fast", "compile"),
    "cuda": ("fast", "cuda_graph", "compile+cuda_graph"),
}
# the static-buffer backends (settings.BACKENDS less auto and hf, which
# bench_generation.py compares)
BACKENDS = ("fast", "compile", "cuda_graph", "compile+cuda_graph")


def timed_generate(gen, prompts, cfg, frames: int, device: torch.device) -> float:
    return common.median_seconds(
        lambda: bg.run_ualm(gen, prompts, cfg, frames), 1, device, warmup=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--shape", default="bench", choices=tuple(bg.SHAPES))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument(
        "--linear_dtype",
        default=None,
        choices=("bfloat16",),
        help="CPU: the prepacked linear weights in this dtype (the floor counts so)",
    )
    parser.add_argument(
        "--backends", default=None, help="comma-separated, of " + ", ".join(BACKENDS)
    )
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--clip_seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU torch threads")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if args.linear_dtype and device.type != "cpu":
        parser.error("--linear_dtype is a CPU setting (prepacked oneDNN weights)")
    default = DEFAULT_BACKENDS[device.type]
    backends = args.backends.split(",") if args.backends else list(default)
    for backend in backends:
        if backend not in BACKENDS:
            parser.error(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        if "cuda_graph" in backend and device.type != "cuda":
            parser.error(f"backend {backend} needs --device cuda")
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    tag = f"{args.shape}_{args.device}_{args.dtype}" + (
        f"_linear_{args.linear_dtype}" if args.linear_dtype else ""
    )
    json_path = args.json or common.default_json(f"bench_decode_step_{tag}")

    cfg = bg.BenchConfig(
        shape=args.shape, **bg.SHAPES[args.shape], clip_seconds=args.clip_seconds
    )
    codec = bg.codec_from_config(os.path.join(bg.REPO, cfg.codec_config))
    vocab = bg.UALMVocabulary.for_codec(cfg.text_vocab_size, codec)
    tokenizer = bg.WordHashTokenizer(cfg.text_vocab_size)
    builder = bg.SequenceBuilder(vocab, tokenizer)
    prompts = [
        builder.build_example("text_to_audio", {"caption": c}, prompt_only=True)
        for c in bg.CAPTIONS
    ]
    model = bg.build_ualm(cfg, vocab).to(
        device=device, dtype=getattr(torch, args.dtype)
    )
    linear_dtype = getattr(torch, args.linear_dtype) if args.linear_dtype else None
    gens = {
        backend: UALMGenerator(
            model,
            tokenizer,
            frame_rate=codec.frame_rate,
            backend=backend,
            linear_weight_dtype=linear_dtype,
        )
        for backend in backends
    }
    frames = int(round(cfg.clip_seconds * codec.frame_rate))
    forwards = (
        1 + frames + vocab.n_codebooks
    )  # prefill + marker, frames, closing, delay
    print(
        f"{args.shape} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f} M "
        f"parameters), {args.device}, {args.dtype}"
        + (f", linear weights {args.linear_dtype}" if linear_dtype else "")
        + f"; {cfg.clip_seconds:g} s clip = {forwards} forwards; backends {backends}"
    )

    first: Dict[str, Dict[int, float]] = {m: {} for m in backends}
    times: Dict[str, Dict[int, List[float]]] = {
        m: {b: [] for b in args.batch_sizes} for m in backends
    }
    bandwidth: List[float] = [common.read_bandwidth_gbs(device)]
    for b in args.batch_sizes:
        for backend, gen in gens.items():
            first[backend][b] = timed_generate(gen, prompts[:b], cfg, frames, device)
            print(
                f"  {backend:20s} batch {b}: first call {first[backend][b]:.1f} s",
                flush=True,
            )
    for r in range(args.repeats):
        order = backends if r % 2 == 0 else backends[::-1]
        for b in args.batch_sizes:
            for backend in order:
                times[backend][b].append(
                    timed_generate(gens[backend], prompts[:b], cfg, frames, device)
                )
        bandwidth.append(common.read_bandwidth_gbs(device))
    read_bw = statistics.median(bandwidth)

    results: Dict[str, Any] = {}
    print(f"\nread bandwidth {read_bw:.1f} GB/s (median of {len(bandwidth)})")
    print(
        f"{'backend':20s} {'batch':>5s} {'ms/step':>8s} {'floor ms':>8s} "
        f"{'% floor':>7s} {'vs fast':>8s}"
    )
    for b in args.batch_sizes:
        context = bg.batch_prompts(prompts[:b]).ids.shape[1] + forwards / 2
        elem = None if linear_dtype is None else linear_dtype.itemsize
        nbytes = bg.ualm_step_bytes(model, 2 * b, context, elem)
        floor_ms = 1e3 * nbytes["total"] / (read_bw * 1e9)
        fast_ms = None
        for backend in backends:
            step_ms = 1e3 * statistics.median(times[backend][b]) / forwards
            fast_ms = step_ms if backend == "fast" else fast_ms
            results.setdefault(backend, {})[b] = {
                "seconds": times[backend][b],
                "first_call_s": first[backend][b],
                "step_ms": step_ms,
                "floor_ms": floor_ms,
                "fraction_of_floor": floor_ms / step_ms,
            }
            speedup = f"{fast_ms / step_ms:7.2f}x" if fast_ms else "       -"
            print(
                f"{backend:20s} {b:5d} {step_ms:8.2f} {floor_ms:8.2f} "
                f"{100 * floor_ms / step_ms:6.0f}% {speedup}"
                + ("  (target >= 80 %)" if b == 1 and backend == backends[-1] else "")
            )
        results.setdefault("bytes", {})[b] = nbytes

    common.write_json(
        json_path,
        {
            "args": vars(args),
            "config": dataclasses.asdict(cfg),
            "machine": common.machine(device),
            "forwards": forwards,
            "read_bandwidth_gbs": bandwidth,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
