"""Scorers of a generated clip against its prompt, for preference pairs and
best-of-N: higher is better.

Each scorer states the rate it listens at (``sample_rate``); clips are
down-mixed and resampled to it by the project's one resampler and scored
whole (no cropping or padding), so a scorer sees what a listener would.

* ``JudgeScorer``: a judge plugin (the mini judge, ``egs2/ualm/mini/local/
  judge.py``) against what each prompt asks for: parsed from the prompt
  text, or the item's parameters in ``ref_dir``; over all its attributes or
  a chosen few (the others then stay a measure the selection never saw).
* ``TextAudioScorer``: cosine similarity of a text-audio model's embeddings
  of the prompt and the clip (CLAP: ``HFClapModel``, transformers' own
  ``ClapModel`` from a local directory; or ``laion_clap``).
* ``WeightedScorer``: a weighted sum of scorers.

:func:`build_scorer` makes any of them from a config (``decode.yaml``'s
``best_of_scorer``, ``ualm_make_pairs``' options).
"""

import abc
import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

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
    """A judge plugin's score of each clip against what its prompt asked for:
    the mean of ``attributes`` (default: the judge's ``overall``, the share
    of every attribute it checks). What was asked comes from ``ref_dir``'s
    item parameters (the judge's ``expected_groups``) or, without
    ``ref_dir``, from the candidate's prompt text (``expected_from_prompt``):
    the same information the model was given, so it may pick among test
    outputs."""

    def __init__(
        self,
        judge,
        ref_dir: Optional[str] = None,
        attributes: Optional[Sequence[str]] = None,
    ):
        needed = ["judge_audio", "SAMPLE_RATE"]
        needed.append("expected_groups" if ref_dir else "expected_from_prompt")
        for name in needed:
            if not hasattr(judge, name):
                raise AttributeError(
                    f"judge {getattr(judge, '__file__', judge)} defines no {name}"
                )
        self.judge = judge
        self.ref_dir = ref_dir
        self.expected = judge.expected_groups(ref_dir) if ref_dir else None
        self.attributes = list(attributes) if attributes else None
        self.sample_rate = int(judge.SAMPLE_RATE)
        self.name = getattr(judge, "JUDGE_NAME", "judge")
        if self.attributes:
            self.name += f" ({', '.join(self.attributes)})"

    def _expected(self, candidates: Sequence[Candidate]) -> List[Any]:
        if self.expected is None:
            return [self.judge.expected_from_prompt(c.prompt) for c in candidates]
        missing = sorted({c.item_id for c in candidates} - set(self.expected))
        if missing:
            raise KeyError(
                f"{len(missing)} items have no prompt parameters in "
                f"{self.ref_dir} (first: {missing[0]})"
            )
        return [self.expected[c.item_id] for c in candidates]

    def _value(self, scores: Mapping[str, float]) -> float:
        if not self.attributes:
            return float(scores["overall"])
        # an attribute a prompt does not state (order of one group) is absent
        values = [scores[a] for a in self.attributes if a in scores]
        return float(np.mean(values)) if values else float("nan")

    def score(self, candidates: Sequence[Candidate]) -> np.ndarray:
        items = []
        for i, (c, expected) in enumerate(zip(candidates, self._expected(candidates))):
            audio = np.asarray(c.audio, dtype=np.float32)
            stereo = None
            if audio.ndim == 2 and audio.shape[0] == 2:  # the judge scores position
                # outputs are [channels, samples]; a judge reads [samples, 2]
                # (soundfile's layout, as its load_audio returns)
                stereo = np.stack(
                    [resample(ch, c.sample_rate, self.sample_rate) for ch in audio],
                    axis=1,
                )
            mono = mono_at(audio, c.sample_rate, self.sample_rate)
            items.append((str(i), mono, stereo, expected))
        per_item, _ = self.judge.judge_audio(items)
        return np.array(
            [self._value(per_item[str(i)]["scores"]) for i in range(len(candidates))],
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


SCORERS: Tuple[str, ...] = ("judge", "clap")


def build_scorer(conf: Any) -> PromptAudioScorer:
    """A scorer from its config: one mapping, or a list of them (summed by
    their ``weight``, default 1). Each mapping has ``name`` and its options:

    * ``{name: judge, judge: local/judge.py, ref_dir: <data dir> (optional),
      attributes: [event_type, count] (optional)}``;
    * ``{name: clap, model: hf_clap, conf: {model_dir: <local dir>}}`` (any
      text-audio model of ``espnet2.ualm.scoring.embeddings``).
    """
    parts_conf = [conf] if isinstance(conf, Mapping) else list(conf or [])
    if not parts_conf:
        raise ValueError("scorer config: empty (give a mapping with 'name')")
    parts = []
    for i, part in enumerate(parts_conf):
        part = dict(part)
        name, weight = part.pop("name", None), float(part.pop("weight", 1.0))
        where = f"scorer config [{i}] ({name})"
        if name == "judge":
            from espnet2.ualm.scoring.tasks import load_judge

            if not part.get("judge"):
                raise ValueError(f"{where}: needs 'judge' (the judge plugin file)")
            scorer: PromptAudioScorer = JudgeScorer(
                load_judge(part.pop("judge")),
                part.pop("ref_dir", None),
                part.pop("attributes", None),
            )
        elif name == "clap":
            from espnet2.ualm.scoring.embeddings import build_text_audio_model

            model = build_text_audio_model(
                part.pop("model", "hf_clap"), part.pop("conf", None)
            )
            scorer = TextAudioScorer(model)
        else:
            raise ValueError(f"{where}: unknown scorer; known: {SCORERS}")
        if part:
            raise ValueError(f"{where}: unknown options {sorted(part)}")
        parts.append((scorer, weight))
    if len(parts) == 1 and parts[0][1] == 1.0:
        return parts[0][0]
    return WeightedScorer(parts)
