"""Scorers of a generated clip against its prompt, for preference pairs and
best-of-N: higher is better.

Each scorer states the rate it listens at (``sample_rate``); clips are
down-mixed and resampled to it by the project's one resampler and scored
whole (no cropping or padding), so a scorer sees what a listener would.

* ``JudgeScorer``: a judge plugin (the mini judge, ``egs2/ualm/mini/local/
  judge.py``) against the parameters of each item's prompt (``ref_dir``).
* ``TextAudioScorer``: cosine similarity of a text-audio model's embeddings
  of the prompt and the clip (CLAP: ``HFClapModel``, transformers' own
  ``ClapModel`` from a local directory; or ``laion_clap``).
* ``WeightedScorer``: a weighted sum of scorers.
"""

import abc
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2.ualm.data.io import resample
from espnet2.ualm.scoring.embeddings import TextAudioModel
from espnet2.ualm.scoring.generation import clap_score


@dataclasses.dataclass
class Candidate:
    """One generated clip: the item it answers, its prompt and its audio
    (``[samples]`` or ``[channels, samples]``) at ``sample_rate``."""

    item_id: str
    prompt: str
    audio: np.ndarray
    sample_rate: int


def mono_at(audio: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """``audio`` down-mixed to mono and resampled to ``target_rate``."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=0)
    return resample(audio, sample_rate, target_rate)


class PromptAudioScorer(abc.ABC):
    """Scores candidates; one number per candidate, higher is better."""

    name: str = "scorer"
    sample_rate: int = 16000

    @abc.abstractmethod
    def score(self, candidates: Sequence[Candidate]) -> np.ndarray:
        """``[N]`` scores of ``candidates``."""


class JudgeScorer(PromptAudioScorer):
    """A judge plugin's ``overall`` score (the share of the prompt's
    attributes found in the clip) against the prompt parameters of each
    candidate's item in ``ref_dir`` (the judge's ``expected_groups``)."""

    def __init__(self, judge, ref_dir: str):
        for needed in ("judge_audio", "expected_groups", "SAMPLE_RATE"):
            if not hasattr(judge, needed):
                raise AttributeError(
                    f"judge {getattr(judge, '__file__', judge)} defines no {needed}"
                )
        self.judge = judge
        self.expected = judge.expected_groups(ref_dir)
        self.ref_dir = ref_dir
        self.sample_rate = int(judge.SAMPLE_RATE)
        self.name = getattr(judge, "JUDGE_NAME", "judge")

    def score(self, candidates: Sequence[Candidate]) -> np.ndarray:
        missing = sorted({c.item_id for c in candidates} - set(self.expected))
        if missing:
            raise KeyError(
                f"{len(missing)} items have no prompt parameters in "
                f"{self.ref_dir} (first: {missing[0]})"
            )
        items = []
        for i, c in enumerate(candidates):
            audio = np.asarray(c.audio, dtype=np.float32)
            stereo = None
            if audio.ndim == 2 and audio.shape[0] == 2:  # the judge scores position
                stereo = np.stack(
                    [resample(ch, c.sample_rate, self.sample_rate) for ch in audio]
                )
            mono = mono_at(audio, c.sample_rate, self.sample_rate)
            items.append((str(i), mono, stereo, self.expected[c.item_id]))
        per_item, _ = self.judge.judge_audio(items)
        return np.array(
            [per_item[str(i)]["scores"]["overall"] for i in range(len(candidates))],
            dtype=np.float64,
        )


class TextAudioScorer(PromptAudioScorer):
    """Cosine similarity of ``model``'s prompt and clip embeddings (the CLAP
    score), at the model's own rate."""

    def __init__(self, model: TextAudioModel):
        self.model = model
        self.sample_rate = int(model.sample_rate)
        self.name = f"{model.name} text-audio similarity"

    def score(self, candidates: Sequence[Candidate]) -> np.ndarray:
        wavs = [mono_at(c.audio, c.sample_rate, self.sample_rate) for c in candidates]
        audio = self.model.embed(wavs)
        text = self.model.embed_text([c.prompt for c in candidates])
        return clap_score(text, audio)


class WeightedScorer(PromptAudioScorer):
    """``sum(weight * scorer)`` over ``(scorer, weight)`` pairs."""

    def __init__(self, parts: Sequence[Tuple[PromptAudioScorer, float]]):
        if not parts:
            raise ValueError("WeightedScorer needs at least one scorer")
        self.parts = list(parts)
        self.name = " + ".join(f"{w:g} x {s.name}" for s, w in self.parts)
        self.sample_rate = max(s.sample_rate for s, _ in self.parts)

    def score(self, candidates: Sequence[Candidate]) -> np.ndarray:
        return sum(w * s.score(candidates) for s, w in self.parts)


def best_of(
    scores: np.ndarray, groups: Sequence[str]
) -> Dict[str, Tuple[int, Optional[int]]]:
    """Per group (item id, in first-seen order): the index of its best and
    its worst candidate (``None`` when it has one candidate)."""
    out: Dict[str, List[int]] = {}
    for i, g in enumerate(groups):
        out.setdefault(g, []).append(i)
    result = {}
    for g, idx in out.items():
        ranked = sorted(idx, key=lambda i: (-scores[i], i))  # ties: the first
        result[g] = (ranked[0], ranked[-1] if len(ranked) > 1 else None)
    return result
