"""What every benchmark here shares: a timer, the machine's read bandwidth,
a description of the machine and the JSON report.

The scripts run as ``python bench/<name>.py``, so this directory is on
``sys.path`` and they ``import common``.
"""

import json
import os
import platform
import statistics
import time
from typing import Any, Callable, Dict, Optional

import torch

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def sync(device: Optional[torch.device] = None) -> None:
    """Wait for the device's queued work (a no-op on a CPU)."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    fn: Callable[[], Any],
    repeats: int,
    device: Optional[torch.device] = None,
    warmup: bool = True,
) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls, after one
    warm-up call (first touch, kernel selection) unless ``warmup`` is false."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_bandwidth_gbs(
    device: Optional[torch.device] = None,
    n_bytes: Optional[int] = None,
    repeats: int = 7,
) -> float:
    """GB/s of ``torch.sum`` over a float32 tensor far larger than the caches
    (256 MiB on a CPU, 1 GiB on a GPU): the floor a weight-streaming step is
    held against."""
    device = device or torch.device("cpu")
    if n_bytes is None:
        n_bytes = (1 << 30) if device.type == "cuda" else (256 << 20)
    x = torch.ones(n_bytes // 4, device=device)
    return n_bytes / median_seconds(x.sum, repeats, device) / 1e9


def machine(device: Optional[torch.device] = None) -> Dict[str, Any]:
    """The processor, core count, load average and library versions of a run."""
    import transformers

    device = device or torch.device("cpu")
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    return {
        "device": name,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def default_json(name: str) -> str:
    """Where a benchmark writes its report unless told otherwise."""
    return os.path.join(RESULTS_DIR, f"{name}.json")


def write_json(path: str, report: Dict[str, Any], indent: int = 2) -> None:
    """Write a benchmark's report (the machine added) and say where."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"machine": machine(), **report}, f, indent=indent)
    print(f"wrote {path}")
