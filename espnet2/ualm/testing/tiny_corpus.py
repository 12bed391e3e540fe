"""A tiny corpus in the real stage 2-5 formats and a tiny training config,
for tests and CPU dry runs.

``write_tiny_corpus(root)`` writes, under ``root``, what stages 2-5 of the
recipe write (``doc/data_layout.md``): formatted data directories with FLAC
audio, codec codes as kaldiio ark/scp with ``codec.json``, a sentencepiece
text tokenizer and the stage-5 manifests, using the project's own writers
(``train_sentencepiece``, ``build_manifest``). Seven (dataset, task) pairs
cover every manifest task, as in the mini recipe. Clips are beeps whose
count and pitch the caption names, and whose codes are a function of the
caption, so a model can learn something in a few steps.

``tiny_train_config()`` is a training YAML (as a mapping) for
``espnet2.bin.ualm_train`` with a tiny random Qwen2 and Whisper encoder.
"""

import copy
import json
import os
from typing import Any, Dict, List, Sequence, Tuple

import kaldiio
import numpy as np
import soundfile

from espnet2.ualm.data.codes_io import CodesReader, flatten_codes, write_geometry
from espnet2.ualm.data.kaldi_dir import read_kv, write_kv
from espnet2.ualm.data.manifest import LengthModel, build_manifest
from espnet2.ualm.model.audio_encoder import encoder_geometry
from espnet2.ualm.testing.tiny_model import tiny_qwen2_config, tiny_whisper_config
from espnet2.ualm.text.tokenizer import load_text_tokenizer, train_sentencepiece

SAMPLE_RATE = 16000
FRAME_RATE = 50
PITCHES = {"low": 220.0, "high": 880.0}
COUNTS = ("one", "two", "three")
EVENTS = ("beep", "chirp")

# (dataset, task) pairs, as in egs2/ualm/mini/conf/datasets.yaml
TINY_DATASETS: Tuple[Tuple[str, str], ...] = (
    ("tiny_sound", "text_to_audio"),
    ("tiny_sound", "rich_text_to_audio"),
    ("tiny_sound", "audio_caption"),
    ("tiny_sound", "audio_qa"),
    ("tiny_speech", "asr"),
    ("tiny_speech", "tts"),
    ("tiny_text", "text_dialogue"),
)


def _clip(count: int, pitch: float, rng: np.random.Generator) -> np.ndarray:
    beep = int(0.08 * SAMPLE_RATE)
    gap = int(0.04 * SAMPLE_RATE)
    t = np.arange(beep) / SAMPLE_RATE
    tone = 0.4 * np.sin(2 * np.pi * pitch * t) * np.hanning(beep)
    parts = [np.zeros(gap)]
    for _ in range(count):
        parts += [tone, np.zeros(gap)]
    wav = np.concatenate(parts) + 0.01 * rng.standard_normal(sum(map(len, parts)))
    return wav.astype(np.float32)


def _codes(
    wav: np.ndarray, label: int, n_codebooks: int, codebook_size: int
) -> np.ndarray:
    """Codes that depend on the caption's label and on time."""
    frames = -(-len(wav) * FRAME_RATE // SAMPLE_RATE)
    t = np.arange(frames)[:, None]
    k = np.arange(n_codebooks)[None, :]
    return (label * 3 + k * 5 + (t // 4) * (k + 1)) % codebook_size


def _write_audio_dir(
    root: str,
    data: str,
    items: Sequence[Tuple[str, np.ndarray, Dict[str, str]]],
    n_codebooks: int,
    codebook_size: int,
    labels: Dict[str, int],
) -> None:
    audio_dir = os.path.join(root, "dump", "audio", data)
    codes_dir = os.path.join(root, "dump", "codec", data)
    os.makedirs(os.path.join(audio_dir, "data"), exist_ok=True)
    os.makedirs(os.path.join(codes_dir, "shards"), exist_ok=True)
    wav_scp, num_samples, tables = {}, {}, {}
    ark = os.path.join(codes_dir, "shards", "codes.1.ark")
    scp = os.path.join(codes_dir, "codes.scp")
    frames = {}
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for utt, wav, texts in items:
            path = os.path.abspath(os.path.join(audio_dir, "data", f"{utt}.flac"))
            soundfile.write(path, wav, SAMPLE_RATE)
            wav_scp[utt] = path
            num_samples[utt] = str(len(wav))
            for name, value in texts.items():
                tables.setdefault(name, {})[utt] = value
            codes = _codes(wav, labels[utt], n_codebooks, codebook_size)
            writer(utt, flatten_codes(codes))
            frames[utt] = str(len(codes))
    write_kv(os.path.join(audio_dir, "wav.scp"), wav_scp.items())
    write_kv(os.path.join(audio_dir, "utt2num_samples"), num_samples.items())
    for name, table in tables.items():
        write_kv(os.path.join(audio_dir, name), table.items())
    write_kv(os.path.join(codes_dir, "utt2num_frames"), frames.items())
    write_geometry(
        codes_dir,
        {
            "codec": "TinyCodes",
            "sample_rate": SAMPLE_RATE,
            "frame_rate": float(FRAME_RATE),
            "n_codebooks": n_codebooks,
            "codebook_size": codebook_size,
        },
    )


def _dialogue(utt: str, user: List[dict], answer: str) -> dict:
    return {
        "id": utt,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": user},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
    }


def _write_jsonl(path: str, rows: Sequence[dict]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in sorted(rows, key=lambda r: r["id"]):
            f.write(json.dumps(row) + "\n")


def _length_model(tokenizer, n_codebooks: int) -> LengthModel:
    """Stage 5's length model for the tiny corpus and the tiny config."""
    return LengthModel(
        count_text_tokens=lambda t: len(tokenizer.encode(t)),
        codec_frame_rate=float(FRAME_RATE),
        n_codebooks=n_codebooks,
        audio_input_frame_rate=encoder_geometry(
            tiny_train_config()["audio_encoder_conf"]
        ).frame_rate,
        sample_rate=SAMPLE_RATE,
    )


def write_tiny_corpus(
    root: str,
    n_sound: int = 12,
    n_speech: int = 6,
    n_text: int = 8,
    n_codebooks: int = 3,
    codebook_size: int = 16,
    splits: Sequence[str] = ("train", "valid"),
    seed: int = 0,
) -> Dict[str, str]:
    """Writes the corpus; returns the paths a training run needs.

    Keys: ``text_tokenizer`` and ``manifests_<split>`` for each split.
    """
    rng = np.random.default_rng(seed)
    texts: List[str] = []
    per_split = {}
    for split in splits:
        sound, speech, dialogues, labels = [], [], [], {}
        for i in range(n_sound):
            count = 1 + int(rng.integers(len(COUNTS)))
            pitch = str(rng.choice(list(PITCHES)))
            event = str(rng.choice(EVENTS))
            utt = f"tinysound_{split}_{i:04d}"
            caption = f"{COUNTS[count - 1]} {pitch} {event}s"
            rich = (
                f"Keywords: {event}. Layout: {COUNTS[count - 1]} {event}s. "
                f"Description: {pitch} pitched."
            )
            labels[utt] = count * 4 + list(PITCHES).index(pitch) * 2 + i % 2
            wav = _clip(count, PITCHES[pitch], rng)
            sound.append((utt, wav, {"text": caption, "rich_text": rich}))
            qa = [
                {"type": "audio", "audio": utt},
                {"type": "text", "text": "How many sounds?"},
            ]
            dialogues.append(_dialogue(f"{utt}_qa0", qa, COUNTS[count - 1]))
            texts += [caption, rich, "How many sounds?", COUNTS[count - 1]]
        for i in range(n_speech):
            words = " ".join(rng.choice(["hello", "world", "sound", "tone"], 3))
            utt = f"tinyspeech_{split}_{i:04d}"
            labels[utt] = 1 + i % 3
            wav = _clip(2, 440.0 + 110 * (i % 3), rng)
            speech.append((utt, wav, {"text": words}))
            texts.append(words)
        chats = []
        for i in range(n_text):
            a, b = int(rng.integers(1, 9)), int(rng.integers(1, 9))
            question = f"Add {a} and {b}."
            chats.append(
                _dialogue(
                    f"tinytext_{split}_{i:04d}",
                    [{"type": "text", "text": question}],
                    str(a + b),
                )
            )
            texts += [question, str(a + b)]
        per_split[split] = (sound, speech, dialogues, chats, labels)

    tokenizer_dir = os.path.join(root, "data", "text_tokenizer")
    tokenizer = train_sentencepiece(texts + ["Be brief."], tokenizer_dir, 120)
    lengths = _length_model(tokenizer, n_codebooks)
    out = {"text_tokenizer": tokenizer_dir}
    for split, (sound, speech, dialogues, chats, labels) in per_split.items():
        geometry = (n_codebooks, codebook_size, labels)
        _write_audio_dir(root, f"tiny_sound_{split}", sound, *geometry)
        _write_audio_dir(root, f"tiny_speech_{split}", speech, *geometry)
        audio_root = os.path.join(root, "dump", "audio")
        _write_jsonl(
            os.path.join(audio_root, f"tiny_sound_{split}", "dialogue.jsonl"),
            dialogues,
        )
        _write_jsonl(
            os.path.join(audio_root, f"tiny_text_{split}", "dialogue.jsonl"), chats
        )
        manifest_dir = os.path.join(root, "dump", "manifests", split)
        for data, task in TINY_DATASETS:
            build_manifest(
                name=f"{data}_{task}",
                task=task,
                split=split,
                data_dir=os.path.join(audio_root, f"{data}_{split}"),
                codes_dir=os.path.join(root, "dump", "codec", f"{data}_{split}"),
                lengths=lengths,
                out_dir=manifest_dir,
            )
        out[f"manifests_{split}"] = manifest_dir
    return out


def tiny_train_config(**overrides: Any) -> Dict[str, Any]:
    """Training options (the YAML of ``--config``) for the tiny corpus."""
    conf: Dict[str, Any] = {
        "backbone": "hf_causal_lm",
        "backbone_conf": {"config": tiny_qwen2_config()},
        "audio_encoder": "whisper",
        "audio_encoder_conf": {"config": tiny_whisper_config()},
        "audio_adapter": "mlp",
        "model_conf": {"cfg_dropout_prob": 0.05},
        "batch_mode": "pack",
        "max_tokens_per_row": 256,
        "rows_per_batch": 2,
        "optim": "adamw",
        "optim_conf": {"lr": 0.003, "weight_decay": 0.0},
        "max_epoch": 2,
        "num_workers": 0,
        "log_interval": 2,
        "best_model_criterion": [["valid", "loss", "min"]],
        "keep_nbest_models": 1,
    }
    conf.update(copy.deepcopy(overrides))
    return conf


def tiny_train_args(corpus: Dict[str, str], config: str, output_dir: str) -> List[str]:
    """Command line of ``espnet2.bin.ualm_train`` for a tiny corpus and config."""
    return [
        "--config",
        config,
        "--text_tokenizer",
        corpus["text_tokenizer"],
        "--train_manifest_dir",
        corpus["manifests_train"],
        "--valid_manifest_dir",
        corpus["manifests_valid"],
        "--output_dir",
        output_dir,
        "--ngpu",
        "0",
    ]


def write_tiny_pairs(
    root: str, n_codebooks: int = 3, codebook_size: int = 16, seed: int = 0
) -> Dict[str, str]:
    """Preference pairs over a tiny corpus written in ``root``: per sound
    clip, its caption, its own codes as the chosen reply and another
    caption's codes as the rejected one, laid out as the pair stage writes
    them (``dump/pairs/<name>/``: ``text``, the chosen codes, ``rejected/``), with a
    ``text_to_audio_preference`` manifest per split.

    Returns ``manifests_<split>`` for each split ``write_tiny_corpus`` wrote.
    """
    tokenizer = load_text_tokenizer(os.path.join(root, "data", "text_tokenizer"))
    lengths = _length_model(tokenizer, n_codebooks)
    rng = np.random.default_rng(seed)
    out = {}
    for split in ("train", "valid"):
        source = os.path.join(root, "dump", "codec", f"tiny_sound_{split}")
        if not os.path.isdir(source):
            continue
        codes = CodesReader(source)
        captions = read_kv(
            os.path.join(root, "dump", "audio", f"tiny_sound_{split}", "text")
        )
        utts = sorted(captions)
        others = [
            utts[(i + 1 + int(rng.integers(len(utts) - 1))) % len(utts)]
            for i in range(len(utts))
        ]
        pair_dir = os.path.join(root, "dump", "pairs", f"tiny_sound_pairs_{split}")
        for side, pick in (("", utts), ("rejected", others)):  # chosen: the top
            side_dir = os.path.join(pair_dir, side)
            os.makedirs(side_dir, exist_ok=True)
            ark, scp = (
                os.path.join(side_dir, "codes.ark"),
                os.path.join(side_dir, "codes.scp"),
            )
            frames = {}
            with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
                for utt, src in zip(utts, pick):
                    writer(utt, flatten_codes(codes[src]))
                    frames[utt] = str(len(codes[src]))
            write_kv(os.path.join(side_dir, "utt2num_frames"), frames.items())
            write_geometry(side_dir, codes.geometry)
        write_kv(os.path.join(pair_dir, "text"), ((u, captions[u]) for u in utts))
        manifest_dir = os.path.join(root, "dump", "manifests_pairs", split)
        build_manifest(
            name="tiny_sound_text_to_audio_preference",
            task="text_to_audio_preference",
            split=split,
            data_dir=pair_dir,
            codes_dir=pair_dir,
            lengths=lengths,
            out_dir=manifest_dir,
        )
        out[f"manifests_{split}"] = manifest_dir
    return out
