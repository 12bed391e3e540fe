"""Multi-dataset blending: which examples one training epoch reads.

UALM mixes generation, understanding and text data by *token* share (spec
section 3: a per-dataset weight in the config, generation oversampled 2x).
A ``Blend`` holds one ``BlendSource`` per stage-5 manifest and, for an epoch
of ``T`` tokens, gives each source a token target ``share * T``; the source
then contributes whole shuffled passes over its examples plus a random prefix
of one more pass until the target is reached. So a factor of 2 reads every
example exactly twice, a weight above a dataset's natural share oversamples
it, and one below reads a fresh random subset each epoch.

Determinism: the draw of a source depends only on ``(seed, source name)``;
resuming at an epoch reproduces it, and adding a dataset to the config does
not change what the others draw.

Keys are ``<manifest name>/<example id>``: the same utterance id appears in
several manifests (``asr`` and ``tts`` of one corpus), so the manifest name
makes it globally unique. Manifest names never contain ``/``.

ESPnet-SpeechLM's ``espnet2.speechlm.dataloader.iterator._resample`` is not
reused: it repeats a list by an example-count factor with the fractional part
fixed once for the whole run (and seeds it with ``hash()`` of strings, which
changes with ``PYTHONHASHSEED``), while the UALM blend needs token targets
(weights by tokens, epochs defined by a step count) drawn afresh per epoch.
"""

import dataclasses
import json
import logging
import os
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from espnet2.fileio.read_text import load_num_sequence_text
from espnet2.ualm.tokens.tasks import TASKS

KEY_SEP = "/"

# Token shares of the unified pre-training blend as the seed summary gives
# them (spec section 3). A paper note swaps them (text 39.2 %, generation
# 33.1 %): either way it is config, not code.
PAPER_GROUP_WEIGHTS: Dict[str, float] = {
    "generation": 0.392,
    "understanding": 0.331,
    "text": 0.277,
}


def make_key(name: str, example_id: str) -> str:
    """Globally unique key of one example of manifest ``name``."""
    return f"{name}{KEY_SEP}{example_id}"


def split_key(key: str) -> Tuple[str, str]:
    """``(manifest name, example id)`` of a key made by ``make_key``."""
    name, sep, example_id = key.partition(KEY_SEP)
    if not sep or not name or not example_id:
        raise ValueError(f"not a '<manifest>{KEY_SEP}<example id>' key: {key!r}")
    return name, example_id


@dataclass
class BlendSource:
    """One dataset of the blend: its examples, their lengths, its weight.

    ``weight`` is a share of the epoch's tokens (normalised over sources);
    ``factor`` scales the dataset's own token count instead (oversampling).
    Give one or the other: a weight already says how much to read.
    ``group``: the task's blend group (stage 5 writes it into the manifest);
    default: the built-in task's (``TaskSpec.group``), else the task itself.
    """

    name: str
    task: str
    ids: List[str]
    lengths: np.ndarray
    weight: Optional[float] = None
    factor: float = 1.0
    group: str = ""

    def __post_init__(self) -> None:
        if not self.group:
            self.group = TASKS.get(self.task).group if self.task in TASKS else self.task
        if not self.name or KEY_SEP in self.name:
            raise ValueError(f"source name must be non-empty without '/': {self.name}")
        self.lengths = np.asarray(self.lengths, dtype=np.int64).reshape(-1)
        if len(self.ids) != len(self.lengths):
            raise ValueError(
                f"{self.name}: {len(self.ids)} ids, {len(self.lengths)} lengths"
            )
        # Each id must be exactly one white-space-free word (checked in C).
        if len("\n".join(self.ids).split()) != len(self.ids):
            raise ValueError(f"{self.name}: example ids must be non-empty, no spaces")
        if len(self.lengths) and self.lengths.min() <= 0:
            raise ValueError(f"{self.name}: example lengths must be positive")
        if self.factor <= 0:
            raise ValueError(f"{self.name}: factor must be positive, got {self.factor}")
        if self.weight is not None:
            if self.weight < 0:
                raise ValueError(f"{self.name}: negative weight {self.weight}")
            if self.factor != 1.0:
                raise ValueError(f"{self.name}: give a weight or a factor, not both")

    @property
    def total_tokens(self) -> int:
        return int(self.lengths.sum())

    @classmethod
    def from_lengths(
        cls,
        name: str,
        task: str,
        lengths: Mapping[str, int],
        weight: Optional[float] = None,
        factor: float = 1.0,
        group: str = "",
    ) -> "BlendSource":
        ids = sorted(lengths)
        values = np.array([lengths[i] for i in ids])
        return cls(name, task, ids, values, weight, factor, group)

    @classmethod
    def from_manifest(
        cls, path: str, weight: Optional[float] = None, factor: float = 1.0
    ) -> "BlendSource":
        """Reads a stage-5 manifest JSON and its shape file (``<id> <length>``)."""
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
        shape = load_num_sequence_text(manifest["shape_file"], loader_type="csv_int")
        lengths = {k: v[0] for k, v in shape.items()}
        return cls.from_lengths(
            manifest["name"],
            manifest["task"],
            lengths,
            weight,
            factor,
            manifest.get("group", ""),
        )

    def subset(self, keep: np.ndarray) -> "BlendSource":
        """The same source restricted to the examples where ``keep`` is true."""
        ids = [i for i, k in zip(self.ids, keep) if k]
        return dataclasses.replace(self, ids=ids, lengths=self.lengths[keep])


@dataclass
class EpochDraw:
    """The examples of one epoch, in source order (packing re-sorts them)."""

    keys: List[str]
    lengths: np.ndarray
    tokens_by_source: Dict[str, int] = field(default_factory=dict)
    examples_by_source: Dict[str, int] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return int(self.lengths.sum())


class Blend:
    """Sources plus how their tokens are shared within an epoch.

    Three ways to say the mix, checked in this order:
    - ``group_weights`` (e.g. ``PAPER_GROUP_WEIGHTS``): token share per group
      (generation / understanding / text); within a group, sources share by
      ``factor * tokens``;
    - a ``weight`` on every source: token share per source;
    - neither: each source reads ``factor`` times its data (default 1).

    ``epoch_tokens`` sets the epoch size; by default an epoch holds
    ``sum(factor * tokens)`` over sources, i.e. one pass over the data
    (with factors applied), redistributed by the weights.
    """

    def __init__(
        self,
        sources: Sequence[BlendSource],
        group_weights: Optional[Mapping[str, float]] = None,
        epoch_tokens: Optional[int] = None,
    ) -> None:
        if not sources:
            raise ValueError("a blend needs at least one source")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate source names in {names}")
        if epoch_tokens is not None and epoch_tokens <= 0:
            raise ValueError(f"epoch_tokens must be positive, got {epoch_tokens}")
        self.sources = list(sources)
        self.group_weights = dict(group_weights) if group_weights else None
        self.epoch_tokens = epoch_tokens
        self.shares = self._shares()

    def _shares(self) -> np.ndarray:
        scaled = np.array([s.factor * s.total_tokens for s in self.sources], float)
        weighted = [s.weight is not None for s in self.sources]
        if self.group_weights is not None:
            if any(weighted):
                raise ValueError("give group_weights or per-source weights, not both")
            groups = [s.group for s in self.sources]
            missing = sorted(set(groups) - set(self.group_weights))
            empty = sorted(
                g for g, w in self.group_weights.items() if w > 0 and g not in groups
            )
            if missing or empty:
                raise ValueError(
                    f"group_weights {self.group_weights} do not match the sources' "
                    f"groups {sorted(set(groups))} (no weight for {missing}, "
                    f"no source for {empty})"
                )
            # deliberate in alignment (no text-only data), a slip elsewhere
            unused = sorted(g for g in set(groups) if self.group_weights[g] == 0)
            if unused:
                logging.info(
                    "blend: group(s) %s have sources but weight 0: never drawn "
                    "(set their group_weights to use them)",
                    unused,
                )
            total = sum(self.group_weights[g] for g in set(groups))
            shares = np.zeros(len(self.sources))
            for g in set(groups):
                members = np.array([x == g for x in groups])
                if scaled[members].sum() == 0:
                    if self.group_weights[g] > 0:
                        raise ValueError(f"group {g} is weighted but has no examples")
                    continue
                shares[members] = (self.group_weights[g] / total) * (
                    scaled[members] / scaled[members].sum()
                )
        elif any(weighted):
            if not all(weighted):
                unweighted = [s.name for s in self.sources if s.weight is None]
                raise ValueError(f"some sources have a weight, these not: {unweighted}")
            shares = np.array([s.weight for s in self.sources], float)
        else:
            shares = scaled
        if shares.sum() <= 0:
            raise ValueError("the blend's weights sum to zero")
        for s, share in zip(self.sources, shares):
            if share > 0 and s.total_tokens == 0:
                raise ValueError(f"{s.name}: weighted source without examples")
        return shares / shares.sum()

    @property
    def default_epoch_tokens(self) -> int:
        if self.epoch_tokens is not None:
            return self.epoch_tokens
        return int(round(sum(s.factor * s.total_tokens for s in self.sources)))

    def targets(self, epoch_tokens: Optional[int] = None) -> np.ndarray:
        """Token target per source for an epoch of ``epoch_tokens`` tokens."""
        total = self.default_epoch_tokens if epoch_tokens is None else epoch_tokens
        return np.rint(self.shares * total).astype(np.int64)

    def draw(self, seed: int, epoch_tokens: Optional[int] = None) -> EpochDraw:
        """The examples of the epoch seeded by ``seed`` (logs realised shares)."""
        keys: List[str] = []
        lengths: List[np.ndarray] = []
        draw = EpochDraw(keys, np.zeros(0, np.int64))
        for src, target in zip(self.sources, self.targets(epoch_tokens)):
            rng = epoch_rng(seed, src.name)
            picked = _draw_source(src.lengths, int(target), rng)
            keys.extend(make_key(src.name, src.ids[i]) for i in picked)
            lengths.append(src.lengths[picked])
            draw.tokens_by_source[src.name] = int(src.lengths[picked].sum())
            draw.examples_by_source[src.name] = len(picked)
        draw.lengths = np.concatenate(lengths)
        self.log_shares(draw)
        return draw

    def log_shares(self, draw: EpochDraw) -> None:
        """Realised token share per dataset, task and group (logging.info)."""
        total = max(draw.total_tokens, 1)
        by_task: Dict[str, int] = defaultdict(int)
        by_group: Dict[str, int] = defaultdict(int)
        for src, asked in zip(self.sources, self.shares):
            tokens = draw.tokens_by_source.get(src.name, 0)
            by_task[src.task] += tokens
            by_group[src.group] += tokens
            logging.info(
                "blend: %s (%s): %d examples, %d tokens, share %.1f%% (asked %.1f%%)",
                src.name,
                src.task,
                draw.examples_by_source.get(src.name, 0),
                tokens,
                100 * tokens / total,
                100 * asked,
            )
        for label, table in (("task", by_task), ("group", by_group)):
            logging.info(
                "blend: token share by %s: %s",
                label,
                ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in table.items()),
            )

    def filtered(self, max_length: int) -> Tuple["Blend", List[str]]:
        """The blend without examples longer than ``max_length``, and their keys.

        Weights then apply to what can be trained on.
        """
        rejected: List[str] = []
        kept = []
        for src in self.sources:
            keep = src.lengths <= max_length
            if len(keep) and not keep.any():
                raise ValueError(
                    f"{src.name}: every example is longer than {max_length} tokens "
                    f"(the shortest: {int(src.lengths.min())}); raise "
                    "max_tokens_per_row or drop the source"
                )
            rejected.extend(
                make_key(src.name, i) for i, k in zip(src.ids, keep) if not k
            )
            kept.append(src if keep.all() else src.subset(keep))
        return Blend(kept, self.group_weights, self.epoch_tokens), rejected

    @classmethod
    def from_config(cls, conf: Mapping, manifest_dir: Optional[str] = None) -> "Blend":
        """Builds a blend from a config mapping (a YAML section)::

        group_weights: {generation: 0.392, understanding: 0.331, text: 0.277}
        epoch_tokens: null              # default: one pass over the data
        datasets:
          - {name: mini_sound_text_to_audio, factor: 2.0}   # <manifest_dir>/
          - {manifest: dump/manifests/train/mini_speech_asr.json}
        """
        entries = conf.get("datasets")
        if not isinstance(entries, list) or not entries:
            raise ValueError("blend config needs a non-empty 'datasets:' list")
        sources = []
        for i, entry in enumerate(entries):
            if "manifest" in entry:
                path = entry["manifest"]
            elif "name" in entry and manifest_dir is not None:
                path = os.path.join(manifest_dir, f"{entry['name']}.json")
            else:
                raise ValueError(
                    f"blend datasets[{i}] needs 'manifest' (or 'name' + manifest_dir)"
                )
            sources.append(
                BlendSource.from_manifest(
                    path, weight=entry.get("weight"), factor=entry.get("factor", 1.0)
                )
            )
        return cls(sources, conf.get("group_weights"), conf.get("epoch_tokens"))


def epoch_rng(seed: int, name: str) -> np.random.Generator:
    """Generator for ``(seed, name)``: independent streams per name."""
    # crc32, not hash(): str hashes change between processes.
    return np.random.default_rng(
        [seed & 0xFFFFFFFFFFFFFFFF, zlib.crc32(name.encode("utf-8"))]
    )


def _draw_source(lengths: np.ndarray, target: int, rng: np.random.Generator):
    """Indices of whole shuffled passes, then a prefix reaching ``target``."""
    n, total = len(lengths), int(lengths.sum())
    if target <= 0 or total == 0:
        return np.zeros(0, np.int64)
    passes, rest = divmod(target, total)
    parts = [rng.permutation(n) for _ in range(passes)]
    if rest > 0:
        perm = rng.permutation(n)
        cum = np.cumsum(lengths[perm])
        parts.append(perm[: int(np.searchsorted(cum, rest, side="left")) + 1])
    return np.concatenate(parts)
