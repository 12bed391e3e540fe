"""ualm_ablation on hand-made scored runs: means, paired tests, held-out
attributes, timings, the table."""

import json
import os

import numpy as np
import pytest

from espnet2.bin import ualm_ablation


def _run(root, name, overall, pitch, seconds=None, task="text_to_audio"):
    d = os.path.join(root, name)
    per_item = {
        f"u{i}": {"judge": {"overall": o, "pitch_band": p}}
        for i, (o, p) in enumerate(zip(overall, pitch))
    }
    os.makedirs(os.path.join(d, "scores", "per_item"))
    with open(os.path.join(d, "scores", "per_item", f"{task}.t.json"), "w") as f:
        json.dump(per_item, f)
    with open(os.path.join(d, "scores", "scores.json"), "w") as f:
        json.dump({f"{task}/t": {"metrics": {"fd": 12.5}}}, f)
    if seconds is not None:
        os.makedirs(os.path.join(d, task, "t"))
        with open(os.path.join(d, task, "t", "timing.json"), "w") as f:
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


def test_a_row_may_compare_two_tasks(tmp_path):
    """NAME@TASK:BASE@TASK: enrichment's clips against the vague prompt's
    direct generation, the same items of two tasks."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 0.5, 40)
    direct = _run(tmp_path, "direct", base, base, task="vague_text_to_audio")
    enrich = _run(tmp_path, "enrich", base + 0.1, base, 7.0, task="enrichment")
    out = str(tmp_path / "out")
    result = ualm_ablation.main(
        ["--output_dir", out, "--run", f"direct={direct}", "--run", f"enrich={enrich}",
         "--baseline", "direct",
         "--row", "enrich@enrichment:direct@vague_text_to_audio"]
    )  # fmt: skip
    (row,) = result["rows"]
    assert row["task"] == "enrichment vs vague_text_to_audio"
    assert row["metric"]["diff"] == pytest.approx(0.1) and row["prompts"] == 40
    assert row["seconds"] == 7.0  # the row's own task's timing
    table = open(os.path.join(out, "RESULTS.md")).read()
    assert "| enrich | direct | 40 |" in table and "| 0.100 [" in table
    with pytest.raises(FileNotFoundError, match="enrichment.t.json"):
        ualm_ablation.main(
            ["--output_dir", out, "--run", f"direct={direct}",
             "--baseline", "direct", "--row", "direct@enrichment"]
        )  # fmt: skip
