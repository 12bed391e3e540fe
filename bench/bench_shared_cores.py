#!/usr/bin/env python3
"""A training step on 2 threads while another process competes for a core.

    tools/venv/bin/python bench/bench_shared_cores.py [--steps 20] [--json PATH]

The mini recipe trains its LM on both cores. OpenMP threads that spin while
they wait for each other lose their whole time slice whenever another process
holds the core one of them needs, so a competing process can slow a step far
more than the share of the CPU it takes. This benchmark times one mini-shaped
step (the mini's Qwen2 backbone, forward + backward over one packed row of 512
positions, bfloat16 autocast as the mini trains), each run a fresh process:
{idle, one busy competitor} x the OpenMP settings of ``POLICIES``, and prints
each run's median step time and the slowdowns. "Proportionate" is at most
~2x: one of two cores taken away.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

CHILD = "--_child"


def busy(stop_after: float) -> None:
    """A competing process: one core's worth of pure Python work."""
    end = time.time() + stop_after
    x = 0
    while time.time() < end:
        x += 1


def child(steps: int) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2Model

    torch.manual_seed(0)
    config = Qwen2Config(  # the mini's backbone (egs2/ualm/mini/conf)
        vocab_size=5200,
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    )
    model = Qwen2Model(config)
    head = torch.nn.Linear(256, 5200, bias=False)
    ids = torch.randint(0, 5200, (1, 512))
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = model(input_ids=ids).last_hidden_state
            loss = torch.nn.functional.cross_entropy(head(hidden)[0].float(), ids[0])
        loss.backward()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t0)
    print(json.dumps({"median_s": statistics.median(times)}))


# OpenMP settings compared: name -> environment. libgomp (torch's OpenMP on
# Linux) spins GOMP_SPINCOUNT times before it sleeps (300,000 by default).
POLICIES: dict[str, dict[str, str]] = {
    "default": {"OMP_NUM_THREADS": "2"},
    "passive": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    "spin10k": {"OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "10000"},
    "spin1k": {"OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "1000"},
    "spin100": {"OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "100"},
    "1thread": {"OMP_NUM_THREADS": "1"},
}


def run(steps: int, policy: str, competitor: bool) -> float:
    env = dict(os.environ)
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS"):
        env.pop(key, None)
    env.update(POLICIES[policy])
    proc = None
    if competitor:
        proc = multiprocessing.Process(target=busy, args=(600.0,), daemon=True)
        proc.start()
    try:
        out = subprocess.run(
            [sys.executable, __file__, CHILD, "--steps", str(steps)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        ).stdout
    finally:
        if proc is not None:
            proc.terminate()
            proc.join()
    return json.loads(out.strip().splitlines()[-1])["median_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--json", default=None)
    p.add_argument(CHILD, action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        child(args.steps)
        return
    results = {}
    for policy in POLICIES:
        for competitor in (False, True):
            name = f"{policy}/{'competitor' if competitor else 'idle'}"
            results[name] = run(args.steps, policy, competitor)
            print(f"{name:20s} {results[name] * 1000:8.1f} ms a step", flush=True)
    base = results["default/idle"]
    for policy in POLICIES:
        idle, busy_ = results[f"{policy}/idle"], results[f"{policy}/competitor"]
        results[f"{policy}_slowdown"] = busy_ / idle
        print(
            f"{policy:8s} idle {idle / base:.2f}x the default's idle step; "
            f"{busy_ / idle:.2f}x slower with a competitor"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
