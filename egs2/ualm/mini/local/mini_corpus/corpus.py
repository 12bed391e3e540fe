"""Per-item generators (run in worker processes) and dataset-directory writers.

Every item is generated from its own seed ``(seed, crc32(kind/split), index)``,
so its content never depends on the number of jobs or on the other items, and
the files are written sorted by id, so the same seed gives byte-identical
outputs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile
from tqdm import tqdm

from espnet2.ualm.text.clarify import CLARIFY_FILE

from . import CORPUS_VERSION
from .captions import (
    CAPTION_TEMPLATES,
    HELD_OUT_TEMPLATES,
    TRAIN_TEMPLATES,
    plain_caption,
    rich_caption,
)
from .clarify import clarifications
from .questions import ANSWER_WORDS, QUESTION_KINDS, make_questions
from .sound_events import (
    HELD_OUT_COMBOS,
    SAMPLE_RATE,
    SAMPLE_RATE_MASTER,
    VOCABULARY,
    limit_peak,
    render_clip,
    sample_clip,
    to_mono16k,
)
from .speech import RATES, VOICES, espeak_binary, sample_utterance, speaker_id
from .text_tasks import TEXT_HELD_OUT, TEXT_TEMPLATES, make_text_item

SPLITS: tuple[str, ...] = ("train", "valid", "test")
SYSTEM_PROMPT = "You are a helpful assistant."
AUDIO_FORMATS = ("flac", "wav")

Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]


@dataclass(frozen=True)
class GenConfig:
    """What every worker needs; picklable."""

    seed: int
    audio_dir: str
    audio_format: str = "flac"
    qa_per_clip: int = 3
    espeak: str = "espeak-ng"


def dataset_name(kind: str, split: str) -> str:
    return f"mini_{kind}_{split}"


def item_rngs(
    seed: int, kind: str, split: str, index: int, n: int
) -> list[np.random.Generator]:
    """``n`` independent generators for one item (parameters, audio, text, ...).

    Separate streams mean that e.g. changing the number of questions per clip
    leaves the audio unchanged.
    """
    code = zlib.crc32(f"{kind}/{split}".encode())
    ss = np.random.SeedSequence([seed, code, index])
    return [np.random.default_rng(s) for s in ss.spawn(n)]


def write_audio(path: str, x: np.ndarray, sr: int, fmt: str) -> None:
    """16-bit PCM wav or flac; the caller guarantees |x| < 1."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    soundfile.write(
        path, x.astype(np.float32), sr, subtype="PCM_16", format=fmt.upper()
    )


def dialogue(
    uid: str, user: list[dict[str, str]], answer: str, system: bool = True
) -> dict[str, Any]:
    """A one-turn conversation in the doc/data_layout.md format."""
    messages: list[dict[str, Any]] = []
    if system:
        messages.append(
            {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}
        )
    messages.append({"role": "user", "content": user})
    messages.append(
        {"role": "assistant", "content": [{"type": "text", "text": answer}]}
    )
    return {"id": uid, "messages": messages}


# --------------------------------------------------------------------------
# Items (worker side)
# --------------------------------------------------------------------------


def sound_item(job: tuple[GenConfig, str, int]) -> dict[str, Any]:
    """Sample, render and write one clip; return its text/meta records."""
    cfg, split, index = job
    name = dataset_name("sound", split)
    uid = f"minisound_{split}_{index:05d}"
    # the sixth stream (the clarifications) came later: the first five are
    # the same streams as before (SeedSequence.spawn), so is everything else
    rngs = item_rngs(cfg.seed, "sound", split, index, 6)
    r_param, r_audio, r_caption, r_qa, r_high, r_clarify = rngs
    held_out = split == "test"
    spec = sample_clip(r_param, held_out=held_out)
    stereo, gain48 = limit_peak(render_clip(spec, r_audio, high_rng=r_high))
    mono, gain16 = limit_peak(to_mono16k(stereo))
    ext = cfg.audio_format
    wav = os.path.join(cfg.audio_dir, name, "16k", f"{uid}.{ext}")
    wav48 = os.path.join(cfg.audio_dir, name, "48k", f"{uid}.{ext}")
    write_audio(wav, mono, SAMPLE_RATE, ext)
    write_audio(wav48, stereo, SAMPLE_RATE_MASTER, ext)

    templates = HELD_OUT_TEMPLATES if held_out else TRAIN_TEMPLATES
    template = templates[int(r_caption.integers(len(templates)))]
    captions = {t: plain_caption(spec, t) for t in templates}
    qas = make_questions(spec, r_qa, cfg.qa_per_clip)
    dialogues = []
    for k, qa in enumerate(qas):
        qa["id"] = f"{uid}_qa{k}"
        user = [
            {"type": "audio", "audio": uid},
            {"type": "text", "text": qa["question"]},
        ]
        dialogues.append(dialogue(qa["id"], user, qa["answer"]))
    meta = {
        "id": uid,
        "dataset": name,
        "split": split,
        "index": index,
        "seed": cfg.seed,
        "held_out": held_out,
        **spec.to_meta(),
        "caption_template": template,
        "captions": captions,
        "gain_48k": round(gain48, 6),
        "gain_16k": round(gain16, 6),
        "qa": [{"id": q["id"], "kind": q["kind"], "answer": q["answer"]} for q in qas],
    }
    return {
        "id": uid,
        "wav": wav,
        "wav48": wav48,
        "text": captions[template],
        "rich_text": rich_caption(spec),
        "clarify": clarifications(uid, spec, r_clarify, held_out).to_json(),
        "meta": meta,
        "dialogues": dialogues,
    }


def speech_item(job: tuple[GenConfig, str, int]) -> dict[str, Any]:
    """Speak and write one utterance; return its Kaldi records."""
    cfg, split, index = job
    (rng,) = item_rngs(cfg.seed, "speech", split, index, 1)
    text, voice, rate, audio = sample_utterance(rng, cfg.espeak)
    spk = speaker_id(voice)
    uid = f"{spk}-{split}-{index:05d}"
    path = os.path.join(
        cfg.audio_dir, dataset_name("speech", split), f"{uid}.{cfg.audio_format}"
    )
    audio, _ = limit_peak(audio)
    write_audio(path, audio, SAMPLE_RATE, cfg.audio_format)
    return {"id": uid, "wav": path, "text": text, "spk": spk, "rate": rate}


def text_item(job: tuple[GenConfig, str, int]) -> dict[str, Any]:
    """One text-only instruction dialogue."""
    cfg, split, index = job
    (rng,) = item_rngs(cfg.seed, "text", split, index, 1)
    item = make_text_item(rng, held_out=split == "test")
    uid = f"minitext_{split}_{index:05d}"
    user = [{"type": "text", "text": item["prompt"]}]
    return {"id": uid, "dialogue": dialogue(uid, user, item["answer"]), **item}


# --------------------------------------------------------------------------
# Dataset writers (main process)
# --------------------------------------------------------------------------


def write_kv(path: str, pairs: dict[str, str]) -> None:
    """Kaldi ``<id> <value>`` file, sorted by id (C-locale order)."""
    with open(path, "w", encoding="utf-8") as f:
        for k in sorted(pairs):
            v = pairs[k]
            if any(c.isspace() for c in k) or "\n" in v:
                raise ValueError(f"bad Kaldi entry {k!r} -> {v!r}")
            f.write(f"{k} {v}\n")


def write_jsonl(path: str, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line, sorted by ``id``."""
    with open(path, "w", encoding="utf-8") as f:
        for row in sorted(rows, key=lambda r: r["id"]):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _run(
    fn: Callable[[Any], dict[str, Any]],
    jobs: list[Any],
    mapper: Mapper,
    desc: str,
    progress: bool,
) -> list[dict[str, Any]]:
    return list(
        tqdm(mapper(fn, jobs), total=len(jobs), desc=desc, disable=not progress)
    )


def build_sound(
    split: str, n: int, cfg: GenConfig, out_dir: str, mapper: Mapper, progress: bool
) -> dict[str, int]:
    """mini_sound_<split>: wav.scp, wav48.scp, text, rich_text, meta, dialogue,
    and the reasoning flows' vague_text and clarify.jsonl."""
    name = dataset_name("sound", split)
    recs = _run(sound_item, [(cfg, split, i) for i in range(n)], mapper, name, progress)
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    write_kv(os.path.join(d, "wav.scp"), {r["id"]: r["wav"] for r in recs})
    write_kv(os.path.join(d, "wav48.scp"), {r["id"]: r["wav48"] for r in recs})
    write_kv(os.path.join(d, "text"), {r["id"]: r["text"] for r in recs})
    write_kv(os.path.join(d, "rich_text"), {r["id"]: r["rich_text"] for r in recs})
    write_jsonl(os.path.join(d, "meta.jsonl"), [r["meta"] for r in recs])
    dialogues = [dlg for r in recs for dlg in r["dialogues"]]
    write_jsonl(os.path.join(d, "dialogue.jsonl"), dialogues)
    write_kv(
        os.path.join(d, "vague_text"), {r["id"]: r["clarify"]["prompt"] for r in recs}
    )
    write_jsonl(os.path.join(d, CLARIFY_FILE), [r["clarify"] for r in recs])
    return {"clips": len(recs), "dialogues": len(dialogues)}


def build_speech(
    split: str, n: int, cfg: GenConfig, out_dir: str, mapper: Mapper, progress: bool
) -> dict[str, int]:
    """mini_speech_<split>: wav.scp, text, utt2spk."""
    name = dataset_name("speech", split)
    recs = _run(
        speech_item, [(cfg, split, i) for i in range(n)], mapper, name, progress
    )
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    write_kv(os.path.join(d, "wav.scp"), {r["id"]: r["wav"] for r in recs})
    write_kv(os.path.join(d, "text"), {r["id"]: r["text"] for r in recs})
    write_kv(os.path.join(d, "utt2spk"), {r["id"]: r["spk"] for r in recs})
    return {"utterances": len(recs), "speakers": len({r["spk"] for r in recs})}


def build_text(
    split: str, n: int, cfg: GenConfig, out_dir: str, mapper: Mapper, progress: bool
) -> dict[str, int]:
    """mini_text_<split>: dialogue.jsonl only."""
    name = dataset_name("text", split)
    # Cheap: generated in the main process.
    recs = _run(text_item, [(cfg, split, i) for i in range(n)], map, name, progress)
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    write_jsonl(os.path.join(d, "dialogue.jsonl"), [r["dialogue"] for r in recs])
    return {"dialogues": len(recs)}


BUILDERS = {"sound": build_sound, "speech": build_speech, "text": build_text}


def corpus_info(seed: int, sizes: dict[str, int], audio_format: str) -> dict[str, Any]:
    """Vocabulary, held-out templates/combinations and sizes (corpus_info.json)."""
    return {
        "version": CORPUS_VERSION,
        "seed": seed,
        "audio_format": audio_format,
        "sizes": sizes,
        "sample_rates": {"wav.scp": SAMPLE_RATE, "wav48.scp": SAMPLE_RATE_MASTER},
        "vocabulary": VOCABULARY,
        "held_out_combos": [list(c) for c in HELD_OUT_COMBOS],
        "caption_templates": {k: list(v) for k, v in CAPTION_TEMPLATES.items()},
        "held_out_caption_templates": list(HELD_OUT_TEMPLATES),
        "question_kinds": list(QUESTION_KINDS),
        "answer_words": ANSWER_WORDS,
        "speech_voices": {v: speaker_id(v) for v in VOICES},
        "speech_rates_wpm": list(RATES),
        "text_templates": {k: list(v) for k, v in TEXT_TEMPLATES.items()},
        "text_held_out_template_index": TEXT_HELD_OUT,
        "splits": {
            "train": "train caption templates, no held-out combination in any group",
            "valid": "same distribution as train (different seeds)",
            "test": "held-out caption/text templates; primary group combo held out",
        },
    }


def generate(
    sizes: dict[tuple[str, str], int],
    out_dir: str,
    cfg: GenConfig,
    mapper: Mapper,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, int]]:
    """Build every dataset with a non-zero size; write corpus_info.json.

    Datasets of size 0 are skipped (nothing written for them).
    """
    if cfg.audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio format must be one of {AUDIO_FORMATS}")
    if any(n > 0 for (kind, _), n in sizes.items() if kind == "speech"):
        cfg = dataclasses.replace(cfg, espeak=espeak_binary())  # fail early
    counts: dict[str, dict[str, int]] = {}
    for kind in BUILDERS:
        for split in SPLITS:
            n = sizes.get((kind, split), 0)
            if n <= 0:
                continue
            name = dataset_name(kind, split)
            start = time.perf_counter()
            counts[name] = BUILDERS[kind](split, n, cfg, out_dir, mapper, progress)
            stats = ", ".join(f"{v} {k}" for k, v in counts[name].items())
            log(f"{name}: {stats} ({time.perf_counter() - start:.1f} s)")
    os.makedirs(cfg.audio_dir, exist_ok=True)
    info = corpus_info(
        cfg.seed,
        {dataset_name(k, s): n for (k, s), n in sorted(sizes.items())},
        cfg.audio_format,
    )
    with open(os.path.join(cfg.audio_dir, "corpus_info.json"), "w") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return counts
