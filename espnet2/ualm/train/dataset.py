"""UALM training data: stage-5 manifests -> built sequences -> model batches.

``UALMDataset`` is indexed by the *row keys* of ``espnet2.ualm.train.sampler``
(``"<manifest>/<id> + <manifest>/<id> ..."``); ESPnet's ``SequenceIterFactory``
hands it each key of a batch and ``UALMCollateFn`` lays the rows out with
``collate_sequences`` (the batch keys of ``UALMModel.forward``).

An example is read from the files its manifest names (stage 5,
``doc/data_layout.md``) and rendered with its task's template, both declared
in the task registry (``espnet2.ualm.tokens.tasks``; ``audio_qa`` data, for
one, is ``dialogue.jsonl`` read through the ``audio_dialogue`` template).
Stage 5 counts each example's length with the same template
(``espnet2.ualm.data.manifest.example_length``).

A text field ``f`` of a template is read from the data directory's file
``TaskSpec.file_of(f)``, so a recipe-defined task (``--task_templates``)
with a field ``question`` reads ``<data_dir>/question``. Discrete audio
(``audio`` segments) is the example's codec codes (``CodesReader``), continuous
audio input (``audio_input`` segments) its waveform, read with
``data.io.load_audio`` and resampled to the encoder's rate when needed; its
placeholder count is what the encoder gives for it (``AudioInputGeometry``).

A bad example (missing codes, text or audio, codes outside the codebook)
raises ``UALMDataError`` naming the example key and the file.
"""

import dataclasses
import json
import os
from typing import (
    Any,
    Collection,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np
import torch

from espnet2.ualm.data.codes_io import CodesReader
from espnet2.ualm.data.io import AudioReadError, JsonlError, iter_jsonl, load_audio
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.model.audio_encoder import EncoderGeometry
from espnet2.ualm.model.batch import collate_sequences
from espnet2.ualm.tokens.conversation import AudioInputSegment, audio_references
from espnet2.ualm.tokens.sequence import BuiltSequence, SequenceBuilder
from espnet2.ualm.tokens.tasks import (
    FILE_NAMES,
    REJECTED,
    TASKS,
    TaskRegistry,
    TaskSpec,
)
from espnet2.ualm.tokens.templates import TaskTemplate, TemplateError, format_fields
from espnet2.ualm.train.blend import KEY_SEP, split_key
from espnet2.ualm.train.sampler import split_row_key


class UALMDataError(ValueError):
    """An example cannot be loaded; the message names its key and the file."""


# What the data side must know of the acoustic encoder: its rate and how many
# frames (placeholders) a clip gives; the encoder module owns it.
AudioInputGeometry = EncoderGeometry


@dataclasses.dataclass
class UALMRow:
    """One batch row: its examples in order, and the waveforms they listen to;
    for preference data, whether each example is its pair's chosen reply
    (each pair: chosen, then rejected)."""

    examples: List[BuiltSequence]
    waveforms: Dict[str, np.ndarray]
    chosen: Optional[List[bool]] = None


def read_manifest(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    for key in ("name", "task", "data_dir", "files", "shape_file"):
        if key not in manifest:
            raise ValueError(f"{path}: not a stage-5 manifest (no {key!r})")
    if KEY_SEP in manifest["name"]:
        raise ValueError(f"{path}: manifest name may not contain {KEY_SEP!r}")
    return manifest


def manifest_paths(manifest_dir: str) -> Dict[str, str]:
    """``name -> path`` of the manifests of a stage-5 split directory."""
    if not os.path.isdir(manifest_dir):
        raise FileNotFoundError(f"manifest directory {manifest_dir} not found")
    out = {}
    for fname in sorted(os.listdir(manifest_dir)):
        if fname.endswith(".json") and fname != "stats.json":
            out[fname[: -len(".json")]] = os.path.join(manifest_dir, fname)
    if not out:
        raise FileNotFoundError(f"no manifests (*.json) in {manifest_dir}")
    return out


class _Source:
    """The files of one manifest, opened on first use (cheap to pickle)."""

    def __init__(self, manifest: Mapping[str, Any]):
        self.name: str = manifest["name"]
        self.task: str = manifest["task"]
        self.data_dir: str = manifest["data_dir"]
        self.files: Dict[str, str] = dict(manifest["files"])
        self._tables: Dict[str, Dict[str, str]] = {}
        self._codes: Dict[str, CodesReader] = {}
        self._dialogues: Optional[Dict[str, list]] = None

    def path(self, what: str) -> str:
        """The file ``what``: the manifest's entry, else the data dir's file."""
        if what in self.files:
            return self.files[what]
        if what == "codes":
            raise UALMDataError(f"manifest {self.name} (task {self.task}) has no codes")
        return os.path.join(self.data_dir, FILE_NAMES.get(what, what))

    def table(self, what: str) -> Dict[str, str]:
        """A ``<id> <value>`` file of the data dir (text, rich_text, wav.scp)."""
        if what not in self._tables:
            path = self.path(what)
            if not os.path.isfile(path):
                raise UALMDataError(
                    f"manifest {self.name} (task {self.task}) needs {path}, "
                    "which does not exist"
                )
            self._tables[what] = read_kv(path)
        return self._tables[what]

    def lookup(self, what: str, utt: str) -> str:
        table = self.table(what)
        if utt not in table:
            raise UALMDataError(f"no entry {utt!r} in {self.path(what)}")
        return table[utt]

    def codes_reader(self, what: str = "codes") -> CodesReader:
        """Reader of the codes directory ``what`` (``codes``, or a preference
        task's ``rejected_codes``)."""
        if what not in self._codes:
            try:
                self._codes[what] = CodesReader(os.path.dirname(self.path(what)))
            except FileNotFoundError as e:
                raise UALMDataError(f"{what} of {self.name}: {e}") from e
        return self._codes[what]

    def codes(self, utt: str, what: str = "codes") -> np.ndarray:
        reader = self.codes_reader(what)
        if utt not in reader:
            raise UALMDataError(f"no codes for {utt!r} in {self.path(what)}")
        try:
            return reader[utt]
        except (OSError, ValueError) as e:
            raise UALMDataError(
                f"codes of {utt!r} ({self.path(what)}) unreadable: {e}"
            ) from e

    def dialogues(self) -> Dict[str, list]:
        if self._dialogues is None:
            path = self.path("dialogue")
            dialogues = {}
            try:
                for lineno, row in iter_jsonl(path):
                    if not isinstance(row, dict) or not {"id", "messages"} <= set(row):
                        raise JsonlError(path, lineno, 'no "id" and "messages"')
                    dialogues[row["id"]] = row["messages"]
            except JsonlError as e:
                raise UALMDataError(f"{e.where}: bad line: {e.reason}") from e
            self._dialogues = dialogues
        return self._dialogues

    def dialogue(self, utt: str) -> list:
        if utt not in self.dialogues():
            raise UALMDataError(f"no dialogue {utt!r} in {self.path('dialogue')}")
        return self._dialogues[utt]

    def waveform(self, utt: str, sample_rate: int) -> np.ndarray:
        """Mono float32 audio of ``utt`` at ``sample_rate``."""
        path = self.lookup("wav", utt)
        try:
            wav, _ = load_audio(path, sample_rate)
        except AudioReadError as e:
            raise UALMDataError(
                f"audio {utt!r} ({path}, from {self.path('wav')}): {e.reason}"
            ) from e
        return wav


class UALMDataset(torch.utils.data.Dataset):
    """Row key -> ``(row key, UALMRow)``, for ``SequenceIterFactory``.

    Args:
        manifests: the stage-5 manifests (JSON mappings) of every source the
            keys may name.
        builder: lays conversations out in the model's vocabulary.
        audio_input: the encoder's geometry; None for a model without audio
            input (understanding examples then raise).
        tasks: the registry declaring the manifests' tasks (default: the
            built-in tasks).
    """

    def __init__(
        self,
        manifests: Sequence[Mapping[str, Any]],
        builder: SequenceBuilder,
        audio_input: Optional[AudioInputGeometry] = None,
        tasks: TaskRegistry = TASKS,
    ):
        self.sources: Dict[str, _Source] = {}
        for manifest in manifests:
            source = _Source(manifest)
            if source.name in self.sources:
                raise ValueError(f"two manifests are named {source.name}")
            self.sources[source.name] = source
        self.builder = builder
        self.audio_input = audio_input
        self.tasks = tasks
        for source in self.sources.values():
            self.spec_of(source)  # unknown tasks fail here, not mid-epoch

    def spec_of(self, source: _Source) -> TaskSpec:
        if source.task not in self.tasks:
            raise ValueError(
                f"manifest {source.name}: unknown task {source.task!r}; tasks: "
                f"{sorted(self.tasks)} (declare one with --task_templates)"
            )
        return self.tasks.get(source.task)

    def template_of(self, source: _Source) -> TaskTemplate:
        return self.tasks.templates[self.spec_of(source).template]

    def preload(self) -> "UALMDataset":
        """Reads every table the examples need now.

        Otherwise each process reads them on first use, and ESPnet's
        DataLoader workers are new processes every epoch.
        """
        for source in self.sources.values():
            for what in sorted(set(source.files) | set(self.spec_of(source).files)):
                if what in ("codes", REJECTED):
                    source.codes_reader(what)
                elif what == "dialogue":
                    source.dialogues()
                else:
                    source.table(what)
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sources={sorted(self.sources)}, "
            f"audio_input={self.audio_input})"
        )

    def __getitem__(self, row_key: str) -> Tuple[str, UALMRow]:
        examples, waveforms, chosen = [], {}, []
        for key in split_row_key(row_key):
            replies = ("codes", REJECTED) if self.is_pair(key) else ("codes",)
            for reply in replies:
                seq, waves = self.example(key, reply)
                examples.append(seq)
                waveforms.update(waves)
            chosen += [True, False] if len(replies) == 2 else [None]
        if None in chosen and any(c is not None for c in chosen):
            raise UALMDataError(
                f"row {row_key} mixes preference pairs and plain examples"
            )
        pairs = chosen if chosen[0] is not None else None
        return row_key, UALMRow(examples, waveforms, pairs)

    def is_pair(self, key: str) -> bool:
        """Whether the example ``key`` is a (chosen, rejected) preference pair."""
        name = split_key(key)[0]
        return name in self.sources and self.spec_of(self.sources[name]).preference

    # ----- one example ----------------------------------------------------------

    def example(
        self, key: str, reply: str = "codes"
    ) -> Tuple[BuiltSequence, Dict[str, np.ndarray]]:
        """The built sequence of ``"<manifest>/<id>"`` and its waveforms;
        ``reply="rejected_codes"``: a preference pair's rejected reply."""
        name, utt = split_key(key)
        if name not in self.sources:
            raise UALMDataError(f"example {key}: no manifest named {name!r}")
        source = self.sources[name]
        template = self.template_of(source)
        try:
            if template.conversation:
                fields, waves = self._conversation_fields(source, utt)
            else:
                spec = self.spec_of(source)
                fields, waves = self._template_fields(
                    source, spec, template, utt, reply
                )
            return self.builder.build_example(template, fields), waves
        except UALMDataError as e:
            raise UALMDataError(f"example {key} (task {source.task}): {e}") from e
        except (KeyError, ValueError, TemplateError) as e:
            raise UALMDataError(
                f"example {key} (task {source.task}, data {source.data_dir}): {e}"
            ) from e

    def _audio_input(
        self, source: _Source, utt: str
    ) -> Tuple[AudioInputSegment, np.ndarray]:
        if self.audio_input is None:
            raise UALMDataError(
                f"task {source.task} reads audio input, the model has no audio "
                "encoder (--audio_encoder none)"
            )
        wav = source.waveform(utt, self.audio_input.sample_rate)
        key = f"{source.name}{KEY_SEP}{utt}"
        return AudioInputSegment(key, self.audio_input.num_frames(len(wav))), wav

    def _template_fields(
        self,
        source: _Source,
        spec: TaskSpec,
        template: TaskTemplate,
        utt: str,
        reply: str = "codes",
    ) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        fields: Dict[str, Any] = {}
        waves: Dict[str, np.ndarray] = {}
        for message in template.messages:
            for seg in message.segments:
                names = format_fields(seg.value)
                if seg.kind == "text":
                    for f in names:
                        if f not in fields:
                            fields[f] = source.lookup(spec.file_of(f), utt)
                elif seg.kind == "audio":
                    fields[names[0]] = source.codes(utt, reply)
                else:
                    segment, wav = self._audio_input(source, utt)
                    fields[names[0]] = segment
                    waves[segment.key] = wav
        return fields, waves

    def _conversation_fields(
        self, source: _Source, utt: str
    ) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        """``dialogue.jsonl`` messages with audio ids made unique per source."""
        raw = source.dialogue(utt)
        discrete, continuous = audio_references(raw)
        codes = {aid: source.codes(aid) for aid in discrete}
        frames: Dict[str, int] = {}
        waves: Dict[str, np.ndarray] = {}
        for aid in sorted(continuous):
            segment, wav = self._audio_input(source, aid)
            frames[aid] = segment.num_frames
            waves[segment.key] = wav
        # Key the waveforms as "<manifest>/<audio id>": audio ids of two
        # packed examples from different data dirs may coincide.
        messages = []
        for msg in raw:
            content = []
            for part in msg.get("content") or ():
                kind = part.get("type")
                generated = msg.get("role") == "assistant" and kind == "audio"
                if kind in ("audio", "audio_input") and not generated:
                    part = {**part, "audio": f"{source.name}{KEY_SEP}{part['audio']}"}
                content.append(part)
            messages.append({**msg, "content": content})
        fields = {
            "messages": messages,
            "audio_codes": codes,
            "audio_input_frames": {
                f"{source.name}{KEY_SEP}{aid}": n for aid, n in frames.items()
            },
        }
        return fields, waves


class UALMCollateFn:
    """``[(row key, UALMRow)]`` -> ``(row keys, batch)`` for ``UALMModel``.

    ``pad_to_multiple_of``: round the padded length up (tensor-core friendly
    shapes on GPUs).
    """

    def __init__(self, pad_to_multiple_of: int = 1):
        if pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1: {pad_to_multiple_of}")
        self.pad_to_multiple_of = int(pad_to_multiple_of)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pad_to_multiple_of={self.pad_to_multiple_of})"

    def __call__(
        self, data: Collection[Tuple[str, UALMRow]]
    ) -> Tuple[List[str], Dict[str, torch.Tensor]]:
        keys = [key for key, _ in data]
        waveforms: Dict[str, torch.Tensor] = {}
        for _, row in data:
            for k, wav in row.waveforms.items():
                waveforms[k] = torch.from_numpy(wav)
        batch = collate_sequences(
            [row.examples for _, row in data],
            waveforms,
            pad_to_multiple_of=self.pad_to_multiple_of,
        )
        paired = [row.chosen is not None for _, row in data]
        if any(paired):
            if not all(paired):
                raise UALMDataError(
                    f"batch {keys} mixes preference pairs and plain examples"
                )
            # examples in row order; each pair is (chosen, rejected)
            chosen = [c for _, row in data for c in row.chosen]
            batch["chosen"] = torch.tensor(chosen, dtype=torch.bool)
            batch["pair_index"] = torch.arange(len(chosen)) // 2
        return keys, batch


def sources_of_batch(row_keys: Sequence[str]) -> List[str]:
    """Manifest names the rows of a batch read from, in first-seen order."""
    names: List[str] = []
    for row in row_keys:
        for key in split_row_key(row):
            name = split_key(key)[0]
            if name not in names:
                names.append(name)
    return names
