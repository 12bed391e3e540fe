"""Speech utterances: short sentences and digit strings spoken by eSpeak NG.

Transcripts are normalised (lower-case words, numbers spelled out, no
punctuation) and the very same string is given to eSpeak, so the audio says
exactly the transcript. The speaker of an utterance is its eSpeak voice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile
from scipy.signal import resample_poly

from .lexicon import (
    ADJECTIVES,
    DIGIT_WORDS,
    NAMES,
    NOUNS,
    PLACES,
    VERBS_PAST,
    number_to_words,
)

VOICES: tuple[str, ...] = (
    "en",
    "en+f3",
    "en+m3",
    "en-us",
    "en-us+f2",
    "en-gb-scotland",
)
RATES: tuple[int, ...] = (130, 150, 170, 190)  # words per minute
SAMPLE_RATE = 16000
MAX_SPEECH_S = 4.0
PEAK_DBFS = -3.0

_PLURAL_EXCEPTIONS = {"wolf": "wolves", "shoe": "shoes"}


def espeak_binary() -> str:
    """Path of espeak-ng, or a clear error telling how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError(
            "espeak-ng not found on PATH: the mini corpus speaks its speech sets with "
            "eSpeak NG. Install it with `make -C tools` (Debian/Ubuntu: "
            "`apt-get install espeak-ng`), or skip speech with --num_speech_train 0 "
            "--num_speech_valid 0 --num_speech_test 0."
        )
    return path


def speaker_id(voice: str) -> str:
    """Kaldi speaker id of a voice: ``espeak_en_us_f2`` for ``en-us+f2``.

    Utterance ids start with it followed by ``-`` so that sorting utt2spk by
    utterance and by speaker agree (Kaldi convention).
    """
    return "espeak_" + voice.replace("+", "_").replace("-", "_")


def plural(word: str) -> str:
    if word in _PLURAL_EXCEPTIONS:
        return _PLURAL_EXCEPTIONS[word]
    if word.endswith(("s", "x", "sh", "ch")):
        return word + "es"
    return word + "s"


def _pick(rng: np.random.Generator, items: tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def make_sentence(rng: np.random.Generator) -> str:
    """A short normalised sentence or digit string (lower case, words only)."""
    kind = int(rng.integers(5))
    if kind == 0:
        return (
            f"{_pick(rng, NAMES)} {_pick(rng, VERBS_PAST)} the "
            f"{_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)} {_pick(rng, PLACES)}"
        )
    if kind == 1:
        return (
            f"the {_pick(rng, ADJECTIVES)} {_pick(rng, NOUNS)} is {_pick(rng, PLACES)}"
        )
    if kind == 2:
        n = int(rng.integers(2, 20))
        return (
            f"{_pick(rng, NAMES)} has {number_to_words(n)} {plural(_pick(rng, NOUNS))}"
        )
    digits = " ".join(_pick(rng, DIGIT_WORDS) for _ in range(int(rng.integers(3, 7))))
    if kind == 3:
        return digits
    lead = ("the code is", "call", "my number is", "press")[int(rng.integers(4))]
    return f"{lead} {digits}"


def synthesize(text: str, voice: str, rate: int, binary: str) -> np.ndarray:
    """Speak ``text``; return float mono at 16 kHz, trimmed and peak-normalised."""
    with tempfile.TemporaryDirectory(prefix="mini_espeak_") as tmp:
        wav = os.path.join(tmp, "utt.wav")
        cmd = [binary, "-w", wav, "-v", voice, "-s", str(rate), text]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError(
                f"espeak-ng failed ({' '.join(cmd)}): {proc.stderr.strip()}"
            )
        x, sr = soundfile.read(wav, dtype="float64", always_2d=False)
    if x.ndim > 1:
        x = x.mean(axis=1)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= 0:
        raise RuntimeError(f"espeak-ng produced silence for {text!r} ({voice})")
    # Trim eSpeak's leading/trailing silence, keeping 100 ms margins.
    active = np.flatnonzero(np.abs(x) > 0.01 * peak)
    margin = int(0.1 * sr)
    x = x[max(0, active[0] - margin) : active[-1] + 1 + margin]
    g = np.gcd(SAMPLE_RATE, sr)
    y = resample_poly(x, SAMPLE_RATE // g, sr // g)
    return y * (10.0 ** (PEAK_DBFS / 20) / float(np.max(np.abs(y))))


def sample_utterance(
    rng: np.random.Generator, binary: str
) -> tuple[str, str, int, np.ndarray]:
    """Draw text, voice and rate and speak them (faster if longer than 4 s)."""
    text = make_sentence(rng)
    voice = _pick(rng, VOICES)
    rate = int(RATES[int(rng.integers(len(RATES)))])
    audio = synthesize(text, voice, rate, binary)
    while len(audio) > MAX_SPEECH_S * SAMPLE_RATE and rate < 400:
        rate += 40
        audio = synthesize(text, voice, rate, binary)
    return text, voice, rate, audio
