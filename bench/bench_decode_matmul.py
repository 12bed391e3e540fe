#!/usr/bin/env python3
"""How fast one CPU core streams a weight matrix through a 2-row matmul.

A decode step at batch 1 with CFG multiplies 2 rows by every weight matrix,
so its linear layers can reach the bandwidth floor of ``bench_generation.py``
only if a 2-row matmul reads its weight as fast as ``torch.sum`` does. This
script measures that ratio for the kernels the generator can use
(``espnet2/ualm/inference/fast.py``): ``F.linear``, ``torch.mm`` on the
transposed input, and oneDNN's prepacked linear (the generator's default), in
float32 and bfloat16, on matrices larger than the last-level cache.

    tools/venv/bin/python bench/bench_decode_matmul.py       # ~20 s, one thread
    # --shapes 8192x2048 4096x4096, --rows 2, --repeats 30, --threads 1,
    # writes bench/results/bench_decode_matmul.json (--json PATH)
"""

import argparse
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

import common


def packed_linear(weight: torch.Tensor, rows: int) -> Callable[[torch.Tensor], object]:
    """oneDNN's prepacked linear (what ``fast.linear_fn`` runs on CPU)."""
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows)
    return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def kernels(weight: torch.Tensor, rows: int) -> Dict[str, Callable[[], object]]:
    """The 2-row matmuls the generator can run on ``weight``."""
    x = torch.randn(rows, weight.shape[1], dtype=weight.dtype)
    x_t = x.T.contiguous()
    out = {
        "F.linear": lambda: F.linear(x, weight),
        "mm(W, x.T)": lambda: torch.mm(weight, x_t),
    }
    try:
        run_packed = packed_linear(weight, rows)
        out["oneDNN packed"] = lambda: run_packed(x)
    except RuntimeError:  # no oneDNN kernel for this dtype on this CPU
        pass
    return out


def measure(out_features: int, in_features: int, rows: int, repeats: int) -> Dict:
    """GB/s of the weight's bytes for each kernel and dtype, and the read
    bandwidth (``torch.sum`` of the float32 matrix) they are compared with."""
    weight32 = torch.randn(out_features, in_features)
    read_gbs = weight32.nbytes / common.median_seconds(weight32.sum, repeats) / 1e9
    result = {"shape": [out_features, in_features], "read_gbs": read_gbs}
    for dtype in (torch.float32, torch.bfloat16):
        weight = weight32.to(dtype)
        for name, fn in kernels(weight, rows).items():
            gbs = weight.nbytes / common.median_seconds(fn, repeats) / 1e9
            result[f"{str(dtype).split('.')[-1]} {name}"] = gbs
    return result


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["8192x2048", "4096x4096"])
    parser.add_argument("--rows", type=int, default=2, help="2 = batch 1 with CFG")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--json",
        default=common.default_json("bench_decode_matmul"),
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    for shape in args.shapes:
        n, k = (int(v) for v in shape.split("x"))
        r = measure(n, k, args.rows, args.repeats)
        results.append(r)
        print(f"{n} x {k} ({n * k * 4 / 2**20:.0f} MiB in float32), {args.rows} rows:")
        print(f"  read bandwidth (torch.sum): {r['read_gbs']:.1f} GB/s")
        for name, gbs in r.items():
            if name not in ("shape", "read_gbs") and isinstance(gbs, float):
                print(f"  {name:26s} {gbs:6.1f} GB/s  {gbs / r['read_gbs']:4.0%}")
    common.write_json(
        args.json,
        {"rows": args.rows, "threads": args.threads, "results": results},
        indent=1,
    )


if __name__ == "__main__":
    main()
