"""``UALM``: the user-facing model, in the style of HF pipelines and audiocraft.

::

    from espnet2.ualm import UALM

    ualm = UALM.from_pretrained("exp/ualm_unified/packed")   # dir, archive or hub id
    clips = ualm.generate_audio(["a dog barks twice"])        # .audio, .sample_rate
    ualm.caption(["clip.wav"])[0].text
    ualm.transcribe(["speech.wav"])[0].text
    ualm.answer([("clip.wav", "How many barks?")])[0].text
    ualm.chat([[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]])
    ualm.chat([[{"role": "user", "content": "Hi"}]])         # plain-string content
    ualm.reflect(["two high beeps"])[0].reflection           # self-reflection
    ualm.enrich(["some beeps"])[0].text                      # the rich caption
    ualm.dialogue(["some beeps"], answer=lambda row, q: input(q + " "))

Every method takes a list and returns one :class:`UALMOutput` per item, in
order; an item that cannot be answered gets ``.error`` (and no result)
while the rest of the batch completes.
"""

import copy
import dataclasses
import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from espnet2.ualm.inference.dialogue import (
    DIALOGUE_TEMPLATE,
    Answer,
    ClarifyingDialogue,
    clarify,
    dialogue_settings,
)
from espnet2.ualm.inference.generate import UALMGenerator
from espnet2.ualm.inference.reflect import (
    REFLECTION_TEMPLATE,
    Reflection,
    listening_turn,
    reflect,
    reflection_plan,
)
from espnet2.ualm.inference.requests import (
    AudioLike,
    InferenceItemError,
    PreparedRequest,
    Request,
    RequestBuilder,
    read_audio,
)
from espnet2.ualm.inference.settings import STEP_KEYS, DecodeSettings
from espnet2.ualm.text.clarify import dialogue_messages

# (item id, question, its number in the item's dialogue from 0) -> the user's
# answer: who answers the dialogues of ``UALM.run`` (``UALM.with_user``); a
# batch that fails is redone item by item, so a user keeps no count of its own
User = Callable[[str, str, int], str]


@dataclasses.dataclass(eq=False)
class UALMOutput:
    """The answer to one item.

    ``text``: the reply's text segments joined by newlines (``None`` if it
    has none). ``audio``: the last audio segment's waveform, enhanced when an
    enhancer is used (``[channels, samples]``, else ``[samples]``) at
    ``sample_rate``; ``codec_audio`` the codec's own output at
    ``codec_sample_rate``; ``codes`` its ``[T, K]`` codes. ``error``: why the
    item has no answer. With best-of-N (``best_of`` > 1): every candidate
    (``candidates``, this output among them), their scores
    (``candidate_scores``, NaN for one that failed) and the index of the one
    returned (``chosen_candidate``). Self-reflection (``UALM.reflect``):
    ``reflection`` holds the plan, every attempt's codes, caption and
    critique; ``attempts`` every attempt as an output with its audio (the
    last is this output). Clarifying dialogue (``UALM.dialogue``):
    ``dialogue`` holds the questions, the answers and the rich caption.
    """

    id: str
    task: str
    text: Optional[str] = None
    audio: Optional[np.ndarray] = None
    sample_rate: Optional[int] = None
    codec_audio: Optional[np.ndarray] = None
    codec_sample_rate: Optional[int] = None
    codes: Optional[torch.Tensor] = None
    segments: List[Any] = dataclasses.field(default_factory=list)
    error: Optional[str] = None
    candidates: Optional[List["UALMOutput"]] = None
    candidate_scores: Optional[List[float]] = None
    chosen_candidate: Optional[int] = None
    reflection: Optional[Reflection] = None
    attempts: Optional[List["UALMOutput"]] = None
    dialogue: Optional[ClarifyingDialogue] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def truncated(self) -> List[str]:
        """The modalities of the reply's segments cut at their length bound
        (``max_text_tokens``, ``max_audio_seconds``), in order."""
        return [s.modality for s in self.segments if getattr(s, "truncated", False)]


def _user_turn(question: str) -> Dict[str, Any]:
    """A user message: the clip ``clip``, then the question."""
    return {
        "role": "user",
        "content": [
            {"type": "audio", "audio": "clip"},
            {"type": "text", "text": question},
        ],
    }


def dialogue_request(item_id: str, prompt: str) -> Request:
    """The request of a clarifying dialogue about ``prompt`` (its first
    user message, ``text/clarify.py``)."""
    messages = dialogue_messages(prompt, [])
    return Request(
        item_id, DIALOGUE_TEMPLATE, {"messages": messages}, template=DIALOGUE_TEMPLATE
    )


def _prompt_text(request: Request) -> str:
    """The text a best-of-N scorer compares a clip with: the request's first
    text field (a caption, a transcript)."""
    return next((v for v in request.fields.values() if isinstance(v, str)), "")


class UALM:
    """A UALM model with its tokenizer, codec and (optional) enhancer.

    Build it with :meth:`from_pretrained`; the constructor takes the parts.
    """

    def __init__(
        self,
        model,
        tokenizer,
        codec,
        enhancer=None,
        decode: Optional[Mapping[str, Any]] = None,
        tasks=None,
    ):
        from espnet2.ualm.tokens.sequence import SequenceBuilder
        from espnet2.ualm.tokens.tasks import TASKS

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.codec = codec
        self.packed_enhancer = enhancer
        self.settings = DecodeSettings.from_dict(decode)
        self._scorer = None  # best-of-N: with_scorer's, else built from settings
        self._built_scorer: Optional[Tuple[str, Any]] = None
        self._user: Optional[User] = None  # answers dialogues (with_user)
        self.vocab = model.vocabulary
        self.device = model.head_weight.device
        builder = SequenceBuilder(self.vocab, tokenizer)
        encoder = model.audio_encoder
        self.requests = RequestBuilder(
            builder,
            tasks if tasks is not None else TASKS,
            audio_rate=encoder.sample_rate if encoder is not None else None,
            num_frames=encoder.num_frames if encoder is not None else None,
            max_positions=model.backbone.config.max_position_embeddings,
        )
        self.generator = self._make_generator()

    # ----- construction ---------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        device: str = "cpu",
        cache_dir: Optional[str] = None,
        local_files_only: bool = False,
        decode: Optional[Mapping[str, Any]] = None,
        tasks=None,
    ) -> "UALM":
        """Loads a packed model: a directory, an archive (``.zip`` /
        ``.tar.gz`` from ``espnet2.bin.ualm_pack``) or a hub id
        ``owner/name[@revision]``. ``decode`` overrides the packed
        ``decode.yaml``'s settings; ``tasks``: the task registry (default:
        the built-in tasks), to which the model's own task file is added
        (``task_templates.yaml``: an import's templates and tasks)."""
        from espnet2.ualm.pretrained.load import load_parts
        from espnet2.ualm.tokens.tasks import TASKS

        parts = load_parts(source, device, cache_dir, local_files_only)
        settings = {**parts.decode, **(decode or {})}
        if parts.files.task_templates:
            tasks = (tasks if tasks is not None else TASKS).extended(
                parts.files.task_templates
            )
        return cls(
            parts.model,
            parts.tokenizer,
            parts.codec,
            parts.enhancer,
            decode=settings,
            tasks=tasks,
        )

    @property
    def enhancer(self):
        """The enhancer the settings choose (``None``: codec output as is)."""
        name = self.settings.enhancer
        if name == "packed":
            return self.packed_enhancer
        if name == "none":
            return None
        if getattr(self, "_enhancer_name", None) != name:
            from espnet2.tasks.ualm_enhancer import enhancer_for_inference

            self._enhancer = enhancer_for_inference(
                name, {"input_sample_rate": self.codec.sample_rate}
            )
            self._enhancer_name = name
        return self._enhancer

    def _make_generator(self) -> UALMGenerator:
        return UALMGenerator(
            self.model,
            self.tokenizer,
            self.codec.frame_rate,
            backend=self.settings.backend,
            linear_weight_dtype=self.settings.linear_torch_dtype,
        )

    def with_settings(self, **overrides) -> "UALM":
        """This model with other decoding settings (shares the weights)."""
        other = copy.copy(self)
        other.settings = self.settings.replace(**overrides)
        if any(
            getattr(other.settings, k) != getattr(self.settings, k) for k in STEP_KEYS
        ):
            other.generator = other._make_generator()
        return other

    def with_scorer(self, scorer) -> "UALM":
        """This model with ``scorer`` (a ``scoring.preference.PromptAudioScorer``)
        choosing among best-of-N candidates, instead of ``best_of_scorer``."""
        other = copy.copy(self)
        other._scorer = scorer
        return other

    def with_user(self, user: User) -> "UALM":
        """This model with ``user(item_id, question, number)`` answering the
        questions of clarifying dialogues (``UALM.run`` of dialogue
        requests; ``UALM.dialogue`` sets it itself)."""
        other = copy.copy(self)
        other._user = user
        return other

    @property
    def scorer(self):
        """The best-of-N scorer: ``with_scorer``'s, else built once from the
        settings' ``best_of_scorer``."""
        if self._scorer is not None:
            return self._scorer
        conf = self.settings.best_of_scorer
        if conf is None:
            raise ValueError(
                f"best_of {self.settings.best_of} needs a scorer: set "
                "best_of_scorer in the decoding settings or use UALM.with_scorer"
            )
        key = repr(conf)
        if self._built_scorer is None or self._built_scorer[0] != key:
            from espnet2.ualm.scoring.preference import build_scorer

            self._built_scorer = (key, build_scorer(conf))
        return self._built_scorer[1]

    # ----- tasks ------------------------------------------------------------------

    def generate_audio(self, captions: Sequence[str], **settings) -> List[UALMOutput]:
        """Text-to-audio: one clip per caption."""
        return self._run_simple("text_to_audio", "caption", captions, settings)

    def generate_audio_with_reasoning(
        self, captions: Sequence[str], **settings
    ) -> List[UALMOutput]:
        """Enrich the caption first (text), then generate the clip."""
        return self._run_simple("rich_text_to_audio", "caption", captions, settings)

    def reflect(
        self,
        captions: Sequence[str],
        max_rounds: Optional[int] = None,
        **settings,
    ) -> List[UALMOutput]:
        """Self-reflection: a rich caption, a first clip, then up to
        ``max_rounds`` (default: the settings' ``reflection_rounds``) rounds
        of listening to the last clip, captioning and critiquing it and,
        unless the critique finds no mismatch, another clip; all prompts in
        one batch (``inference/reflect.py``). ``.audio``: the last clip;
        ``.reflection`` / ``.attempts``: every intermediate."""
        if max_rounds is not None:
            settings["reflection_rounds"] = max_rounds
        return self._run_simple(REFLECTION_TEMPLATE, "caption", captions, settings)

    def enrich(self, prompts: Sequence[str], **settings) -> List[UALMOutput]:
        """Enrichment: a short or vague prompt -> a rich caption (``.text``)
        -> the clip (``.audio``), the ``enrichment`` task."""
        return self._run_simple("enrichment", "caption", prompts, settings)

    def dialogue(
        self,
        prompts: Sequence[str],
        answer: Answer,
        max_turns: Optional[int] = None,
        **settings,
    ) -> List[UALMOutput]:
        """Clarifying dialogue: the model asks about each prompt, ``answer(
        row, question)`` (``row``: the prompt's index) answers, up to
        ``max_turns`` questions (default: the settings' ``dialogue_turns``),
        then it writes the rich caption and the clip; all prompts in one
        batch (``inference/dialogue.py``). ``.audio``: the clip;
        ``.dialogue``: the questions, answers and rich caption."""
        if isinstance(prompts, str):
            raise TypeError("give a list of prompts, not one str")
        if max_turns is not None:
            settings["dialogue_turns"] = max_turns
        requests = [dialogue_request(str(i), p) for i, p in enumerate(prompts)]
        user = self.with_user(lambda item, question, _: answer(int(item), question))
        return user.run(requests, **settings)

    def speak(self, texts: Sequence[str], **settings) -> List[UALMOutput]:
        """Text-to-speech."""
        return self._run_simple("tts", "text", texts, settings)

    def caption(self, audios: Sequence[AudioLike], **settings) -> List[UALMOutput]:
        return self._run_simple("audio_caption", "audio", audios, settings)

    def transcribe(self, audios: Sequence[AudioLike], **settings) -> List[UALMOutput]:
        return self._run_simple("asr", "audio", audios, settings)

    def answer(
        self, items: Sequence[Tuple[AudioLike, str]], **settings
    ) -> List[UALMOutput]:
        """Questions about audio: ``[(audio, question), ...]``, laid out as the
        QA dialogues of training (after the settings' ``system_prompt``)."""
        ui = self.with_settings(**settings) if settings else self
        requests = [
            Request(
                str(i),
                "audio_qa",
                {"messages": ui._with_system_prompt([_user_turn(q)])},
                {"clip": a},
                template="audio_dialogue",
            )
            for i, (a, q) in enumerate(items)
        ]
        return ui.run(requests)

    def chat(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        audio: Optional[Mapping[str, AudioLike]] = None,
        modalities: Optional[Sequence[str]] = None,
        **settings,
    ) -> List[UALMOutput]:
        """Replies to conversations of mixed text and audio messages
        (``dialogue.jsonl`` form, or a plain string as a message's content;
        user audio ``{"type": "audio", "audio": id}`` with ``audio[id]``
        given). The model chooses each reply
        segment's modality unless ``modalities`` fixes them. A conversation
        without a system message gets the settings' ``system_prompt``."""
        ui = self.with_settings(**settings) if settings else self
        plan = tuple(modalities) if modalities else None
        requests = [
            Request(
                str(i),
                "chat",
                {"messages": ui._with_system_prompt(c)},
                dict(audio or {}),
                plan,
            )
            for i, c in enumerate(conversations)
        ]
        return ui.run(requests)

    def _with_system_prompt(self, messages: Any) -> Any:
        """``messages`` after the settings' system prompt, unless they have
        their own; anything but a list of messages is left for the request
        check to report."""
        if not isinstance(messages, (list, tuple)):
            return messages
        messages = list(messages)
        prompt = self.settings.system_prompt
        if not prompt or any(
            isinstance(m, Mapping) and m.get("role") == "system" for m in messages
        ):
            return messages
        system = {"role": "system", "content": [{"type": "text", "text": prompt}]}
        return [system, *messages]

    def _run_simple(self, task, field, values, settings) -> List[UALMOutput]:
        if isinstance(values, (str, np.ndarray, torch.Tensor)):
            raise TypeError(f"give a list of {field}s, not one {type(values).__name__}")
        requests = [Request(str(i), task, {field: v}) for i, v in enumerate(values)]
        return self.run(requests, **settings)

    # ----- the engine -------------------------------------------------------------

    def run(
        self,
        requests: Sequence[Request],
        progress: Optional[Any] = None,
        **settings,
    ) -> List[UALMOutput]:
        """Answers ``requests`` in batches of ``batch_size``.

        Items are grouped by reply plan so each batch shares one generation
        config; an item whose preparation or generation fails gets its error
        and the others go on (a failing batch is retried item by item).
        ``progress``: a tqdm-like object whose ``update(n)`` is called.
        """
        ui = self.with_settings(**settings) if settings else self
        return ui._run(requests, progress)

    def _reply_positions(self, plan) -> int:
        return self.settings.longest_reply(
            plan, self.codec.frame_rate, self.vocab.n_codebooks, self.vocab.audio_delays
        )

    def _run(self, requests: Sequence[Request], progress) -> List[UALMOutput]:
        if self.settings.best_of > 1:
            _ = self.scorer  # a missing scorer: the call's error, not each item's
        outputs: Dict[int, UALMOutput] = {}
        groups: Dict[Any, List[Tuple[int, PreparedRequest]]] = {}
        for i, request in enumerate(requests):
            try:
                plan = self.requests.plan(request)
                if self._reflects(request):
                    positions = self._reflection_positions()
                elif self._is_dialogue(request):
                    positions = self._dialogue_positions()
                else:
                    positions = self._reply_positions(plan)
                prepared = self.requests.prepare(request, positions)
            except Exception as e:  # one bad item must not lose the others
                msg = str(e)
                if not isinstance(e, InferenceItemError):
                    msg = (
                        f"item {request.id!r} (task {request.task}): "
                        f"{type(e).__name__}: {e}"
                    )
                logging.warning(msg)
                outputs[i] = UALMOutput(request.id, request.task, error=msg)
                if progress is not None:
                    progress.update(1)
                continue
            key = (prepared.plan, self._reflects(request), self._is_dialogue(request))
            groups.setdefault(key, []).append((i, prepared))
        size = max(1, int(self.settings.batch_size))
        for items in groups.values():
            for start in range(0, len(items), size):
                batch = items[start : start + size]
                for i, out in zip((i for i, _ in batch), self._answer_batch(batch)):
                    outputs[i] = out
                if progress is not None:
                    progress.update(len(batch))
        return [outputs[i] for i in range(len(requests))]

    def _answer_batch(
        self, batch: List[Tuple[int, PreparedRequest]]
    ) -> List[UALMOutput]:
        prepared = [p for _, p in batch]
        try:
            return self._generate(prepared)
        except Exception as e:  # isolate the failing item(s), keep the rest
            if len(prepared) == 1:
                p = prepared[0]
                msg = (
                    f"item {p.request.id!r} (task {p.request.task}): "
                    f"{type(e).__name__}: {e}"
                )
                logging.warning(msg)
                return [UALMOutput(p.request.id, p.request.task, error=msg)]
            logging.warning(f"batch failed ({e}); answering its items one by one")
            out = []
            for item in batch:
                out += self._answer_batch([item])
            return out

    def _reflects(self, request: Request) -> bool:
        """Is ``request`` decoded by self-reflection (its template's)?"""
        if request.template is not None:
            return request.template == REFLECTION_TEMPLATE
        tasks = self.requests.tasks
        return request.task in tasks and (
            tasks.get(request.task).template == REFLECTION_TEMPLATE
        )

    def _is_dialogue(self, request: Request) -> bool:
        """Is ``request`` decoded as a clarifying dialogue (its template's)?"""
        template = request.template
        if template is None and request.task in self.requests.tasks:
            template = self.requests.tasks.get(request.task).template
        return template == DIALOGUE_TEMPLATE

    def _dialogue_positions(self) -> int:
        """Most positions a dialogue's generated segments take (the user's
        answers come on top: the cache grows for them)."""
        s = dialogue_settings(self.settings, self.settings.dialogue_turns)
        vocab = self.vocab
        return s.longest_reply(
            None, self.codec.frame_rate, vocab.n_codebooks, vocab.audio_delays
        )

    def _dialogue(self, prepared: List[PreparedRequest]) -> List[UALMOutput]:
        """Clarifying dialogues of a batch; ``with_user``'s user answers."""
        if self._user is None:
            raise ValueError(
                "a clarifying dialogue needs a user to answer: UALM.dialogue("
                "prompts, answer=...) or UALM.with_user(...).run(requests)"
            )
        s = self.settings
        ids = [p.request.id for p in prepared]
        asked = [0] * len(prepared)

        def answer(row: int, question: str) -> str:
            asked[row] += 1
            return self._user(ids[row], question, asked[row] - 1)

        results = clarify(
            self.generator,
            self.requests.builder,
            [p.prompt for p in prepared],
            answer,
            s,
            s.dialogue_turns,
            [p.waveforms for p in prepared],
            torch.Generator(device="cpu").manual_seed(int(s.seed)),
            template=self.requests.tasks.templates[DIALOGUE_TEMPLATE],
        )
        outputs = []
        for p, d in zip(prepared, results):
            out = self._output(p.request, d.segments)
            out.dialogue = d
            outputs.append(out)
        return outputs

    def _reflection_positions(self) -> int:
        """Most positions a reflection's reply takes: its generated segments
        and a listening turn per round (a clip of ``max_audio_seconds``)."""
        s = self.settings
        plan = reflection_plan(s.reflection_rounds)
        encoder = self.model.audio_encoder
        if encoder is None or not s.reflection_rounds:
            return self._reply_positions(plan)
        samples = int(s.max_audio_seconds * encoder.sample_rate)
        turn = listening_turn(
            self.requests.builder,
            self.requests.tasks.templates[REFLECTION_TEMPLATE],
            "longest",
            encoder.num_frames(max(1, samples)),
        )
        return self._reply_positions(plan) + s.reflection_rounds * len(turn)

    def _reflect(self, prepared: List[PreparedRequest]) -> List[UALMOutput]:
        """Self-reflection of a batch: each attempt is decoded by the codec,
        resampled to the encoder's rate (the one audio loader) and heard."""
        s = self.settings
        encoder = self.model.audio_encoder
        rate = int(self.codec.sample_rate)

        decoded: Dict[int, np.ndarray] = {}  # id(codes) -> codec waveform

        def listen(codes: torch.Tensor) -> torch.Tensor:
            wav = decoded[id(codes)] = self.decode_codes(codes)
            if s.reflection_listens_to == "silence":  # the control
                wav = np.zeros_like(wav)
            return read_audio((wav, rate), encoder.sample_rate, "reflection attempt")

        results = reflect(
            self.generator,
            self.requests.builder,
            [p.prompt for p in prepared],
            listen,
            s,
            s.reflection_rounds,
            [p.waveforms for p in prepared],
            torch.Generator(device="cpu").manual_seed(int(s.seed)),
            keys=[p.request.id for p in prepared],
            template=self.requests.tasks.templates[REFLECTION_TEMPLATE],
        )
        outputs = []
        for p, r in zip(prepared, results):
            out = self._output(p.request, r.segments)
            clips = [seg for seg in r.segments if seg.modality == "audio"]
            earlier = [
                self._output(p.request, [seg], decoded.get(id(seg.codes)))
                for seg in clips[:-1]
            ]
            out.reflection, out.attempts = r, earlier + [out]
            outputs.append(out)
        return outputs

    def _generate(self, prepared: List[PreparedRequest]) -> List[UALMOutput]:
        s = self.settings
        if self._reflects(prepared[0].request):
            return self._reflect(prepared)
        if self._is_dialogue(prepared[0].request):
            return self._dialogue(prepared)
        plan = prepared[0].plan
        prompts = [p.prompt for p in prepared]
        waveforms = [p.waveforms for p in prepared]
        generator = torch.Generator(device="cpu").manual_seed(int(s.seed))
        if s.beam_size > 1 and plan == ("text",):
            segments = self.generator.beam_search(
                prompts,
                beam_size=s.beam_size,
                max_tokens=s.max_text_tokens,
                min_tokens=s.min_text_tokens,
                waveforms=waveforms,
            )
            replies = [[seg] for seg in segments]
        else:
            # best-of-N: N rows per prompt in this batch, each its own samples
            n = s.best_of if plan is not None and "audio" in plan else 1
            rows = [i for i in range(len(prepared)) for _ in range(n)]
            results = self.generator.generate(
                [prompts[i] for i in rows], s, plan, [waveforms[i] for i in rows],
                generator,
            )  # fmt: skip
            replies = [r.segments for r in results]
            if n > 1:
                outputs = [
                    self._output(prepared[i].request, segs)
                    for i, segs in zip(rows, replies)
                ]
                return self._best_of(prepared, outputs, n)
        return [self._output(p.request, segs) for p, segs in zip(prepared, replies)]

    def _best_of(
        self, prepared: List[PreparedRequest], outputs: List[UALMOutput], n: int
    ) -> List[UALMOutput]:
        """Per prompt, its candidate (of ``outputs``, ``n`` per prompt in order)
        the scorer rates highest, with every candidate's score."""
        from espnet2.ualm.scoring.preference import Candidate, best_of

        scored = [
            (k, Candidate(o.id, _prompt_text(prepared[k // n].request), o.audio,
                          o.sample_rate))
            for k, o in enumerate(outputs)
            if o.ok and o.audio is not None
        ]  # fmt: skip
        keys = [k for k, _ in scored]
        values = self.scorer.score([c for _, c in scored]) if scored else []
        scores = np.full(len(outputs), np.nan)
        scores[keys] = values
        # a candidate the scorer cannot rate (NaN) ranks last
        ranked = best_of(
            np.nan_to_num(scores[keys], nan=-np.inf), [str(k // n) for k in keys]
        )
        chosen = []
        for i in range(len(prepared)):
            mine = outputs[i * n : (i + 1) * n]
            if str(i) not in ranked:  # no candidate was generated: the first error
                chosen.append(mine[0])
                continue
            k = keys[ranked[str(i)][0]]
            out = outputs[k]
            out.candidates = mine
            out.candidate_scores = scores[i * n : (i + 1) * n].tolist()
            out.chosen_candidate = k - i * n
            chosen.append(out)
        return chosen

    def _output(
        self, request: Request, segments, codec_audio: Optional[np.ndarray] = None
    ) -> UALMOutput:
        """The output of a reply's segments; ``codec_audio``: the last audio
        segment's waveform when already decoded."""
        out = UALMOutput(request.id, request.task, segments=list(segments))
        texts = [s.text for s in segments if s.modality == "text"]
        if texts:
            out.text = "\n".join(t if t is not None else "" for t in texts)
        audio = [s for s in segments if s.modality == "audio"]
        if audio:
            out.codes = audio[-1].codes
            if codec_audio is None:
                codec_audio = self.decode_codes(out.codes)
            out.codec_audio = codec_audio
            out.codec_sample_rate = int(self.codec.sample_rate)
            enhancer = self.enhancer
            if enhancer is None:
                out.audio, out.sample_rate = out.codec_audio, out.codec_sample_rate
            else:
                out.audio = np.asarray(enhancer.enhance(out.codec_audio))
                out.sample_rate = int(enhancer.output_sample_rate)
        return out

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> np.ndarray:
        """``[T, K]`` codes -> mono waveform at the codec's rate."""
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        wav, lengths = self.codec.decode(
            codes[None].to(self.device), torch.tensor([codes.shape[0]])
        )
        return wav[0, : int(lengths[0])].float().cpu().numpy()
