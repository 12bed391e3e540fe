"""The mini-corpus generator: determinism, layout, and labels that match the audio.

Tiny corpora only (a few dozen clips); every test runs in a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[4]
LOCAL = ROOT / "egs2" / "ualm" / "mini" / "local"
sys.path.insert(0, str(LOCAL))

import generate_corpus  # noqa: E402
from mini_corpus.captions import (  # noqa: E402
    CAPTION_TEMPLATES,
    HELD_OUT_TEMPLATES,
    PITCH_WORDS,
    TRAIN_TEMPLATES,
    noun,
    template_regex,
)
from mini_corpus.lexicon import number_to_words  # noqa: E402
from mini_corpus.sound_events import (  # noqa: E402
    BAND_POSITIONS,
    EVENT_TYPES,
    HELD_OUT_COMBOS,
    HIGH_BAND_HZ,
    LOUDNESS_LEVELS,
    PITCH_BANDS,
    POSITION_PANS,
    all_combos,
)
from mini_corpus.speech import espeak_binary  # noqa: E402
from mini_corpus.text_tasks import TEXT_HELD_OUT, TEXT_TEMPLATES  # noqa: E402

HAS_ESPEAK = shutil.which("espeak-ng") is not None
SIZES = {
    "sound_train": 30,
    "sound_valid": 4,
    "sound_test": 8,
    "speech_train": 6 if HAS_ESPEAK else 0,
    "speech_valid": 2 if HAS_ESPEAK else 0,
    "speech_test": 2 if HAS_ESPEAK else 0,
    "text_train": 40,
    "text_valid": 5,
    "text_test": 10,
}
SPLITS = ("train", "valid", "test")


def _argv(sizes: dict[str, int], nj: int = 1, seed: int = 0) -> list[str]:
    argv = ["--out_dir", "data", "--audio_dir", "corpus", "--nj", str(nj)]
    argv += ["--seed", str(seed), "--no_progress"]
    for k, n in sizes.items():
        argv += [f"--num_{k}", str(n)]
    return argv


def _generate(where: Path, sizes: dict[str, int], nj: int = 1, seed: int = 0) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(where)  # relative --out_dir/--audio_dir, as in a recipe
    try:
        generate_corpus.main(_argv(sizes, nj, seed))
    finally:
        os.chdir(cwd)
    return where


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("mini"), SIZES)


def read_kv(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        k, v = line.split(" ", 1)
        rows.append((k, v))
    return rows


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def meta_of(root: Path, split: str) -> dict[str, dict]:
    return {
        m["id"]: m
        for m in read_jsonl(root / "data" / f"mini_sound_{split}" / "meta.jsonl")
    }


def load(root: Path, path: str) -> tuple[np.ndarray, int]:
    return soundfile.read(root / path, dtype="float64", always_2d=True)


# ----------------------------------------------------------------------------
# Determinism
# ----------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_byte_identical_whatever_nj(tmp_path: Path) -> None:
    sizes = {k: min(n, 3) for k, n in SIZES.items()}
    a = _tree(_generate(tmp_path / "a", sizes, nj=1))
    b = _tree(_generate(tmp_path / "b", sizes, nj=2))
    assert a.keys() == b.keys()
    assert len(a) > 20
    for name in a:
        assert a[name] == b[name], f"{name} differs between runs"
    c = _tree(_generate(tmp_path / "c", sizes, nj=1, seed=1))
    assert (
        c["data/mini_sound_train/meta.jsonl"] != a["data/mini_sound_train/meta.jsonl"]
    )


def test_clip_does_not_depend_on_corpus_size(tmp_path: Path, corpus: Path) -> None:
    small = _generate(
        tmp_path / "s", {k: 3 if k == "sound_train" else 0 for k in SIZES}
    )
    for rel in ("corpus/mini_sound_train/48k/minisound_train_00002.flac",):
        assert (small / rel).read_bytes() == (corpus / rel).read_bytes()
    assert (
        meta_of(small, "train")["minisound_train_00002"]
        == meta_of(corpus, "train")["minisound_train_00002"]
    )


# ----------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------

SOUND_FILES = [
    "clarify.jsonl",
    "dialogue.jsonl",
    "meta.jsonl",
    "rich_text",
    "text",
    "vague_text",
    "wav.scp",
    "wav48.scp",
]


def test_layout_and_ids(corpus: Path) -> None:
    data = corpus / "data"
    all_ids: list[str] = []
    for split in SPLITS:
        d = data / f"mini_sound_{split}"
        assert sorted(os.listdir(d)) == SOUND_FILES
        ids = None
        for name in ("wav.scp", "wav48.scp", "text", "rich_text", "vague_text"):
            keys = [k for k, _ in read_kv(d / name)]
            assert keys == sorted(keys), name
            assert ids is None or keys == ids
            ids = keys
        assert len(ids) == SIZES[f"sound_{split}"]
        assert [m["id"] for m in read_jsonl(d / "meta.jsonl")] == ids
        for k in ids:
            assert re.fullmatch(r"\S+", k) and k.startswith(f"minisound_{split}_")
        dlg = read_jsonl(d / "dialogue.jsonl")
        assert [x["id"] for x in dlg] == sorted(x["id"] for x in dlg)
        for x in dlg:
            roles = [m["role"] for m in x["messages"]]
            assert roles == ["system", "user", "assistant"]
            user = x["messages"][1]["content"]
            assert user[0]["type"] == "audio" and user[0]["audio"] in ids
            assert x["id"].startswith(user[0]["audio"] + "_qa")
            assert user[1]["type"] == "text" and user[1]["text"].endswith("?")
            assert x["messages"][2]["content"][0]["type"] == "text"
        all_ids += ids + [x["id"] for x in dlg]
        for (_, p16), (_, p48) in zip(read_kv(d / "wav.scp"), read_kv(d / "wav48.scp")):
            x16, sr16 = load(corpus, p16)
            x48, sr48 = load(corpus, p48)
            assert (sr16, x16.shape[1], sr48, x48.shape[1]) == (16000, 1, 48000, 2)
            assert soundfile.info(corpus / p16).subtype == "PCM_16"
            assert 1.0 <= len(x16) / sr16 <= 4.0
            assert abs(len(x16) / sr16 - len(x48) / sr48) < 1e-3
            assert np.max(np.abs(x48)) < 0.99 and np.max(np.abs(x16)) < 0.99
        if SIZES[f"speech_{split}"]:
            d = data / f"mini_speech_{split}"
            assert sorted(os.listdir(d)) == ["text", "utt2spk", "wav.scp"]
            keys = [k for k, _ in read_kv(d / "wav.scp")]
            assert keys == sorted(keys) and len(keys) == SIZES[f"speech_{split}"]
            assert [k for k, _ in read_kv(d / "text")] == keys
            utt2spk = read_kv(d / "utt2spk")
            assert [k for k, _ in utt2spk] == keys
            for utt, spk in utt2spk:
                assert utt.startswith(spk + "-") and spk.startswith("espeak_")
            # Kaldi: sorting by speaker keeps the utterance order.
            assert sorted(utt2spk, key=lambda r: (r[1], r[0])) == utt2spk
            all_ids += keys
        d = data / f"mini_text_{split}"
        assert os.listdir(d) == ["dialogue.jsonl"]
        dlg = read_jsonl(d / "dialogue.jsonl")
        assert len(dlg) == SIZES[f"text_{split}"]
        for x in dlg:
            assert [c["type"] for m in x["messages"] for c in m["content"]] == [
                "text"
            ] * 3
        all_ids += [x["id"] for x in dlg]
    assert len(all_ids) == len(set(all_ids)), "ids must be unique across datasets"
    info = json.loads((corpus / "corpus" / "corpus_info.json").read_text())
    assert info["held_out_caption_templates"] == list(HELD_OUT_TEMPLATES)
    assert [tuple(c) for c in info["held_out_combos"]] == list(HELD_OUT_COMBOS)
    assert info["vocabulary"]["pitch_bands_hz"]["high"] == list(PITCH_BANDS["high"])


# ----------------------------------------------------------------------------
# Captions vs meta
# ----------------------------------------------------------------------------


def test_captions_agree_with_meta(corpus: Path) -> None:
    for split in SPLITS:
        d = corpus / "data" / f"mini_sound_{split}"
        meta = meta_of(corpus, split)
        text = dict(read_kv(d / "text"))
        rich = dict(read_kv(d / "rich_text"))
        for uid, m in meta.items():
            cap = text[uid]
            assert cap == m["captions"][m["caption_template"]]
            assert any(p.match(cap) for p in template_regex(m["caption_template"]))
            _, _, style = CAPTION_TEMPLATES[m["caption_template"]]
            pos = 0
            for g in m["groups"]:  # every group, in time order
                count = "a" if g["count"] == 1 else number_to_words(g["count"])
                piece = re.search(
                    rf"\b{count} .*?{noun(g['type'], g['count'])}\b", cap[pos:], re.I
                )
                assert piece, (cap, g)
                assert PITCH_WORDS[g["pitch_band"]][style] in cap[pos:]
                pos += piece.end()
            r = rich[uid]
            assert re.fullmatch(r"Keywords: .+\. Layout: .+\. Description: .+\.", r)
            keywords = r.split("Keywords: ")[1].split(". Layout:")[0].split(", ")
            assert keywords == [noun(t) for t in m["order"]]
            layout = r.split("Layout: ")[1].split(". Description:")[0]
            spans = re.findall(r"(\d+\.\d\d)-(\d+\.\d\d) s", layout)
            assert len(spans) == m["num_events"]
            for (on, off), e in zip(spans, m["events"]):
                assert abs(float(on) - e["onset_s"]) < 0.006
                assert abs(float(off) - e["offset_s"]) < 0.006
            desc = r.split("Description: ")[1]
            for g in m["groups"]:
                assert f"{PITCH_WORDS[g['pitch_band']]['pitched']}" in desc
                assert g["loudness"] in desc
            assert sum(g["count"] for g in m["groups"]) == len(m["events"])


# ----------------------------------------------------------------------------
# Labels vs the rendered signal
# ----------------------------------------------------------------------------


def detect_onsets(x: np.ndarray, sr: int) -> list[float]:
    """Rising edges of frame energy above -50 dBFS; gaps < 60 ms merged."""
    hop, win = int(0.005 * sr), int(0.01 * sr)
    n = 1 + max(0, (len(x) - win) // hop)
    rms = np.array(
        [np.sqrt(np.mean(x[i * hop : i * hop + win] ** 2)) for i in range(n)]
    )
    active = rms > 10 ** (-50 / 20)
    onsets, last_end = [], -1e9
    for i in range(n):
        if active[i] and (i == 0 or not active[i - 1]):
            t = i * hop / sr
            if t - last_end > 0.06:
                onsets.append(t)
        if active[i]:
            last_end = (i * hop + win) / sr
    return onsets


def _segments(m: dict, sr: int):
    for e in m["events"]:
        g = m["groups"][e["group"]]
        yield g, int(e["onset_s"] * sr), int(e["offset_s"] * sr)


def test_event_count_and_onsets_found_in_signal(corpus: Path) -> None:
    for split in SPLITS:
        scp = dict(read_kv(corpus / "data" / f"mini_sound_{split}" / "wav.scp"))
        for uid, m in meta_of(corpus, split).items():
            x, sr = load(corpus, scp[uid])
            onsets = detect_onsets(x[:, 0], sr)
            assert len(onsets) == m["num_events"], (uid, onsets, m["events"])
            for t, e in zip(onsets, m["events"]):
                assert abs(t - e["onset_s"]) < 0.02, (uid, t, e)


def test_stereo_placement(corpus: Path) -> None:
    seen = set()
    for split in SPLITS:
        scp = dict(read_kv(corpus / "data" / f"mini_sound_{split}" / "wav48.scp"))
        for uid, m in meta_of(corpus, split).items():
            x, sr = load(corpus, scp[uid])
            for g, a, b in _segments(m, sr):
                left, right = np.sqrt(np.mean(x[a:b] ** 2, axis=0))
                seen.add(g["position"])
                if g["position"] == "left":
                    assert left > 3 * right, uid
                elif g["position"] == "right":
                    assert right > 3 * left, uid
                else:
                    assert 0.7 < left / right < 1.45, uid
    assert seen == {"left", "center", "right"}


def test_masters_image_and_high_band_follow_the_content(corpus: Path) -> None:
    """Corpus v2: the stereo image is a function of the pitch band, and every
    event has content above 9.5 kHz (nothing between 8 and 9.5 kHz leaks into
    the 16 kHz file) at a level tied to the event."""
    ratios: dict[str, list[float]] = {}
    for split in SPLITS:
        scp = dict(read_kv(corpus / "data" / f"mini_sound_{split}" / "wav48.scp"))
        for uid, m in meta_of(corpus, split).items():
            x, sr = load(corpus, scp[uid])
            for g, a, b in _segments(m, sr):
                assert g["position"] == BAND_POSITIONS[g["pitch_band"]], uid
                assert g["pan"] == POSITION_PANS[g["position"]], uid
                seg = x[a:b].mean(axis=1)
                spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
                freqs = np.fft.rfftfreq(len(seg), 1 / sr)
                high = spec[freqs >= HIGH_BAND_HZ].sum()
                assert spec[(freqs > 8500) & (freqs < 9000)].sum() < 1e-3 * high
                ratios.setdefault(g["type"], []).append(
                    10 * np.log10(high / spec[freqs < 8000].sum())
                )
    assert len(ratios) >= 5
    for etype, values in ratios.items():
        assert -40 < min(values) and max(values) < 0, (etype, values)


def test_pitch_band_and_loudness(corpus: Path) -> None:
    checked = set()
    for split in SPLITS:
        scp = dict(read_kv(corpus / "data" / f"mini_sound_{split}" / "wav.scp"))
        for uid, m in meta_of(corpus, split).items():
            x, sr = load(corpus, scp[uid])
            x = x[:, 0]
            for g, a, b in _segments(m, sr):
                seg = x[a:b]
                spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n=1 << 16))
                freqs = np.fft.rfftfreq(1 << 16, 1 / sr)
                dominant = freqs[int(np.argmax(spec))]
                lo, hi = PITCH_BANDS[g["pitch_band"]]
                if g["type"] == "noise_burst":
                    lo, hi = g["passband_hz"]
                tol = 0.05 if g["type"] != "click" else 0.25
                assert lo * (1 - tol) <= dominant <= hi * (1 + tol), (uid, g, dominant)
                if g["type"] in ("tone", "beep"):
                    assert abs(dominant - g["freq_hz"]) < 0.03 * g["freq_hz"] + 5
                peak_db = 20 * np.log10(np.max(np.abs(seg)))
                assert abs(peak_db - LOUDNESS_LEVELS[g["loudness"]]) < 2.5, (uid, g)
                checked.add(g["type"])
    assert len(checked) >= 5


# ----------------------------------------------------------------------------
# Held-out splits
# ----------------------------------------------------------------------------


def test_held_out_combos_and_templates(corpus: Path) -> None:
    held = {tuple(c) for c in HELD_OUT_COMBOS}
    assert held < set(all_combos())
    assert {c[0] for c in held} == set(EVENT_TYPES)
    held_pats = [p for t in HELD_OUT_TEMPLATES for p in template_regex(t)]
    train_pats = [p for t in TRAIN_TEMPLATES for p in template_regex(t)]
    for split in ("train", "valid"):
        text = dict(read_kv(corpus / "data" / f"mini_sound_{split}" / "text"))
        for uid, m in meta_of(corpus, split).items():
            assert not m["held_out"]
            assert m["caption_template"] in TRAIN_TEMPLATES
            for g in m["groups"]:
                assert (g["type"], g["count"], g["pitch_band"]) not in held
            assert not any(p.match(text[uid]) for p in held_pats), text[uid]
            assert all(t in TRAIN_TEMPLATES for t in m["captions"])
    text = dict(read_kv(corpus / "data" / "mini_sound_test" / "text"))
    for uid, m in meta_of(corpus, "test").items():
        assert m["held_out"] and tuple(m["combo"]) in held
        assert m["caption_template"] in HELD_OUT_TEMPLATES
        assert not any(p.match(text[uid]) for p in train_pats), text[uid]
        assert all(t in HELD_OUT_TEMPLATES for t in m["captions"])

    # Text-only items: test prompts use only the held-out phrasing of each task.
    def matches(prompt: str, task: str, idx: int) -> bool:
        form = TEXT_TEMPLATES[task][idx]
        body = ".+?".join(re.escape(p) for p in re.split(r"\{\w+\}", form))
        return re.fullmatch(body, prompt) is not None

    for split in SPLITS:
        rows = read_jsonl(corpus / "data" / f"mini_text_{split}" / "dialogue.jsonl")
        for x in rows:
            prompt = x["messages"][1]["content"][0]["text"]
            hits = {
                (task, i == TEXT_HELD_OUT[task])
                for task, forms in TEXT_TEMPLATES.items()
                for i in range(len(forms))
                if matches(prompt, task, i)
            }
            assert hits, prompt
            assert all(h == (split == "test") for _, h in hits), (split, prompt)


# ----------------------------------------------------------------------------
# Speech
# ----------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng not installed")
def test_speech_files_and_transcripts(corpus: Path) -> None:
    for split in SPLITS:
        d = corpus / "data" / f"mini_speech_{split}"
        text = dict(read_kv(d / "text"))
        for uid, path in read_kv(d / "wav.scp"):
            x, sr = load(corpus, path)
            assert sr == 16000 and x.shape[1] == 1
            assert 0.3 < len(x) / sr <= 4.5
            assert np.sqrt(np.mean(x**2)) > 0.02, "speech must not be silent"
            assert re.fullmatch(r"[a-z]+( [a-z]+)+", text[uid]), text[uid]


def test_missing_espeak_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng there
    with pytest.raises(RuntimeError, match="make -C tools"):
        espeak_binary()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        generate_corpus.main(_argv({**{k: 0 for k in SIZES}, "speech_train": 1}))
    assert exc.value.code == 1


# ----------------------------------------------------------------------------
# QA and text answers
# ----------------------------------------------------------------------------

_SINGULAR = {EVENT_TYPES[t]["noun"]: t for t in EVENT_TYPES}
_PLURAL = {EVENT_TYPES[t]["plural"]: t for t in EVENT_TYPES}
_BY_NOUN = {**_SINGULAR, **_PLURAL}


def expected_answer(question: str, m: dict) -> str:
    """Recompute a QA answer from meta only, by parsing the question."""
    groups = {g["type"]: g for g in m["groups"]}
    word = lambda n: number_to_words(n).capitalize() + "."  # noqa: E731
    if q := re.fullmatch(r"How many (.+) are there\?", question):
        t = _PLURAL[q.group(1)]
        return word(groups[t]["count"] if t in groups else 0)
    if question == "How many sound events are there in total?":
        return word(len(m["events"]))
    if q := re.fullmatch(r"Which comes first, the (.+) or the (.+)\?", question):
        assert {_SINGULAR[q.group(1)], _SINGULAR[q.group(2)]} == set(groups)
        return f"The {noun(m['order'][0])}."
    if question == "What kind of sound comes first?":
        return f"A {noun(m['order'][0])}."
    if q := re.fullmatch(r"Is there a (.+) in the clip\?", question):
        return "Yes." if _SINGULAR[q.group(1)] in groups else "No."
    nouns = "|".join(sorted(_BY_NOUN, key=len, reverse=True))
    q = re.fullmatch(
        rf"(?:Is|Are|Where is|Where are|How loud is|How loud are) the ({nouns})[ ,:].*",
        question,
    )
    assert q, question
    g = groups[_BY_NOUN[q.group(1)]]
    assert (g["count"] == 1) == bool(re.match(r"(Is|Where is|How loud is) ", question))
    if "pitched" in question:
        return {"low": "Low.", "mid": "Medium.", "high": "High."}[g["pitch_band"]]
    if "left" in question:
        return g["position"].capitalize() + "."
    if "loud" in question:
        return g["loudness"].capitalize() + "."
    raise AssertionError(question)


def test_qa_answers_agree_with_meta(corpus: Path) -> None:
    kinds = set()
    for split in SPLITS:
        d = corpus / "data" / f"mini_sound_{split}"
        meta = meta_of(corpus, split)
        for x in read_jsonl(d / "dialogue.jsonl"):
            uid = x["messages"][1]["content"][0]["audio"]
            question = x["messages"][1]["content"][1]["text"]
            answer = x["messages"][2]["content"][0]["text"]
            assert answer == expected_answer(question, meta[uid]), (uid, question)
            (qa,) = [q for q in meta[uid]["qa"] if q["id"] == x["id"]]
            assert qa["answer"] == answer
            kinds.add(qa["kind"])
    assert len(kinds) >= 6


def test_text_answers_are_exact(corpus: Path) -> None:
    n_checked = 0
    for split in SPLITS:
        for x in read_jsonl(corpus / "data" / f"mini_text_{split}" / "dialogue.jsonl"):
            p = x["messages"][1]["content"][0]["text"]
            a = x["messages"][2]["content"][0]["text"]
            nums = [int(v) for v in re.findall(r"\d+", p)]
            quoted = re.findall(r"'([a-z]+)'", p)
            if re.search(r"letter '|occur", p):
                c, w = (quoted[0], quoted[1]) if len(quoted[0]) == 1 else quoted[::-1]
                assert a == str(w.count(c)), p
            elif re.search(r"plus|sum of|Add |more|gave", p):
                assert a == str(sum(nums)), p
            elif re.search(r"minus|Subtract|away", p):
                assert a == str(max(nums) - min(nums)), p
            elif re.search(r"times|Multiply|product", p):
                assert a == str(nums[0] * nums[1]), p
            elif re.search(r"larger|bigger|greater|largest|maximum|highest", p):
                assert a == str(max(nums)), p
            elif re.search(r"[Rr]everse|backwards", p):
                assert a == quoted[0][::-1], p
            elif "alphabetical" in p:
                assert a == "".join(sorted(quoted[0])), p
            elif "words" in p:
                s = re.search(r"(?:sentence '|in: |words in ')(.+?)'?\??$", p).group(1)
                assert a == str(len(s.split())), p
            else:
                raise AssertionError(f"unparsed prompt {p!r}")
            n_checked += 1
    assert n_checked == SIZES["text_train"] + SIZES["text_valid"] + SIZES["text_test"]


def test_number_words() -> None:
    assert [number_to_words(n) for n in (0, 7, 13, 40, 42, 100, 115, 2024)] == [
        "zero",
        "seven",
        "thirteen",
        "forty",
        "forty two",
        "one hundred",
        "one hundred and fifteen",
        "two thousand and twenty four",
    ]


def test_scale_option() -> None:
    args = generate_corpus.get_parser().parse_args(
        ["--scale", "0.1", "--num_text_test", "3"]
    )
    sizes = generate_corpus.resolve_sizes(args)
    assert sizes[("sound", "train")] == 200 and sizes[("speech", "valid")] == 6
    assert sizes[("text", "test")] == 3


# ----------------------------------------------------------------------------
# Vague prompts and clarifying questions (UALM-Reason)
# ----------------------------------------------------------------------------


def test_vague_prompts_and_clarifications_agree_with_meta(corpus: Path) -> None:
    """The vague prompt names the event types only; every clarifying
    question is answered from the clip's parameters; the simulated user
    gives those answers; held-out phrasings are in the test split only."""
    from mini_corpus.clarify import MAX_ASKED, VAGUE_HELD_OUT, VAGUE_TEMPLATES

    from espnet2.ualm.text.clarify import (
        FALLBACK_ANSWER,
        SimulatedUser,
        read_clarifications,
    )

    pitch = {"low": "Low.", "mid": "Medium.", "high": "High."}
    for split in SPLITS:
        d = corpus / "data" / f"mini_sound_{split}"
        meta = meta_of(corpus, split)
        vague = dict(read_kv(d / "vague_text"))
        clips = read_clarifications(str(d / "clarify.jsonl"))
        assert sorted(clips) == sorted(meta) == sorted(vague)
        user = SimulatedUser(clips)
        for uid, m in meta.items():
            c, groups = clips[uid], m["groups"]
            assert c.prompt == vague[uid]
            words = set(re.findall(r"[a-z-]+", c.prompt.lower()))
            assert not words & {"one", "two", "three", "four", "high", "low", "loud"}
            for g in groups:
                assert noun(g["type"], 2) in c.prompt
            held = [t for t in VAGUE_HELD_OUT if c.prompt.startswith(
                VAGUE_TEMPLATES[t][0].split("{")[0])]  # fmt: skip
            assert bool(held) == (split == "test")
            assert 1 <= c.asked <= MAX_ASKED
            assert len(c.questions) == 4 * len(groups) + (len(groups) == 2)
            for q in c.questions:
                assert user.answer(uid, q.question.upper()) == q.answer
                if q.kind == "order":
                    assert q.answer == f"The {noun(groups[0]['type'])}."
                    continue
                (g,) = [g for g in groups if noun(g["type"], 2) in q.question]
                want = {
                    "count": f"{number_to_words(g['count']).capitalize()}.",
                    "pitch": pitch[g["pitch_band"]],
                    "loudness": g["loudness"].capitalize() + ".",
                    "position": g["position"].capitalize() + ".",
                }[q.kind]
                assert q.answer == want, (uid, q)
            assert user.answer(uid, "What is your name?") == FALLBACK_ANSWER
