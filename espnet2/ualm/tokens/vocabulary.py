"""The one vocabulary layout of UALM: special tokens, text, then audio codes.

Layout (ids grow downwards)::

    [0, num_reserved)                 special tokens (id 0 = <pad>), then
                                      unnamed reserved ids to grow into
    [text_offset, audio_offset)       the text tokenizer's ids, shifted
    [audio_offset, size)              codebook k: codes 0..codebook_size-1,
                                      then its own pad (codebook_size + 1 ids)

Every id is computed from the explicit ordered tuple ``special_tokens`` and
from three integers (text vocabulary size, codebooks, codebook size); nothing
depends on the key order of a config mapping. ESPnet-SpeechLM once derived
its layout from YAML key order and silently corrupted resumed training; here
the layout is saved as JSON next to the model and compared on resume.

How a discrete audio segment is laid out over the streams (``AudioLayout``:
the per-stream delays, where its closing token goes, what the unconditional
CFG branch writes) belongs to the same saved layout: the sequence builder
writes it for training, the generator decodes it. The default is UALM's own
and is not written to ``vocabulary.json`` (so a vocabulary saved before the
field existed loads, and keeps its fingerprint); an imported ESPnet-SpeechLM
model records ESPnet's (``pretrained/speechlm.py``).
"""

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from espnet2.ualm.data.safe_io import read_json

FORMAT_VERSION = 1

# Order matters: the position in this tuple is the token id. Append new
# tokens at the end; never reorder or remove (that would shift trained rows).
SPECIAL_TOKENS: Tuple[str, ...] = (
    "<pad>",
    "<bos>",
    "<eos>",
    "<eot>",
    # roles
    "<system>",
    "<user>",
    "<assistant>",
    # modality markers: what the segment after <role> holds
    "<text>",
    "<audio>",  # discrete codec codes (generated audio)
    "<speech>",  # reserved: discrete speech
    "<audio_input>",  # continuous encoder features (audio understanding)
    # written at every continuous-feature position; its row is overwritten
    "<audio_placeholder>",
)

# The release reserves 256 ids for special tokens.
NUM_RESERVED = 256

ROLES: Tuple[str, ...] = ("system", "user", "assistant")
MODALITIES: Tuple[str, ...] = ("text", "audio", "speech", "audio_input")

# AudioLayout.closing: where a discrete audio segment's closing token goes
CLOSING_FRAME = "frame"  # a closing frame inside the delayed block (UALM)
CLOSING_AFTER = "after"  # one position after the delayed block (ESPnet-SpeechLM)
CLOSINGS = (CLOSING_FRAME, CLOSING_AFTER)
# AudioLayout.cfg_extent: which prompt positions the unconditional branch nulls
CFG_CONDITION = "condition"  # the builder's condition_mask (UALM)
CFG_PROMPT = "prompt"  # every prompt position (ESPnet-SpeechLM's all-pad cache)
CFG_EXTENTS = (CFG_CONDITION, CFG_PROMPT)

# Kinds returned by UALMVocabulary.info
SPECIAL = "special"
TEXT = "text"
AUDIO = "audio"


class TokenInfo(NamedTuple):
    """What an id stands for.

    ``kind`` is ``special``, ``text`` or ``audio``. ``codebook`` is the audio
    codebook (-1 otherwise). ``code`` is the index inside its range: the
    special token's index, the text tokenizer's id, or the audio code
    (``codebook_size`` for the codebook's pad).
    """

    kind: str
    codebook: int
    code: int


def _as_str_tuple(value: Any, what: str) -> Tuple[str, ...]:
    """An explicit ordered sequence of strings; mappings and sets are refused."""
    if isinstance(value, (Mapping, set, frozenset)) or isinstance(value, str):
        raise TypeError(
            f"{what} must be an ordered list of names, got {type(value).__name__}: "
            "the order of a mapping's keys must never decide token ids"
        )
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise TypeError(f"{what}: every entry must be a non-empty string: {item!r}")
    return items


@dataclasses.dataclass(frozen=True)
class AudioLayout:
    """How discrete audio segments sit in the streams (saved with the model).

    ``delays``: stream ``k``'s frames are shifted right by ``delays[k]``
    steps, each stream's own pad in the holes (``tokens/delay.py``, the
    interleaving as data, like audiocraft's codebook patterns); ``None``:
    MusicGen's ``(0, 1, ..., K - 1)``; all zero: the streams in parallel.
    Stream 0 is never delayed (it carries the closing token).

    ``closing``:

    * ``"frame"`` (UALM): the codes get a closing frame (``<eos>``/``<eot>``
      in stream 0, codebook pads elsewhere) and the whole block is delayed:
      stream 0 closes right after the last frame's code and the segment ends
      ``max(delays)`` steps later; delay holes are never targets, and the
      generator forces them;
    * ``"after"`` (ESPnet-SpeechLM): the delayed block of codes, holes
      included, then one position with the closing token in stream 0 and id
      0 in the others; every stream predicts its holes (they are targets,
      and the generator samples every stream within its codebook, pad
      included); a pad sampled inside the frames decodes as code 0, as
      ESPnet's ``decode_batch`` clips it.

    ``cfg_null``: the special token the unconditional CFG branch (and CFG
    condition dropout in training) writes in stream 0, id 0 (zero) in the
    others; ``cfg_extent``: the positions it replaces at inference, the
    prompt's condition (``"condition"``) or every prompt position
    (``"prompt"``: ESPnet's all-``<|pad|>`` cache of the prompt and the
    ``<assistant>`` token).
    """

    delays: Optional[Tuple[int, ...]] = None
    closing: str = CLOSING_FRAME
    cfg_null: str = "<pad>"
    cfg_extent: str = CFG_CONDITION

    def __post_init__(self):
        if self.delays is not None:
            delays = tuple(self.delays)
            if any(isinstance(d, bool) or not isinstance(d, int) for d in delays):
                raise TypeError(f"audio_layout.delays must be ints, got {delays}")
            if not delays or delays[0] != 0 or min(delays) < 0:
                raise ValueError(
                    f"audio_layout.delays {delays}: stream 0 must have delay 0 and "
                    "none may be negative"
                )
            object.__setattr__(self, "delays", delays)
        if self.closing not in CLOSINGS:
            raise ValueError(
                f"audio_layout.closing must be one of {CLOSINGS}, got {self.closing!r}"
            )
        if self.cfg_extent not in CFG_EXTENTS:
            raise ValueError(
                f"audio_layout.cfg_extent must be one of {CFG_EXTENTS}, got "
                f"{self.cfg_extent!r}"
            )

    def to_dict(self) -> Dict[str, Any]:
        """The fields that differ from the default (JSON types)."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, conf: Mapping) -> "AudioLayout":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(conf) - known)
        if unknown:
            raise ValueError(
                f"unknown audio_layout keys {unknown}; known: {sorted(known)}"
            )
        conf = dict(conf)
        if conf.get("delays") is not None:
            conf["delays"] = tuple(conf["delays"])
        return cls(**conf)


@dataclasses.dataclass(frozen=True)
class UALMVocabulary:
    """Token id layout of one model; immutable, saved with the model."""

    text_vocab_size: int
    n_codebooks: int
    codebook_size: int
    special_tokens: Tuple[str, ...] = SPECIAL_TOKENS
    num_reserved: int = NUM_RESERVED
    audio_layout: AudioLayout = AudioLayout()

    def __post_init__(self):
        object.__setattr__(
            self, "special_tokens", _as_str_tuple(self.special_tokens, "special_tokens")
        )
        for name in ("text_vocab_size", "n_codebooks", "codebook_size", "num_reserved"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError(f"special_tokens has duplicates: {self.special_tokens}")
        if self.special_tokens[0] != "<pad>":
            raise ValueError("special_tokens must start with <pad> (id 0)")
        missing = [t for t in SPECIAL_TOKENS if t not in self.special_tokens]
        if missing:
            raise ValueError(f"special_tokens lacks required tokens {missing}")
        if len(self.special_tokens) > self.num_reserved:
            raise ValueError(
                f"{len(self.special_tokens)} special tokens do not fit in "
                f"num_reserved={self.num_reserved}"
            )
        layout = self.audio_layout
        if isinstance(layout, Mapping):
            layout = AudioLayout.from_dict(layout)
        if not isinstance(layout, AudioLayout):
            raise TypeError(f"audio_layout must be an AudioLayout, got {layout!r}")
        if layout.delays is not None:
            if len(layout.delays) != self.n_codebooks:
                raise ValueError(
                    f"audio_layout.delays {layout.delays}: one per codebook "
                    f"({self.n_codebooks})"
                )
            if layout.delays == tuple(range(self.n_codebooks)):  # the default
                layout = dataclasses.replace(layout, delays=None)
        if layout.cfg_null not in self.special_tokens:
            raise ValueError(
                f"audio_layout.cfg_null {layout.cfg_null!r} is not a special token"
            )
        object.__setattr__(self, "audio_layout", layout)

    # ----- construction and persistence -----------------------------------

    @classmethod
    def for_codec(cls, text_vocab_size: int, codec: Any) -> "UALMVocabulary":
        """The layout for a text tokenizer size and a codec's geometry."""
        return cls(
            text_vocab_size=int(text_vocab_size),
            n_codebooks=int(codec.n_codebooks),
            codebook_size=int(codec.codebook_size),
        )

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "text_vocab_size": self.text_vocab_size,
            "n_codebooks": self.n_codebooks,
            "codebook_size": self.codebook_size,
            "num_reserved": self.num_reserved,
            "special_tokens": list(self.special_tokens),
        }
        layout = self.audio_layout.to_dict()
        if layout:  # the default is not written: old files, old fingerprints
            out["audio_layout"] = layout
        return out

    @classmethod
    def from_dict(cls, conf: Mapping) -> "UALMVocabulary":
        """Inverse of ``to_dict``; also accepts a config section (no version)."""
        conf = dict(conf)
        version = conf.pop("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ValueError(f"unknown vocabulary format_version {version}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(conf) - known)
        if unknown:
            raise ValueError(
                f"unknown vocabulary keys {unknown}; known: {sorted(known)}"
            )
        if "special_tokens" in conf:
            conf["special_tokens"] = _as_str_tuple(
                conf["special_tokens"], "special_tokens"
            )
        return cls(**conf)

    def save(self, path: str) -> str:
        """Writes the layout as JSON (``vocabulary.json`` when ``path`` is a dir)."""
        if os.path.isdir(path):
            path = os.path.join(path, "vocabulary.json")
        # written beside and renamed into place: another rank reading the file
        # while this one writes it sees the old layout or the new, never half
        tmp = f"{path}.tmp.{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, indent=2)
                f.write("\n")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    @classmethod
    def load(cls, path: str) -> "UALMVocabulary":
        if os.path.isdir(path):
            path = os.path.join(path, "vocabulary.json")
        return cls.from_dict(read_json(path))

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON: equal fingerprints, equal layouts."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def check_same(self, other: "UALMVocabulary", where: str = "checkpoint") -> None:
        """Raises with the differing fields when ``other`` has another layout."""
        if self == other:
            return
        mine, theirs = self.to_dict(), other.to_dict()
        diff = [
            f"{k}: {mine.get(k)!r} != {theirs.get(k)!r}"
            for k in {**mine, **theirs}
            if mine.get(k) != theirs.get(k)
        ]
        raise ValueError(
            f"vocabulary of the {where} differs from the model's: " + "; ".join(diff)
        )

    # ----- sizes and offsets ----------------------------------------------

    @property
    def text_offset(self) -> int:
        return self.num_reserved

    @property
    def audio_offset(self) -> int:
        return self.num_reserved + self.text_vocab_size

    @property
    def codebook_stride(self) -> int:
        """Ids per codebook: its codes plus its pad."""
        return self.codebook_size + 1

    @property
    def audio_size(self) -> int:
        return self.n_codebooks * self.codebook_stride

    @property
    def size(self) -> int:
        """Rows of the embedding table."""
        return self.audio_offset + self.audio_size

    # ----- special tokens ---------------------------------------------------

    def special_id(self, name: str) -> int:
        try:
            return self.special_tokens.index(name)
        except ValueError:
            raise KeyError(f"no special token {name!r}") from None

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return self.special_id("<bos>")

    @property
    def eos_id(self) -> int:
        return self.special_id("<eos>")

    @property
    def eot_id(self) -> int:
        return self.special_id("<eot>")

    @property
    def audio_placeholder_id(self) -> int:
        return self.special_id("<audio_placeholder>")

    def role_id(self, role: str) -> int:
        if role not in ROLES:
            raise KeyError(f"unknown role {role!r}; roles are {ROLES}")
        return self.special_id(f"<{role}>")

    def modality_id(self, modality: str) -> int:
        if modality not in MODALITIES:
            raise KeyError(
                f"unknown modality {modality!r}; modalities are {MODALITIES}"
            )
        return self.special_id(f"<{modality}>")

    @property
    def cfg_null_id(self) -> int:
        """What the unconditional branch writes in stream 0 (``AudioLayout``)."""
        return self.special_id(self.audio_layout.cfg_null)

    # ----- text -------------------------------------------------------------

    def text_ids(self, token_ids: Sequence[int]) -> List[int]:
        """Tokenizer ids -> model ids."""
        out = []
        for t in token_ids:
            t = int(t)
            if not 0 <= t < self.text_vocab_size:
                raise ValueError(
                    f"text token {t} outside the tokenizer range [0, "
                    f"{self.text_vocab_size})"
                )
            out.append(self.text_offset + t)
        return out

    # ----- audio ------------------------------------------------------------

    def audio_id(self, codebook: int, code: int) -> int:
        """Model id of ``code`` of ``codebook`` (``code == codebook_size``: pad)."""
        if not 0 <= codebook < self.n_codebooks:
            raise ValueError(f"codebook {codebook} outside [0, {self.n_codebooks})")
        if not 0 <= code <= self.codebook_size:
            raise ValueError(f"code {code} outside [0, {self.codebook_size}]")
        return self.audio_offset + codebook * self.codebook_stride + code

    def audio_pad_id(self, codebook: int) -> int:
        return self.audio_id(codebook, self.codebook_size)

    def audio_pad_ids(self) -> Tuple[int, ...]:
        return tuple(self.audio_pad_id(k) for k in range(self.n_codebooks))

    @property
    def audio_delays(self) -> Tuple[int, ...]:
        """Stream ``k``'s delay in steps (``AudioLayout.delays``, resolved)."""
        delays = self.audio_layout.delays
        return tuple(range(self.n_codebooks)) if delays is None else delays

    def codebook_range(self, codebook: int) -> Tuple[int, int]:
        """``[start, stop)`` of codebook ``codebook``'s ids, its pad included."""
        start = self.audio_id(codebook, 0)
        return start, start + self.codebook_stride

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Codec codes ``[..., n_codebooks]`` -> model ids (same shape)."""
        codes = torch.as_tensor(codes)
        if codes.shape[-1] != self.n_codebooks:
            raise ValueError(
                f"codes have {codes.shape[-1]} codebooks, vocabulary has "
                f"{self.n_codebooks}"
            )
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(
                f"codes outside [0, {self.codebook_size}): "
                f"[{int(codes.min())}, {int(codes.max())}]"
            )
        shift = self.audio_offset + self.codebook_stride * torch.arange(
            self.n_codebooks, device=codes.device
        )
        return codes.long() + shift

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Model ids ``[..., n_codebooks]`` -> codes; pads become ``codebook_size``.

        Raises when an id is not in its own stream's codebook range.
        """
        ids = torch.as_tensor(ids).long()
        shift = self.audio_offset + self.codebook_stride * torch.arange(
            self.n_codebooks, device=ids.device
        )
        codes = ids - shift
        if codes.numel() and (codes.min() < 0 or codes.max() > self.codebook_size):
            raise ValueError("ids are not audio ids of their own codebook")
        return codes

    def is_audio(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids >= self.audio_offset) & (ids < self.size)

    # ----- any id -------------------------------------------------------------

    def info(self, token_id: int) -> TokenInfo:
        token_id = int(token_id)
        if not 0 <= token_id < self.size:
            raise ValueError(f"id {token_id} outside the vocabulary [0, {self.size})")
        if token_id < self.text_offset:
            return TokenInfo(SPECIAL, -1, token_id)
        if token_id < self.audio_offset:
            return TokenInfo(TEXT, -1, token_id - self.text_offset)
        codebook, code = divmod(token_id - self.audio_offset, self.codebook_stride)
        return TokenInfo(AUDIO, codebook, code)

    def to_id(self, kind: str, codebook: int, code: int) -> int:
        """Inverse of ``info``."""
        if kind == SPECIAL:
            if not 0 <= code < self.num_reserved:
                raise ValueError(
                    f"special index {code} outside [0, {self.num_reserved})"
                )
            return code
        if kind == TEXT:
            return self.text_ids([code])[0]
        if kind == AUDIO:
            return self.audio_id(codebook, code)
        raise ValueError(f"unknown kind {kind!r}")

    def token_name(self, token_id: int) -> str:
        """Readable name, for logs and debugging."""
        kind, codebook, code = self.info(token_id)
        if kind == SPECIAL:
            if code < len(self.special_tokens):
                return self.special_tokens[code]
            return f"<reserved_{code}>"
        if kind == TEXT:
            return f"<text_{code}>"
        if code == self.codebook_size:
            return f"<audio_pad_{codebook}>"
        return f"<audio_{codebook}_{code}>"


VocabularyLike = Union[UALMVocabulary, Mapping, str]


def as_vocabulary(value: VocabularyLike) -> UALMVocabulary:
    """A vocabulary from itself, a ``to_dict`` mapping or a JSON path."""
    if isinstance(value, UALMVocabulary):
        return value
    if isinstance(value, Mapping):
        return UALMVocabulary.from_dict(value)
    if isinstance(value, str):
        return UALMVocabulary.load(value)
    raise TypeError(f"cannot make a vocabulary from {type(value).__name__}")
