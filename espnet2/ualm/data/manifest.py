"""Stage 5: per-dataset manifests and length statistics for training.

A manifest says which task reads which files of one formatted data directory,
lists the examples that have every file the task needs, and gives a length
(in LM positions) per example: ESPnet's shape-file format, which batch
samplers and sequence packing read. Examples lacking a file the task needs
are rejected with the missing file named.

What a task reads and which template lays it out is its declaration in the
task registry (``espnet2.ualm.tokens.tasks``). The length is the example's
exact sequence length as the training dataset builds it
(``SequenceBuilder``): the task's template rendered with the example's
texts, its prompt text tokenized with them, plus ``<bos>`` and per turn the
role and modality markers and the closing token; discrete audio
takes its frames + K (closing frame and delay pattern), continuous audio
input the encoder's frame count (``LengthModel``).
"""

import json
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from espnet2.ualm.data.io import read_jsonl
from espnet2.ualm.data.kaldi_dir import read_kv, write_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.tokens.tasks import (
    FILE_NAMES,
    REFLECTION_TEMPLATE,
    REJECTED,
    TASKS,
    TaskRegistry,
    TaskSpec,
)

# A rough per-message constant for synthetic length mixes (bench_packing.py);
# the manifests count each example's template exactly (``example_length``).
TEMPLATE_OVERHEAD = 8


@dataclass
class LengthModel:
    """Converts an item's content into LM positions for the shape files.

    ``sample_rate``: the formatted audio's rate (``utt2num_samples``);
    ``audio_input_sample_rate``: the acoustic encoder's (default the same),
    to which the dataset resamples audio input before counting frames.
    """

    count_text_tokens: Callable[[str], int]
    codec_frame_rate: float
    n_codebooks: int
    audio_input_frame_rate: float
    sample_rate: int
    audio_input_sample_rate: Optional[int] = None

    def codes(self, num_frames: int) -> int:
        """Positions of a discrete audio segment: its frames, the closing frame
        and K - 1 delay steps (``SequenceBuilder._audio_block``)."""
        return int(num_frames) + self.n_codebooks

    def wav(self, num_samples: int) -> int:
        """Encoder frames (placeholders) of ``num_samples`` formatted samples,
        as ``AudioInputGeometry.num_frames`` counts them after resampling."""
        n = int(num_samples)
        rate = self.audio_input_sample_rate or self.sample_rate
        if rate != self.sample_rate:  # data.io.resample's length, exactly
            g = math.gcd(int(self.sample_rate), int(rate))
            orig, new = int(self.sample_rate) // g, int(rate) // g
            n = -(-n * new // orig)
        per_frame = Fraction(rate) / Fraction(self.audio_input_frame_rate)
        return max(1, math.ceil(Fraction(n) / per_frame))

    # a turn: <role> <modality> content <eos>/<eot> (audio: closing frame)
    def text_turn(self, text: str) -> int:
        return 3 + self.count_text_tokens(text)

    def audio_turn(self, num_frames: int) -> int:
        return 2 + self.codes(num_frames)

    def audio_input_turn(self, num_samples: int) -> int:
        return 3 + self.wav(num_samples)


def _file_paths(
    data_dir: str, codes_dir: str, needs: Tuple[str, ...]
) -> Dict[str, str]:
    """Path of each file ``needs`` names, and of the length files beside them."""
    paths = {
        need: os.path.join(
            codes_dir if need == "codes" else data_dir, FILE_NAMES.get(need, need)
        )
        for need in needs
    }
    paths["num_samples"] = os.path.join(data_dir, "utt2num_samples")
    paths["num_frames"] = os.path.join(codes_dir, "utt2num_frames")
    if REJECTED in needs:
        rejected_dir = os.path.dirname(paths[REJECTED])
        paths["rejected_num_frames"] = os.path.join(rejected_dir, "utt2num_frames")
    return paths


def build_manifest(
    name: str,
    task: str,
    split: str,
    data_dir: str,
    codes_dir: str,
    lengths: LengthModel,
    out_dir: str,
    tasks: TaskRegistry = TASKS,
    dataset: Optional[str] = None,
) -> dict:
    """Writes ``<out_dir>/<name>.json``, ``.shape`` and ``.rejected.tsv``.

    ``tasks``: the registry declaring ``task`` (its files and template).
    ``dataset``: the datasets-config entry (``<data>_<task>``) the manifest
    belongs to, the same in every split (default: ``name``); training matches
    its validation manifests by it.
    """
    try:
        spec = tasks.get(task)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from e
    if spec.template == REFLECTION_TEMPLATE:
        # its one-round template reads two clips an utterance's codes cannot hold
        raise ValueError(
            f"{name}: task {task} is decoded by UALM.reflect, not trained from "
            "a data dir; its training rounds are the reflection converter's "
            "dialogue.jsonl, task reasoning (doc/rich_captions.md)"
        )
    needs = spec.files
    template = tasks.templates[spec.template]
    paths = _file_paths(data_dir, codes_dir, needs)
    for need in needs:
        if not os.path.exists(paths[need]):
            raise FileNotFoundError(
                f"{name}: task {task} needs {paths[need]} (run the earlier stages)"
            )
    rejects = RejectLog(f"manifest {name}")
    shape: Dict[str, int] = {}
    if template.conversation:
        samples = (
            {k: int(v) for k, v in read_kv(paths["num_samples"]).items()}
            if "wav" in needs
            else {}
        )
        frames = (
            {k: int(v) for k, v in read_kv(paths["num_frames"]).items()}
            if os.path.exists(paths["num_frames"])
            else {}
        )
        for conv in read_jsonl(paths["dialogue"], rejects):
            n, missing = _dialogue_length(conv, samples, frames, lengths)
            if missing:
                rejects.add(conv["id"], paths["dialogue"], f"missing audio {missing}")
            else:
                shape[conv["id"]] = n
    else:
        per_file = _per_item_values(needs, paths)
        all_ids = sorted(set().union(*[set(v) for v in per_file.values()]))
        for utt in all_ids:
            absent = [need for need in needs if utt not in per_file[need]]
            if absent:
                rejects.add(utt, data_dir, f"missing {paths[absent[0]]} entry")
                continue
            item = {need: per_file[need][utt] for need in needs}
            shape[utt] = example_length(spec.name, item, lengths, name, tasks)
    os.makedirs(out_dir, exist_ok=True)
    write_kv(os.path.join(out_dir, f"{name}.shape"), shape.items())
    rejects.write(os.path.join(out_dir, f"{name}.rejected.tsv"))
    values = np.array(list(shape.values()) or [0])
    manifest = {
        "name": name,
        "dataset": dataset or name,
        "task": spec.name,
        "group": spec.group,
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


def _per_item_values(
    needs: Tuple[str, ...], paths: Dict[str, str]
) -> Dict[str, Dict[str, object]]:
    """Per file the task needs: codec frame counts, sample counts, texts."""
    out: Dict[str, Dict[str, object]] = {}
    for need in needs:
        if need in ("codes", REJECTED):
            frames = paths["num_frames" if need == "codes" else "rejected_num_frames"]
            out[need] = {k: int(v) for k, v in read_kv(frames).items()}
        elif need == "wav":
            out[need] = {k: int(v) for k, v in read_kv(paths["num_samples"]).items()}
        else:
            out[need] = read_kv(paths[need])
    return out


def example_length(
    task: str,
    item: Mapping[str, object],
    lengths: LengthModel,
    where: str = "",
    tasks: TaskRegistry = TASKS,
) -> int:
    """Positions of an example of templated ``task`` as ``SequenceBuilder``
    lays it out.

    ``item``: the task's files (``TaskSpec.files``) for one example: texts,
    ``codes`` codec frames, ``wav`` samples. Text segments are rendered with
    the example's texts (``TaskSpec.file_of``) and tokenized whole, as the
    builder does. A preference example is both its replies (``rejected_codes``
    frames for the second), which the dataset packs into one row.
    """
    spec = tasks.get(task)
    if spec.preference:  # both replies, packed into one row by the dataset
        rejected = {**item, "codes": _item(spec.name, item, REJECTED, where)}
        return sum(
            _templated_length(spec, tasks, one, lengths, where)
            for one in (item, rejected)
        )
    return _templated_length(spec, tasks, item, lengths, where)


def _templated_length(
    spec: TaskSpec,
    tasks: TaskRegistry,
    item: Mapping[str, object],
    lengths: LengthModel,
    where: str,
) -> int:
    template = tasks.templates[spec.template]
    n = 1  # <bos>
    for message in template.messages:
        for seg in message.segments:
            if seg.kind == "text":
                texts = _TemplateTexts(template.name, spec.file_of, item, where)
                n += lengths.text_turn(seg.value.format_map(texts))
            elif seg.kind == "audio":
                n += lengths.audio_turn(_item(template.name, item, "codes", where))
            else:
                n += lengths.audio_input_turn(_item(template.name, item, "wav", where))
    return n


def _item(template: str, item: Mapping[str, object], what: str, where: str):
    if what not in item:
        raise ValueError(
            f"{where}: template {template!r} reads {what!r}, which the example's "
            f"files {sorted(item)} lack"
        )
    return item[what]


class _TemplateTexts(dict):
    """``format_map`` lookup of a template's text fields in the item's files."""

    def __init__(
        self,
        template: str,
        file_of: Callable[[str], str],
        item: Mapping[str, object],
        where: str,
    ):
        super().__init__()
        self.template, self.file_of, self.item = template, file_of, item
        self.where = where

    def __missing__(self, field: str) -> str:
        return str(_item(self.template, self.item, self.file_of(field), self.where))


def _dialogue_length(
    conv: dict,
    samples: Dict[str, int],
    frames: Dict[str, int],
    lengths: LengthModel,
) -> Tuple[int, Optional[str]]:
    """Positions of a ``dialogue.jsonl`` conversation, or the missing audio id.

    As ``conversation_from_dialogue``: assistant ``audio`` is codec codes
    (``utt2num_frames``), other audio is encoder input (``utt2num_samples``).
    """
    n = 1  # <bos>
    for msg in conv["messages"]:
        for seg in msg.get("content") or ():
            kind = seg.get("type")
            if kind == "text":
                n += lengths.text_turn(str(seg["text"]))
            elif kind == "audio" and msg.get("role") == "assistant":
                if seg["audio"] not in frames:
                    return 0, seg["audio"]
                n += lengths.audio_turn(frames[seg["audio"]])
            elif kind in ("audio", "audio_input"):
                if seg["audio"] not in samples:
                    return 0, seg["audio"]
                n += lengths.audio_input_turn(samples[seg["audio"]])
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
