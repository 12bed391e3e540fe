"""Word and character error rates (jiwer) on normalised text."""

from typing import Dict, List, Sequence, Tuple

from espnet2.ualm.scoring.text_norm import normalize_text


def _jiwer():
    try:
        import jiwer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "WER/CER need the 'jiwer' package: pip install 'jiwer>=4,<5' "
            "(listed in tools/requirements.txt)"
        ) from e
    return jiwer


def error_rates(
    refs: Sequence[str], hyps: Sequence[str], normalize: bool = True
) -> Dict[str, float]:
    """Corpus-level WER and CER (errors summed over utterances / reference length).

    ``normalize`` applies :func:`normalize_text` to both sides first (lower
    case, punctuation removed, digits spelled out as the corpus writes them).
    Utterances whose normalised reference is empty are left out and counted in
    ``empty_refs``. CER is computed on the words joined by single spaces.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    jiwer = _jiwer()
    norm = normalize_text if normalize else (lambda s: " ".join(s.split()))
    pairs = [(norm(r), norm(h)) for r, h in zip(refs, hyps)]
    kept = [(r, h) for r, h in pairs if r]
    out: Dict[str, float] = {"utterances": float(len(kept))}
    out["empty_refs"] = float(len(pairs) - len(kept))
    if not kept:
        return out
    r, h = [p[0] for p in kept], [p[1] for p in kept]
    words = jiwer.process_words(r, h)
    chars = jiwer.process_characters(r, h)
    ref_words = words.hits + words.substitutions + words.deletions
    out.update(
        wer=float(words.wer),
        cer=float(chars.cer),
        substitutions=float(words.substitutions),
        deletions=float(words.deletions),
        insertions=float(words.insertions),
        ref_words=float(ref_words),
        sentence_error_rate=float(sum(a != b for a, b in kept) / len(kept)),
    )
    return out


def utterance_errors(
    refs: Sequence[str], hyps: Sequence[str], normalize: bool = True
) -> Tuple[List[float], List[float]]:
    """Word errors (substitutions + deletions + insertions) and reference words
    of every utterance with a non-empty normalised reference: their sums give
    :func:`error_rates`' WER, so a bootstrap can resample utterances."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    jiwer = _jiwer()
    norm = normalize_text if normalize else (lambda s: " ".join(s.split()))
    errors: List[float] = []
    words: List[float] = []
    for r, h in zip(refs, hyps):
        r, h = norm(r), norm(h)
        if not r:
            continue
        out = jiwer.process_words(r, h)
        errors.append(float(out.substitutions + out.deletions + out.insertions))
        words.append(float(out.hits + out.substitutions + out.deletions))
    return errors, words
