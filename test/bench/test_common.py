"""bench/common.py, and one benchmark run end to end on a tiny shape, so
that the shared module and a script using it do not drift apart."""

import json
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")
sys.path.insert(0, BENCH)
import common  # noqa: E402


def test_median_seconds_warms_up_once_and_times_each_repeat():
    calls = []
    seconds = common.median_seconds(lambda: calls.append(1), 5)
    assert len(calls) == 6 and seconds >= 0.0
    common.median_seconds(lambda: calls.append(1), 3, warmup=False)
    assert len(calls) == 9


def test_read_bandwidth_is_positive():
    assert common.read_bandwidth_gbs(n_bytes=1 << 20, repeats=3) > 0.0


def test_report_names_the_machine(tmp_path):
    path = str(tmp_path / "out" / "report.json")
    common.write_json(path, {"results": [1, 2]})
    report = json.load(open(path))
    assert report["results"] == [1, 2]
    assert {"device", "cpu_count", "load_average", "torch", "transformers"} <= set(
        report["machine"]
    )
    assert common.default_json("x").endswith(os.path.join("bench", "results", "x.json"))


def run_bench(script: str, out: str, *args: str) -> dict:
    """Run ``bench/<script>`` with ``args`` and ``--json out``; its report."""
    subprocess.run(
        [sys.executable, os.path.join(BENCH, script), *args, "--json", out],
        check=True,
        capture_output=True,
    )
    return json.load(open(out))


@pytest.mark.slow
def test_a_benchmark_script_runs_on_a_tiny_shape(tmp_path):
    out = str(tmp_path / "matmul.json")
    report = run_bench(
        "bench_decode_matmul.py", out, "--shapes", "256x128", "--repeats", "2"
    )
    assert report["results"][0]["shape"] == [256, 128] and "machine" in report


@pytest.mark.slow
def test_the_peer_benchmark_runs_on_a_tiny_shape(tmp_path):
    # it builds ESPnet-SpeechLM's model and imports it with our converter, so it
    # breaks when the importer's interface moves (it did once, unnoticed)
    report = run_bench(
        "bench_peer.py",
        str(tmp_path / "peer.json"),
        *("--hidden", "64", "--layers", "1", "--text_vocab", "1000"),
        *("--length", "128", "--frames", "4", "--repeats", "1"),
    )
    assert report["train_ratio_speechlm_over_ualm"] > 0
    assert report["decode"]["ualm"]["forwards"] > 4
