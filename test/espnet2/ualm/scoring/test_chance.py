"""Chance levels: the derangement, kind-keeping QA chance, and that a perfect
hypothesis scores far above chance while a shuffled one scores at chance."""

import json
from pathlib import Path

import numpy as np
import pytest

from espnet2.ualm.scoring import chance
from espnet2.ualm.scoring.tasks import score

WORDS = "rose tom ada has sees ten nine red blue desks cats owls in the park".split()


def _write_kv(path: Path, items: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} {v}\n" for k, v in sorted(items.items())))


def _dialogue(uid: str, question: str, answer: str) -> dict:
    return {
        "id": uid,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": question}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
    }


def _write_qa(ref: Path, items: list) -> None:
    """``items``: (id, kind, question, answer); one meta record per item."""
    ref.mkdir(parents=True, exist_ok=True)
    with open(ref / "dialogue.jsonl", "w") as f:
        for uid, _, q, a in items:
            f.write(json.dumps(_dialogue(uid, q, a)) + "\n")
    with open(ref / "meta.jsonl", "w") as f:
        for uid, kind, _, a in items:
            qa = [{"id": uid, "kind": kind, "answer": a}]
            f.write(json.dumps({"id": f"clip_{uid}", "qa": qa}) + "\n")


# --------------------------------------------------------------------------
# Derangements
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5, 12, 101])
def test_derangement_has_no_fixed_point_and_is_a_permutation(n):
    for seed in range(5):
        p = chance.derangement(n, seed)
        assert sorted(p) == list(range(n))
        assert all(j != i for i, j in enumerate(p))


def test_derangement_is_deterministic():
    assert chance.derangement(40) == chance.derangement(40)
    assert chance.derangement(40, seed=3) == chance.derangement(40, seed=3)
    assert chance.derangement(40, seed=3) != chance.derangement(40, seed=4)
    with pytest.raises(ValueError):
        chance.derangement(1)


def test_grouped_derangement_stays_in_the_group():
    groups = ["a", "b", "a", "c", "b", "a", "b", "c", "a"]
    partner, lonely = chance.grouped_derangement(groups)
    assert lonely == 0
    assert all(j != i and groups[j] == groups[i] for i, j in enumerate(partner))
    assert chance.grouped_derangement(groups) == (partner, 0)  # deterministic
    # an item alone in its group gets a partner of another group, counted
    partner, lonely = chance.grouped_derangement(["a", "a", "z"])
    assert lonely == 1 and partner[2] != 2 and partner[:2] == [1, 0]


def test_beats_chance_direction():
    assert chance.beats_chance("accuracy", 0.9, 0.3) is True
    assert chance.beats_chance("accuracy", 0.3, 0.3) is False
    assert chance.beats_chance("wer", 0.2, 0.9) is True
    assert chance.beats_chance("wer", 1.1, 0.9) is False
    assert chance.beats_chance("wer", 0.2, None) is None
    assert chance.beats_chance("cider_d", float("nan"), 0.1) is None


# --------------------------------------------------------------------------
# QA: the chance level keeps the question kind (the answer prior)
# --------------------------------------------------------------------------


def test_qa_chance_keeps_the_question_kind(tmp_path):
    """Every count question has answer "Two.", every position question "Left.":
    another answer of the same kind is always right, so chance is 1.0 (had the
    kinds been mixed, a count question would get "Left." and fail)."""
    items = []
    for i in range(6):
        items.append((f"c{i}", "count", "How many beeps are there?", "Two."))
        items.append((f"p{i}", "position", "Where is the chirp?", "Left."))
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    _write_qa(ref, items)
    _write_kv(hyp / "text", {uid: "I cannot tell." for uid, *_ in items})
    r = score("audio_qa", str(hyp), str(ref))
    assert r.metrics["accuracy"] == 0.0
    assert r.chance["accuracy"] == 1.0
    assert r.chance["accuracy_count"] == r.chance["accuracy_position"] == 1.0
    assert "items" not in r.chance and "unparsed" not in r.chance
    assert any("same kind" in n for n in r.notes)


def test_qa_perfect_far_above_chance_and_shuffled_at_chance(tmp_path):
    rng = np.random.default_rng(0)
    answers = {"count": ["One.", "Two.", "Three.", "Four."], "pitch": ["Low.", "High."]}
    questions = {"count": "How many tones?", "pitch": "Is it low or high pitched?"}
    items = [
        (f"q{i:02d}", kind, questions[kind], str(rng.choice(answers[kind])))
        for i, kind in enumerate(["count"] * 16 + ["pitch"] * 10)
    ]
    ref = tmp_path / "ref"
    _write_qa(ref, items)
    _write_kv(tmp_path / "ok" / "text", {u: a for u, _, _, a in items})
    partner, _ = chance.grouped_derangement([k for _, k, _, _ in items])
    _write_kv(
        tmp_path / "shuf" / "text",
        {u: items[j][3] for (u, *_), j in zip(items, partner)},
    )
    ok = score("audio_qa", str(tmp_path / "ok"), str(ref), answer_words=answers)
    shuf = score("audio_qa", str(tmp_path / "shuf"), str(ref), answer_words=answers)
    assert ok.metrics["accuracy"] == 1.0
    assert ok.chance["accuracy"] < 0.6
    assert ok.chance == shuf.chance
    assert shuf.metrics["accuracy"] == pytest.approx(shuf.chance["accuracy"])
    for name in ("multiple_choice_accuracy", "short_answer_accuracy"):
        assert shuf.metrics[name] == pytest.approx(shuf.chance[name])


# --------------------------------------------------------------------------
# ASR, captioning, text dialogue
# --------------------------------------------------------------------------


def _sentences(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        f"u{i:02d}": " ".join(rng.choice(WORDS, size=int(rng.integers(4, 8))))
        for i in range(n)
    }


def _write_ref_ok_and_shuffled(tmp_path: Path, refs: dict) -> list:
    """ref/, ok/ (the references) and shuf/ (the chance derangement) text
    files; returns the sorted ids."""
    ids = sorted(refs)
    _write_kv(tmp_path / "ref" / "text", refs)
    _write_kv(tmp_path / "ok" / "text", refs)
    partner = chance.derangement(len(ids))
    _write_kv(
        tmp_path / "shuf" / "text", {k: refs[ids[j]] for k, j in zip(ids, partner)}
    )
    return ids


def test_asr_perfect_far_above_chance_shuffled_at_chance(tmp_path):
    refs = _sentences(20)
    ids = _write_ref_ok_and_shuffled(tmp_path, refs)
    _write_kv(
        tmp_path / "roll" / "text", {k: refs[ids[i - 3]] for i, k in enumerate(ids)}
    )
    ref = str(tmp_path / "ref")
    ok, shuf, roll = (
        score("asr", str(tmp_path / d), ref) for d in ("ok", "shuf", "roll")
    )
    assert ok.metrics["wer"] == 0.0 and ok.chance["wer"] > 0.7
    assert set(ok.chance) == {"wer", "cer", "sentence_error_rate"}
    assert shuf.metrics["wer"] == pytest.approx(shuf.chance["wer"])
    assert shuf.metrics["cer"] == pytest.approx(shuf.chance["cer"])
    # any other shuffle lands near the chance level too
    assert roll.metrics["wer"] == pytest.approx(roll.chance["wer"], abs=0.15)


def test_captioning_perfect_far_above_chance_shuffled_at_chance(tmp_path):
    rng = np.random.default_rng(1)
    things = ["a dog barks", "a bell rings", "rain falls", "a car passes", "birds sing"]
    places = ["in the distance", "nearby", "on a street", "in a room", "outside"]
    refs = {
        f"clip{i:02d}": f"{rng.choice(things)} {rng.choice(places)} "
        f"while {rng.choice(things)}"
        for i in range(24)
    }
    _write_ref_ok_and_shuffled(tmp_path, refs)
    ref = str(tmp_path / "ref")
    ok = score("audio_caption", str(tmp_path / "ok"), ref)
    shuf = score("audio_caption", str(tmp_path / "shuf"), ref)
    metrics = {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"}
    assert metrics | {"meteor_lite"} == set(ok.chance)
    for name in metrics:
        assert ok.metrics[name] > ok.chance[name] + 0.2, name
        assert shuf.metrics[name] == pytest.approx(shuf.chance[name]), name
    assert ok.metrics["cider_d"] > 3 * ok.chance["cider_d"]


def _phrased(contents: dict, phrasing: str) -> dict:
    return {k: phrasing.format(v) for k, v in contents.items()}


def test_caption_chance_from_training_captions(tmp_path):
    """Test references in a phrasing training never shows: a random training
    caption scores far below another test reference; the chance level is the
    higher of the two per metric (both kept in the notes and in
    ``chance_baselines``), and content in the training phrasing beats the
    training-caption baseline."""
    rng = np.random.default_rng(2)
    things = ["dog barks", "bell rings", "car passes", "bird sings", "door shuts"]

    def contents(n, prefix):
        return {
            f"{prefix}{i:03d}": f"{rng.choice(things)} and {rng.choice(things)}"
            for i in range(n)
        }

    test = contents(30, "test")
    refs = _phrased(test, "we hear that a {} in this recording")
    _write_kv(tmp_path / "ref" / "text", refs)
    _write_kv(tmp_path / "hyp" / "text", _phrased(test, "the sound of a {}"))
    train = {
        k: [v] for k, v in _phrased(contents(200, "tr"), "the sound of a {}").items()
    }
    ref, hyp = str(tmp_path / "ref"), str(tmp_path / "hyp")

    with_train = score("audio_caption", hyp, ref, train_captions=train)
    without = score("audio_caption", hyp, ref)
    train_level = with_train.chance_baselines["a training caption"]
    test_level = with_train.chance_baselines["another test clip's reference"]
    # another test reference (known phrasing) is the stronger baseline here
    assert test_level["cider_d"] > train_level["cider_d"] + 0.5
    assert without.chance["cider_d"] > train_level["cider_d"] + 0.5
    # the reported chance is the higher of the two, metric by metric
    assert with_train.chance == {
        m: max(train_level[m], test_level[m]) for m in with_train.chance
    }
    assert with_train.chance["cider_d"] == without.chance["cider_d"]
    assert without.chance == test_level
    assert without.metrics == with_train.metrics
    assert with_train.metrics["cider_d"] > 3 * train_level["cider_d"]
    assert set(with_train.chance) == set(without.chance)
    notes = " ".join(with_train.notes)
    assert "random training clip (200 clips; mean of 10 seeded draws)" in notes
    assert "the higher of two baselines" in notes
    assert f"another test clip's reference {without.chance['cider_d']:.4f}" in notes
    assert f"a training caption {train_level['cider_d']:.4f}" in notes
    assert "--caption_train_dir" in " ".join(without.notes)
    # deterministic
    again = score("audio_caption", hyp, ref, train_captions=train)
    assert again.chance == with_train.chance


def test_text_dialogue_chance_within_the_answer_type(tmp_path):
    answers = ["12", "7", "12", "elppa", "cat", "cat", "3", "seven"]
    ref = tmp_path / "ref"
    ref.mkdir()
    with open(ref / "dialogue.jsonl", "w") as f:
        for i, a in enumerate(answers):
            f.write(json.dumps(_dialogue(f"t{i}", f"question {i}?", a)) + "\n")
    _write_kv(tmp_path / "ok" / "text", {f"t{i}": a for i, a in enumerate(answers)})
    r = score("text_dialogue", str(tmp_path / "ok"), str(ref))
    assert r.metrics["accuracy"] == 1.0
    assert set(r.chance) == {"accuracy", "accuracy_exact", "accuracy_numeric"}
    assert r.chance["accuracy"] < 0.5
    # numeric references only ever get numbers: the chance replies are scored
    # as numbers, the exact ones as words
    kinds = [rec["kind"] for rec in r.per_item]
    partner, lonely = chance.grouped_derangement(kinds)
    assert lonely == 0 and all(kinds[j] == kinds[i] for i, j in enumerate(partner))


# --------------------------------------------------------------------------
# Shuffled outputs: the permutation test of the model's own outputs
# --------------------------------------------------------------------------


def test_shuffled_outputs_test_p_values():
    labels = [i % 4 for i in range(40)]

    def accuracy(outputs):
        return lambda partner: {
            "accuracy": float(
                np.mean([outputs[j] == t for t, j in zip(labels, partner)])
            )
        }

    right = chance.shuffled_outputs_test(accuracy(labels), {"accuracy": 1.0}, 40)
    assert right["accuracy"]["p_value"] == pytest.approx(1 / 201)
    assert right["accuracy"]["level"] < 0.4
    assert chance.depends_on_input("accuracy", right["accuracy"], 1.0) is True
    constant = [0] * 40
    const = chance.shuffled_outputs_test(accuracy(constant), {"accuracy": 0.25}, 40)
    assert const["accuracy"] == {"level": 0.25, "p_value": 1.0, "permutations": 200.0}
    assert chance.depends_on_input("accuracy", const["accuracy"], 0.25) is False
    # lower is better for error rates; within groups when asked
    wer = chance.shuffled_outputs_test(
        lambda p: {"wer": float(np.mean([i != j for i, j in enumerate(p)]))},
        {"wer": 0.0},
        10,
        groups=["a", "b"] * 5,
        permutations=20,
    )
    # 2 x 5 items: 24 x 24 pairings; one of the 20 seeded draws repeats one
    assert wer["wer"] == {"level": 1.0, "p_value": 1 / 20, "permutations": 19.0}
    assert chance.depends_on_input("wer", None, 0.0) is None


@pytest.mark.parametrize("n, distinct", [(2, 1), (3, 2), (4, 6)])
def test_few_items_give_no_smaller_p_value_than_their_pairings_allow(n, distinct):
    """Two items have one derangement: however right the outputs, p is 1/2,
    not 1/201 (each of the 200 draws was that same pairing)."""
    calls = []

    def accuracy(partner):
        calls.append(tuple(partner))
        return {"accuracy": float(np.mean([i == j for i, j in enumerate(partner)]))}

    test = chance.shuffled_outputs_test(accuracy, {"accuracy": 1.0}, n)
    assert test["accuracy"]["permutations"] == distinct == len(set(calls)) == len(calls)
    assert test["accuracy"]["p_value"] == pytest.approx(1 / (1 + distinct))
    assert chance.depends_on_input("accuracy", test["accuracy"], 1.0) is False


def test_scorers_test_their_own_outputs_shuffled(tmp_path):
    """ASR and captioning: exact outputs depend on the input (p = 1/201);
    one caption for every clip, or transcripts given to the wrong
    utterances, do not."""
    refs = _sentences(20)
    ids = sorted(refs)
    _write_kv(tmp_path / "ref" / "text", refs)
    _write_kv(tmp_path / "ok" / "text", refs)
    _write_kv(tmp_path / "same" / "text", {k: refs[ids[0]] for k in ids})
    ref = str(tmp_path / "ref")
    ok = score("asr", str(tmp_path / "ok"), ref)
    assert ok.shuffled["wer"]["p_value"] == pytest.approx(1 / 201)
    assert ok.shuffled["wer"]["level"] > 0.7
    same = score("asr", str(tmp_path / "same"), ref)
    assert same.shuffled["wer"]["p_value"] == 1.0
    caps = score("audio_caption", str(tmp_path / "same"), ref)
    assert caps.shuffled["cider_d"]["p_value"] == 1.0
    caps = score("audio_caption", str(tmp_path / "ok"), ref)
    assert caps.shuffled["cider_d"]["p_value"] == pytest.approx(1 / 201)
    assert set(caps.shuffled) == {"cider_d", "bleu_4"}
