"""The mini judge: agrees with the metadata of real clips, falls to chance on
shuffled prompts and on noise. A small corpus (80 test clips) is generated here;
the whole module runs in well under a minute."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[4]
LOCAL = ROOT / "egs2" / "ualm" / "mini" / "local"
sys.path.insert(0, str(LOCAL))

import generate_corpus  # noqa: E402
import judge  # noqa: E402
from mini_judge.analysis import analyse, band_of, prepare_audio  # noqa: E402
from mini_judge.match import ATTRIBUTES, CORE_ATTRIBUTES, compare  # noqa: E402
from mini_judge.prompt import (  # noqa: E402
    ExpectedGroup,
    from_caption,
    from_meta,
    from_rich_caption,
    from_text,
)

NUM_TEST = 80


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini_judge")
    cwd = os.getcwd()
    os.chdir(root)  # relative paths in wav.scp, as in the recipe
    try:
        generate_corpus.main(
            ["--out_dir", "data", "--audio_dir", "corpus", "--nj", "1", "--seed", "3"]
            + ["--scale", "0", "--no_progress", "--num_sound_test", str(NUM_TEST)]
            + ["--num_sound_train", "12"]
        )
    finally:
        os.chdir(cwd)
    return root / "data"


@pytest.fixture(scope="module")
def validation(data_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Validation figures on the 16 kHz mono files and on the 48 kHz stereo masters."""
    ref = str(data_dir / "mini_sound_test")
    return {
        "mono": judge.validate(ref, seed=0, log=lambda s: None),
        "stereo": judge.validate(ref, seed=0, stereo=True, log=lambda s: None),
    }


@pytest.mark.parametrize("audio", ["mono", "stereo"])
def test_ground_truth_agrees_with_metadata(validation, audio):
    gt = validation[audio]["ground_truth"]
    assert gt["clips"] == NUM_TEST
    expected = set(ATTRIBUTES) - ({"position"} if audio == "mono" else set())
    assert expected <= set(gt)
    for attr in expected:
        assert gt[attr] >= 0.95, (audio, attr, gt)
    assert gt["overall"] >= 0.95


@pytest.mark.parametrize("audio", ["mono", "stereo"])
def test_shuffled_prompts_fall_to_chance(validation, audio):
    """Clip i judged against the prompt of clip j: the judge's agreement equals
    the agreement of the two prompts' own parameters (chance)."""
    shuffled, chance = validation[audio]["shuffled"], validation[audio]["chance"]
    for attr in CORE_ATTRIBUTES + ("loudness",):
        assert abs(shuffled[attr] - chance[attr]) <= 0.1, (attr, shuffled, chance)
        assert shuffled[attr] <= 0.5, (attr, shuffled)
    assert shuffled["overall"] <= chance["overall"] + 0.1
    assert shuffled["exact"] <= 0.05


@pytest.mark.parametrize("audio", ["mono", "stereo"])
def test_noise_scores_at_or_below_chance(validation, audio):
    noise, chance = validation[audio]["noise"], validation[audio]["chance"]
    for attr in CORE_ATTRIBUTES + ("loudness", "position"):
        if attr in noise:
            assert noise[attr] <= chance[attr] + 0.1, (attr, noise, chance)
    assert noise["overall"] <= chance["overall"] + 0.05
    assert noise["exact"] == 0.0


def _metas(data_dir: Path, split: str) -> list[dict]:
    with open(data_dir / f"mini_sound_{split}" / "meta.jsonl") as f:
        return [json.loads(line) for line in f]


def test_prompt_parsers_agree_with_metadata(data_dir):
    """Every caption template (train and held-out) and the rich caption give the
    groups of the metadata."""
    for split in ("train", "test"):
        rich = judge.read_scp(str(data_dir / f"mini_sound_{split}" / "rich_text"))
        for meta in _metas(data_dir, split):
            want = from_meta(meta)
            core = [(g.type, g.count, g.pitch_band) for g in want]
            for caption in meta["captions"].values():
                got = from_caption(caption)
                assert [(g.type, g.count, g.pitch_band) for g in got] == core, caption
                assert [
                    (g.type, g.count, g.pitch_band) for g in from_text(caption)
                ] == core
            assert from_rich_caption(rich[meta["id"]]) == want


def test_judge_data_dir_scores_by_id(data_dir, tmp_path):
    """Right audio for an id scores 1; another clip's audio scores lower; ids
    without a prompt are skipped and counted."""
    ref = data_dir / "mini_sound_test"
    wavs = {
        k: judge.resolve_path(v, str(ref))
        for k, v in judge.read_scp(str(ref / "wav.scp")).items()
    }
    ids = sorted(wavs)[:6]
    hyp = {k: wavs[k] for k in ids[:4]}
    hyp[ids[4]] = wavs[ids[5]]  # wrong clip for this prompt
    hyp["not_a_prompt"] = wavs[ids[0]]
    report = judge.judge_data_dir(hyp, str(ref))
    assert report["skipped_ids"] == 1
    scores = {k: v["scores"]["overall"] for k, v in report["per_item"].items()}
    assert all(scores[k] == 1.0 for k in ids[:4])
    assert report["summary"]["clips"] == 5
    json.dumps(report)  # JSON-ready


def test_shuffled_output_level_rescores_clips_against_other_prompts(data_dir):
    """The ground-truth clips judged against other prompts (the permutation
    test's draws) score what the judge's own chance level says, far below
    their own prompts; the identity pairing gives back the judged scores."""
    ref = data_dir / "mini_sound_test"
    wavs = {
        k: judge.resolve_path(v, str(ref))
        for k, v in judge.read_scp(str(ref / "wav.scp")).items()
    }
    report = judge.judge_data_dir(wavs, str(ref))
    ids = sorted(report["per_item"])
    same = judge.shuffled_output_level(report["per_item"], str(ref), range(len(ids)))
    assert same["overall"] == pytest.approx(report["summary"]["overall"])
    partner = judge.derangement(len(ids), seed=0)
    shuffled = judge.shuffled_output_level(report["per_item"], str(ref), partner)
    assert shuffled["overall"] < report["summary"]["overall"] - 0.4
    chance = judge.chance_data_dir(ids, str(ref), seed=0, stereo=False)
    assert shuffled["overall"] == pytest.approx(chance["overall"], abs=0.05)


def test_judge_command_line(data_dir, tmp_path):
    ref = str(data_dir / "mini_sound_test")
    out = tmp_path / "judge.json"
    judge.main(["score", "--hyp_scp", f"{ref}/wav.scp", "--ref_dir", ref,
                "--prompt_source", "text", "--output_json", str(out)])  # fmt: skip
    summary = json.loads(out.read_text())["summary"]
    assert summary["overall"] >= 0.95 and "loudness" not in summary
    val = tmp_path / "validation.json"
    judge.main(["validate", "--ref_dir", ref, "--num", "8", "--output_json", str(val)])
    assert set(json.loads(val.read_text())) == {
        "ground_truth",
        "shuffled",
        "chance",
        "noise",
    }


def test_analysis_of_a_hand_made_clip():
    """Two loud 1 kHz beeps then a quiet low tone, rendered here."""
    sr = 16000
    t = np.arange(int(0.12 * sr)) / sr
    beep = sum(np.sin(2 * np.pi * h * 1000 * t) / h for h in (1, 3, 5))
    beep = 0.5 * beep / np.abs(beep).max()
    t2 = np.arange(int(0.5 * sr)) / sr
    tone = np.sin(2 * np.pi * 200 * t2) + 0.1 * np.sin(4 * np.pi * 200 * t2)
    tone = 10 ** (-24 / 20) * tone / np.abs(tone).max()
    gap = np.zeros(int(0.2 * sr))
    x = np.concatenate([gap, beep, gap, beep, gap, tone, gap])
    mono, stereo = prepare_audio(np.stack([x, x], axis=1), sr)
    est = analyse(mono, stereo)
    got = [(g.type, g.count, g.pitch_band, g.loudness, g.position) for g in est.groups]
    assert got == [
        ("beep", 2, "mid", "loud", "center"),
        ("tone", 1, "low", "quiet", "center"),
    ]
    expected = [
        ExpectedGroup("beep", 2, "mid", "loud"),
        ExpectedGroup("tone", 1, "low"),
    ]
    checks = compare(expected, est.groups, stereo=True)
    assert all(all(v) for v in checks.values())
    assert band_of(448.0) == "mid" and band_of(446.0) == "low"


def test_derangement_has_no_fixed_point():
    for n in (2, 3, 10, 81):
        p = judge.derangement(n, seed=n)
        assert sorted(p) == list(range(n)) and all(p[i] != i for i in range(n))
    with pytest.raises(ValueError):
        judge.derangement(1)


def _caption(groups: list[ExpectedGroup]) -> str:
    """A plain caption naming ``groups`` in order (the corpus's own words)."""
    from mini_corpus.captions import PITCH_WORDS
    from mini_corpus.lexicon import number_to_words
    from mini_corpus.sound_events import EVENT_TYPES

    phrases = []
    for g in groups:
        noun = EVENT_TYPES[g.type]["noun" if g.count == 1 else "plural"]
        count = "a" if g.count == 1 else number_to_words(g.count)
        phrases.append(f"{count} {PITCH_WORDS[g.pitch_band]['pitched']} {noun}")
    return "The sound of " + ", then ".join(phrases) + "."


def test_caption_attributes_compare_parsed_captions_with_the_parameters(data_dir):
    """Right captions score 1 on every attribute; a wrong count scores 0 on
    count only, groups in the wrong order 0 on order, an unparseable caption
    0 everywhere; loudness and position (never in captions) are not asked."""
    ref = str(data_dir / "mini_sound_test")
    metas = _metas(data_dir, "test")
    own = {m["id"]: m["captions"]["h0"] for m in metas}
    report = judge.caption_attributes({**own, "not_a_clip": "a beep"}, ref)
    summary = report["summary"]
    assert report["skipped_ids"] == 1 and summary["clips"] == len(metas)
    assert summary["overall"] == 1.0 and summary["exact"] == 1.0
    assert summary["unparsed"] == 0
    assert {"event_type", "count", "pitch_band", "order"} <= set(summary)
    assert "loudness" not in summary and "position" not in summary

    one = next(m for m in metas if len(m["groups"]) == 1)
    two = next(
        m for m in metas if len(m["groups"]) == 2 and m["order"][0] != m["order"][1]
    )
    g1, g2 = from_meta(one), from_meta(two)
    assert (
        judge.caption_attributes({one["id"]: _caption(g1)}, ref)["summary"]["overall"]
        == 1.0
    )
    third = next(m for m in metas if m["id"] not in (one["id"], two["id"]))
    wrong_count = [ExpectedGroup(g1[0].type, g1[0].count % 5 + 1, g1[0].pitch_band)]
    swapped = [g2[1], g2[0]]
    bad = judge.caption_attributes(
        {
            one["id"]: _caption(wrong_count),
            two["id"]: _caption(swapped),
            third["id"]: "Silence, nothing else.",
        },
        ref,
    )
    scores = {k: v["scores"] for k, v in bad["per_item"].items()}
    assert scores[one["id"]]["count"] == 0.0
    assert scores[one["id"]]["event_type"] == scores[one["id"]]["pitch_band"] == 1.0
    assert scores[one["id"]]["exact"] == 0.0 and scores[one["id"]]["overall"] < 1
    assert scores[two["id"]]["order"] == 0.0
    assert scores[third["id"]]["overall"] == 0.0
    assert bad["summary"]["unparsed"] == 1
    assert bad["per_item"][one["id"]]["parsed"][0]["count"] == wrong_count[0].count
    json.dumps(bad)


def test_generation_stats_of_ground_truth_and_of_silence(data_dir, tmp_path):
    """The free-running statistics (local/generation_stats.py): the test set's
    own clips have the structure they were asked for; silent clips of the
    decoder's length limit find no event and count as at the limit."""
    import generation_stats
    import soundfile

    ref = data_dir / "mini_sound_test"
    gt = generation_stats.main(
        ["--hyp_dir", str(ref), "--ref_dir", str(ref), "--max_seconds", "5"]
    )["summary"]
    assert gt["clips"] == NUM_TEST
    assert gt["events_found_minus_asked"]["+0"] >= 0.9
    assert gt["groups_found_minus_asked"]["+0"] >= 0.9
    assert gt["duration_ratio_median"] == pytest.approx(1.0, abs=0.01)
    assert gt["at_length_limit"] == 0.0

    hyp = tmp_path / "silence"
    hyp.mkdir()
    ids = sorted(judge.read_meta(str(ref)))[:5]
    with open(hyp / "wav.scp", "w", encoding="utf-8") as f:
        for uid in ids:
            soundfile.write(hyp / f"{uid}.wav", np.zeros(5 * 16000), 16000)
            f.write(f"{uid} {hyp / f'{uid}.wav'}\n")
    out = tmp_path / "stats.json"
    silent = generation_stats.main(
        ["--hyp_dir", str(hyp), "--ref_dir", str(ref), "--max_seconds", "5"]
        + ["--output_json", str(out)]
    )["summary"]
    assert silent["no_event_found"] == 1.0 and silent["at_length_limit"] == 1.0
    assert silent["events_mean_diff"] < 0
    assert set(json.loads(out.read_text())["per_item"]) == set(ids)
