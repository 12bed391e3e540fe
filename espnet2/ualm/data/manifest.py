"""Stage 5: per-dataset manifests and length statistics for training.

A manifest says which task reads which files of one formatted data directory,
lists the examples that have every file the task needs, and gives a length
(in LM positions) per example: ESPnet's shape-file format, which batch
samplers and sequence packing read. Examples lacking a file the task needs
are rejected with the missing file named.
"""

import json
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from espnet2.ualm.data.audio_format import read_jsonl
from espnet2.ualm.data.kaldi_dir import read_kv, write_kv
from espnet2.ualm.data.rejects import RejectLog

# What each task reads. "codes": discrete audio targets from stage 4;
# "wav": audio for the continuous acoustic encoder (understanding input).
TASK_FILES: Dict[str, Tuple[str, ...]] = {
    "text_to_audio": ("text", "codes"),
    "rich_text_to_audio": ("text", "rich_text", "codes"),
    "audio_caption": ("wav", "text"),
    "asr": ("wav", "text"),
    "tts": ("text", "codes"),
    "audio_qa": ("wav", "dialogue"),
    "text_dialogue": ("dialogue",),
}

# Fixed positions a template adds around the content (bos, role and modality
# markers, eos): a small constant per message, used only for length estimates.
TEMPLATE_OVERHEAD = 8


@dataclass
class LengthModel:
    """Converts an item's content into LM positions for the shape files."""

    count_text_tokens: Callable[[str], int]
    codec_frame_rate: float
    n_codebooks: int
    audio_input_frame_rate: float
    sample_rate: int

    def codes(self, num_frames: int) -> int:
        return num_frames + self.n_codebooks - 1  # delay pattern adds K-1 steps

    def wav(self, num_samples: int) -> int:
        return int(
            np.ceil(num_samples / self.sample_rate * self.audio_input_frame_rate)
        )


def _file_paths(data_dir: str, codes_dir: str) -> Dict[str, str]:
    return {
        "text": os.path.join(data_dir, "text"),
        "rich_text": os.path.join(data_dir, "rich_text"),
        "wav": os.path.join(data_dir, "wav.scp"),
        "num_samples": os.path.join(data_dir, "utt2num_samples"),
        "dialogue": os.path.join(data_dir, "dialogue.jsonl"),
        "codes": os.path.join(codes_dir, "codes.scp"),
        "num_frames": os.path.join(codes_dir, "utt2num_frames"),
    }


def build_manifest(
    name: str,
    task: str,
    split: str,
    data_dir: str,
    codes_dir: str,
    lengths: LengthModel,
    out_dir: str,
) -> dict:
    """Writes ``<out_dir>/<name>.json``, ``.shape`` and ``.rejected.tsv``."""
    if task not in TASK_FILES:
        raise ValueError(f"{name}: unknown task {task!r}; known: {sorted(TASK_FILES)}")
    needs = TASK_FILES[task]
    paths = _file_paths(data_dir, codes_dir)
    for need in needs:
        if not os.path.exists(paths[need]):
            raise FileNotFoundError(
                f"{name}: task {task} needs {paths[need]} (run the earlier stages)"
            )
    rejects = RejectLog(f"manifest {name}")
    shape: Dict[str, int] = {}
    if "dialogue" in needs:
        audio_len = (
            {k: lengths.wav(int(v)) for k, v in read_kv(paths["num_samples"]).items()}
            if "wav" in needs
            else {}
        )
        for conv in read_jsonl(paths["dialogue"], rejects):
            n, missing = _dialogue_length(conv, audio_len, lengths)
            if missing:
                rejects.add(conv["id"], paths["dialogue"], f"missing audio {missing}")
            else:
                shape[conv["id"]] = n
    else:
        per_file = _per_item_lengths(needs, paths, lengths)
        all_ids = sorted(set().union(*[set(v) for v in per_file.values()]))
        for utt in all_ids:
            absent = [need for need in needs if utt not in per_file[need]]
            if absent:
                rejects.add(utt, data_dir, f"missing {paths[absent[0]]} entry")
                continue
            n = sum(per_file[need][utt] for need in needs)
            shape[utt] = n + 2 * TEMPLATE_OVERHEAD
    os.makedirs(out_dir, exist_ok=True)
    write_kv(os.path.join(out_dir, f"{name}.shape"), shape.items())
    rejects.write(os.path.join(out_dir, f"{name}.rejected.tsv"))
    values = np.array(list(shape.values()) or [0])
    manifest = {
        "name": name,
        "task": task,
        "split": split,
        "data_dir": os.path.abspath(data_dir),
        "files": {need: os.path.abspath(paths[need]) for need in needs},
        "shape_file": os.path.abspath(os.path.join(out_dir, f"{name}.shape")),
        "num_examples": len(shape),
        "num_rejected": len(rejects),
        "length": {
            "total": int(values.sum()),
            "mean": float(values.mean()),
            "max": int(values.max()),
            "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95)),
        },
    }
    with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def _per_item_lengths(
    needs: Tuple[str, ...], paths: Dict[str, str], lengths: LengthModel
) -> Dict[str, Dict[str, int]]:
    out: Dict[str, Dict[str, int]] = {}
    for need in needs:
        if need in ("text", "rich_text"):
            out[need] = {
                k: lengths.count_text_tokens(v) for k, v in read_kv(paths[need]).items()
            }
        elif need == "codes":
            frames = read_kv(paths["num_frames"])
            out[need] = {k: lengths.codes(int(v)) for k, v in frames.items()}
        elif need == "wav":
            samples = read_kv(paths["num_samples"])
            out[need] = {k: lengths.wav(int(v)) for k, v in samples.items()}
    return out


def _dialogue_length(
    conv: dict, audio_len: Dict[str, int], lengths: LengthModel
) -> Tuple[int, Optional[str]]:
    n = 1
    for msg in conv["messages"]:
        n += TEMPLATE_OVERHEAD
        for seg in msg["content"]:
            if seg["type"] == "text":
                n += lengths.count_text_tokens(seg["text"])
            elif seg["type"] == "audio":
                if seg["audio"] not in audio_len:
                    return 0, seg["audio"]
                n += audio_len[seg["audio"]]
    return n, None


def plot_length_histograms(manifests: List[dict], path: str) -> None:
    """One histogram of example lengths per training manifest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(manifests), 1, figsize=(7, 1.8 * len(manifests) + 0.5), squeeze=False
    )
    for ax, m in zip(axes[:, 0], manifests):
        values = [int(v) for v in read_kv(m["shape_file"]).values()]
        ax.hist(values, bins=40, color="tab:blue")
        ax.set_title(
            f"{m['name']} ({m['task']}): {m['num_examples']} examples, "
            f"{m['length']['total']} positions",
            fontsize=9,
        )
    axes[-1, 0].set_xlabel("LM positions per example")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
