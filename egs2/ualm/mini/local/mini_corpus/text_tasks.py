"""Text-only instruction items with exact answers (arithmetic, counting, puzzles).

Each task has several prompt phrasings; the last phrasing of every task is held
out for the test split (``TEXT_HELD_OUT``), mirroring the sound captions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .lexicon import ADJECTIVES, NAMES, NOUNS

# task -> phrasings; "{...}" fields are filled by the task's sampler.
TEXT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "add": (
        "What is {a} plus {b}?",
        "Add {a} and {b}.",
        "Compute the sum of {a} and {b}.",
    ),
    "subtract": (
        "What is {a} minus {b}?",
        "Subtract {b} from {a}.",
        "What do you get if you take {b} away from {a}?",
    ),
    "multiply": (
        "What is {a} times {b}?",
        "Multiply {a} by {b}.",
        "What is the product of {a} and {b}?",
    ),
    "compare": (
        "Which is larger, {a} or {b}?",
        "What is the bigger number: {a} or {b}?",
        "Of {a} and {b}, which is greater?",
    ),
    "maximum": (
        "What is the largest number in this list: {items}?",
        "Find the maximum of {items}.",
        "Among {items}, which number is the highest?",
    ),
    "count_letter": (
        "How many times does the letter '{c}' appear in '{w}'?",
        "Count the letter '{c}' in the word '{w}'.",
        "In '{w}', how often does '{c}' occur?",
    ),
    "count_words": (
        "How many words are in the sentence '{s}'?",
        "Count the words in: {s}",
        "What is the number of words in '{s}'?",
    ),
    "reverse": (
        "Reverse the word '{w}'.",
        "Spell '{w}' backwards.",
        "Write the letters of '{w}' in reverse order.",
    ),
    "sort_letters": (
        "Sort the letters of '{w}' alphabetically.",
        "Put the letters of '{w}' in alphabetical order.",
        "Rearrange '{w}' so that its letters are in alphabetical order.",
    ),
    "word_problem": (
        "{n} has {a} {x} and gets {b} more. How many {x} does {n} have now?",
        "There are {a} {x} on a table and {b} more are added. How many {x} are there?",
        "{n} had {a} {x}, then someone gave {n} {b} {x}. How many {x} are there now?",
    ),
}
TEXT_HELD_OUT: dict[str, int] = {task: len(t) - 1 for task, t in TEXT_TEMPLATES.items()}

_WORDS = tuple(w for w in NOUNS + ADJECTIVES if len(w) >= 4)


def _pick(rng: np.random.Generator, items: tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def _arith(task: str, rng: np.random.Generator) -> tuple[dict, str]:
    if task == "multiply":
        a, b = int(rng.integers(2, 13)), int(rng.integers(2, 13))
        return {"a": a, "b": b}, str(a * b)
    a, b = int(rng.integers(1, 100)), int(rng.integers(1, 100))
    if task == "add":
        return {"a": a, "b": b}, str(a + b)
    if task == "subtract":
        a, b = max(a, b), min(a, b)
        return {"a": a, "b": b}, str(a - b)
    while a == b:  # compare
        b = int(rng.integers(1, 100))
    return {"a": a, "b": b}, str(max(a, b))


def _maximum(rng: np.random.Generator) -> tuple[dict, str]:
    values = [
        int(v) for v in rng.choice(100, size=int(rng.integers(3, 7)), replace=False)
    ]
    return {"items": ", ".join(map(str, values))}, str(max(values))


def _count_letter(rng: np.random.Generator) -> tuple[dict, str]:
    w = _pick(rng, _WORDS)
    # Ask about a letter of the word most of the time, sometimes about another.
    if rng.random() < 0.8:
        c = w[int(rng.integers(len(w)))]
    else:
        c = _pick(rng, tuple(sorted(set("abcdefghijklmnopqrstuvwxyz") - set(w))))
    return {"c": c, "w": w}, str(w.count(c))


def _count_words(rng: np.random.Generator) -> tuple[dict, str]:
    n = int(rng.integers(3, 9))
    words = [_pick(rng, NAMES).capitalize()] + [
        _pick(rng, NOUNS + ADJECTIVES) for _ in range(n - 1)
    ]
    return {"s": " ".join(words)}, str(n)


def _word_task(task: str, rng: np.random.Generator) -> tuple[dict, str]:
    w = _pick(rng, _WORDS)
    answer = w[::-1] if task == "reverse" else "".join(sorted(w))
    return {"w": w}, answer


def _word_problem(rng: np.random.Generator) -> tuple[dict, str]:
    a, b = int(rng.integers(1, 20)), int(rng.integers(1, 20))
    x = _pick(rng, ("apples", "books", "cups", "pencils", "stones", "stars"))
    return {"a": a, "b": b, "x": x, "n": _pick(rng, NAMES).capitalize()}, str(a + b)


_SAMPLERS: dict[str, Callable[[np.random.Generator], tuple[dict, str]]] = {
    "add": lambda r: _arith("add", r),
    "subtract": lambda r: _arith("subtract", r),
    "multiply": lambda r: _arith("multiply", r),
    "compare": lambda r: _arith("compare", r),
    "maximum": _maximum,
    "count_letter": _count_letter,
    "count_words": _count_words,
    "reverse": lambda r: _word_task("reverse", r),
    "sort_letters": lambda r: _word_task("sort_letters", r),
    "word_problem": _word_problem,
}


def make_text_item(rng: np.random.Generator, held_out: bool) -> dict:
    """One instruction: task, template index, prompt and exact answer."""
    tasks = tuple(TEXT_TEMPLATES)
    task = _pick(rng, tasks)
    templates = TEXT_TEMPLATES[task]
    if held_out:
        t = TEXT_HELD_OUT[task]
    else:
        train = [i for i in range(len(templates)) if i != TEXT_HELD_OUT[task]]
        t = train[int(rng.integers(len(train)))]
    fields, answer = _SAMPLERS[task](rng)
    return {
        "task": task,
        "template": t,
        "prompt": templates[t].format(**fields),
        "answer": answer,
    }
