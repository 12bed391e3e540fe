"""ualm_make_pairs on a tiny packed model: candidates, scores, the pair
layout DPO reads, rejected prompts, shards and their merge, the report; and
best-of-N in the decode loop."""

import json
import os

import numpy as np
import pytest
import torch

from espnet2.bin import ualm_make_pairs
from espnet2.ualm.data.codes_io import CodesReader
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.inference.pipeline import UALM
from espnet2.ualm.scoring import preference
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
    monkeypatch.setattr(preference, "build_scorer", lambda conf: scorer)
    scorer_config = tmp_path / "scorer.yaml"
    scorer_config.write_text("name: rms\n")
    data = os.path.join(experiment["corpus_root"], "dump", "audio", "tiny_sound_train")
    out = str(tmp_path / "pairs")
    cmd = ["--model", packed_dir, "--data_dir", data, "--output_dir", out]
    cmd += ["--decode_config", sampled_decode, "--num_candidates", "3"]
    cmd += ["--scorer_config", str(scorer_config)]
    cmd += ["--margin", "0.0", "--max_prompts", "5", "--prompts_per_step", "2"]
    ualm_make_pairs.main(cmd)
    assert scorer.calls == 3  # 5 prompts, 2 per step
    report = ualm_make_pairs.main(["--merge", "--output_dir", out])
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
    chosen = CodesReader(out)  # the pair dir is the chosen replies' codes dir
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

    # a re-run with the same inputs is skipped
    ualm_make_pairs.main(cmd)
    assert scorer.calls == 3

    # two shards, merged: every prompt once, a pair or a reason
    two = str(tmp_path / "two")
    for job in ("1", "2"):
        ualm_make_pairs.main(
            cmd[:5] + [two] + cmd[6:] + ["--job", job, "--num_jobs", "2"]
        )
    with pytest.raises(SystemExit, match="not finished"):
        ualm_make_pairs.main(["--merge", "--output_dir", two, "--num_jobs", "3"])
    merged = ualm_make_pairs.main(["--merge", "--output_dir", two, "--num_jobs", "2"])
    kept2 = read_kv(os.path.join(two, "text"))
    rejected2 = RejectLog.read(os.path.join(two, "rejected.tsv"))
    assert merged["prompts"] == 5 and len(kept2) + len(rejected2) == 5
    assert set(CodesReader(two).keys()) == set(kept2)
    assert set(CodesReader(os.path.join(two, "rejected")).keys()) == set(kept2)
    assert len(read_kv(os.path.join(two, "scores.tsv"))) == 5

    # a margin no gap exceeds keeps nothing and says why
    low = cmd[:-6] + ["--margin", "1e9", "--max_prompts", "2"]
    ualm_make_pairs.main(low)
    report = ualm_make_pairs.main(["--merge", "--output_dir", out])
    assert report["pairs"] == 0
    reasons = [r.reason for r in RejectLog.read(os.path.join(out, "rejected.tsv"))]
    assert len(reasons) == 2 and all("<= margin" in r for r in reasons)


def test_pairs_options_are_checked(tmp_path):
    with pytest.raises(SystemExit):
        ualm_make_pairs.get_parser().parse_args(
            ["--model", "m", "--data_dir", "d", "--output_dir", "o",
             "--num_candidates", "0"]
        )  # fmt: skip
    base = ["--model", "m", "--data_dir", "d", "--output_dir", "o"]
    with pytest.raises(SystemExit, match="--scorer_config is required"):
        ualm_make_pairs.main(base)
    with pytest.raises(SystemExit, match=">= 2"):
        ualm_make_pairs.main(base + ["--scorer_config", "s", "--num_candidates", "1"])


def test_best_of_n_returns_the_scorers_argmax(packed_dir, sampled_decode):
    import yaml

    decode = yaml.safe_load(open(sampled_decode))
    ualm = UALM.from_pretrained(packed_dir, decode=decode)
    scorer = LoudnessScorer()
    captions = ["one low beeps", "two high chirps"]
    outputs = ualm.with_scorer(scorer).generate_audio(captions, best_of=4)
    assert scorer.calls == 1  # the candidates of a batch are scored together
    for out in outputs:
        assert out.ok and len(out.candidates) == len(out.candidate_scores) == 4
        assert out.chosen_candidate == int(np.nanargmax(out.candidate_scores))
        assert out.candidates[out.chosen_candidate] is out
        rms = float(np.sqrt(np.mean(np.square(out.audio))))
        assert rms == pytest.approx(max(out.candidate_scores))
    assert len({tuple(o.candidate_scores) for o in outputs}) == 2
    # the candidates of one prompt differ (their own samples in one batch)
    assert len({o.codes.numpy().tobytes() for o in outputs[0].candidates}) > 1
    # without a scorer, best-of-N is refused with the way to give one
    with pytest.raises(ValueError, match="best_of_scorer"):
        ualm.generate_audio(captions, best_of=2)
    # best_of 1 is plain decoding: no candidates
    assert ualm.generate_audio(captions[:1])[0].candidates is None
