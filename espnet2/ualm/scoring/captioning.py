"""Captioning metrics in pure Python (no Java, no downloads).

BLEU-1..4, ROUGE-L and CIDEr-D follow the formulas of the COCO caption
evaluation toolkit (``pycocoevalcap``), so that they can be compared with it up
to tokenisation: here the text is tokenised by :func:`text_norm.tokenize` (lower
case, punctuation removed, digits spelled out) instead of the PTB tokenizer.
``meteor_lite`` is METEOR with exact matches only (no stemming, synonyms or
paraphrases): it is *not* comparable to published METEOR numbers.

Every function takes ``hyps: {id: caption}`` and ``refs: {id: [captions]}``
(several references per clip are allowed) and scores the ids of ``hyps``.
"""

import math
from collections import Counter
from typing import Dict, List, Mapping, Sequence, Tuple

from espnet2.ualm.scoring.text_norm import tokenize

Ngrams = Counter


def _ngrams(words: Sequence[str], n: int) -> Ngrams:
    """Counts of every k-gram, k = 1..n."""
    return Counter(
        tuple(words[i : i + k])
        for k in range(1, n + 1)
        for i in range(len(words) - k + 1)
    )


def _prepare(
    hyps: Mapping[str, str], refs: Mapping[str, Sequence[str]]
) -> List[Tuple[List[str], List[List[str]]]]:
    missing = [k for k in hyps if not refs.get(k)]
    if missing:
        raise KeyError(
            f"no reference caption for {len(missing)} ids, e.g. {missing[0]}"
        )
    return [(tokenize(hyps[k]), [tokenize(r) for r in refs[k]]) for k in sorted(hyps)]


def bleu(
    hyps: Mapping[str, str], refs: Mapping[str, Sequence[str]], n: int = 4
) -> Dict[str, float]:
    """Corpus BLEU-1..n: clipped n-gram precisions summed over the corpus, brevity
    penalty against the closest reference length (COCO's convention)."""
    return bleu_tokens(_prepare(hyps, refs), n)


def prepare(
    hyps: Mapping[str, str], refs: Mapping[str, Sequence[str]]
) -> List[Tuple[List[str], List[List[str]]]]:
    """Tokenised ``(hypothesis, references)`` per id of ``hyps`` (sorted): what
    :func:`bleu_tokens` and :func:`cider_d_tokens` score, e.g. on bootstrap
    resamples of the clips without tokenising again."""
    return _prepare(hyps, refs)


def bleu_tokens(
    data: Sequence[Tuple[List[str], List[List[str]]]], n: int = 4
) -> Dict[str, float]:
    """:func:`bleu` of already tokenised pairs (repeated pairs count again)."""
    correct, total = [0] * n, [0] * n
    hyp_len = ref_len = 0
    for hyp, rs in data:
        h = _ngrams(hyp, n)
        max_ref: Ngrams = Counter()
        for r in rs:
            for g, c in _ngrams(r, n).items():
                max_ref[g] = max(max_ref[g], c)
        for g, c in h.items():
            correct[len(g) - 1] += min(c, max_ref[g])
            total[len(g) - 1] += c
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in rs)[1]
    tiny, small = 1e-15, 1e-9
    bp = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    out, log_sum = {}, 0.0
    for k in range(n):
        log_sum += math.log((correct[k] + tiny) / (total[k] + small))
        out[f"bleu_{k + 1}"] = bp * math.exp(log_sum / (k + 1))
    return out


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(
    hyps: Mapping[str, str], refs: Mapping[str, Sequence[str]], beta: float = 1.2
) -> float:
    """Mean over clips of the LCS F-measure (best precision and best recall over
    the references, recall weighted by ``beta``, as in COCO)."""
    scores = []
    for hyp, rs in _prepare(hyps, refs):
        if not hyp:
            scores.append(0.0)
            continue
        lcs = [_lcs(hyp, r) for r in rs]
        p = max(c / len(hyp) for c in lcs)
        r = max(c / len(ref) for c, ref in zip(lcs, rs) if ref) if any(rs) else 0.0
        f = (1 + beta**2) * p * r / (r + beta**2 * p) if p > 0 and r > 0 else 0.0
        scores.append(f)
    return sum(scores) / len(scores) if scores else float("nan")


def cider_d(
    hyps: Mapping[str, str],
    refs: Mapping[str, Sequence[str]],
    n: int = 4,
    sigma: float = 6.0,
) -> float:
    """CIDEr-D: tf-idf n-gram cosine (idf from the references of the scored set),
    hypothesis counts clipped by the reference's, Gaussian length penalty, x10."""
    return cider_d_tokens(_prepare(hyps, refs), n, sigma)


def cider_d_tokens(
    data: Sequence[Tuple[List[str], List[List[str]]]],
    n: int = 4,
    sigma: float = 6.0,
) -> float:
    """:func:`cider_d` of already tokenised pairs; a repeated pair counts as
    another clip (in the idf too), as a bootstrap resample needs."""
    doc_freq: Counter = Counter()
    for _, rs in data:
        for g in set(g for r in rs for g in _ngrams(r, n)):
            doc_freq[g] += 1
    log_docs = math.log(float(len(data))) if data else 0.0

    def vec(words: List[str]) -> Tuple[List[Dict], List[float], int]:
        v: List[Dict] = [{} for _ in range(n)]
        norm = [0.0] * n
        for g, tf in _ngrams(words, n).items():
            k = len(g) - 1
            v[k][g] = tf * (log_docs - math.log(max(1.0, doc_freq[g])))
            norm[k] += v[k][g] ** 2
        return v, [math.sqrt(x) for x in norm], len(words)

    scores = []
    for hyp, rs in data:
        vh, nh, lh = vec(hyp)
        total = 0.0
        for r in rs:
            vr, nr, lr = vec(r)
            penalty = math.exp(-((lh - lr) ** 2) / (2 * sigma**2))
            for k in range(n):
                dot = sum(
                    min(x, vr[k].get(g, 0.0)) * vr[k].get(g, 0.0)
                    for g, x in vh[k].items()
                )
                if nh[k] > 0 and nr[k] > 0:
                    total += penalty * dot / (nh[k] * nr[k])
        scores.append(10.0 * total / n / len(rs))
    return sum(scores) / len(scores) if scores else float("nan")


def _meteor_one(hyp: List[str], ref: List[str], alpha: float = 0.9) -> float:
    """Exact-match METEOR of one pair: greedy alignment that prefers extending
    the current chunk, F-mean (recall-weighted), fragmentation penalty."""
    if not hyp or not ref:
        return 0.0
    used = [False] * len(ref)
    align: List[Tuple[int, int]] = []
    prev = -2
    for i, w in enumerate(hyp):
        candidates = [j for j, r in enumerate(ref) if r == w and not used[j]]
        if not candidates:
            continue
        j = prev + 1 if prev + 1 in candidates else candidates[0]
        used[j] = True
        align.append((i, j))
        prev = j
    m = len(align)
    if m == 0:
        return 0.0
    chunks = 1 + sum(
        1
        for (i0, j0), (i1, j1) in zip(align, align[1:])
        if not (i1 == i0 + 1 and j1 == j0 + 1)
    )
    p, r = m / len(hyp), m / len(ref)
    fmean = p * r / (alpha * p + (1 - alpha) * r)
    return fmean * (1 - 0.5 * (chunks / m) ** 3)


def meteor_lite(hyps: Mapping[str, str], refs: Mapping[str, Sequence[str]]) -> float:
    """Mean over clips of the best exact-match METEOR over the references."""
    scores = [max(_meteor_one(h, r) for r in rs) for h, rs in _prepare(hyps, refs)]
    return sum(scores) / len(scores) if scores else float("nan")


def caption_metrics(
    hyps: Mapping[str, str], refs: Mapping[str, Sequence[str]]
) -> Dict[str, float]:
    """All of the above, as one flat dict."""
    out = bleu(hyps, refs)
    out["rouge_l"] = rouge_l(hyps, refs)
    out["cider_d"] = cider_d(hyps, refs)
    out["meteor_lite"] = meteor_lite(hyps, refs)
    out["captions"] = float(len(hyps))
    return out


def resampled_scores(
    data: Sequence[Tuple[List[str], List[List[str]]]],
    indices: Sequence[Sequence[int]],
    n: int = 4,
    sigma: float = 6.0,
) -> Dict[str, List[float]]:
    """``bleu_4`` and ``cider_d`` of many resamples of ``data`` at once (each
    row of ``indices`` lists the pairs of one resample, repeats allowed), equal
    to :func:`bleu_tokens` / :func:`cider_d_tokens` of ``[data[i] for i in
    row]`` but without recomputing every n-gram vector per resample: BLEU is a
    function of per-pair counts summed over the resample, and CIDEr-D's
    norms and clipped dot products are sparse sums of ``idf ** 2`` weights,
    so each resample only changes the document frequencies."""
    import numpy as np
    from scipy import sparse

    idx = np.asarray(indices, dtype=np.int64)
    n_items = len(data)
    mult = np.zeros((len(idx), n_items))
    for row, items in enumerate(idx):
        np.add.at(mult[row], items, 1.0)
    # BLEU-n: clipped matches and totals per order, lengths, summed per resample.
    stats = np.zeros((n_items, 2 * n + 2))
    gram_ids: Dict[tuple, int] = {}
    member_rows, member_cols = [], []
    hyp_grams, ref_grams = [], []
    for i, (hyp, rs) in enumerate(data):
        h = _ngrams(hyp, n)
        max_ref: Ngrams = Counter()
        ref_counts = [_ngrams(r, n) for r in rs]
        for counts in ref_counts:
            for g, c in counts.items():
                max_ref[g] = max(max_ref[g], c)
        for g, c in h.items():
            stats[i, len(g) - 1] += min(c, max_ref[g])
            stats[i, n + len(g) - 1] += c
        stats[i, 2 * n] = len(hyp)
        stats[i, 2 * n + 1] = min((abs(len(r) - len(hyp)), len(r)) for r in rs)[1]
        for g in set(g for counts in ref_counts for g in counts):
            member_rows.append(i)
            member_cols.append(gram_ids.setdefault(g, len(gram_ids)))
        for g in h:
            gram_ids.setdefault(g, len(gram_ids))
        hyp_grams.append(h)
        ref_grams.append(ref_counts)
    sums = mult @ stats
    tiny, small = 1e-15, 1e-9
    hyp_len, ref_len = sums[:, 2 * n], sums[:, 2 * n + 1]
    with np.errstate(divide="ignore", over="ignore"):
        bp = np.where(
            hyp_len >= ref_len, 1.0, np.exp(1 - ref_len / np.maximum(hyp_len, 1))
        )
    log_prec = np.log((sums[:, :n] + tiny) / (sums[:, n : 2 * n] + small))
    bleu_n = bp * np.exp(log_prec.sum(axis=1) / n)

    # CIDEr-D: rows (item, order) for hypothesis norms; (item, ref, order) for
    # reference norms and dot products; columns: n-grams; values: tf products.
    n_grams = len(gram_ids)
    h_rows, h_cols, h_vals = [], [], []
    r_rows, r_cols, r_vals, d_vals, d_cols, d_rows = [], [], [], [], [], []
    pair_item, pair_penalty, pair_weight = [], [], []
    for i, (h, ref_counts) in enumerate(zip(hyp_grams, ref_grams)):
        for g, tf in h.items():
            h_rows.append(i * n + len(g) - 1)
            h_cols.append(gram_ids[g])
            h_vals.append(float(tf * tf))
        lh = len(data[i][0])
        for counts, ref_words in zip(ref_counts, data[i][1]):
            p = len(pair_item)
            pair_item.append(i)
            pair_penalty.append(
                math.exp(-((lh - len(ref_words)) ** 2) / (2 * sigma**2))
            )
            pair_weight.append(10.0 / n / len(ref_counts))
            for g, tf in counts.items():
                r_rows.append(p * n + len(g) - 1)
                r_cols.append(gram_ids[g])
                r_vals.append(float(tf * tf))
                if g in h:
                    d_rows.append(p * n + len(g) - 1)
                    d_cols.append(gram_ids[g])
                    d_vals.append(float(min(h[g], tf) * tf))
    n_pairs = len(pair_item)
    hyp_sq = sparse.csr_matrix((h_vals, (h_rows, h_cols)), (n_items * n, n_grams))
    ref_sq = sparse.csr_matrix((r_vals, (r_rows, r_cols)), (n_pairs * n, n_grams))
    dots = sparse.csr_matrix((d_vals, (d_rows, d_cols)), (n_pairs * n, n_grams))
    member = sparse.csr_matrix(
        (np.ones(len(member_rows)), (member_rows, member_cols)), (n_items, n_grams)
    )
    doc_freq = np.asarray((member.T @ mult.T))  # [n_grams, resamples]
    log_docs = np.log(idx.shape[1]) if idx.shape[1] else 0.0
    idf_sq = (log_docs - np.log(np.maximum(doc_freq, 1.0))) ** 2
    nh = np.sqrt(np.asarray(hyp_sq @ idf_sq)).reshape(n_items, n, -1)
    nr = np.sqrt(np.asarray(ref_sq @ idf_sq)).reshape(n_pairs, n, -1)
    dot = np.asarray(dots @ idf_sq).reshape(n_pairs, n, -1)
    nh_pairs = nh[np.asarray(pair_item)]
    ok = (nh_pairs > 0) & (nr > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(ok, dot / (nh_pairs * nr), 0.0).sum(axis=1)  # [pairs, B]
    pair_scores = cos * (np.asarray(pair_penalty) * np.asarray(pair_weight))[:, None]
    item_scores = np.zeros((n_items, len(idx)))
    np.add.at(item_scores, np.asarray(pair_item), pair_scores)
    counts = mult.sum(axis=1)
    cider = (mult * item_scores.T).sum(axis=1) / np.maximum(counts, 1)
    return {"bleu_4": [float(v) for v in bleu_n], "cider_d": [float(v) for v in cider]}
