"""Scorers for preference pairs and best-of-N: rates, weights, ranking."""

import types

import numpy as np
import pytest

from espnet2.ualm.scoring.embeddings import TextAudioModel
from espnet2.ualm.scoring.preference import (
    Candidate,
    JudgeScorer,
    TextAudioScorer,
    WeightedScorer,
    best_of,
)


def _fake_judge(seen):
    """A judge plugin whose overall score is the clip's length in seconds."""

    def judge_audio(items):
        per_item = {}
        for uid, mono, stereo, expected in items:
            # stereo in the judge's layout: [samples, 2], as long as the mono
            assert stereo is None or stereo.shape == (len(mono), 2)
            seen.append((len(mono), stereo is not None, expected))
            per_item[uid] = {"scores": {"overall": len(mono) / 8000}}
        return per_item, {}

    return types.SimpleNamespace(
        SAMPLE_RATE=8000,
        judge_audio=judge_audio,
        expected_groups=lambda ref_dir: {"a": ["two beeps"], "b": ["noise"]},
    )


def test_judge_scorer_hears_each_clip_at_its_rate_with_its_prompt():
    seen = []
    scorer = JudgeScorer(_fake_judge(seen), "ref")
    clips = [
        Candidate("a", "two beeps", np.zeros(16000, np.float32), 16000),  # 1 s
        Candidate("b", "noise", np.zeros((2, 24000), np.float32), 48000),  # 0.5 s
    ]
    assert scorer.score(clips).tolist() == pytest.approx([1.0, 0.5])
    assert seen == [(8000, False, ["two beeps"]), (4000, True, ["noise"])]
    with pytest.raises(KeyError, match="no prompt parameters in ref"):
        scorer.score([Candidate("zz", "x", np.zeros(10), 8000)])
    with pytest.raises(AttributeError, match="judge_audio"):
        JudgeScorer(types.SimpleNamespace(), "ref")


class _Echo(TextAudioModel):
    """Embeds text as a one-hot of its first letter and audio as a one-hot of
    its sign, at 4 kHz."""

    name = "echo"
    sample_rate = 4000

    def embed(self, wavs):
        return np.stack([[float(w.mean() > 0), float(w.mean() <= 0)] for w in wavs])

    def embed_text(self, texts):
        return np.stack([[float(t[0] == "p"), float(t[0] != "p")] for t in texts])


def test_text_audio_scorer_and_weights():
    clips = [
        Candidate("a", "positive", np.ones(800, np.float32), 8000),
        Candidate("a", "positive", -np.ones(800, np.float32), 8000),
    ]
    clap = TextAudioScorer(_Echo())
    assert clap.score(clips).tolist() == pytest.approx([1.0, 0.0])
    both = WeightedScorer([(clap, 2.0), (clap, -0.5)])
    assert both.score(clips).tolist() == pytest.approx([1.5, 0.0])
    assert both.sample_rate == 4000 and "2 x echo" in both.name


def test_best_of_takes_the_argmax_and_the_argmin_per_item():
    scores = np.array([0.2, 0.9, 0.1, 0.5, 0.5])
    groups = ["x", "x", "x", "y", "y"]
    assert best_of(scores, groups) == {"x": (1, 2), "y": (3, 4)}  # ties: the first
    assert best_of(np.array([0.3]), ["z"]) == {"z": (0, None)}
