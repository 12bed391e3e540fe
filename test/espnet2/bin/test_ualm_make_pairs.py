"""ualm_make_pairs on a tiny packed model: candidates, scores, the pair
layout DPO reads, rejected prompts, the report; and best-of-N."""

import json
import os

import numpy as np
import pytest
import torch

from espnet2.bin import ualm_make_pairs
from espnet2.ualm.data.codes_io import CodesReader
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.inference.candidates import generate_best_of
from espnet2.ualm.inference.pipeline import UALM
from espnet2.ualm.scoring.preference import PromptAudioScorer


class LoudnessScorer(PromptAudioScorer):
    """The clip's RMS: a scorer that is a plain function of the audio."""

    name = "rms"
    sample_rate = 16000

    def __init__(self):
        self.calls = 0

    def score(self, candidates):
        self.calls += 1
        return np.array(
            [float(np.sqrt(np.mean(np.square(c.audio)))) for c in candidates]
        )


@pytest.fixture
def sampled_decode(tmp_path):
    path = tmp_path / "decode.yaml"
    path.write_text(
        "batch_size: 8\nmin_audio_seconds: 0.2\nmax_audio_seconds: 0.4\n"
        "audio_sampling: {temperature: 1.5}\ncfg_scale: 2.0\nenhancer: none\n"
    )
    return str(path)


def test_pairs_layout_scores_and_report(
    packed_dir, experiment, sampled_decode, tmp_path, monkeypatch
):
    scorer = LoudnessScorer()
    monkeypatch.setattr(ualm_make_pairs, "build_scorer", lambda args: scorer)
    data = os.path.join(experiment["corpus_root"], "dump", "audio", "tiny_sound_train")
    out = str(tmp_path / "pairs")
    cmd = ["--model", packed_dir, "--data_dir", data, "--output_dir", out]
    cmd += ["--decode_config", sampled_decode, "--num_candidates", "3"]
    cmd += ["--margin", "0.0", "--max_prompts", "5", "--prompts_per_step", "2"]
    report = ualm_make_pairs.main(cmd)
    assert scorer.calls == 3  # 5 prompts, 2 per step
    assert report["prompts"] == 5 and report["candidates"] == 15
    assert report["candidates_per_second"] > 0
    kept = read_kv(os.path.join(out, "text"))
    rejected = {
        r.utt_id: r.reason for r in RejectLog.read(os.path.join(out, "rejected.tsv"))
    }
    assert len(kept) + len(rejected) == 5 and report["pairs"] == len(kept) > 0
    assert report["fraction_with_pair"] == pytest.approx(len(kept) / 5)
    captions = read_kv(os.path.join(data, "text"))
    assert all(kept[u] == captions[u] for u in kept)
    scores = read_kv(os.path.join(out, "scores.tsv"))
    chosen = CodesReader(os.path.join(out, "chosen"))
    rejected_codes = CodesReader(os.path.join(out, "rejected"))
    ualm = UALM.from_pretrained(packed_dir)
    for utt in kept:
        values = [float(s) for s in scores[utt].split()]
        assert len(values) == 3 and max(values) > min(values)
        # the chosen reply is the loudest candidate, the rejected the quietest
        for codes, want in (
            (chosen[utt], max(values)),
            (rejected_codes[utt], min(values)),
        ):
            codes = torch.as_tensor(codes)[None].long()
            wav, n = ualm.codec.decode(codes, torch.tensor([codes.shape[1]]))
            rms = float(wav[0, : int(n[0])].pow(2).mean().sqrt())
            assert rms == pytest.approx(want, rel=1e-3, abs=1e-6)
    assert json.load(open(os.path.join(out, "report.json")))["pairs"] == len(kept)

    # a margin no gap exceeds keeps nothing and says why
    report = ualm_make_pairs.main(cmd[:-6] + ["--margin", "1e9", "--max_prompts", "2"])
    assert report["pairs"] == 0
    reasons = [r.reason for r in RejectLog.read(os.path.join(out, "rejected.tsv"))]
    assert len(reasons) == 2 and all("<= margin" in r for r in reasons)


def test_pairs_options_are_checked(packed_dir, tmp_path):
    with pytest.raises(SystemExit):
        ualm_make_pairs.get_parser().parse_args(
            [
                "--model",
                "m",
                "--data_dir",
                "d",
                "--output_dir",
                "o",
                "--num_candidates",
                "0",
            ]
        )
    args = ualm_make_pairs.get_parser().parse_args(
        ["--model", "m", "--data_dir", "d", "--output_dir", "o", "--scorer", "judge"]
    )
    with pytest.raises(ValueError, match="--judge and --ref_dir"):
        ualm_make_pairs.build_scorer(args)
    args.scorer = "judge,karaoke"
    with pytest.raises(ValueError, match="karaoke"):
        ualm_make_pairs.build_scorer(args)


def test_best_of_n_returns_the_scorers_argmax(packed_dir, sampled_decode):
    import yaml

    decode = yaml.safe_load(open(sampled_decode))
    ualm = UALM.from_pretrained(packed_dir, decode=decode)
    scorer = LoudnessScorer()
    results = generate_best_of(ualm, ["one low beeps", "two high chirps"], 4, scorer)
    for r in results:
        assert r.error is None and len(r.outputs) == len(r.scores) == 4
        assert r.best == int(np.nanargmax(r.scores))
        rms = float(np.sqrt(np.mean(np.square(r.outputs[r.best].audio))))
        assert rms == pytest.approx(max(r.scores))
    assert len({tuple(r.scores) for r in results}) == 2
