"""ualm_ablation on hand-made scored runs: means, paired tests, held-out
attributes, timings, the table."""

import json
import os

import numpy as np
import pytest

from espnet2.bin import ualm_ablation


def _run(root, name, overall, pitch, seconds=None):
    d = os.path.join(root, name)
    per_item = {
        f"u{i}": {"judge": {"overall": o, "pitch_band": p}}
        for i, (o, p) in enumerate(zip(overall, pitch))
    }
    os.makedirs(os.path.join(d, "scores", "per_item"))
    with open(os.path.join(d, "scores", "per_item", "text_to_audio.t.json"), "w") as f:
        json.dump(per_item, f)
    with open(os.path.join(d, "scores", "scores.json"), "w") as f:
        json.dump({"text_to_audio/t": {"metrics": {"fd": 12.5}}}, f)
    if seconds is not None:
        os.makedirs(os.path.join(d, "text_to_audio", "t"))
        with open(os.path.join(d, "text_to_audio", "t", "timing.json"), "w") as f:
            json.dump({"wall_seconds": seconds}, f)
    return d


def test_paired_test_by_hand():
    diff, interval, p, n = ualm_ablation.paired_test(
        [1, 1, 1, 1], [0, 0, 0, float("nan")]
    )
    assert (diff, n) == (1.0, 3)
    # 3 items all +1: only the all-plus and all-minus of 8 sign patterns are
    # as extreme, so p is about 2/8
    assert p == pytest.approx(0.25, abs=0.02)
    assert ualm_ablation.paired_test([0.5, 0.5], [0.5, 0.5])[2] == pytest.approx(1.0)


def test_table_rows_against_their_baselines(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 50)
    a = _run(tmp_path, "a", base, base, seconds=10.0)
    b = _run(tmp_path, "b", base + 0.2, base, seconds=40.0)
    out = str(tmp_path / "out")
    result = ualm_ablation.main(
        ["--output_dir", out, "--run", f"a={a}", "--run", f"b={b}",
         "--baseline", "a", "--held_out", "judge.pitch_band"]
    )  # fmt: skip
    rows = {r["row"]: r for r in result["rows"]}
    assert rows["b"]["prompts"] == 50
    assert rows["b"]["metric"]["diff"] == pytest.approx(0.2)
    assert rows["b"]["metric"]["p_value"] < 0.001
    low, high = rows["b"]["metric"]["diff_interval"]
    assert low == pytest.approx(0.2) and high == pytest.approx(0.2)
    assert rows["b"]["held_out"]["diff"] == pytest.approx(0.0)  # what it did not move
    assert (rows["b"]["seconds"], rows["b"]["fd"]) == (40.0, 12.5)
    table = open(os.path.join(out, "RESULTS.md")).read()
    assert "| text_to_audio / t | b | a | 50 |" in table
    assert os.path.exists(os.path.join(out, "ablation.png"))
    with pytest.raises(SystemExit, match="no --run named 'c'"):
        ualm_ablation.main(
            ["--output_dir", out, "--run", f"a={a}", "--baseline", "a", "--row", "c"]
        )
