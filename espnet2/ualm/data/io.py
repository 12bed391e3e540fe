"""Reading audio and JSON-lines files: the one place every stage does it.

Audio. Every reader of a clip (stage 2 formatting, codec fitting and
tokenization, the training dataset, inference requests, the enhancer's pair
preparation and evaluation, the scorer, the mini judge) goes through
:func:`load_audio` (a path or an array -> a float waveform at a given rate,
mono unless asked otherwise) or, when it needs the file as stored (every
channel, a segment, the native rate), :func:`read_audio`. Both raise
:class:`AudioReadError`, whose message names the file and says what is wrong,
so that each caller can put it in its ``RejectLog`` or wrap it in its own
error type without reading the file its own way.

Resampling. :func:`resample` is scipy's polyphase ``resample_poly`` (Kaiser
window, computed in float64). It is the one resampler of the package (the
callers used two: ``resample_poly`` and torchaudio's sinc interpolation), and
this one was picked because the mini corpus makes its 16 kHz clips from the
48 kHz masters with it, so the enhancer's training inputs, the mini judge
(validated against the corpus' ground truth) and the scorer's embeddings keep
exactly the numbers they had. Stage 2, the training dataset and inference
requests used torchaudio before; they now resample like everything else, so
training and inference still resample audio input the same way. Both
resamplers give ``ceil(n * rate_out / rate_in)`` samples, so the manifests'
length model is unchanged. (The enhancer's ``ResampleEnhancer`` keeps
torchaudio: it is a model operation on batched tensors on the model's device,
not a file reader.)

JSON lines. ``dialogue.jsonl``, ``meta.jsonl``, inference's
``results.jsonl`` and the JSONL corpus files are read with :func:`iter_jsonl`
(every non-blank line parsed) or :func:`read_jsonl` (objects with a unique
``"id"``, bad lines sent to a ``RejectLog`` if one is given). A bad line is a
:class:`JsonlError` naming the file and the line number.
"""

import json
import os
from typing import (
    TYPE_CHECKING,
    Any,
    Iterator,
    List,
    Optional,
    Tuple,
    Union,
)

import numpy as np
import soundfile
import torch
from scipy.signal import resample_poly

if TYPE_CHECKING:
    from espnet2.ualm.data.rejects import RejectLog

# A file path, a waveform ([samples] or [channels, samples]) at the rate the
# caller asks for, or (waveform, its sample rate).
AudioSource = Union[str, "os.PathLike[str]", np.ndarray, torch.Tensor, Tuple[Any, int]]

# What soundfile raises for a missing, unreadable or corrupt file.
_SOUNDFILE_ERRORS = (RuntimeError, OSError, ValueError, TypeError, EOFError)


class AudioReadError(ValueError):
    """A clip that cannot be used: ``str(e)`` is ``"audio <name> <reason>"``.

    ``name`` is the file (or ``"array"``); ``reason`` what is wrong, e.g.
    ``"unreadable: LibsndfileError: ..."`` or ``"is at 8000 Hz, expected
    16000 Hz"``; ``detail`` the underlying error's type and message, if any.
    """

    def __init__(self, name: str, reason: str, detail: str = ""):
        self.name, self.reason, self.detail = name, reason, detail
        super().__init__(f"audio {name} {reason}")


def _unreadable(path: str, e: Exception) -> AudioReadError:
    detail = f"{type(e).__name__}: {e}"
    return AudioReadError(path, f"unreadable: {detail}", detail)


def audio_info(path: Union[str, "os.PathLike[str]"]) -> Any:
    """soundfile's header of ``path`` (``samplerate``, ``frames``,
    ``channels``, ``duration``)."""
    try:
        return soundfile.info(os.fspath(path))
    except _SOUNDFILE_ERRORS as e:
        raise _unreadable(os.fspath(path), e) from e


def read_audio(
    path: Union[str, "os.PathLike[str]"],
    start: int = 0,
    stop: Optional[int] = None,
    dtype: str = "float64",
) -> Tuple[np.ndarray, int]:
    """The file as stored: ``([frames, channels] array, sample rate)``.

    ``start`` / ``stop``: a segment, in frames of the file's rate. Nothing is
    converted or checked beyond readability (see :func:`load_audio`).
    """
    path = os.fspath(path)
    try:
        data, rate = soundfile.read(
            path, start=start, stop=stop, dtype=dtype, always_2d=True
        )
    except _SOUNDFILE_ERRORS as e:
        raise _unreadable(path, e) from e
    return data, int(rate)


def downmix(wav: np.ndarray) -> np.ndarray:
    """``[N, C]`` (or ``[N]``) -> ``[N]``, the mean of the channels:
    ``(L + R) / 2`` keeps a panned source's level under the corpus' pan law."""
    return wav.mean(axis=1) if wav.ndim == 2 else wav


def resample(x: np.ndarray, rate_in: int, rate_out: int, axis: int = 0) -> np.ndarray:
    """Polyphase resampling along ``axis``, in float64 (a no-op, as float64, at
    equal rates). The package's one resampler; why this one: module doc."""
    x = np.asarray(x, dtype=np.float64)
    rate_in, rate_out = int(rate_in), int(rate_out)
    if rate_in == rate_out:
        return x
    g = int(np.gcd(rate_in, rate_out))
    return resample_poly(x, rate_out // g, rate_in // g, axis=axis)


def _array_source(source: Any, sample_rate: Optional[int]) -> Tuple[np.ndarray, int]:
    """An in-memory waveform as ``([samples, channels] float64, rate)``."""
    rate = sample_rate
    if isinstance(source, tuple):
        source, rate = source
    if rate is None:
        raise AudioReadError("array", "has no sample rate: give (array, rate)")
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    data = np.asarray(source, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    elif data.ndim == 2:  # [channels, samples]
        data = data.T
    else:
        raise AudioReadError(
            "array",
            f"must be [samples] or [channels, samples], got {tuple(data.shape)}",
        )
    return data, int(rate)


def load_audio(
    source: AudioSource,
    sample_rate: Optional[int] = None,
    mono: bool = True,
    strict: bool = False,
    allow_empty: bool = False,
    dtype: Any = np.float32,
) -> Tuple[np.ndarray, int]:
    """A clip as ``(waveform, sample rate)``, checked.

    Args:
        source: a file path, an array (``[samples]`` or ``[channels,
            samples]``) at ``sample_rate``, or ``(array, its rate)``.
        sample_rate: the rate to return; ``None`` keeps the source's.
        mono: average the channels (``[N]``); else ``[N, channels]``.
        strict: take the clip only if it already is mono (with ``mono``) at
            ``sample_rate``: nothing is converted (for the codec and the
            enhancer, whose inputs stage 2 already formatted).
        allow_empty: return a clip of 0 samples instead of raising.
        dtype: of the returned waveform (the conversions run in float64).

    Raises:
        AudioReadError: unreadable, empty, NaN or infinite samples, or (with
            ``strict``) the wrong rate or channel count; names the file.
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        data, rate = read_audio(name)
    else:
        name = "array"
        data, rate = _array_source(source, sample_rate)
    if strict:
        if sample_rate is not None and rate != int(sample_rate):
            raise AudioReadError(name, f"is at {rate} Hz, expected {sample_rate} Hz")
        if mono and data.shape[1] != 1:
            raise AudioReadError(name, f"has {data.shape[1]} channels, expected mono")
    if data.shape[0] == 0 and not allow_empty:
        raise AudioReadError(name, "is empty (0 samples)")
    if not np.isfinite(data).all():
        raise AudioReadError(name, "holds NaN or infinite samples")
    wav = downmix(data) if mono else data
    if sample_rate is not None and rate != int(sample_rate):
        wav, rate = resample(wav, rate, int(sample_rate), axis=0), int(sample_rate)
    return np.ascontiguousarray(wav, dtype=dtype), rate


class JsonlError(ValueError):
    """A bad line of a JSON-lines file: ``str(e)`` is ``"<path>:<line>: <reason>"``.

    ``encoding``: the line is not UTF-8 (else it is not valid JSON, or not
    what the reader expects); ``text``: the line, decoded leniently.
    """

    def __init__(
        self,
        path: str,
        lineno: int,
        reason: str,
        text: str = "",
        encoding: bool = False,
    ):
        self.path, self.lineno, self.reason = path, lineno, reason
        self.text, self.encoding = text, encoding
        self.where = f"{path}:{lineno}"
        super().__init__(f"{self.where}: {reason}")


def iter_jsonl(
    path: Union[str, "os.PathLike[str]"], errors: str = "raise"
) -> Iterator[Tuple[int, Any]]:
    """Yields ``(line number, parsed value)`` for every non-blank line.

    A UTF-8 byte-order mark on the first line is dropped. A line that is not
    UTF-8 or not JSON raises :class:`JsonlError` (``errors="raise"``) or is
    yielded as one in place of the value (``errors="yield"``: for readers
    that report bad lines and go on).
    """
    if errors not in ("raise", "yield"):
        raise ValueError(f"errors must be 'raise' or 'yield', got {errors!r}")
    path = os.fspath(path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    text = raw.decode("utf-8", "replace")
                    reason = f"non-UTF-8 text ({e.reason} at byte {e.start})"
                    raise JsonlError(path, lineno, reason, text, True) from e
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as e:
                    reason = f"malformed JSON line: {e.msg} at column {e.colno}"
                    raise JsonlError(path, lineno, reason, line) from e
            except JsonlError as e:
                if errors == "raise":
                    raise
                yield lineno, e
                continue
            yield lineno, value


def read_jsonl(
    path: Union[str, "os.PathLike[str]"], rejects: Optional["RejectLog"] = None
) -> List[dict]:
    """The JSON objects of ``path``, each with an ``"id"`` met once.

    A bad line (not UTF-8, not JSON, not an object with an ``"id"``, or an id
    already seen) raises :class:`JsonlError`; with ``rejects`` it is reported
    there instead (the first occurrence of an id is kept) and skipped.
    """
    path = os.fspath(path)
    rows, seen = [], set()
    for lineno, row in iter_jsonl(path, errors="yield"):
        where = f"{path}:{lineno}"
        if not isinstance(row, JsonlError) and (
            not isinstance(row, dict) or "id" not in row
        ):
            row = JsonlError(path, lineno, 'not a JSON object with an "id"')
        if isinstance(row, JsonlError):
            if rejects is None:
                raise row
            rejects.add(f"line{lineno}", where, row.reason)
            continue
        if row["id"] in seen:
            if rejects is None:
                raise JsonlError(path, lineno, f"duplicate id {row['id']}")
            rejects.add(row["id"], where, "duplicate id (first occurrence kept)")
            continue
        seen.add(row["id"])
        rows.append(row)
    return rows
