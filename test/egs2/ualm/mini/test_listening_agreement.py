"""local/listening_agreement.py: the model's caption of its attempt against
the judge's analysis of it, on rendered mini clips."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "egs2" / "ualm" / "mini" / "local"))

import listening_agreement as la  # noqa: E402
from mini_corpus.sound_events import (  # noqa: E402
    SAMPLE_RATE_MASTER,
    limit_peak,
    render_clip,
    sample_clip,
)

from espnet2.ualm.data.kaldi_dir import write_kv  # noqa: E402


def _decode_dir(root: Path, heard: dict) -> str:
    v1 = root / "reflection" / "v1"
    os.makedirs(v1)
    wavs = {}
    for i, utt in enumerate(sorted(heard)):
        rng = np.random.default_rng(i)
        stereo, _ = limit_peak(render_clip(sample_clip(rng, held_out=False), rng))
        wavs[utt] = str(v1 / f"{utt}.wav")
        soundfile.write(wavs[utt], stereo, SAMPLE_RATE_MASTER, subtype="PCM_16")
    write_kv(str(v1 / "wav.scp"), sorted(wavs.items()))
    judged = la.judge_captions(str(v1 / "wav.scp"))
    texts = {u: (judged[u] if h == "judge" else h) for u, h in heard.items()}
    write_kv(str(v1 / "heard_text"), sorted(texts.items()))
    return str(root), judged


def test_agreement_of_a_caption_with_the_judge(tmp_path):
    d, judged = _decode_dir(tmp_path / "a", {"u0": "judge", "u1": "judge", "u2": "x"})
    per_item = la.run_agreement(d)
    assert per_item["u0"]["overall"] == per_item["u0"]["parsed"] == 1.0
    assert per_item["u2"] == {a: 0.0 for a in per_item["u2"]}  # no rich caption
    # another clip's caption disagrees somewhere
    other = la.agreement(judged["u1"], judged["u0"])
    assert other["parsed"] == 1.0 and other["overall"] == 0.0


def test_the_table_compares_runs(tmp_path, capsys):
    heard, _ = _decode_dir(tmp_path / "a", {"u0": "judge", "u1": "judge"})
    deaf, _ = _decode_dir(tmp_path / "b", {"u0": "beeps", "u1": "beeps"})
    out = str(tmp_path / "out")
    runs = la.main(["--run", f"heard={heard}", "--run", f"silence={deaf}",
                    "--output_dir", out])  # fmt: skip
    assert runs["heard"]["u1"]["overall"] == 1.0
    text = open(os.path.join(out, "RESULTS.md")).read()
    assert "| heard | 2 | 1.000" in text and "| silence | 2 | 0.000" in text
    assert "-1.000" in text
    with pytest.raises(SystemExit, match="heard_text missing"):
        os.remove(os.path.join(heard, "reflection", "v1", "heard_text"))
        la.run_agreement(heard)
