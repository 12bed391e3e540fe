"""The web demo's handlers: plain functions over lists of requests.

Gradio's batched events (``batch=True``) call a function with one list per
input and expect one list per output; these functions take and return such
lists, know nothing of Gradio, and answer through the ``UALM`` API only (its
per-item ``.error`` becomes the item's error message, so one bad request
never fails the others). ``app.py`` wires them to the page; the unit tests
call them directly.
"""

import copy
import dataclasses
import os
import re
import tempfile
import uuid
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import soundfile
import yaml

MAX_CANDIDATES = 4  # text-to-audio candidates per request (audio slots on the page)
UNDERSTANDING_TASKS = ("caption", "transcribe", "answer")
# Chat reply plans the page offers: label -> ``UALM.chat(modalities=...)``.
CHAT_PLANS: Dict[str, Optional[Tuple[str, ...]]] = {
    "the model chooses": None,
    "text": ("text",),
    "audio": ("audio",),
    "text, then audio": ("text", "audio"),
}


@dataclasses.dataclass
class DemoModel:
    """A loaded UALM, the packed directory it came from (for its model card)
    and the folder where the demo writes the files it serves."""

    ualm: Any  # espnet2.ualm.UALM
    root: str
    workdir: str

    @classmethod
    def load(
        cls,
        source: str,
        device: str = "cpu",
        cache_dir: Optional[str] = None,
        workdir: Optional[str] = None,
    ) -> "DemoModel":
        """Loads ``source`` (packed directory, archive or hub id) with
        ``UALM.from_pretrained``; ``workdir`` defaults to a new temp folder."""
        from espnet2.ualm import UALM
        from espnet2.ualm.pretrained.load import resolve_source

        # Resolved first so that the card of an archive or a hub model is
        # read from the same unpacked directory that the model is loaded from.
        root = resolve_source(source, cache_dir)
        ualm = UALM.from_pretrained(root, device=device, cache_dir=cache_dir)
        workdir = workdir or tempfile.mkdtemp(prefix="ualm_demo_")
        os.makedirs(workdir, exist_ok=True)
        return cls(ualm, root, workdir)

    @property
    def enhancer_name(self) -> str:
        """The enhancer "enhancer on" uses: the packed Enhancement VAE, else
        the resampling baseline (both give 48 kHz stereo)."""
        return "packed" if self.ualm.packed_enhancer is not None else "resample"

    def new_path(self, stem: str, suffix: str) -> str:
        """A fresh file name in ``workdir`` (requests never overwrite each other)."""
        slug = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_")[:40] or "clip"
        return os.path.join(self.workdir, f"{slug}_{uuid.uuid4().hex[:8]}{suffix}")

    def write_wav(self, stem: str, audio: np.ndarray, sample_rate: int) -> str:
        """``audio`` (``[samples]`` or ``[channels, samples]``) as a 16-bit wav."""
        path = self.new_path(stem, ".wav")
        data = np.asarray(audio, dtype=np.float32)
        data = data.T if data.ndim == 2 else data  # soundfile: [samples, channels]
        soundfile.write(path, np.clip(data, -1.0, 1.0), int(sample_rate), "PCM_16")
        return path


# ----- text-to-audio ---------------------------------------------------------------


@dataclasses.dataclass
class Candidate:
    """One generated clip and the files the page shows and offers."""

    seed: int
    wav: str
    codes: str  # .npy of the [T, K] codec codes
    spectrogram: str  # .png
    sample_rate: int
    channels: int
    seconds: float


@dataclasses.dataclass
class AudioResult:
    """A text-to-audio request's candidates (in seed order) or its error."""

    candidates: List[Candidate]
    error: Optional[str] = None


def text_to_audio(
    model: DemoModel,
    captions: Sequence[str],
    cfg_scales: Sequence[float],
    seeds: Sequence[int],
    n_candidates: Sequence[int],
    enhance: Sequence[bool],
) -> List[AudioResult]:
    """Generates ``n_candidates[i]`` clips for ``captions[i]``, candidate
    ``j`` with seed ``seeds[i] + j``.

    Requests that share a setting (CFG scale, seed, enhancer) go to the model
    in one ``generate_audio`` call, so several tabs' requests share a batch.
    Best-of-N ranking does not exist yet: every candidate is returned.
    """
    results = [AudioResult([]) for _ in captions]
    groups: Dict[Tuple[Any, int, str], List[int]] = {}
    for i in range(len(captions)):
        try:
            n = int(n_candidates[i])
            seed = int(seeds[i])
            cfg = None if cfg_scales[i] is None else float(cfg_scales[i])
        except (TypeError, ValueError) as e:
            results[i].error = f"bad setting: {e}"
            continue
        if not 1 <= n <= MAX_CANDIDATES:
            results[i].error = f"number of candidates must be 1..{MAX_CANDIDATES}"
            continue
        enhancer = model.enhancer_name if enhance[i] else "none"
        for j in range(n):
            groups.setdefault((cfg, seed + j, enhancer), []).append(i)
    for (cfg, seed, enhancer), items in groups.items():
        try:
            outs = model.ualm.generate_audio(
                [captions[i] for i in items],
                cfg_scale=cfg,
                seed=seed,
                enhancer=enhancer,
            )
        except Exception as e:  # a bad setting fails its group, not the app
            outs = [None] * len(items)
            message = f"{type(e).__name__}: {e}"
        for i, out in zip(items, outs):
            if out is not None and out.ok:
                results[i].candidates.append(_candidate(model, captions[i], seed, out))
            elif results[i].error is None:
                results[i].error = out.error if out is not None else message
    for result in results:
        if result.error is not None:
            result.candidates = []
        result.candidates.sort(key=lambda c: c.seed)
    return results


def _candidate(model: DemoModel, caption: str, seed: int, out) -> Candidate:
    audio = np.asarray(out.audio)
    stem = f"{caption}_seed{seed}"
    wav = model.write_wav(stem, audio, out.sample_rate)
    codes = model.new_path(stem, "_codes.npy")
    np.save(codes, np.asarray(out.codes.cpu(), dtype=np.int64))
    spectrogram = model.new_path(stem, ".png")
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    plot_spectrogram(spectrogram, mono, out.sample_rate, f"seed {seed}: {caption}")
    return Candidate(
        seed=seed,
        wav=wav,
        codes=codes,
        spectrogram=spectrogram,
        sample_rate=int(out.sample_rate),
        channels=1 if audio.ndim == 1 else int(audio.shape[0]),
        seconds=audio.shape[-1] / out.sample_rate,
    )


def plot_spectrogram(path: str, wav: np.ndarray, sample_rate: int, title: str) -> str:
    """A log spectrogram of ``wav`` as a PNG (matplotlib's ``specgram``).

    Drawn on a ``Figure`` without pyplot, whose global state is not safe in
    the server's worker threads.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 2.4), dpi=80)
    ax = fig.subplots()
    nfft = 512 if wav.size >= 512 else max(16, 2 ** int(np.log2(max(wav.size, 16))))
    if wav.size >= nfft:
        ax.specgram(wav + 1e-9, NFFT=nfft, Fs=sample_rate, noverlap=nfft * 3 // 4)
    ax.set_xlabel("s")
    ax.set_ylabel("Hz")
    ax.set_title(title[:80], fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path)
    return path


# ----- understanding ---------------------------------------------------------------


@dataclasses.dataclass
class TextResult:
    text: Optional[str] = None
    error: Optional[str] = None


def understand(
    model: DemoModel,
    audios: Sequence[Optional[str]],
    tasks: Sequence[str],
    questions: Sequence[str],
) -> List[TextResult]:
    """Captions, transcribes or answers ``questions[i]`` about ``audios[i]``
    (a file path); one API call per task for the whole batch."""
    results = [TextResult() for _ in audios]
    groups: Dict[str, List[int]] = {}
    for i, (audio, task) in enumerate(zip(audios, tasks)):
        if not audio:
            results[i].error = "no audio: upload or record a clip first"
        elif task not in UNDERSTANDING_TASKS:
            results[i].error = f"unknown task {task!r}; one of {UNDERSTANDING_TASKS}"
        elif task == "answer" and not (questions[i] or "").strip():
            results[i].error = "type a question about the clip"
        else:
            groups.setdefault(task, []).append(i)
    ualm = model.ualm
    for task, items in groups.items():
        if task == "answer":
            outs = ualm.answer([(audios[i], questions[i]) for i in items])
        else:
            method = ualm.caption if task == "caption" else ualm.transcribe
            outs = method([audios[i] for i in items])
        for i, out in zip(items, outs):
            results[i] = TextResult(out.text, out.error)
    return results


# ----- chat ------------------------------------------------------------------------


@dataclasses.dataclass
class ChatState:
    """One browser session's conversation.

    ``messages``: what the model reads (``dialogue.jsonl`` form, user audio
    by id); ``audio``: id -> file; ``display``: what the page shows, in
    order, as ``(role, "text" | "audio", text or wav path)``.
    """

    messages: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    audio: Dict[str, str] = dataclasses.field(default_factory=dict)
    display: List[Tuple[str, str, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ChatResult:
    state: ChatState  # the old state when the turn failed
    error: Optional[str] = None


def chat(
    model: DemoModel,
    messages: Sequence[Optional[Mapping[str, Any]]],
    states: Sequence[Optional[ChatState]],
    plans: Sequence[str],
) -> List[ChatResult]:
    """Adds the user's ``messages[i]`` (``{"text": ..., "files": [paths]}``,
    what a multimodal textbox gives) to conversation ``states[i]`` and gets
    the reply; conversations with the same reply plan share one call."""
    results: List[ChatResult] = []
    pending: Dict[str, List[int]] = {}
    for i, (message, state) in enumerate(zip(messages, states)):
        state = state if state is not None else ChatState()
        results.append(ChatResult(state))
        if plans[i] not in CHAT_PLANS:
            results[i].error = f"unknown reply plan {plans[i]!r}"
            continue
        new = copy.deepcopy(state)
        text = str((message or {}).get("text") or "").strip()
        files = list((message or {}).get("files") or [])
        content: List[Dict[str, Any]] = []
        for f in files:
            path = f if isinstance(f, str) else f.get("path")
            # Unique across sessions: conversations of one batch share the
            # ``audio`` mapping of a ``UALM.chat`` call.
            aid = f"audio_{uuid.uuid4().hex[:12]}"
            new.audio[aid] = path
            content.append({"type": "audio", "audio": aid})
            new.display.append(("user", "audio", path))
        if text:
            content.append({"type": "text", "text": text})
            new.display.append(("user", "text", text))
        if not content:
            results[i].error = "type a message or attach audio"
            continue
        new.messages.append({"role": "user", "content": content})
        results[i] = ChatResult(new)
        pending.setdefault(plans[i], []).append(i)
    for plan, items in pending.items():
        audio = {k: v for i in items for k, v in results[i].state.audio.items()}
        outs = model.ualm.chat(
            [results[i].state.messages for i in items],
            audio=audio,
            modalities=CHAT_PLANS[plan],
        )
        for i, out in zip(items, outs):
            if out.ok:
                _add_reply(model, results[i].state, out)
            else:
                results[i] = ChatResult(states[i] or ChatState(), out.error)
    return results


def _add_reply(model: DemoModel, state: ChatState, out) -> None:
    """The reply's segments, in order, into the display; its text into the
    conversation the model reads next turn (earlier assistant audio cannot be
    put in a prompt: ``requests.RequestBuilder`` refuses it)."""
    content = []
    for seg in out.segments:
        if seg.modality == "text":
            text = seg.text or ""
            state.display.append(("assistant", "text", text))
            if text:
                content.append({"type": "text", "text": text})
        else:
            wav = model.ualm.decode_codes(seg.codes)
            path = model.write_wav("reply", wav, model.ualm.codec.sample_rate)
            state.display.append(("assistant", "audio", path))
    if content:
        state.messages.append({"role": "assistant", "content": content})


# ----- the model panel -------------------------------------------------------------


def model_card(model: DemoModel) -> str:
    """The packed model's card (``README.md``, its RESULTS section included)
    without its metadata header."""
    path = os.path.join(model.root, "README.md")
    if not os.path.isfile(path):
        return f"(no model card: {path} is missing)"
    with open(path, encoding="utf-8") as f:
        card = f.read()
    if card.startswith("---\n"):
        end = card.find("\n---", 4)
        card = card[end + 4 :] if end >= 0 else card
    return card.strip()


def settings_text(model: DemoModel) -> str:
    """The decoding settings in force (the packed ``decode.yaml`` over
    ``DecodeSettings``' defaults) as YAML, and what "enhancer on" uses."""
    settings = dataclasses.asdict(model.ualm.settings)
    enhancer = {
        "packed": "the packed Enhancement VAE",
        "resample": "the resampling baseline (this model packs no enhancer)",
    }[model.enhancer_name]
    return (
        yaml.safe_dump(settings, sort_keys=False).strip()
        + f"\n# enhancer on (text-to-audio tab): {enhancer}"
    )
