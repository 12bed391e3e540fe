#!/usr/bin/env python3
"""Score UALM outputs per task and test set; write RESULTS.md, scores and plots.

Example (mini recipe, from egs2/ualm/mini)::

    python -m espnet2.bin.ualm_score --output_dir exp/scores \\
        --eval text_to_audio exp/decode/text_to_audio/mini_sound_test \\
               data/mini_sound_test \\
        --eval audio_qa exp/decode/audio_qa/mini_sound_test data/mini_sound_test \\
        --eval asr exp/decode/asr/mini_speech_test data/mini_speech_test \\
        --decode_config conf/decode.yaml --judge local/judge.py \\
        --answer_words corpus/corpus_info.json \\
        --probe_train_dir data/mini_sound_train \\
        --caption_train_dir data/mini_sound_train

Each ``--eval TASK HYP_DIR REF_DIR`` scores one task on one test set: HYP_DIR
holds ``wav.scp`` (generated audio) and/or ``text`` (replies) keyed by the ids
of REF_DIR's items (clip ids; dialogue ids for ``audio_qa`` / ``text_dialogue``).

Text-to-audio models (``--fd_model``, ``--kl_model``, ``--is_model``,
``--clap_model``): the paper's are ``openl3`` (FD), ``passt`` (KL), ``panns``
(IS) and ``clap``, loaded from local checkpoints given with
``--<metric>_model_conf checkpoint=PATH`` (CLAP also through transformers:
``--clap_model hf_clap --clap_model_conf model_dir=DIR``, a local
``save_pretrained`` directory); the defaults ``logmel_stats`` and
``probe`` (fitted on ``--probe_train_dir``) need no weights and are marked as
not comparable to published numbers in every report.

Every metric with a meaningful chance level gets one, computed on the same
test set (``espnet2/ualm/scoring/chance.py``): text tasks score the references
of other items (a fixed seeded derangement; QA within the question kind, text
dialogue within the answer type), captions random training captions when
``--caption_train_dir`` is given (the higher of that and another test clip's
reference), generated audio the judge's shuffled prompts.

Captions also get an attribute accuracy when the judge can parse them (the
mini judge's ``caption_attributes``): absent without ``--judge``. Speech
synthesis (``tts``) gets the mel-cepstral distortion after DTW against the
test item's reference recording and, with ``--asr_model <packed model>``, the
round-trip WER of the generated speech through that model's ASR (in the
recipe the model's own: not an independent measure). Every key metric gets a
95 % bootstrap interval over the test items.
At the end a summary (key metric, chance level, better than chance or not, one
line per task and test set) is logged, printed and put at the top of RESULTS.md.

Outputs in ``--output_dir``: ``RESULTS.md``, ``scores.json`` (metrics, chance
levels and the summary's key metrics per task and test set),
``per_item/<task>.<test_set>.json`` and ``plots/*.png``.
"""

import argparse
import json
import logging
import math
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import yaml

from espnet2.ualm.cli import setup_logging
from espnet2.ualm.data.fingerprint import digest, tree_stamp
from espnet2.ualm.data.io import load_audio, resample
from espnet2.ualm.scoring.data import (
    caption_references,
    load_answer_words,
    probe_labels,
    read_text_file,
    read_wav_scp,
)
from espnet2.ualm.scoring.embeddings import (
    EMBEDDERS,
    TAGGERS,
    TEXT_AUDIO_MODELS,
    AudioTagger,
    MissingModelError,
    ProbeTagger,
    build_embedder,
    build_tagger,
    build_text_audio_model,
)
from espnet2.ualm.scoring.report import (
    headline,
    plot_metric_bars,
    plot_spectrograms,
    summary_lines,
    write_results_md,
)
from espnet2.ualm.scoring.tasks import (
    GENERATED_AUDIO,
    GenerationModels,
    ScoreResult,
    Transcriber,
    load_judge,
    score,
)
from espnet2.ualm.tokens.tasks import TASKS, TaskRegistry, load_tasks

NONE = "none"


def parse_conf(pairs: Sequence[str]) -> Dict[str, Any]:
    """``["checkpoint=/m/x.pt", "device=cpu"]`` -> dict (values read as YAML)."""
    conf: Dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"expected key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        conf[key] = yaml.safe_load(value)
    return conf


def load_config_file(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """A JSON or YAML mapping (decoding settings)."""
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        data = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping of settings")
    return data


def hyp_decode_config(hyp_dir: str) -> Optional[Dict[str, Any]]:
    """Settings inference left beside its outputs, if any."""
    for name in ("decode_config.yaml", "decode_config.json", "decode.yaml"):
        path = os.path.join(hyp_dir, name)
        if os.path.exists(path):
            return load_config_file(path)
    return None


def fit_probe(train_dir: str, out_path: str, max_clips: int) -> ProbeTagger:
    """Fit the probe tagger on a labelled training set (once per output dir,
    again when the training set or ``max_clips`` changed)."""
    probe = ProbeTagger()
    fingerprint = digest({"train": tree_stamp(train_dir), "max_clips": max_clips})
    stamp = f"{out_path}.sha256"
    if os.path.exists(out_path) and os.path.exists(stamp):
        with open(stamp, encoding="utf-8") as f:
            if f.read().strip() == fingerprint:
                probe.load(out_path)
                logging.info("probe tagger loaded from %s", out_path)
                return probe
        logging.info(
            "%s: %s changed since it was fitted: fitting again", out_path, train_dir
        )
    labels = probe_labels(train_dir)
    wavs = read_wav_scp(train_dir)
    ids = sorted(k for k in labels if k in wavs)[:max_clips]
    clips = []
    for k in ids:
        wav, rate = load_audio(wavs[k], dtype="float64", allow_empty=True)
        clips.append(resample(wav, rate, probe.sample_rate))
    stats = probe.fit(clips, [labels[k] for k in ids])
    probe.save(out_path)
    with open(stamp, "w", encoding="utf-8") as f:
        f.write(fingerprint + "\n")
    logging.info("probe tagger fitted on %s: %s", train_dir, stats)
    return probe


def build_transcriber(model_dir: str, device: str) -> Transcriber:
    """Round-trip ASR of generated speech with a packed UALM (``UALM.transcribe``,
    the packed decoding settings): audio paths -> transcripts ("" on failure)."""
    from espnet2.ualm.inference.pipeline import UALM

    model = UALM.from_pretrained(model_dir, device=device)

    def transcribe(paths: Sequence[str]) -> List[str]:
        outputs = model.transcribe(list(paths))
        for out in outputs:
            if not out.ok:
                logging.warning("round-trip ASR of item %s: %s", out.id, out.error)
        return [out.text or "" for out in outputs]

    return transcribe


def build_models(
    args: argparse.Namespace, notes: List[str], tasks: TaskRegistry = TASKS
) -> Optional[GenerationModels]:
    """The generation metrics' models; a requested model that cannot be loaded
    stops the run with the adapter's message."""
    kinds = {tasks.get(t).scoring for t, _, _ in args.eval}
    if not kinds & set(GENERATED_AUDIO):
        return None
    models = GenerationModels()
    if args.asr_model and "speech" in kinds:
        if not os.path.exists(args.asr_model):
            raise SystemExit(f"--asr_model: {args.asr_model} not found")
        models.asr = build_transcriber(args.asr_model, args.asr_device)
        models.asr_description = f"UALM ASR of {args.asr_model}"
    try:
        if args.fd_model != NONE:
            models.embedder = build_embedder(
                args.fd_model, parse_conf(args.fd_model_conf)
            )
        taggers: Dict[str, Optional[AudioTagger]] = {}
        for metric in ("kl", "is"):
            name = getattr(args, f"{metric}_model")
            conf = parse_conf(getattr(args, f"{metric}_model_conf"))
            if name == NONE:
                continue
            key = f"{name}:{json.dumps(conf, sort_keys=True)}"
            if key not in taggers:
                if name == "probe" and "checkpoint" not in conf:
                    if not args.probe_train_dir:
                        notes.append(
                            f"{metric.upper()} skipped: the probe tagger needs "
                            "--probe_train_dir (or a published tagger)"
                        )
                        taggers[key] = None
                    else:
                        path = os.path.join(args.output_dir, "probe_tagger.npz")
                        taggers[key] = fit_probe(
                            args.probe_train_dir, path, args.probe_max_clips
                        )
                else:
                    taggers[key] = build_tagger(name, conf)
            setattr(models, f"{metric}_tagger", taggers[key])
        if args.clap_model != NONE:
            models.clap = build_text_audio_model(
                args.clap_model, parse_conf(args.clap_model_conf)
            )
        else:
            notes.append("CLAP score skipped (no --clap_model)")
    except MissingModelError as e:
        raise SystemExit(f"ualm_score: {e}") from e
    if args.judge:
        models.judge = load_judge(args.judge)
    return models


def spectrogram_plot(
    result: ScoreResult, out_dir: str, num: int, prompt_file_name: str = "text"
) -> Optional[str]:
    """Generated clips beside the reference clip of the same prompt (from the
    reference dir's ``prompt_file_name``)."""
    if num <= 0 or result.kind not in GENERATED_AUDIO:
        return None
    hyps, refs = read_wav_scp(result.hyp_dir), read_wav_scp(result.ref_dir)
    prompt_file = os.path.join(result.ref_dir, prompt_file_name)
    prompts = read_text_file(prompt_file) if os.path.exists(prompt_file) else {}
    ids = sorted(k for k in hyps if k in refs)[:num]
    if not ids:
        return None
    items = [
        (
            f"{k}: {prompts.get(k, '')}",
            load_audio(hyps[k], dtype="float64", allow_empty=True),
            load_audio(refs[k], dtype="float64", allow_empty=True),
        )
        for k in ids
    ]
    path = os.path.join(
        out_dir, "plots", f"spectrograms.{result.task}.{result.test_set}.png"
    )
    return plot_spectrograms(path, items)


def _json_ready(obj: Any) -> Any:
    """Strict JSON: NaN -> null, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--eval",
        nargs=3,
        action="append",
        required=True,
        metavar=("TASK", "HYP_DIR", "REF_DIR"),
        help=f"task ({', '.join(TASKS.scored())}), hypothesis dir, reference data dir",
    )
    parser.add_argument(
        "--task_templates",
        default=None,
        help="YAML file of extra tasks (espnet2.ualm.tokens.tasks), as in training",
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--decode_config", default=None, help="JSON/YAML of the decoding settings"
    )
    parser.add_argument(
        "--fd_model", default="logmel_stats", choices=[*EMBEDDERS, NONE]
    )
    parser.add_argument("--fd_model_conf", action="append", default=[])
    parser.add_argument("--kl_model", default="probe", choices=[*TAGGERS, NONE])
    parser.add_argument("--kl_model_conf", action="append", default=[])
    parser.add_argument("--is_model", default="probe", choices=[*TAGGERS, NONE])
    parser.add_argument("--is_model_conf", action="append", default=[])
    parser.add_argument(
        "--clap_model", default=NONE, choices=[*TEXT_AUDIO_MODELS, NONE]
    )
    parser.add_argument("--clap_model_conf", action="append", default=[])
    parser.add_argument(
        "--probe_train_dir",
        default=None,
        help="labelled data dir (meta.jsonl or utt2label) to fit the probe tagger",
    )
    parser.add_argument("--probe_max_clips", type=int, default=2000)
    parser.add_argument(
        "--judge",
        default=None,
        help="judge plugin file (egs2/ualm/mini/local/judge.py): judges generated "
        "audio and, where it defines caption_attributes, the generated captions",
    )
    parser.add_argument(
        "--asr_model",
        default=None,
        help="packed UALM model (dir or archive) whose ASR transcribes the "
        "generated speech of tts for the round-trip WER (the recipe gives the "
        "model under test: not an independent measure)",
    )
    parser.add_argument("--asr_device", default="cpu")
    parser.add_argument(
        "--answer_words",
        default=None,
        help="JSON answer vocabulary per question kind (or corpus_info.json)",
    )
    parser.add_argument(
        "--caption_train_dir",
        default=None,
        help="data dir of the training captions (text, meta.jsonl): captioning's "
        "chance level writes them without listening",
    )
    parser.add_argument("--num_plot_clips", type=int, default=3)
    parser.add_argument(
        "--log_level", default="INFO", choices=("ERROR", "WARNING", "INFO", "DEBUG")
    )
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> List[ScoreResult]:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level, cmd)
    try:
        tasks = load_tasks(args.task_templates)
    except (OSError, ValueError) as e:
        raise SystemExit(f"ualm_score: {e}") from e
    for task, hyp_dir, ref_dir in args.eval:
        if task not in tasks or tasks.get(task).scoring is None:
            raise SystemExit(
                f"unknown task {task!r}; known: {', '.join(tasks.scored())}"
            )
        for d in (hyp_dir, ref_dir):
            if not os.path.isdir(d):
                raise SystemExit(f"{task}: directory {d!r} not found")
    os.makedirs(args.output_dir, exist_ok=True)
    notes: List[str] = []
    models = build_models(args, notes, tasks)
    judge = models.judge if models is not None else None
    if judge is None and args.judge:
        judge = load_judge(args.judge)
    answer_words = load_answer_words(args.answer_words)
    train_captions = None
    if args.caption_train_dir:
        text = os.path.join(args.caption_train_dir, "text")
        if not os.path.isfile(text):
            raise SystemExit(f"--caption_train_dir: {text} not found")
        train_captions = caption_references(args.caption_train_dir)
        if not any(train_captions.values()):
            raise SystemExit(f"--caption_train_dir: no captions in {text}")
    results: List[ScoreResult] = []
    for task, hyp_dir, ref_dir in args.eval:
        result = score(
            task, hyp_dir, ref_dir, models, answer_words, train_captions, judge, tasks
        )
        if result.kind in GENERATED_AUDIO:
            result.notes.extend(notes)
        result.decode_config = hyp_decode_config(hyp_dir)
        plot = spectrogram_plot(
            result, args.output_dir, args.num_plot_clips, tasks.get(task).prompt_file
        )
        if plot:
            result.plots.append(plot)
        per_item = os.path.join(
            args.output_dir, "per_item", f"{task}.{result.test_set}.json"
        )
        os.makedirs(os.path.dirname(per_item), exist_ok=True)
        with open(per_item, "w", encoding="utf-8") as f:
            json.dump(_json_ready(result.per_item), f, indent=1, ensure_ascii=False)
        results.append(result)
    bars = []
    for task in dict.fromkeys(r.task for r in results):
        path = os.path.join(args.output_dir, "plots", f"metrics.{task}.png")
        plot = plot_metric_bars(path, task, [r for r in results if r.task == task])
        if plot:
            bars.append(plot)
    summary = {
        f"{r.task}/{r.test_set}": {
            "metrics": r.metrics,
            "chance": r.chance,
            "shuffled_outputs": r.shuffled,
            "intervals": r.intervals,
            "chance_baselines": r.chance_baselines,
            "headline": headline(r),
            "models": r.models,
            "notes": r.notes,
            "hyp_dir": r.hyp_dir,
            "ref_dir": r.ref_dir,
        }
        for r in results
    }
    with open(os.path.join(args.output_dir, "scores.json"), "w") as f:
        json.dump(_json_ready(summary), f, indent=1)
        f.write("\n")
    command = " ".join(["python -m espnet2.bin.ualm_score", *(cmd or sys.argv[1:])])
    write_results_md(
        os.path.join(args.output_dir, "RESULTS.md"),
        results,
        decode_config=load_config_file(args.decode_config),
        decode_config_path=args.decode_config,
        command=command,
        extra_plots=bars,
    )
    logging.info("wrote %s", os.path.join(args.output_dir, "RESULTS.md"))
    block = ["Summary (key metric, chance level on the same test set):"]
    block += [f"  {line}" for line in summary_lines(results)]
    for line in block:
        logging.info("%s", line)
    print("\n".join(block), flush=True)
    return results


if __name__ == "__main__":
    main()
