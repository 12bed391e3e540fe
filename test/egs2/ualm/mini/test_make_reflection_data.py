"""Self-reflection data from a model's attempts (local/make_reflection_data.py):
the judge's analysis as a rich caption, the critique against the plan, the
converter's data dir, and the rejects; on rendered mini clips and on the
tiny packed model."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[4]
LOCAL = ROOT / "egs2" / "ualm" / "mini" / "local"
sys.path.insert(0, str(LOCAL))

import make_reflection_data as mrd  # noqa: E402
from mini_corpus.captions import rich_caption  # noqa: E402
from mini_corpus.sound_events import (  # noqa: E402
    SAMPLE_RATE_MASTER,
    limit_peak,
    render_clip,
    sample_clip,
)

from espnet2.ualm.data.kaldi_dir import read_kv, write_kv  # noqa: E402
from espnet2.ualm.data.rejects import RejectLog  # noqa: E402
from espnet2.ualm.text.critique import critique_text, parse_critique  # noqa: E402
from espnet2.ualm.text.rich_caption import parse  # noqa: E402

N_CLIPS = 6


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Rendered mini clips (48 kHz stereo files) and their rich captions."""
    root = tmp_path_factory.mktemp("clips")
    out = []
    for i in range(N_CLIPS):
        rng = np.random.default_rng(i)
        spec = sample_clip(rng, held_out=False)
        stereo, _ = limit_peak(render_clip(spec, rng))
        path = str(root / f"clip{i}.wav")
        soundfile.write(path, stereo, SAMPLE_RATE_MASTER, subtype="PCM_16")
        out.append((path, stereo, rich_caption(spec)))
    return out


def test_the_judge_hears_a_clean_clip_as_its_plan(clips):
    """The caption of the judge's analysis parses; the critique of a clip
    against its own plan mostly finds no mismatch; against another clip's
    plan it finds some."""
    clean = 0
    for i, (path, _, plan) in enumerate(clips):
        heard, critique = mrd.judge_attempt(path, plan)
        assert critique == critique_text(parse(plan), parse(heard))
        clean += parse_critique(critique).ok
        other = clips[(i + 1) % len(clips)][2]
        if other != plan:
            assert not parse_critique(mrd.judge_attempt(path, other)[1]).ok
    assert clean >= N_CLIPS // 2


def test_silence_is_rejected(tmp_path):
    path = str(tmp_path / "silence.wav")
    soundfile.write(path, np.zeros(16000), 16000)
    with pytest.raises(ValueError, match="finds no sound event"):
        mrd.judge_attempt(path, "Keywords: beep. Layout: one beep. Description: "
                          "the beep is loud.")  # fmt: skip


@dataclasses.dataclass
class _Output:
    audio: np.ndarray | None
    sample_rate: int = SAMPLE_RATE_MASTER
    error: str | None = None

    @property
    def ok(self):
        return self.error is None


class _Model:
    """Stands in for UALM: item k's attempt is clip k+1 (a wrong attempt),
    the last item's generation fails, the one before it is silence."""

    def __init__(self, clips):
        self.clips = clips

    def generate_audio_with_reasoning(self, captions):
        n = len(captions)
        # UALMOutput.audio is [channels, samples]
        out = [_Output(self.clips[(k + 1) % n][1].T) for k in range(n)]
        out[-1] = _Output(None, error="item 'x': RuntimeError: boom")
        out[-2] = _Output(np.zeros((2, SAMPLE_RATE_MASTER)))
        return out


def _data_dir(root, clips, plans=None):
    d = str(root / "prompts")
    os.makedirs(d)
    ids = [f"clip{i}" for i in range(len(clips))]
    write_kv(os.path.join(d, "wav.scp"), [(u, c[0]) for u, c in zip(ids, clips)])
    write_kv(os.path.join(d, "text"), [(u, f"caption {u}") for u in ids])
    plans = plans or [c[2] for c in clips]
    write_kv(os.path.join(d, "rich_text"), list(zip(ids, plans)))
    return d, ids


def test_attempts_become_the_converters_reflection_rounds(clips, tmp_path):
    data, ids = _data_dir(tmp_path, clips)
    out = str(tmp_path / "out")
    rejects = RejectLog("test")
    path = mrd.make_attempts(_Model(clips), data, out, rejects)
    with open(path, encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    assert [x["id"] for x in items] == ids[:-2]
    for k, x in enumerate(items):
        (attempt,) = x["attempts"]
        assert x["rich_caption"] == clips[k][2] and x["audio"] == clips[k][0]
        heard, critique = mrd.judge_attempt(attempt["audio"], x["rich_caption"])
        assert (attempt["rich_caption"], attempt["critique"]) == (heard, critique)
    reasons = {r.utt_id: r.reason for r in rejects.items}
    assert "finds no sound event" in reasons[ids[-2]]
    assert "boom" in reasons[ids[-1]]
    from espnet2.ualm.data.corpora.rich_captions import prepare_reflection

    rounds = prepare_reflection(
        str(tmp_path / "data"), rejects, json=path, id_prefix="r"
    )
    assert rounds == len(items)
    wavs = read_kv(str(tmp_path / "data" / "wav.scp"))
    assert set(wavs) == {f"r_{u}" for u in ids[:-2]} | {f"r_{u}_v1" for u in ids[:-2]}


def test_a_bad_plan_or_missing_clip_is_rejected_alone(clips, tmp_path):
    plans = [c[2] for c in clips]
    plans[0] = "Keywords: beep. Layout: two cats. Description: loud."
    data, ids = _data_dir(tmp_path, clips, plans)
    rejects = RejectLog("test")
    path = mrd.make_attempts(_Model(clips), data, str(tmp_path / "out"), rejects)
    with open(path, encoding="utf-8") as f:
        kept = [json.loads(line)["id"] for line in f]
    assert kept == ids[1:-2]
    assert "rich_text" in next(r.source for r in rejects.items if r.utt_id == ids[0])


def test_main_on_the_tiny_packed_model(packed_dir, clips, tmp_path):
    """The stage end to end on the tiny model: every prompt is a round of
    the data dir or a reject with its reason."""
    data, ids = _data_dir(tmp_path, clips[:2])
    out = tmp_path / "out"
    rounds = mrd.main(["--model", packed_dir, "--data_dir", data, "--out_dir",
                       str(out), "--audio_dir", "/"])  # fmt: skip
    rejected = RejectLog.read(str(out / "rejected.tsv"))
    assert rounds + len(rejected) == len(ids)
    for r in rejected:
        assert r.reason
    if rounds:
        with open(out / "data" / "dialogue.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        assert len(rows) == rounds
