"""The scoring stage end to end on a tiny generated mini corpus: every task's
table, the stand-in model labels, the decoding settings, the plots, the chance
levels and the summary."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from espnet2.bin import ualm_score
from espnet2.ualm.scoring.report import headline

ROOT = Path(__file__).resolve().parents[3]
LOCAL = ROOT / "egs2" / "ualm" / "mini" / "local"
JUDGE = str(LOCAL / "judge.py")


@pytest.fixture(scope="module")
def setup_dir(tmp_path_factory) -> Path:
    """A mini setup dir: data/ (12 test clips, 24 train clips, 10 text items)."""
    sys.path.insert(0, str(LOCAL))
    import generate_corpus

    root = tmp_path_factory.mktemp("score_setup")
    generate_corpus.main(
        ["--out_dir", str(root / "data"), "--audio_dir", str(root / "corpus")]
        + ["--nj", "1", "--seed", "5", "--scale", "0", "--no_progress"]
        + ["--num_sound_test", "12", "--num_sound_train", "24"]
        + ["--num_text_test", "10"]
    )  # fmt: skip
    return root


def _write_kv(path: Path, items: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} {v}\n" for k, v in sorted(items.items())))


def _kv(path: Path) -> dict:
    return dict(line.rstrip("\n").split(" ", 1) for line in path.open())


@pytest.fixture(scope="module")
def hyps(setup_dir: Path) -> dict:
    """Hypothesis dirs: perfect answers, except where a test needs errors."""
    data, hyp = setup_dir / "data", setup_dir / "hyp"
    sound = data / "mini_sound_test"
    wavs = _kv(sound / "wav.scp")
    ids = sorted(wavs)
    # text_to_audio: the reference audio itself (10 of 12 ids), and in a second
    # dir every clip answered with the next clip's audio (wrong prompts)
    _write_kv(hyp / "t2a_ok" / "wav.scp", {k: wavs[k] for k in ids[:10]})
    (hyp / "t2a_ok" / "decode_config.yaml").write_text("cfg_scale: 3.0\ntop_k: 20\n")
    _write_kv(
        hyp / "t2a_bad" / "wav.scp",
        {k: wavs[ids[(i + 1) % len(ids)]] for i, k in enumerate(ids)},
    )
    qa = {}
    for line in (sound / "dialogue.jsonl").open():
        d = json.loads(line)
        qa[d["id"]] = d["messages"][-1]["content"][0]["text"]
    _write_kv(hyp / "qa" / "text", qa)
    metas = [json.loads(line) for line in (sound / "meta.jsonl").open()]
    _write_kv(hyp / "cap" / "text", {m["id"]: m["captions"]["h1"] for m in metas})
    text = {}
    for line in (data / "mini_text_test" / "dialogue.jsonl").open():
        d = json.loads(line)
        text[d["id"]] = "The answer is " + d["messages"][-1]["content"][0]["text"]
    _write_kv(hyp / "txt" / "text", text)
    # ASR: a text-only reference dir is enough to score transcripts
    _write_kv(
        data / "asr_test" / "text", {"u1": "rose has nine desks", "u2": "a b c d"}
    )
    _write_kv(hyp / "asr" / "text", {"u1": "Rose has 9 desks.", "u2": "a b x"})
    return {"root": hyp, "data": data}


def test_scoring_stage_writes_results(setup_dir, hyps, tmp_path, capsys):
    data, hyp = hyps["data"], hyps["root"]
    out = tmp_path / "scores"
    decode = tmp_path / "decode.yaml"
    decode.write_text("audio_sampling: {temperature: 0.8, top_k: 20}\ncfg_scale: 3\n")
    corpus_info = setup_dir / "corpus" / "corpus_info.json"
    sound = str(data / "mini_sound_test")
    results = ualm_score.main(
        ["--output_dir", str(out), "--decode_config", str(decode)]
        + ["--eval", "text_to_audio", str(hyp / "t2a_ok"), sound]
        + ["--eval", "text_to_audio", str(hyp / "t2a_bad"), sound]
        + ["--eval", "audio_qa", str(hyp / "qa"), sound]
        + ["--eval", "audio_caption", str(hyp / "cap"), sound]
        + ["--eval", "text_dialogue", str(hyp / "txt"), str(data / "mini_text_test")]
        + ["--eval", "asr", str(hyp / "asr"), str(data / "asr_test")]
        + ["--judge", JUDGE, "--answer_words", str(corpus_info)]
        + ["--probe_train_dir", str(data / "mini_sound_train"), "--num_plot_clips", "2"]
        + ["--caption_train_dir", str(data / "mini_sound_train")]
    )  # fmt: skip
    ok, bad, qa, cap, txt, asr = results
    assert ok.metrics["clips"] == 10 and ok.metrics["missing"] == 2
    assert ok.metrics["fd"] < 1e-3 and ok.metrics["kl"] < 1e-6
    assert ok.metrics["judge_overall"] == 1.0 and ok.metrics["judge_exact"] == 1.0
    assert bad.metrics["judge_overall"] < 0.6 and bad.metrics["kl"] > ok.metrics["kl"]
    # FD compares distributions: a permutation of the reference set is perfect,
    # only the paired metrics (KL, judge) see that the prompts are not followed
    assert bad.metrics["fd"] == pytest.approx(0.0, abs=1e-6)
    assert ok.decode_config == {"cfg_scale": 3.0, "top_k": 20}
    assert qa.metrics["accuracy"] == 1.0 and qa.metrics["unparsed"] == 0
    assert qa.metrics["items_multiple_choice"] > 0 < qa.metrics["items_short_answer"]
    assert cap.metrics["bleu_4"] > 0.99 and cap.metrics["cider_d"] > 1
    # the judge parses the captions: every attribute of every clip named right
    for name in ("accuracy", "event_type", "count", "pitch_band", "order"):
        assert cap.metrics[f"attribute_{name}"] == 1.0, name
    assert cap.metrics["unparsed_captions"] == 0
    assert cap.per_item[sorted(cap.per_item)[0]]["attributes"]["overall"] == 1.0
    assert txt.metrics["accuracy"] == 1.0
    assert asr.metrics["wer"] == pytest.approx(2 / 8)

    # Chance levels on the same test sets: perfect hypotheses far above them,
    # a shuffled one (every clip answered with the next clip's audio) at chance.
    assert ok.chance["judge_overall"] < 0.5 and "fd" not in ok.chance
    assert {
        f"judge_{a}" for a in ("event_type", "count", "pitch_band", "order")
    } <= set(ok.chance)
    assert bad.metrics["judge_overall"] == pytest.approx(
        bad.chance["judge_overall"], abs=0.1
    )
    assert qa.chance["accuracy"] < 0.6 and "multiple_choice_accuracy" in qa.chance
    assert any(k.startswith("accuracy_") for k in qa.chance)
    assert (
        cap.chance["bleu_4"] < 0.5
        and cap.chance["cider_d"] < 0.3 * cap.metrics["cider_d"]
    )
    assert "a random training clip" in " ".join(cap.notes)  # --caption_train_dir
    # captioning's chance: the higher of the two baselines, attributes included
    assert set(cap.chance_baselines) == {
        "another test clip's reference",
        "a training caption",
    }
    for name in ("cider_d", "attribute_accuracy", "attribute_count"):
        assert cap.chance[name] == max(b[name] for b in cap.chance_baselines.values())
    assert cap.chance["attribute_accuracy"] < 0.6
    assert cap.shuffled["attribute_accuracy"]["p_value"] < 0.05
    # every key metric of the summary has a bootstrap interval over the items
    for r in results:
        for h in headline(r):
            if h["value"] is not None:
                lo, hi = r.intervals[h["metric"]]
                assert lo <= h["value"] <= hi, (r.task, h)
    assert txt.chance["accuracy"] < 0.5
    assert asr.chance["wer"] > asr.metrics["wer"]

    text = (out / "RESULTS.md").read_text()
    headings = ["## text_to_audio", "### text_to_audio / mini_sound_test"]
    headings += ["## audio_qa", "## audio_caption", "## text_dialogue", "## asr"]
    for heading in headings:
        assert heading in text
    assert "not comparable to published numbers" in text
    assert "| fd |" in text and "logmel_stats" in text and "mini judge" in text
    assert "temperature: 0.8" in text and "cfg_scale: 3.0" in text
    assert "CLAP score skipped" in text
    # the chance column, explained in the notes, and the summary on top
    header = "| metric | value | chance | shuffled outputs | model |"
    assert text.count(header) == len(results)
    assert "| clips | 10 |  |  |" in text
    assert (
        f"| judge_overall | 1.0000 [1.000, 1.000] | {ok.chance['judge_overall']:.4f} |"
        in text
    )
    # the permutation test of each key metric: right outputs depend on input
    assert ok.shuffled["judge_overall"]["p_value"] < 0.05
    assert "cider_d" in cap.shuffled
    # two utterances have one other pairing: p cannot go below 1/2
    assert asr.shuffled["wer"] == {"level": 1.0, "p_value": 0.5, "permutations": 1.0}
    assert "depends on its input: yes" in text
    assert "same kind" in text and "another utterance's reference" in text
    summary = text[text.index("## Summary") : text.index("## Decoding settings")]
    assert text.index("## Summary") < text.index("## text_to_audio")
    assert summary.count("\n- ") == len(results)
    assert (
        "- text_to_audio / mini_sound_test: judge_overall 1.0000 [1.000, 1.000] "
        "(chance" in summary
    )
    assert "audio_qa / mini_sound_test: accuracy 1.0000" in summary
    assert "cider_d" in summary and "bleu_4" in summary
    assert "attribute_accuracy 1.0000 [1.000, 1.000] (chance" in summary
    # two utterances with 0 and 2 errors in 4 words each: resamples give 0 .. 0.5
    assert "asr / asr_test: wer 0.2500 [0.000, 0.500] (chance" in summary
    assert "lower is better; better than chance: yes" in summary
    printed = capsys.readouterr().out
    assert "Summary" in printed
    for line in summary.splitlines():
        if line.startswith("- "):
            assert line[2:] in printed
    for plot in ("spectrograms.text_to_audio.mini_sound_test.png",
                 "metrics.text_to_audio.png", "metrics.audio_qa.png"):  # fmt: skip
        assert (out / "plots" / plot).stat().st_size > 1000
        assert f"plots/{plot}" in text
    scores = json.loads((out / "scores.json").read_text())
    assert scores["audio_qa/mini_sound_test"]["metrics"]["accuracy"] == 1.0
    assert scores["audio_qa/mini_sound_test"]["chance"] == pytest.approx(qa.chance)
    (head,) = scores["asr/asr_test"]["headline"]
    assert head["metric"] == "wer" and head["better_than_chance"] is True
    assert head["chance"] == pytest.approx(asr.chance["wer"])
    per_item = json.loads(
        (out / "per_item" / "text_to_audio.mini_sound_test.json").read_text()
    )
    assert len(per_item) == 12  # the second text_to_audio run (same set) wins
    assert (out / "probe_tagger.npz").exists()


def test_judge_chance_checks_position_only_for_stereo_clips(hyps):
    """The judge's chance level uses the same attributes as the judged clips:
    position only where the clip is stereo."""
    from espnet2.ualm.scoring.tasks import load_judge

    judge = load_judge(JUDGE)
    sound = str(hyps["data"] / "mini_sound_test")
    ids = sorted(_kv(Path(sound) / "wav.scp"))
    mono = judge.chance_data_dir(ids, sound, stereo=False)
    stereo = judge.chance_data_dir(ids, sound, stereo=[True] * len(ids))
    assert "position" not in mono and "position" in stereo
    meta = judge.read_meta(sound)
    expected = {k: judge.from_meta(meta[k]) for k in ids}
    partner = judge.derangement(len(ids), 0)
    assert stereo == judge.chance_level(ids, expected, partner)
    assert mono == judge.chance_level(ids, expected, partner, stereo=False)
    assert mono == judge.chance_data_dir(ids, sound, stereo=False)  # deterministic


def test_missing_published_model_stops_with_a_clear_message(hyps, tmp_path):
    data, hyp = hyps["data"], hyps["root"]
    with pytest.raises(SystemExit) as err:
        ualm_score.main(
            ["--output_dir", str(tmp_path), "--fd_model", "panns", "--eval"]
            + ["text_to_audio", str(hyp / "t2a_ok"), str(data / "mini_sound_test")]
        )
    assert "panns_inference" in str(err.value) and "checkpoint" in str(err.value)


def test_no_tagger_without_training_data_is_noted(hyps, tmp_path):
    data, hyp = hyps["data"], hyps["root"]
    (r,) = ualm_score.main(
        ["--output_dir", str(tmp_path), "--num_plot_clips", "0", "--eval"]
        + ["text_to_audio", str(hyp / "t2a_ok"), str(data / "mini_sound_test")]
    )
    assert "kl" not in r.metrics and "fd" in r.metrics
    assert any("--probe_train_dir" in n for n in r.notes)
    assert "judge_overall" not in r.metrics


def test_unknown_task_and_missing_dirs(tmp_path):
    with pytest.raises(SystemExit, match="unknown task"):
        ualm_score.main(["--output_dir", str(tmp_path), "--eval", "dance", ".", "."])
    with pytest.raises(SystemExit, match="not found"):
        ualm_score.main(
            ["--output_dir", str(tmp_path), "--eval", "asr", str(tmp_path / "x"), "."]
        )
    shutil.rmtree(tmp_path)
    assert not os.path.exists(tmp_path)


def test_caption_train_dir_must_hold_captions(hyps, tmp_path):
    sound = str(hyps["data"] / "mini_sound_test")
    cap = str(hyps["root"] / "cap")
    base = ["--output_dir", str(tmp_path / "s"), "--eval", "audio_caption", cap, sound]
    with pytest.raises(SystemExit, match="text not found"):
        ualm_score.main(base + ["--caption_train_dir", str(tmp_path / "none")])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "text").write_text("")
    with pytest.raises(SystemExit, match="no captions in"):
        ualm_score.main(base + ["--caption_train_dir", str(tmp_path / "empty")])


def test_attribute_accuracy_needs_the_judge(hyps, tmp_path):
    """Without --judge the captions get no attribute accuracy (and the summary
    does not mention it); with it, even without a generation task, they do."""
    sound = str(hyps["data"] / "mini_sound_test")
    cap = str(hyps["root"] / "cap")
    base = ["--num_plot_clips", "0", "--eval", "audio_caption", cap, sound]
    (plain,) = ualm_score.main(["--output_dir", str(tmp_path / "a")] + base)
    assert not any(k.startswith("attribute_") for k in plain.metrics)
    text = (tmp_path / "a" / "RESULTS.md").read_text()
    assert "attribute_" not in text[text.index("## Summary") :]
    assert [h["metric"] for h in headline(plain)] == ["cider_d", "bleu_4"]
    (judged,) = ualm_score.main(
        ["--output_dir", str(tmp_path / "b"), "--judge", JUDGE] + base
    )
    assert judged.metrics["attribute_accuracy"] == 1.0
    assert "attribute_accuracy" in judged.intervals
    scores = json.loads((tmp_path / "b" / "scores.json").read_text())
    entry = scores["audio_caption/mini_sound_test"]
    assert entry["intervals"]["attribute_accuracy"] == [1.0, 1.0]
    assert "another test clip's reference" in entry["chance_baselines"]


def test_the_probe_tagger_is_fitted_again_when_its_training_set_changes(
    tmp_path, monkeypatch
):
    import numpy as np
    import soundfile

    from espnet2.bin import ualm_score

    train = tmp_path / "train"
    train.mkdir()
    wavs, labels = {}, {}
    for i in range(8):
        path = train / f"c{i}.wav"
        t = np.arange(8000) / 16000
        soundfile.write(
            path, 0.3 * np.sin(2 * np.pi * (300 + 400 * (i % 2)) * t), 16000
        )
        wavs[f"c{i}"], labels[f"c{i}"] = str(path), ("low", "high")[i % 2]
    _write_kv(train / "wav.scp", wavs)
    _write_kv(train / "utt2label", labels)
    out = str(tmp_path / "probe_tagger.npz")
    fits = []
    real_fit = ualm_score.ProbeTagger.fit

    def counted_fit(self, *args, **kwargs):
        fits.append(1)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(ualm_score.ProbeTagger, "fit", counted_fit)
    ualm_score.fit_probe(str(train), out, 100)
    ualm_score.fit_probe(str(train), out, 100)
    assert len(fits) == 1  # the same training set: loaded
    _write_kv(train / "utt2label", {**labels, "c0": "high"})
    ualm_score.fit_probe(str(train), out, 100)
    assert len(fits) == 2
