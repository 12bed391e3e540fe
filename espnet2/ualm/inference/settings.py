"""Decoding settings: one class for ``decode.yaml``, the API and the generator.

A recipe's or a packed model's ``decode.yaml`` holds these keys; ``UALM``
methods take any of them as keyword overrides; ``UALMGenerator`` reads the
ones about a reply. The reply's plan (which modalities, in which order) is
not a setting: it belongs to the task (``requests.REPLY_PLANS``) or the call.
"""

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence, Tuple

import torch

from espnet2.ualm.inference.sampling import (
    GREEDY,
    RELEASE_AUDIO_SAMPLING,
    SamplingConfig,
)
from espnet2.ualm.tokens.delay import delay_length

GENERATED_MODALITIES: Tuple[str, ...] = ("text", "audio")
# How the decode step runs (decoder.Decoder): "auto" is "fast" where the
# backbone is one FastBackbone reproduces, else "hf".
BACKENDS: Tuple[str, ...] = (
    "auto",
    "hf",
    "fast",
    "compile",
    "cuda_graph",
    "compile+cuda_graph",
)
ENHANCERS: Tuple[str, ...] = ("packed", "none", "resample")
# What self-reflection hears of an attempt (DecodeSettings.reflection_listens_to).
LISTENS_TO: Tuple[str, ...] = ("attempt", "silence")
# Settings that change the decode step itself (a new generator is built).
STEP_KEYS: Tuple[str, ...] = ("backend", "linear_weight_dtype")
_EPS = 1e-9

Plan = Optional[Tuple[str, ...]]


def check_plan(modalities: Optional[Sequence[str]]) -> Plan:
    """The reply plan as a tuple (``None``: the model chooses), checked."""
    if modalities is None:
        return None
    plan = (modalities,) if isinstance(modalities, str) else tuple(modalities)
    if not plan:
        raise ValueError("modalities: an empty plan generates nothing")
    bad = [m for m in plan if m not in GENERATED_MODALITIES]
    if bad:
        raise ValueError(
            f"modalities {bad} cannot be generated; use {GENERATED_MODALITIES}"
        )
    return plan


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    """How replies are decoded.

    batch_size: items per generation batch; seed: every batch's sampling
        starts from it (reproducible).
    cfg_scale: guidance scale ``s`` of audio tokens (paper: 3); ``None``
        runs no unconditional branch.
    min_audio_seconds, max_audio_seconds: bounds of each audio segment
        (frames at the codec's frame rate).
    min_text_tokens, max_text_tokens: bounds of each text segment.
    max_segments: most segments of a reply when the model chooses.
    text_sampling, audio_sampling: token choice (release: text greedy,
        audio temperature 0.8 with top-k 20).
    beam_size: > 1 decodes one-segment text replies with beam search.
    enhancer: ``packed`` (the packed enhancer, if any), ``none`` or
        ``resample``.
    system_prompt: the system message ``UALM.answer`` / ``UALM.chat`` put
        before conversations that have none (the one the dialogues were
        trained with; data directories keep their own).
    backend: the decode step, one of ``BACKENDS``: ``hf`` the Hugging Face
        forward over the KV cache (the reference); ``fast`` the lean
        ``FastBackbone`` step with prepacked CPU weights; ``compile`` that
        step through ``torch.compile``; ``cuda_graph`` (CUDA) replayed as one
        CUDA graph; ``compile+cuda_graph`` the compiled step replayed so;
        ``auto`` ``fast`` where the backbone allows it, else ``hf``.
    best_of: > 1 generates that many candidates of each audio reply in the
        same batch (``batch_size`` prompts, ``best_of`` rows each) and keeps
        the one ``best_of_scorer`` rates highest; every candidate's score is
        returned beside it (``UALMOutput.candidate_scores``).
    best_of_scorer: the scorer's config (``scoring.preference.build_scorer``:
        e.g. ``{name: judge, judge: local/judge.py}`` or ``{name: clap,
        model: hf_clap, conf: {model_dir: ...}}``); ``None``: the one given
        to ``UALM.with_scorer``.
    reflection_rounds: most listening rounds of self-reflection
        (``UALM.reflect``): each hears the last attempt, captions and
        critiques it and, unless the critique finds no mismatch, makes
        another attempt.
    reflection_listens_to: ``attempt`` (the attempt's waveform) or
        ``silence`` (a silent clip of the same length: the control that shows
        the caption of an attempt comes from hearing it).
    dialogue_turns: most questions the model asks in a clarifying dialogue
        (``UALM.dialogue``); after the last answer it writes the rich
        caption and the audio.
    linear_weight_dtype: ``bfloat16`` runs the CPU decode step's matmuls on
        bfloat16 copies of a float32 model's weights (faster on a CPU,
        ``bench/README.md``; tokens may differ from float32 decoding);
        ``None``: the model's dtype.
    """

    batch_size: int = 8
    seed: int = 0
    cfg_scale: Optional[float] = 3.0
    min_audio_seconds: float = 0.0
    max_audio_seconds: float = 10.0
    min_text_tokens: int = 0
    max_text_tokens: int = 256
    max_segments: int = 4
    text_sampling: SamplingConfig = GREEDY
    audio_sampling: SamplingConfig = RELEASE_AUDIO_SAMPLING
    beam_size: int = 1
    enhancer: str = "packed"
    system_prompt: Optional[str] = None
    backend: str = "auto"
    linear_weight_dtype: Optional[str] = None
    best_of: int = 1
    best_of_scorer: Optional[Any] = None
    reflection_rounds: int = 1
    reflection_listens_to: str = "attempt"
    dialogue_turns: int = 3

    def __post_init__(self):
        for key in ("text_sampling", "audio_sampling"):
            value = getattr(self, key)
            if isinstance(value, Mapping):
                object.__setattr__(self, key, SamplingConfig(**value))
        if min(self.batch_size, self.beam_size, self.max_segments, self.best_of) < 1:
            raise ValueError(
                "batch_size, beam_size, max_segments and best_of must be >= 1"
            )
        if self.reflection_rounds < 0:
            raise ValueError("reflection_rounds must be >= 0")
        if self.reflection_listens_to not in LISTENS_TO:
            raise ValueError(
                f"reflection_listens_to must be one of {LISTENS_TO}, "
                f"got {self.reflection_listens_to!r}"
            )
        if self.dialogue_turns < 0:
            raise ValueError("dialogue_turns must be >= 0")
        if not 0 <= self.min_audio_seconds <= self.max_audio_seconds:
            raise ValueError("need 0 <= min_audio_seconds <= max_audio_seconds")
        if not 0 <= self.min_text_tokens <= self.max_text_tokens:
            raise ValueError("need 0 <= min_text_tokens <= max_text_tokens")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.enhancer not in ENHANCERS:
            raise ValueError(
                f"enhancer must be one of {ENHANCERS}, got {self.enhancer!r}"
            )
        if self.linear_weight_dtype not in (None, "bfloat16", "float32"):
            raise ValueError(
                "linear_weight_dtype must be bfloat16 or float32, got "
                f"{self.linear_weight_dtype!r}"
            )

    @classmethod
    def from_dict(cls, conf: Optional[Mapping[str, Any]]) -> "DecodeSettings":
        """Settings from a ``decode.yaml`` mapping; unknown keys are errors."""
        conf = dict(conf or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(conf) - set(known))
        if unknown:
            raise ValueError(f"decode settings: unknown keys {unknown}; known {known}")
        return cls(**conf)

    def replace(self, **overrides) -> "DecodeSettings":
        """These settings with ``overrides`` (checked like ``from_dict``)."""
        return self.from_dict({**dataclasses.asdict(self), **overrides})

    @property
    def linear_torch_dtype(self) -> Optional[torch.dtype]:
        name = self.linear_weight_dtype
        return None if name in (None, "float32") else getattr(torch, name)

    def audio_frame_bounds(self, frame_rate: float) -> Tuple[int, int]:
        """(min, max) frames of an audio segment at the codec's frame rate."""
        low = math.ceil(self.min_audio_seconds * frame_rate - _EPS)
        high = math.floor(self.max_audio_seconds * frame_rate + _EPS)
        return low, high

    def longest_reply(
        self,
        plan: Plan,
        frame_rate: Optional[float],
        n_streams: int,
        delays: Optional[Sequence[int]] = None,
    ) -> int:
        """Most positions a reply can take: sizes the KV cache and bounds the
        prompt length a request may have. ``delays``: the vocabulary's
        ``audio_delays`` (``None``: MusicGen's); either ``AudioLayout``
        closing takes one position more than the delayed frames."""
        text = 1 + self.max_text_tokens + 1  # marker, tokens, close
        audio = 0
        if plan is None or "audio" in plan:
            if frame_rate is None:
                raise ValueError(
                    "audio may be generated: the codec's frame_rate is needed"
                )
            # marker, then the code frames and the closing frame, delayed
            frames = self.audio_frame_bounds(frame_rate)[1] + 1
            audio = 1 + delay_length(frames, n_streams, delays)
        if plan is not None:
            kinds = [audio if m == "audio" else text for m in plan]
        else:
            kinds = [max(audio, text)] * self.max_segments
        return sum(kinds) + len(kinds) - 1  # role tokens between turns
