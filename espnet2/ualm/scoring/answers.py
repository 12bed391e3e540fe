"""Answer parsing and accuracy for question answering and text-only tasks.

A free-form reply is mapped to one answer of a known vocabulary (the mini
corpus's ``ANSWER_WORDS``, the options listed in the question, or the set of
reference answers) before comparing, so "There are 3 beeps." and "Three." are
the same answer. Parsing is explicit and deterministic:

1. normalise both sides (lower case, punctuation removed, digits spelled out,
   leading articles dropped);
2. an exact match with a choice wins;
3. otherwise the choice whose words occur earliest in the reply (whole words,
   a few ``SYNONYMS`` such as "no" -> "zero" applied) wins; lettered options
   ("(B)", "B.", "option b") map to their text;
4. nothing found: unparsed (counted, and wrong).

Multiple-choice questions (the question lists the options: "left or right",
"low, medium or high", "(A) ... (B) ...") are reported apart from short-answer
ones. Text-only answers: numeric references are compared as numbers (the last
number of the reply, digits or words), others by exact match after
normalisation (a "the answer is" lead-in removed).
"""

import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from espnet2.ualm.scoring.text_norm import as_number, normalize_text, parse_number

_ARTICLES = ("a", "an", "the")
# Other words for an answer, used only when the word itself is not a choice
# (so "no" stays "no" for yes/no questions and means "zero" for counts).
SYNONYMS: Dict[str, str] = {
    "no": "zero",
    "none": "zero",
    "mid": "medium",
    "middle": "center",
    "centre": "center",
    "centered": "center",
    "central": "center",
}
_LETTERED_RE = re.compile(r"\(([A-Ha-h])\)\s*([^()]+?)(?=\s*\([A-Ha-h]\)|$)")


def answer_key(text: str) -> str:
    """Normalised form of an answer, leading articles dropped ("The chirp." ->
    "chirp", "Three." -> "three", "3" -> "three")."""
    words = normalize_text(text).split()
    while words and words[0] in _ARTICLES and len(words) > 1:
        words = words[1:]
    return " ".join(words)


def lettered_options(question: str) -> Dict[str, str]:
    """``{"a": "text of (A)", ...}`` when the question lists lettered options."""
    return {
        m.group(1).lower(): m.group(2).strip(" ,;.")
        for m in _LETTERED_RE.finditer(question)
    }


def _find(phrase: str, text: str) -> int:
    """Word position of ``phrase`` in ``text`` (both normalised), or -1."""
    m = re.search(rf"(?<!\S){re.escape(phrase)}(?!\S)", text)
    return -1 if m is None else len(text[: m.start()].split())


def parse_choice(
    reply: str, choices: Sequence[str], options: Optional[Mapping[str, str]] = None
) -> Optional[str]:
    """The choice (as given) that ``reply`` picks, or None.

    ``options``: lettered options of the question (``lettered_options``), so that
    "B" or "(b) the dog" picks the choice matching option b's text.
    """
    reply_key = answer_key(reply)
    keys = {answer_key(c): c for c in choices}
    if reply_key in keys:
        return keys[reply_key]
    if options:
        letter = re.match(r"^(?:option\s+|answer\s+)?\(?([a-h])\)?(?:\s|$)", reply_key)
        if letter and letter.group(1) in options:
            picked = answer_key(options[letter.group(1)])
            if picked in keys:
                return keys[picked]
    text = " ".join(
        SYNONYMS[w] if w in SYNONYMS and w not in keys and SYNONYMS[w] in keys else w
        for w in normalize_text(reply).split()
    )
    found: List[Tuple[int, int, str]] = []
    for key, choice in keys.items():
        if key:
            pos = _find(key, text)
            if pos >= 0:
                found.append((pos, -len(key), choice))
    return min(found)[2] if found else None


def question_choices(question: str, vocabulary: Sequence[str]) -> List[str]:
    """The answers of ``vocabulary`` that the question itself names, when it
    names two or more (a multiple-choice question); else an empty list."""
    text = normalize_text(question)
    named = [v for v in vocabulary if answer_key(v) and _find(answer_key(v), text) >= 0]
    return named if len(named) >= 2 else []


def score_qa(
    items: Sequence[Mapping[str, str]], vocabularies: Mapping[str, Sequence[str]]
) -> Tuple[Dict[str, float], List[Dict[str, object]]]:
    """Accuracy of QA replies.

    ``items``: dicts with ``id``, ``question``, ``reference``, ``hypothesis`` and
    ``kind`` (a key of ``vocabularies``: the answers allowed for that kind of
    question). Returns the summary (``accuracy``, ``multiple_choice_accuracy``,
    ``short_answer_accuracy``, ``accuracy_<kind>``, ``unparsed``) and per-item
    records.
    """
    records: List[Dict[str, object]] = []
    for it in items:
        vocab = list(vocabularies.get(it["kind"], [])) or [it["reference"]]
        if it["reference"] not in vocab:
            vocab.append(it["reference"])
        options = lettered_options(it["question"])
        mc_choices = question_choices(it["question"], vocab)
        is_mc = bool(options) or bool(mc_choices)
        # A multiple-choice reply may only pick one of the offered options.
        pool = mc_choices or vocab
        picked = parse_choice(it["hypothesis"], pool, options)
        records.append(
            {
                "id": it["id"],
                "kind": it["kind"],
                "format": "multiple_choice" if is_mc else "short_answer",
                "reference": it["reference"],
                "hypothesis": it["hypothesis"],
                "parsed": picked,
                "correct": picked is not None
                and answer_key(picked) == answer_key(it["reference"]),
            }
        )
    return _accuracy_summary(records, ("format", "kind")), records


# Lead-ins stripped from a text reply before the exact match ("The answer is
# elppa." -> "elppa").
LEAD_INS: Tuple[str, ...] = (
    "the final answer is",
    "the answer is",
    "final answer",
    "answer",
    "it is",
    "it's",
)


def strip_lead_in(text: str) -> str:
    """Normalised reply without a leading "the answer is" (or similar)."""
    norm = normalize_text(text)
    for lead in LEAD_INS:
        if norm.startswith(lead + " "):
            return norm[len(lead) + 1 :]
    return norm


def text_answer_correct(hypothesis: str, reference: str) -> bool:
    """Numeric references compare numbers (the reply's last number); others
    match exactly after normalisation, a "the answer is" lead-in removed."""
    ref_value = as_number(reference)
    if ref_value is not None:
        hyp_value = parse_number(hypothesis)
        return hyp_value is not None and float(hyp_value) == float(ref_value)
    return strip_lead_in(hypothesis) == normalize_text(reference)


def score_text_answers(
    items: Sequence[Mapping[str, str]],
) -> Tuple[Dict[str, float], List[Dict[str, object]]]:
    """Accuracy of text-only replies (``id``, ``reference``, ``hypothesis``),
    overall and split into numeric / other references."""
    records: List[Dict[str, object]] = []
    for it in items:
        numeric = as_number(it["reference"]) is not None
        records.append(
            {
                "id": it["id"],
                "kind": "numeric" if numeric else "exact",
                "reference": it["reference"],
                "hypothesis": it["hypothesis"],
                "correct": text_answer_correct(it["hypothesis"], it["reference"]),
            }
        )
    return _accuracy_summary(records, ("kind",)), records


def _accuracy_summary(
    records: Sequence[Mapping[str, object]], split_by: Sequence[str]
) -> Dict[str, float]:
    out: Dict[str, float] = {"items": float(len(records))}
    if not records:
        return out
    out["accuracy"] = sum(bool(r["correct"]) for r in records) / len(records)
    for field in split_by:
        for value in sorted({str(r[field]) for r in records}):
            sub = [r for r in records if str(r[field]) == value]
            name = f"{value}_accuracy" if field == "format" else f"accuracy_{value}"
            out[name] = sum(bool(r["correct"]) for r in sub) / len(sub)
            out[f"items_{value}"] = float(len(sub))
    if any("parsed" in r for r in records):
        out["unparsed"] = float(sum(r.get("parsed") is None for r in records))
    return out
