"""RESULTS.md: the chance column and the summary at the top."""

from espnet2.ualm.scoring.report import (
    headline,
    metrics_table,
    summary_lines,
    write_results_md,
)
from espnet2.ualm.scoring.tasks import ScoreResult


def _asr(wer: float, chance_wer: float) -> ScoreResult:
    return ScoreResult(
        "asr",
        "speech_test",
        "hyp",
        "ref",
        {"wer": wer, "cer": 0.1, "utterances": 20.0},
        chance={"wer": chance_wer, "cer": 0.8},
    )


def test_table_has_a_chance_column_empty_where_none():
    table = metrics_table(_asr(0.25, 0.9)).splitlines()
    assert table[0] == "| metric | value | chance | shuffled outputs | model |"
    assert "| wer | 0.2500 | 0.9000 |  |" in table[2]
    assert any(line.startswith("| utterances | 20 |  |  |") for line in table)
    tested = _asr(0.25, 0.9)
    tested.shuffled = {"wer": {"level": 0.95, "p_value": 0.005, "permutations": 200}}
    assert "| wer | 0.2500 | 0.9000 | 0.9500 (p 0.005) |" in metrics_table(tested)


def test_summary_line_says_whether_chance_is_beaten():
    good, bad = _asr(0.25, 0.9), _asr(1.2, 0.9)
    assert headline(good)[0] == {
        "metric": "wer",
        "value": 0.25,
        "interval": None,
        "chance": 0.9,
        "lower_is_better": True,
        "better_than_chance": True,
        "shuffled_outputs": None,
        "p_value": None,
        "depends_on_input": None,
    }
    lines = summary_lines([good, bad])
    assert lines[0].startswith("asr / speech_test: wer 0.2500 (chance 0.9000")
    assert "lower is better" in lines[0] and lines[0].endswith("chance: yes)")
    assert lines[1].endswith("better than chance: no)")
    cap = ScoreResult(
        "audio_caption",
        "sound_test",
        "hyp",
        "ref",
        {"cider_d": 1.5, "bleu_4": 0.3},
        chance={"cider_d": 0.4, "bleu_4": 0.05},
    )
    (line,) = summary_lines([cap])
    assert "cider_d 1.5000 (chance 0.4000" in line and "bleu_4 0.3000" in line
    gen = ScoreResult("text_to_audio", "sound_test", "hyp", "ref", {"clips": 2.0})
    (line,) = summary_lines([gen])
    assert "judge_overall n/a (chance n/a; better than chance: n/a)" in line


def test_generation_without_a_judge_is_summed_up_by_fd_and_clap():
    """Real corpora (ualm1) have no judge: FD and CLAP are the headline."""
    gen = ScoreResult(
        "text_to_audio", "audiocaps_test", "hyp", "ref", {"fd": 3.0, "clap": 0.25}
    )
    (line,) = summary_lines([gen])
    assert line.startswith("text_to_audio / audiocaps_test: fd 3.0000 (chance n/a")
    assert "lower is better" in line and "; clap 0.2500 (chance n/a" in line
    assert "judge" not in line
    judged = ScoreResult(
        "text_to_audio", "sound_test", "hyp", "ref", {"fd": 3.0, "judge_overall": 0.4}
    )
    assert [h["metric"] for h in headline(judged)] == ["judge_overall"]


def test_results_md_opens_with_the_summary(tmp_path):
    text = write_results_md(str(tmp_path / "RESULTS.md"), [_asr(0.25, 0.9)])
    assert text.index("## Summary") < text.index("## Decoding settings")
    assert "- asr / speech_test: wer 0.2500 (chance 0.9000" in text
    assert "| metric | value | chance | shuffled outputs | model |" in text


def test_summary_says_whether_outputs_depend_on_their_input():
    """Below the reference chance level (unseen phrasings) yet clearly better
    than the model's own outputs shuffled: the summary says both."""
    cap = ScoreResult(
        "audio_caption",
        "sound_test",
        "hyp",
        "ref",
        {"cider_d": 0.3, "bleu_4": 0.05},
        chance={"cider_d": 0.8, "bleu_4": 0.2},
        shuffled={
            "cider_d": {"level": 0.1, "p_value": 0.005, "permutations": 200},
            "bleu_4": {"level": 0.04, "p_value": 0.2, "permutations": 200},
        },
    )
    (line,) = summary_lines([cap])
    cider, bleu = line.split("; bleu_4")
    assert "better than chance: no" in cider
    assert "own outputs shuffled 0.1000, p 0.005: depends on its input: yes" in cider
    assert "p 0.200: depends on its input: no" in bleu
