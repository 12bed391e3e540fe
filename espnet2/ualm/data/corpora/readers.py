"""Line-checked readers for the corpus formats (text lines, CSV, JSON, JSONL).

Python's own readers stop at the first bad line; a corpus of 50k rows with
three broken ones must instead keep the good rows and report each bad one
with its file and line number, so these readers decode and parse line by line
and send every unreadable line to the ``RejectLog``.
"""

import csv
import json
import re
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

from espnet2.ualm.data.corpora.common import CorpusError, safe_id
from espnet2.ualm.data.io import JsonlError, iter_jsonl
from espnet2.ualm.data.rejects import RejectLog

_JSON_ID = re.compile(r'"id"\s*:\s*"?([^",}\s]+)')


def _guess_id(prefix: str, guess: Optional[str]) -> str:
    return safe_id(prefix, guess) if guess and guess.strip() else "?"


def iter_text_lines(
    path: str,
    rejects: RejectLog,
    id_prefix: str,
    guess: Callable[[str], Optional[str]] = lambda s: (s.split() or [None])[0],
) -> Iterator[Tuple[int, str]]:
    """Yields ``(line number, line)`` for every UTF-8 line of ``path``.

    A line that is not UTF-8 is reported with the id ``guess`` finds in it
    (decoded leniently) and skipped. A UTF-8 byte-order mark is dropped.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                lenient = raw.decode("utf-8", "replace")
                rejects.add(
                    _guess_id(id_prefix, guess(lenient)),
                    f"{path}:{lineno}",
                    f"non-UTF-8 text ({e.reason} at byte {e.start})",
                )
                continue
            yield lineno, line.rstrip("\r\n")


def _first_csv_field(line: str) -> Optional[str]:
    return next(csv.reader([line]), [None])[0]


def iter_csv_rows(
    path: str, rejects: RejectLog, id_prefix: str, required: Sequence[str]
) -> Iterator[Tuple[str, Dict[str, str]]]:
    """Yields ``("<path>:<line>", row)`` for each well-formed CSV data row.

    The header must name every column in ``required`` (``CorpusError``
    otherwise: the file is not the expected corpus file). A row with the
    wrong number of fields is reported with the line it starts on.
    """
    numbers: List[int] = []  # file line number of each line given to csv

    def lines() -> Iterator[str]:
        for lineno, line in iter_text_lines(path, rejects, id_prefix, _first_csv_field):
            numbers.append(lineno)
            yield line + "\n"

    reader = csv.reader(lines())
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise CorpusError(
            f"{path}: CSV header {header} lacks the column(s) {missing}; "
            f"is this the right file?"
        )
    consumed = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            where = f"{path}:{numbers[consumed]}"
            consumed = reader.line_num
            rejects.add("?", where, f"malformed CSV row: {e}")
            continue
        first, last = numbers[consumed], numbers[reader.line_num - 1]
        consumed = reader.line_num
        where = f"{path}:{first}"
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            span = f" (lines {first}-{last})" if last != first else ""
            rejects.add(
                _guess_id(id_prefix, fields[0]),
                where,
                f"malformed row: {len(fields)} fields, header has {len(header)}" + span,
            )
            continue
        yield where, dict(zip(header, fields))


def iter_json_items(
    path: str, rejects: RejectLog, id_prefix: str
) -> Iterator[Tuple[str, int, Dict[str, Any]]]:
    """Yields ``("<path>:<line>", index, item)`` from a JSON list or a JSONL file.

    The format is told by the first character (``[``: one JSON list). In JSONL
    a malformed line is reported and skipped; in a JSON list it cannot be
    skipped (nothing after it can be found again), so it is a ``CorpusError``.
    Items that are not JSON objects are reported. ``index`` counts every item,
    bad ones included, so that ids made from it do not shift.
    """
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"["):
        items = _iter_json_list(path)
    else:
        items = _iter_jsonl(path, rejects, id_prefix)
    for index, (where, item) in enumerate(items):
        if isinstance(item, _Malformed):
            rejects.add(_guess_id(id_prefix, item.id_guess), where, item.reason)
        elif not isinstance(item, dict):
            rejects.add("?", where, f"not a JSON object: {type(item).__name__}")
        else:
            yield where, index, item


class _Malformed(NamedTuple):
    """Stands in for a JSONL line that does not parse, so indices stay put."""

    reason: str
    id_guess: Optional[str]


def _json_id(text: str) -> Optional[str]:
    match = _JSON_ID.search(text)
    return match.group(1) if match else None


def _iter_jsonl(
    path: str, rejects: RejectLog, id_prefix: str
) -> Iterator[Tuple[str, Any]]:
    """Yields parsed lines (``data.io.iter_jsonl``); a non-UTF-8 line is
    reported and skipped, a malformed one stands in as ``_Malformed``."""
    for lineno, value in iter_jsonl(path, errors="yield"):
        where = f"{path}:{lineno}"
        if isinstance(value, JsonlError):
            if value.encoding:
                rejects.add(
                    _guess_id(id_prefix, _json_id(value.text)), where, value.reason
                )
                continue
            yield where, _Malformed(value.reason, _json_id(value.text))
        else:
            yield where, value


def _iter_json_list(path: str) -> Iterator[Tuple[str, Any]]:
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from e
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        pos = _skip_space(text, pos)
        if text.startswith("]", pos):
            return
        lineno = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise CorpusError(
                f"{path}:{e.lineno}: malformed JSON list ({e.msg} at column "
                f"{e.colno}); items after it cannot be read"
            ) from e
        yield f"{path}:{lineno}", item
        pos = _skip_space(text, pos)
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("]", pos):
            line = text.count("\n", 0, pos) + 1
            raise CorpusError(f"{path}:{line}: malformed JSON list (expected , or ])")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos
