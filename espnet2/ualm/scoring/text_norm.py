"""Text normalisation shared by every text metric, and number parsing.

The mini corpus writes transcripts and answers in lower-case words with numbers
spelled out ("rose has nine desks", "Three."), so hypotheses are brought to the
same form before comparing: lower case, punctuation removed, hyphens split,
digits spelled the way the corpus spells them (``number_to_words`` mirrors
``mini_corpus.lexicon``, which the installed package cannot import).
"""

import re
import unicodedata
from typing import List, Optional, Union

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = {"hundred": 100, "thousand": 1000}
WORD_VALUES = {w: i for i, w in enumerate(_ONES)}
WORD_VALUES.update({w: 10 * i for i, w in enumerate(_TENS) if i >= 2})

Number = Union[int, float]


def number_to_words(n: int) -> str:
    """Lower-case English for ``0 <= n < 1e6``, as the mini corpus writes it."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = _ONES[hundreds] + " hundred"
        return head if rest == 0 else head + " and " + number_to_words(rest)
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        head = number_to_words(thousands) + " thousand"
        if rest == 0:
            return head
        return head + (" and " if rest < 100 else " ") + number_to_words(rest)
    raise ValueError(f"number_to_words supports 0 <= n < 1e6, got {n}")


_DIGITS_RE = re.compile(r"(?<![\w.])-?\d{1,6}(?!\w|\.\d)")


def spell_numbers(text: str) -> str:
    """Integers written with digits become words ("3 cats" -> "three cats")."""
    return _DIGITS_RE.sub(lambda m: number_to_words(int(m.group())), text)


def normalize_text(text: str, spell_digits: bool = True) -> str:
    """Lower case, digits spelled out, punctuation removed, one space between
    words. Apostrophes inside words stay ("don't"); hyphens split words."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)  # 1,000 -> 1000
    if spell_digits:
        text = spell_numbers(text)
    text = text.replace("-", " ")
    text = re.sub(r"(?<![a-z0-9])'|'(?![a-z0-9])", " ", text)
    text = re.sub(r"[^\w\s'.]", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)  # keep decimal points only
    return " ".join(text.split())


def tokenize(text: str) -> List[str]:
    return normalize_text(text).split()


def _words_value(words: List[str]) -> Optional[int]:
    """Value of a run of number words ("one hundred and five"), else None."""
    total, current, seen, last = 0, 0, False, None
    for w in words:
        if w == "and" and seen:
            continue
        if w in WORD_VALUES:
            value = WORD_VALUES[w]
            after_tens = last is not None and last >= 20 and last % 10 == 0
            if last is not None and last < 100 and not (after_tens and value < 10):
                return None  # "three four", "twenty thirty": not one number
            current += value
            last = value
        elif w in _SCALES and seen:
            current = max(current, 1) * _SCALES[w]
            last = _SCALES[w]
            if _SCALES[w] == 1000:
                total, current = total + current, 0
        else:
            return None
        seen = True
    return total + current if seen else None


def find_numbers(text: str) -> List[Number]:
    """Every number in ``text``, digits or words, in order of appearance."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)
    tokens = re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?|\d+(?:\.\d+)?|[a-z]+", text)
    out: List[Number] = []
    run: List[str] = []

    def flush() -> None:
        while run and run[-1] == "and":
            run.pop()
        if run:
            value = _words_value(run)
            if value is not None:
                out.append(value)
        run.clear()

    for tok in tokens:
        if re.fullmatch(r"-?\d+(?:\.\d+)?", tok):
            flush()
            value = float(tok)
            out.append(int(value) if value.is_integer() and "." not in tok else value)
        elif tok in WORD_VALUES or tok in _SCALES or (tok == "and" and run):
            if tok in WORD_VALUES and run and run[-1] in WORD_VALUES:
                # "three four" are two numbers; "twenty one" is one.
                prev = WORD_VALUES[run[-1]]
                if not (prev >= 20 and prev % 10 == 0 and WORD_VALUES[tok] < 10):
                    flush()
            run.append(tok)
        else:
            flush()
    flush()
    return out


def parse_number(text: str) -> Optional[Number]:
    """The number a reply ends on ("... so the answer is 42." -> 42), or None."""
    numbers = find_numbers(text)
    return numbers[-1] if numbers else None


def as_number(text: str) -> Optional[Number]:
    """The value of ``text`` when it is nothing but one number, else None."""
    words = normalize_text(text, spell_digits=False).split()
    if len(words) == 1:
        try:
            value = float(words[0])
            return int(value) if value.is_integer() and "." not in words[0] else value
        except ValueError:
            pass
    return _words_value(normalize_text(text).split())
