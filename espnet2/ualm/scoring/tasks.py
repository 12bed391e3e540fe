"""Score one (task, hypothesis dir, reference dir) triple.

Each task's scoring kind (``TaskSpec.scoring``, ``espnet2.ualm.tokens.tasks``)
picks its scorer: audio generation (``text_to_audio``, ``rich_text_to_audio``),
generated speech (``tts``), captioning (``audio_caption``), question answering
(``audio_qa``), recognition (``asr``) and text-only dialogue
(``text_dialogue``). A missing hypothesis counts as an empty reply for text
tasks (so it is wrong) and is counted, not scored, for generated audio.

Each scorer also fills ``ScoreResult.chance``: the chance level of every metric
where one is meaningful, computed on the same test set (``chance.py``: shuffled
references for text tasks, the judge's shuffled prompts for generated audio),
and says in the notes how it was obtained; ``ScoreResult.shuffled``: the
permutation test of the model's own outputs for the key metrics; and
``ScoreResult.intervals``: a 95 % bootstrap interval over the test items for
every key metric (``bootstrap.py``).

Speech synthesis (``tts``) is measured by the mel-cepstral distortion after
DTW against the test item's reference recording (``speech.py``; on the mini
corpus the eSpeak rendering of the same text and voice) and, when an ASR
model is given, the round-trip WER of the generated speech transcribed by it
(the model's own ASR in the recipe: not an independent measure).
"""

import dataclasses
import importlib.util
import logging
import os
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2.ualm.data.io import load_audio
from espnet2.ualm.scoring import (
    answers,
    asr,
    bootstrap,
    captioning,
    chance,
    generation,
    speech,
)
from espnet2.ualm.scoring.data import (
    caption_references,
    infer_kind,
    qa_kinds,
    read_dialogues,
    read_meta,
    read_text_file,
    read_wav_scp,
)
from espnet2.ualm.scoring.embeddings import (
    AudioEmbedder,
    AudioTagger,
    TextAudioModel,
    embed_clips,
)
from espnet2.ualm.tokens.tasks import TASKS, TaskRegistry, TaskSpec

# The scoring kinds whose hypotheses are generated audio (score_generation).
GENERATED_AUDIO: Tuple[str, ...] = ("generation", "speech")

# Draws averaged in the training-caption chance level of captioning.
CAPTION_PRIOR_DRAWS = 10
# Bootstrap resamples of the corpus-level caption metrics (CIDEr-D and BLEU-4
# recomputed on each resample, vectorised: ``captioning.resampled_scores``).
CAPTION_RESAMPLES = bootstrap.RESAMPLES
_SHUFFLED_NOTE = (
    "shuffled outputs: the model's own {what}s, each scored as the answer to "
    "another item{kind} ("
    + str(chance.PERMUTATIONS)
    + " distinct seeded derangements at most; "
    "mean and permutation p-value): below p = "
    + str(chance.SIGNIFICANCE)
    + " the outputs depend on their inputs"
)


@dataclasses.dataclass
class ScoreResult:
    """Everything RESULTS.md shows about one task on one test set."""

    task: str
    test_set: str
    hyp_dir: str
    ref_dir: str
    metrics: Dict[str, float]
    models: Dict[str, str] = dataclasses.field(default_factory=dict)
    notes: List[str] = dataclasses.field(default_factory=list)
    per_item: Any = None
    plots: List[str] = dataclasses.field(default_factory=list)
    decode_config: Optional[Dict[str, Any]] = None
    # Chance level per metric (same test set); metrics without one are absent.
    chance: Dict[str, float] = dataclasses.field(default_factory=dict)
    # Permutation test of the model's own outputs per key metric
    # (chance.shuffled_outputs_test: level, p_value, permutations).
    shuffled: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
    # 95 % bootstrap interval over the test items per key metric: (low, high).
    intervals: Dict[str, Tuple[float, float]] = dataclasses.field(default_factory=dict)
    # The chance baselines behind ``chance`` where it is the higher of several
    # (captioning): baseline name -> metric -> level.
    chance_baselines: Dict[str, Dict[str, float]] = dataclasses.field(
        default_factory=dict
    )
    # The task's scoring kind and key metrics (``TaskSpec``); default: those
    # of the built-in task of that name.
    kind: str = ""
    key_metrics: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.kind and self.task in TASKS:
            spec = TASKS.get(self.task)
            self.kind, self.key_metrics = spec.scoring or "", spec.key_metrics


# Generated speech (paths) -> transcripts: the round-trip ASR of ``tts``.
Transcriber = Callable[[Sequence[str]], List[str]]


@dataclasses.dataclass
class GenerationModels:
    """The models of the generation metrics; ``None`` skips that metric."""

    embedder: Optional[AudioEmbedder] = None
    kl_tagger: Optional[AudioTagger] = None
    is_tagger: Optional[AudioTagger] = None
    clap: Optional[TextAudioModel] = None
    judge: Optional[ModuleType] = None
    asr: Optional[Transcriber] = None
    asr_description: str = ""


def set_name(ref_dir: str) -> str:
    return os.path.basename(os.path.normpath(ref_dir))


def _new_result(spec: TaskSpec, hyp_dir: str, ref_dir: str) -> ScoreResult:
    """An empty result of task ``spec`` on ``ref_dir``."""
    return ScoreResult(
        spec.name,
        set_name(ref_dir),
        hyp_dir,
        ref_dir,
        {},
        kind=spec.scoring or "",
        key_metrics=spec.key_metrics,
    )


def load_judge(path: str) -> ModuleType:
    """A judge plugin: a Python file defining ``judge_data_dir(hyp_wavs, ref_dir)``
    (e.g. ``egs2/ualm/mini/local/judge.py``)."""
    spec = importlib.util.spec_from_file_location("ualm_judge_plugin", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot load judge {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "judge_data_dir"):
        raise AttributeError(f"{path} defines no judge_data_dir(hyp_wavs, ref_dir)")
    return module


def _hyp_texts(hyp_dir: str, ref_ids: List[str]) -> Dict[str, str]:
    path = os.path.join(hyp_dir, "text")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} missing: the hypothesis dir has no text")
    hyps = read_text_file(path)
    return {k: hyps.get(k, "") for k in ref_ids}


def _missing_note(result: ScoreResult, n_missing: int, what: str) -> None:
    result.metrics["missing"] = float(n_missing)
    if n_missing:
        result.notes.append(f"{n_missing} {what} without a hypothesis")


def score_generation(
    spec: TaskSpec, hyp_dir: str, ref_dir: str, models: GenerationModels
) -> ScoreResult:
    """FD, KL, IS, CLAP and the judge for generated audio; for generated
    speech (kind ``speech``) also the MCD and round-trip WER."""
    result = _new_result(spec, hyp_dir, ref_dir)
    refs = read_wav_scp(ref_dir)
    hyps = read_wav_scp(hyp_dir)
    ids = sorted(k for k in refs if k in hyps)
    _missing_note(result, len(refs) - len(ids), "reference items")
    extra = len(set(hyps) - set(refs))
    if extra:
        result.notes.append(f"{extra} generated ids not in the references (ignored)")
    result.metrics["clips"] = float(len(ids))
    if not ids:
        result.notes.append("nothing to score")
        return result
    # (mono float64, native rate): each metric's model resamples to its rate
    gen = [load_audio(hyps[k], dtype=np.float64, allow_empty=True) for k in ids]
    ref = [load_audio(refs[k], dtype=np.float64, allow_empty=True) for k in ids]
    per_item: Dict[str, Dict[str, Any]] = {k: {} for k in ids}
    if models.embedder is not None and len(ids) >= 2:
        e_ref = embed_clips(models.embedder, ref)
        e_gen = embed_clips(models.embedder, gen)
        result.metrics["fd"] = generation.frechet_distance_from_embeddings(e_ref, e_gen)
        result.models["fd"] = models.embedder.description
    if models.kl_tagger is not None:
        p_ref = embed_clips(models.kl_tagger, ref, models.kl_tagger.posteriors)
        p_gen = embed_clips(models.kl_tagger, gen, models.kl_tagger.posteriors)
        kl = generation.kl_divergence(p_ref, p_gen)
        result.metrics["kl"] = float(kl.mean())
        result.models["kl"] = models.kl_tagger.description
        for k, v in zip(ids, kl):
            per_item[k]["kl"] = float(v)
    if models.is_tagger is not None:
        for name, clips in (("is", gen), ("is_reference", ref)):
            probs = embed_clips(models.is_tagger, clips, models.is_tagger.posteriors)
            mean, std = generation.inception_score(probs)
            result.metrics[name] = mean
            result.metrics[f"{name}_std"] = std
            result.models[name] = models.is_tagger.description
    if models.clap is not None:
        prompts = read_text_file(os.path.join(ref_dir, spec.prompt_file))
        t = models.clap.embed_text([prompts[k] for k in ids])
        for name, clips in (("clap", gen), ("clap_reference", ref)):
            scores = generation.clap_score(t, embed_clips(models.clap, clips))
            result.metrics[name] = float(scores.mean())
            result.models[name] = models.clap.description
            if name == "clap":
                for k, v in zip(ids, scores):
                    per_item[k]["clap"] = float(v)
    if models.judge is not None and read_meta(ref_dir):
        report = models.judge.judge_data_dir({k: hyps[k] for k in ids}, ref_dir)
        for key, value in report["summary"].items():
            if key != "clips":
                result.metrics[f"judge_{key}"] = float(value)
        result.models["judge"] = report.get("name", "judge")
        for k, item in report["per_item"].items():
            per_item.setdefault(k, {})["judge"] = item["scores"]
        _judge_chance(result, models.judge, report, ref_dir)
        _judge_shuffled(result, models.judge, report, ref_dir)
        _judge_interval(result, "judge_overall", report)
    if spec.scoring == "speech":
        _speech_measures(result, ids, gen, ref, hyps, ref_dir, models, per_item)
    result.per_item = per_item
    return result


def _interval(
    result: ScoreResult, name: str, interval: Optional[Tuple[float, float]]
) -> None:
    if interval is not None and name in result.metrics:
        result.intervals[name] = interval
    if result.intervals and not any("bootstrap" in n for n in result.notes):
        result.notes.append(
            f"[low, high]: {int(100 * bootstrap.CONFIDENCE)} % percentile "
            f"bootstrap interval over the test items ({bootstrap.RESAMPLES} "
            "seeded resamples; corpus-level metrics recomputed on each)"
        )


def _judge_interval(result: ScoreResult, name: str, report: Dict[str, Any]) -> None:
    """The interval of ``name``, the mean of a judge report's per-item
    ``overall`` scores."""
    per_item = report["per_item"]
    overall = [per_item[k]["scores"]["overall"] for k in sorted(per_item)]
    _interval(result, name, bootstrap.mean_interval(overall))


def _speech_measures(
    result: ScoreResult,
    ids: List[str],
    gen: List[Tuple[np.ndarray, int]],
    ref: List[Tuple[np.ndarray, int]],
    hyps: Dict[str, str],
    ref_dir: str,
    models: GenerationModels,
    per_item: Dict[str, Dict[str, Any]],
) -> None:
    """MCD after DTW against each item's reference recording and, with an ASR
    model, the round-trip WER; each with its chance level (another item's
    reference recording / transcript), permutation test and interval."""
    pairs = speech.PairwiseMCD(gen, ref)
    mcd = pairs.per_item()
    result.metrics["mcd"] = float(np.nanmean(mcd))
    result.models["mcd"] = (
        "mel-cepstral distortion after DTW vs the reference recording (dB, "
        f"c1..c{speech.ORDER})"
    )
    for k, v in zip(ids, mcd):
        per_item[k]["mcd"] = float(v)
    result.notes.append(
        "mcd: mel-cepstral distortion (dB, lower is better) after DTW between "
        "the generated speech and the test item's reference recording of the "
        "same text (mini corpus: the eSpeak rendering of the same text and "
        "voice)"
    )
    refs_text: Dict[str, str] = {}
    text_path = os.path.join(ref_dir, "text")
    if os.path.exists(text_path):
        refs_text = read_text_file(text_path)
    transcripts: Optional[List[str]] = None
    if models.asr is not None and refs_text:
        transcripts = list(models.asr([hyps[k] for k in ids]))
        ref_list = [refs_text.get(k, "") for k in ids]
        rates = asr.error_rates(ref_list, transcripts)
        for name in ("wer", "cer"):
            if name in rates:
                result.metrics[f"roundtrip_{name}"] = rates[name]
                result.models[f"roundtrip_{name}"] = (
                    models.asr_description + "; not independent (the model's own ASR)"
                )
        for k, t in zip(ids, transcripts):
            per_item[k]["transcript"] = t
        result.notes.append(
            "roundtrip_wer: the generated speech transcribed by "
            f"{models.asr_description or 'the given ASR model'} and scored "
            "against the text it was asked to say; not independent (the model's "
            "own ASR: its errors and the synthesis' errors can cancel or add up)"
        )
    if len(ids) < 2:
        return
    partner = chance.derangement(len(ids))
    result.chance["mcd"] = float(
        np.nanmean([pairs(int(i), j, gen_side=False) for j, i in enumerate(partner)])
    )
    note = (
        "chance (mcd): another test item's reference recording scored against "
        "this item's (fixed seeded derangement): fluent speech of other text"
    )
    if transcripts is not None:
        ref_list = [refs_text.get(k, "") for k in ids]
        shuffled_refs = chance.shuffled_by(ref_list, partner)
        chance_rates = asr.error_rates(ref_list, shuffled_refs)
        for name in ("wer", "cer"):
            if name in chance_rates:
                result.chance[f"roundtrip_{name}"] = chance_rates[name]
        note += "; (roundtrip_*): another utterance's reference transcript, as for ASR"
    result.notes.append(note)

    def shuffled(partner: Sequence[int]) -> Dict[str, float]:
        out = {"mcd": float(np.nanmean(pairs.per_item(partner)))}
        if transcripts is not None:
            rates = asr.error_rates(ref_list, chance.shuffled_by(transcripts, partner))
            out["roundtrip_wer"] = rates.get("wer", float("nan"))
        return out

    result.shuffled.update(
        chance.shuffled_outputs_test(shuffled, _key_metrics(result), len(ids))
    )
    result.notes.append(_SHUFFLED_NOTE.format(what="generated utterance", kind=""))
    _interval(result, "mcd", bootstrap.mean_interval(mcd))
    if transcripts is not None:
        _interval(
            result,
            "roundtrip_wer",
            bootstrap.ratio_interval(*asr.utterance_errors(ref_list, transcripts)),
        )


def _key_metrics(result: ScoreResult) -> Dict[str, float]:
    """The observed values of the task's key metrics (the tested ones)."""
    return {m: result.metrics[m] for m in result.key_metrics if m in result.metrics}


def _hypotheses_of(items: List[Dict[str, Any]], partner) -> List[Dict[str, Any]]:
    """``items`` with item i's hypothesis replaced by item ``partner[i]``'s."""
    return [
        {**it, "hypothesis": items[j]["hypothesis"]} for it, j in zip(items, partner)
    ]


def _judge_shuffled(
    result: ScoreResult, judge: ModuleType, report: Dict[str, Any], ref_dir: str
) -> None:
    """Permutation test of ``judge_overall``: the generated clips judged
    against other items' prompts (the plugin's ``shuffled_output_level``)."""
    if not hasattr(judge, "shuffled_output_level") or len(report["per_item"]) < 2:
        return
    per_item = report["per_item"]
    result.shuffled.update(
        chance.shuffled_outputs_test(
            lambda partner: {
                "judge_overall": judge.shuffled_output_level(
                    per_item, ref_dir, partner
                )["overall"]
            },
            _key_metrics(result),
            len(per_item),
        )
    )
    result.notes.append(
        "shuffled outputs (judge_overall): the generated clips judged against "
        f"other items' prompts ({chance.PERMUTATIONS} distinct seeded "
        "derangements at most): what these clips score when they ignore their "
        "prompts"
    )


def _judge_chance(
    result: ScoreResult, judge: ModuleType, report: Dict[str, Any], ref_dir: str
) -> None:
    """The judge's chance level for every ``judge_*`` metric: the judged clips'
    own metadata scored against the parameters of another prompt (a fixed
    derangement), position checked only where the judged clip was stereo."""
    ids = sorted(report["per_item"])
    if not hasattr(judge, "chance_data_dir"):
        result.notes.append("chance: the judge plugin has no chance_data_dir")
        return
    if len(ids) < 2:
        result.notes.append("chance: needs at least two judged clips")
        return
    stereo = [
        bool((report["per_item"][k].get("estimate") or {}).get("stereo", True))
        for k in ids
    ]
    summary = judge.chance_data_dir(
        ids, ref_dir, seed=chance.CHANCE_SEED, stereo=stereo
    )
    result.chance.update(
        {f"judge_{k}": float(v) for k, v in summary.items() if k != "clips"}
    )
    result.notes.append(
        "chance (judge_*): each judged clip's own metadata scored against the "
        "parameters of another test prompt (fixed seeded derangement), i.e. a "
        "model that renders a perfect in-distribution clip ignoring its prompt; "
        "FD/KL/IS/CLAP have no chance level"
    )


CaptionScorer = Callable[[Dict[str, str]], Dict[str, float]]


def _training_caption_chance(
    ids: List[str],
    train_captions: Dict[str, List[str]],
    score: CaptionScorer,
) -> Dict[str, float]:
    """Caption metrics (``score``) when every clip gets a random training
    clip's caption (the mean of ``CAPTION_PRIOR_DRAWS`` seeded draws)."""
    pool = [c for k in sorted(train_captions) for c in train_captions[k][:1]]
    totals: Dict[str, float] = {}
    for draw in range(CAPTION_PRIOR_DRAWS):
        rng = np.random.default_rng(chance.CHANCE_SEED + draw)
        picks = rng.integers(len(pool), size=len(ids))
        metrics = score({k: pool[j] for k, j in zip(ids, picks)})
        for name, value in metrics.items():
            totals[name] = totals.get(name, 0.0) + value / CAPTION_PRIOR_DRAWS
    return totals


def _attribute_metrics(report: Dict[str, Any]) -> Dict[str, float]:
    """The judge's caption summary as ``attribute_*`` metrics (``overall`` ->
    ``attribute_accuracy``; ``unparsed`` -> ``unparsed_captions``)."""
    out = {}
    for key, value in report["summary"].items():
        if key == "clips":
            continue
        if key == "overall":
            out["attribute_accuracy"] = float(value)
        elif key == "unparsed":
            out["unparsed_captions"] = float(value)
        else:
            out[f"attribute_{key}"] = float(value)
    return out


def _is_chance_metric(name: str) -> bool:
    return name != "captions" and name != "unparsed_captions"


def score_captioning(
    spec: TaskSpec,
    hyp_dir: str,
    ref_dir: str,
    train_captions: Optional[Dict[str, List[str]]] = None,
    judge: Optional[ModuleType] = None,
) -> ScoreResult:
    """Caption metrics and, with a judge that parses captions
    (``caption_attributes(hyp_texts, ref_dir)``, the mini judge), the
    attribute accuracy: does the caption name the clip's event types, counts,
    pitch bands and their order?

    Chance level: the higher, per metric, of two baselines that write
    captions without listening: another test clip's reference (which knows
    the test split's phrasings, held-out ones included) and, with
    ``train_captions``, a random training clip's caption (what a model that
    can only know the training captions writes). Taking the higher keeps the
    bar at the stronger of the two; both are in ``chance_baselines`` and the
    notes."""
    result = _new_result(spec, hyp_dir, ref_dir)
    refs = caption_references(ref_dir)
    hyps = _hyp_texts(hyp_dir, sorted(refs))
    _missing_note(
        result, sum(1 for k in refs if not hyps[k]), "clips (or empty captions)"
    )
    result.metrics.update(captioning.caption_metrics(hyps, refs))
    ids = sorted(k for k in refs if refs[k])
    use_judge = (
        judge is not None
        and hasattr(judge, "caption_attributes")
        and bool(read_meta(ref_dir))
    )
    if judge is not None and not use_judge:
        result.notes.append(
            "attribute accuracy skipped: the judge has no caption_attributes or "
            "the references have no meta.jsonl"
        )
    report: Optional[Dict[str, Any]] = None
    if use_judge:
        report = judge.caption_attributes({k: hyps[k] for k in ids}, ref_dir)
        result.metrics.update(_attribute_metrics(report))
        result.models["attribute_accuracy"] = report.get("name", "judge")
        result.notes.append(
            "attribute_*: each caption parsed with the judge's caption parser and "
            "its groups compared in order with the clip's parameters (meta.jsonl): "
            "event type, count and pitch band per group, number of groups and "
            "order of types per clip; attribute_accuracy is the mean over clips "
            "of each clip's mean attribute score (as judge_overall)"
        )

    def scored(captions: Dict[str, str]) -> Dict[str, float]:
        out = chance.pick(captioning.caption_metrics(captions, refs), _is_chance_metric)
        if use_judge:
            out.update(
                chance.pick(
                    _attribute_metrics(judge.caption_attributes(captions, ref_dir)),
                    _is_chance_metric,
                )
            )
        return out

    if len(ids) >= 2:
        partner = chance.derangement(len(ids))
        test_ref_name = "another test clip's reference"
        baselines = {
            test_ref_name: scored({k: refs[ids[j]][0] for k, j in zip(ids, partner)})
        }
        descriptions = [
            f"({test_ref_name}) every caption replaced by another test clip's "
            "first reference caption (fixed seeded derangement; the test split's "
            "captions, its phrasings included, written without listening)"
        ]
        if train_captions:
            baselines["a training caption"] = _training_caption_chance(
                ids, train_captions, scored
            )
            descriptions.append(
                "(a training caption) every caption replaced by the first caption "
                f"of a random training clip ({len(train_captions)} clips; mean of "
                f"{CAPTION_PRIOR_DRAWS} seeded draws): a model that writes the "
                "training captions without listening"
            )
        result.chance_baselines = baselines
        names = set().union(*baselines.values())
        result.chance.update(
            {m: max(b[m] for b in baselines.values() if m in b) for m in sorted(names)}
        )
        key = [m for m in result.key_metrics if m in result.chance]
        levels = "; ".join(
            f"{m}: "
            + ", ".join(f"{b} {v[m]:.4f}" for b, v in baselines.items() if m in v)
            for m in key
        )
        result.notes.append(
            "chance: per metric the higher of "
            + ("two baselines" if len(baselines) > 1 else "one baseline")
            + ": "
            + "; ".join(descriptions)
            + f" ({levels})"
        )
        if not train_captions:
            result.notes.append(
                "give the training captions (ualm_score --caption_train_dir) for "
                "the level of a model that can only know those"
            )
        result.shuffled.update(
            chance.shuffled_outputs_test(
                lambda partner: scored({k: hyps[ids[j]] for k, j in zip(ids, partner)}),
                _key_metrics(result),
                len(ids),
            )
        )
        result.notes.append(_SHUFFLED_NOTE.format(what="caption", kind=""))
        data = captioning.prepare({k: hyps[k] for k in ids}, refs)
        draws = captioning.resampled_scores(
            data, bootstrap.resample_indices(len(ids), CAPTION_RESAMPLES)
        )
        for name in ("cider_d", "bleu_4"):
            _interval(result, name, bootstrap.percentile_interval(draws[name]))
        if report is not None:
            _judge_interval(result, "attribute_accuracy", report)
    n_refs = np.mean([len(v) for v in refs.values()]) if refs else 0
    result.notes.append(
        f"{n_refs:.1f} reference captions per clip; text lower-cased, punctuation "
        "removed; METEOR-lite uses exact matches only (not comparable to METEOR)"
    )
    result.per_item = {k: {"hyp": hyps[k], "refs": refs[k]} for k in sorted(refs)}
    if report is not None:
        for k, item in report["per_item"].items():
            result.per_item[k]["attributes"] = item["scores"]
            result.per_item[k]["parsed"] = item["parsed"]
    return result


def score_qa_dir(
    spec: TaskSpec, hyp_dir: str, ref_dir: str, answer_words: Dict[str, List[str]]
) -> ScoreResult:
    result = _new_result(spec, hyp_dir, ref_dir)
    dialogues = read_dialogues(ref_dir)
    hyps = _hyp_texts(hyp_dir, sorted(dialogues))
    _missing_note(result, sum(1 for k in dialogues if not hyps[k]), "questions")
    kinds = qa_kinds(ref_dir)
    vocab = dict(answer_words)
    if not vocab:  # no vocabulary given: the reference answers of each kind
        for k, d in dialogues.items():
            vocab.setdefault(kinds.get(k, "other"), [])
            if d["reference"] not in vocab[kinds.get(k, "other")]:
                vocab[kinds.get(k, "other")].append(d["reference"])
        result.notes.append(
            "answer vocabulary: the reference answers (no --answer_words given)"
        )
    items = [
        {
            "id": k,
            "question": d["question"],
            "reference": d["reference"],
            "hypothesis": hyps[k],
            "kind": kinds.get(k) or infer_kind(d["reference"], vocab),
        }
        for k, d in sorted(dialogues.items())
    ]
    summary, records = answers.score_qa(items, vocab)
    result.metrics.update(summary)
    result.per_item = records
    if len(items) >= 2:
        partner, lonely = chance.grouped_derangement([it["kind"] for it in items])
        shuffled = [
            {**it, "hypothesis": items[j]["reference"]} for it, j in zip(items, partner)
        ]
        chance_summary, _ = answers.score_qa(shuffled, vocab)
        result.chance.update(chance.pick(chance_summary, _is_accuracy))
        note = (
            "chance: every reply replaced by the reference answer of another "
            "question of the same kind (fixed seeded derangement), which keeps "
            "the answer prior: a model that knows the answers' distribution but "
            "does not listen"
        )
        if lonely:
            note += f" ({lonely} questions alone in their kind got another kind's)"
        result.notes.append(note)
        result.shuffled.update(
            chance.shuffled_outputs_test(
                lambda partner: answers.score_qa(_hypotheses_of(items, partner), vocab)[
                    0
                ],
                _key_metrics(result),
                len(items),
                groups=[it["kind"] for it in items],
            )
        )
        result.notes.append(
            _SHUFFLED_NOTE.format(what="reply", kind=" of the same question kind")
        )
        _interval(
            result,
            "accuracy",
            bootstrap.mean_interval([float(bool(r["correct"])) for r in records]),
        )
    return result


def _is_accuracy(name: str) -> bool:
    return name == "accuracy" or "_accuracy" in name or name.startswith("accuracy_")


def score_asr(spec: TaskSpec, hyp_dir: str, ref_dir: str) -> ScoreResult:
    result = _new_result(spec, hyp_dir, ref_dir)
    refs = read_text_file(os.path.join(ref_dir, "text"))
    ids = sorted(refs)
    hyps = _hyp_texts(hyp_dir, ids)
    _missing_note(result, sum(1 for k in ids if not hyps[k]), "utterances")
    result.metrics.update(
        asr.error_rates([refs[k] for k in ids], [hyps[k] for k in ids])
    )
    if len(ids) >= 2:
        ref_list = [refs[k] for k in ids]
        shuffled = chance.shuffled_by(ref_list, chance.derangement(len(ids)))
        result.chance.update(
            chance.pick(
                asr.error_rates(ref_list, shuffled),
                lambda m: m in ("wer", "cer", "sentence_error_rate"),
            )
        )
        result.notes.append(
            "chance: every hypothesis replaced by another utterance's reference "
            "transcript (fixed seeded derangement)"
        )
        hyp_list = [hyps[k] for k in ids]
        result.shuffled.update(
            chance.shuffled_outputs_test(
                lambda partner: asr.error_rates(
                    ref_list, chance.shuffled_by(hyp_list, partner)
                ),
                _key_metrics(result),
                len(ids),
            )
        )
        result.notes.append(_SHUFFLED_NOTE.format(what="transcript", kind=""))
        _interval(
            result,
            "wer",
            bootstrap.ratio_interval(*asr.utterance_errors(ref_list, hyp_list)),
        )
    result.notes.append(
        "WER/CER after normalisation: lower case, punctuation removed, digits "
        "spelled out as the corpus writes numbers"
    )
    result.per_item = {k: {"ref": refs[k], "hyp": hyps[k]} for k in ids}
    return result


def score_text(spec: TaskSpec, hyp_dir: str, ref_dir: str) -> ScoreResult:
    result = _new_result(spec, hyp_dir, ref_dir)
    dialogues = read_dialogues(ref_dir)
    hyps = _hyp_texts(hyp_dir, sorted(dialogues))
    _missing_note(result, sum(1 for k in dialogues if not hyps[k]), "prompts")
    items = [
        {"id": k, "reference": d["reference"], "hypothesis": hyps[k]}
        for k, d in sorted(dialogues.items())
    ]
    summary, records = answers.score_text_answers(items)
    result.metrics.update(summary)
    if len(items) >= 2:
        partner, lonely = chance.grouped_derangement([r["kind"] for r in records])
        shuffled = [
            {**it, "hypothesis": items[j]["reference"]} for it, j in zip(items, partner)
        ]
        chance_summary, _ = answers.score_text_answers(shuffled)
        result.chance.update(chance.pick(chance_summary, _is_accuracy))
        note = (
            "chance: every reply replaced by the reference answer of another "
            "prompt of the same answer type (numeric / exact; fixed seeded "
            "derangement)"
        )
        if lonely:
            note += f" ({lonely} prompts alone in their type got the other type's)"
        result.notes.append(note)
        result.shuffled.update(
            chance.shuffled_outputs_test(
                lambda partner: answers.score_text_answers(
                    _hypotheses_of(items, partner)
                )[0],
                _key_metrics(result),
                len(items),
                groups=[r["kind"] for r in records],
            )
        )
        result.notes.append(
            _SHUFFLED_NOTE.format(what="reply", kind=" of the same answer type")
        )
        _interval(
            result,
            "accuracy",
            bootstrap.mean_interval([float(bool(r["correct"])) for r in records]),
        )
    result.notes.append(
        "numeric answers: the last number of the reply (digits or words); others: "
        "exact match after normalisation"
    )
    result.per_item = records
    return result


def score(
    task: str,
    hyp_dir: str,
    ref_dir: str,
    models: Optional[GenerationModels] = None,
    answer_words: Optional[Dict[str, List[str]]] = None,
    train_captions: Optional[Dict[str, List[str]]] = None,
    judge: Optional[ModuleType] = None,
    tasks: TaskRegistry = TASKS,
) -> ScoreResult:
    """Dispatch on the task's scoring kind (``TaskSpec.scoring`` of ``tasks``);
    ``judge`` (else ``models.judge``) also scores captions where it can parse
    them."""
    spec = tasks.get(task)
    if spec.scoring is None:
        raise ValueError(f"task {task!r} is not scored; scored: {tasks.scored()}")
    logging.info("scoring %s: %s against %s", task, hyp_dir, ref_dir)
    if spec.scoring in GENERATED_AUDIO:
        return score_generation(spec, hyp_dir, ref_dir, models or GenerationModels())
    if spec.scoring == "captioning":
        if judge is None and models is not None:
            judge = models.judge
        return score_captioning(spec, hyp_dir, ref_dir, train_captions, judge)
    if spec.scoring == "qa":
        return score_qa_dir(spec, hyp_dir, ref_dir, answer_words or {})
    if spec.scoring == "asr":
        return score_asr(spec, hyp_dir, ref_dir)
    return score_text(spec, hyp_dir, ref_dir)
