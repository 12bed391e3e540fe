"""Speech synthesis: MCD after DTW, its chance level and permutation test, the
round-trip WER and the bootstrap intervals of both."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet2.ualm.scoring import speech
from espnet2.ualm.scoring.report import headline, summary_lines
from espnet2.ualm.scoring.tasks import GenerationModels, score

SR = 16000
# Vowel-like spectral envelopes (F1, F2 in Hz): two disjoint "alphabets".
VOWELS = {
    "a": (730, 1090),
    "i": (270, 2290),
    "u": (300, 870),
    "e": (530, 1840),
    "o": (570, 840),
    "y": (440, 1020),
}


def _vowel(f1: float, f2: float, dur: float, f0: float = 120.0) -> np.ndarray:
    """A harmonic source shaped by two formant bumps."""
    t = np.arange(int(dur * SR)) / SR
    x = np.zeros_like(t)
    for h in range(1, int(7000 / f0)):
        f = h * f0
        gain = np.exp(-(((f - f1) / 120) ** 2)) + np.exp(-(((f - f2) / 180) ** 2))
        x += (gain + 0.01) * np.sin(2 * np.pi * f * t)
    return x * np.hanning(len(x))


def utterance(text: str, dur: float = 0.15, f0: float = 120.0) -> np.ndarray:
    """A made-up "utterance": one vowel per letter, 50 ms pauses between."""
    gap = np.zeros(int(0.05 * SR))
    parts = [gap]
    for ch in text:
        parts += [_vowel(*VOWELS[ch], dur, f0), gap]
    x = np.concatenate(parts)
    return 0.5 * x / np.abs(x).max()


def test_mcd_is_zero_for_identical_or_rescaled_audio():
    x = utterance("aiu")
    assert speech.mel_cepstral_distortion((x, SR), (x, SR)) == pytest.approx(0.0)
    assert speech.mel_cepstral_distortion((0.2 * x, SR), (x, SR)) < 1e-6


def test_mcd_small_for_shifted_or_slower_large_for_other_text():
    x = utterance("aiu")
    shifted = np.concatenate([np.zeros(int(0.1 * SR)), x])
    slower = utterance("aiu", dur=0.22)
    other = utterance("eoy")
    d_shift = speech.mel_cepstral_distortion((shifted, SR), (x, SR))
    d_slow = speech.mel_cepstral_distortion((slower, SR), (x, SR))
    d_other = speech.mel_cepstral_distortion((other, SR), (x, SR))
    assert d_shift < 0.5 and d_slow < 1.5  # DTW absorbs timing
    assert d_other > 2.0 and d_other > 3 * max(d_shift, d_slow)


def test_mcd_resamples_to_16k():
    x = utterance("ia")
    from scipy.signal import resample_poly

    x48 = resample_poly(x, 3, 1)
    assert speech.mel_cepstral_distortion((x48, 48000), (x, SR)) < 0.5


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_mcd_on_espeak_speech():
    """Same text and voice at another speaking rate stays well below another
    text in the same voice."""
    root = Path(__file__).resolve().parents[4] / "egs2" / "ualm" / "mini" / "local"
    sys.path.insert(0, str(root))
    from mini_corpus.speech import espeak_binary, synthesize

    binary = espeak_binary()
    ref = synthesize("anna watched the red cloud", "en", 150, binary)
    faster = synthesize("anna watched the red cloud", "en", 190, binary)
    other = synthesize("my number is four two nine", "en", 150, binary)
    same = speech.mel_cepstral_distortion((ref, SR), (ref, SR))
    rate = speech.mel_cepstral_distortion((faster, SR), (ref, SR))
    text = speech.mel_cepstral_distortion((other, SR), (ref, SR))
    assert same == pytest.approx(0.0) and rate < text


TEXTS = ["aiu", "eoy", "iae", "uoa", "yie", "oau", "eiy", "auo"]
WORDS = ["a b c d", "e f g h", "i j k l", "m n o p"]


def _tts_dirs(tmp_path: Path):
    """ref/ (wav.scp, text), ok/ (the reference audio) and bad/ (every item
    speaking the next item's text)."""
    ids = [f"utt{i}" for i in range(len(TEXTS))]
    for d in ("ref", "ok", "bad", "audio"):
        (tmp_path / d).mkdir()
    paths = {}
    for k, t in zip(ids, TEXTS):
        paths[k] = tmp_path / "audio" / f"{k}.wav"
        soundfile.write(paths[k], utterance(t), SR)
    text = {k: WORDS[i % len(WORDS)] + f" {TEXTS[i]}" for i, k in enumerate(ids)}

    (tmp_path / "ref" / "wav.scp").write_text("".join(f"{k} {paths[k]}\n" for k in ids))
    (tmp_path / "ref" / "text").write_text("".join(f"{k} {text[k]}\n" for k in ids))
    (tmp_path / "ok" / "wav.scp").write_text("".join(f"{k} {paths[k]}\n" for k in ids))
    nxt = {k: paths[ids[(i + 1) % len(ids)]] for i, k in enumerate(ids)}
    (tmp_path / "bad" / "wav.scp").write_text("".join(f"{k} {nxt[k]}\n" for k in ids))
    # a perfect "ASR": the text each file says
    said = {str(paths[k]): text[k] for k in ids}
    return ids, said


def test_tts_scores_mcd_and_round_trip_wer(tmp_path):
    ids, said = _tts_dirs(tmp_path)
    calls = []

    def asr(paths):
        calls.append(list(paths))
        return [said[p] for p in paths]

    models = GenerationModels(asr=asr, asr_description="perfect test ASR")
    ref = str(tmp_path / "ref")
    ok = score("tts", str(tmp_path / "ok"), ref, models)
    bad = score("tts", str(tmp_path / "bad"), ref, models)
    assert len(calls) == 2 and len(calls[0]) == len(ids)
    assert ok.metrics["mcd"] == pytest.approx(0.0, abs=1e-9)
    assert ok.metrics["roundtrip_wer"] == 0.0
    # chance: another item's reference recording / transcript
    assert ok.chance["mcd"] > 2.0 and ok.chance["roundtrip_wer"] > 0.5
    assert bad.metrics["mcd"] > 2.0 and bad.metrics["roundtrip_wer"] > 0.5
    assert bad.metrics["mcd"] == pytest.approx(bad.chance["mcd"], rel=0.5)
    # permutation test: right outputs depend on their input, wrong ones do not
    assert ok.shuffled["mcd"]["p_value"] < 0.01
    assert ok.shuffled["roundtrip_wer"]["p_value"] < 0.01
    assert bad.shuffled["mcd"]["p_value"] > 0.01
    assert "not independent" in ok.models["roundtrip_wer"]
    assert "not independent" in " ".join(ok.notes)
    # intervals over the items around every key metric
    assert [h["metric"] for h in headline(ok)] == ["mcd", "roundtrip_wer"]
    for name in ("mcd", "roundtrip_wer"):
        lo, hi = bad.intervals[name]
        assert lo <= bad.metrics[name] <= hi
    assert bad.intervals["mcd"][0] < bad.intervals["mcd"][1]
    assert ok.intervals["mcd"] == pytest.approx((0.0, 0.0), abs=1e-9)
    (line,) = summary_lines([bad])
    assert line.startswith(f"tts / ref: mcd {bad.metrics['mcd']:.4f} [")
    assert "lower is better" in line
    assert ok.per_item[ids[0]]["transcript"] == said[calls[0][0]]


def test_tts_without_asr_model_has_mcd_only(tmp_path):
    _tts_dirs(tmp_path)
    r = score("tts", str(tmp_path / "ok"), str(tmp_path / "ref"), GenerationModels())
    assert "mcd" in r.metrics and "roundtrip_wer" not in r.metrics
    assert [h["metric"] for h in headline(r)] == ["mcd"]


def test_round_trip_through_a_packed_model(tmp_path, packed_dir):
    """``ualm_score --asr_model``: the packed model transcribes the generated
    speech (a tiny random model: the figure is poor, the wiring is tested)."""
    from espnet2.bin import ualm_score

    _tts_dirs(tmp_path)
    (r,) = ualm_score.main(
        ["--output_dir", str(tmp_path / "scores"), "--num_plot_clips", "0"]
        + ["--fd_model", "none", "--kl_model", "none", "--is_model", "none"]
        + ["--eval", "tts", str(tmp_path / "ok"), str(tmp_path / "ref")]
        + ["--asr_model", packed_dir]
    )
    assert np.isfinite(r.metrics["roundtrip_wer"]) and "roundtrip_wer" in r.chance
    assert packed_dir in r.models["roundtrip_wer"]
    text = (tmp_path / "scores" / "RESULTS.md").read_text()
    assert "not independent (the model's own ASR)" in text
    assert "| mcd | 0.0000 [0.000, 0.000] |" in text
