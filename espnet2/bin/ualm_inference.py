#!/usr/bin/env python3
"""UALM inference over an ESPnet data directory: batched, sharded, resumable.

Example (mini recipe, 2 jobs)::

    for job in 1 2; do
        python -m espnet2.bin.ualm_inference --model exp/ualm_unified/packed \\
            --task asr --data_dir dump/audio/mini_speech_test \\
            --output_dir exp/ualm_unified/decode/asr/mini_speech_test \\
            --decode_config conf/decode.yaml --job ${job} --num_jobs 2 &
    done; wait
    python -m espnet2.bin.ualm_inference --merge --num_jobs 2 \\
        --output_dir exp/ualm_unified/decode/asr/mini_speech_test

``--model``: a packed model directory, an archive of ``ualm_pack`` or a hub
id. Each job answers a contiguous shard of the items (sorted ids) in
``output_dir/logdir/output.JOB/`` and appends each finished batch, its
results record last, so a re-run skips what is done; a shard whose inputs
changed (model files, decoding settings, task, data, ``--num_jobs``) is
decoded again from scratch. ``--merge`` writes ESPnet's layout:

* ``text``: text replies (one line per item; a reply's text segments are
  joined with " | ");
* ``wav.scp``, ``wav/<id>.wav``: generated audio (enhanced when an enhancer
  is used; then the codec's own output is in ``codec_wav.scp``,
  ``codec_wav/``);
* ``codes.scp`` / ``codes.ark`` + ``codec.json``: generated codec codes
  ``[T, K]`` in stage 4's format (``espnet2.ualm.data.codes_io.CodesReader``);
* ``errors.tsv``: items that got no answer, and why (also counted in the log);
* ``truncated.tsv``: items with a segment cut at its length bound
  (``max_text_tokens``, ``max_audio_seconds``) and the modalities cut, in
  reply order (also counted in the log);
* ``best_of.tsv`` (with ``best_of`` > 1 in the decoding settings): per item
  the index of the candidate kept and every candidate's score;
* ``timing.json``: items and seconds per shard, and the wall time of the
  slowest (the shards run side by side);
* ``reflection/`` (task ``self_reflection``, ``UALM.reflect``): every
  intermediate beside the final output above: ``rich_text`` (the plan),
  ``rounds`` (``<id> <listening rounds> <stopped early: yes|no>``) and one
  hypothesis directory per attempt ``v<n>/``: ``wav.scp`` (``wav/``) holds
  each item's n-th attempt, or its last one when a critique stopped it
  before (what ``n - 1`` rounds at most deliver: every ``v<n>`` is scored
  like the final output), ``heard_text`` and ``critique`` the model's
  caption and critique of the attempts it listened to.
* ``dialogue/`` (task ``dialogue``, ``UALM.dialogue``): ``rich_text`` (the
  rich caption the model wrote after the questions), ``turns`` (``<id>
  <questions answered>``) and ``dialogue.jsonl``: each item's whole
  conversation (prompt, questions, answers, rich caption, its clip as the
  audio id of ``wav.scp``) in the ``dialogue.jsonl`` form of
  doc/data_layout.md.

Tasks ``enrichment`` and ``dialogue`` read the prompts of ``vague_text``.
The dialogue's questions are answered by the person at the terminal (each
question on stderr, the answer a line of stdin), by ``--answers_file``
(lines ``<id> <answer>``, each item's answers in order) or by
``--simulated_user`` (the data directory's ``clarify.jsonl``: the mini
corpus's hidden parameters); ``--max_turns`` bounds the questions.
"""

import argparse
import collections
import io
import json
import logging
import os
import shutil
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile
import yaml

from espnet2.ualm.cli import positive_int, setup_logging
from espnet2.ualm.data.codes_io import (
    GEOMETRY_FILE,
    codec_geometry,
    flatten_codes,
    write_geometry,
)
from espnet2.ualm.data.fingerprint import (
    content_digest,
    digest,
    file_stamp,
    is_done,
    read_done,
    tree_stamp,
    write_done,
)
from espnet2.ualm.data.io import JsonlError, iter_jsonl
from espnet2.ualm.data.kaldi_dir import file_name_problem, write_kv
from espnet2.ualm.data.rejects import RejectLog

RESULTS = "results.jsonl"
REFLECTION = "reflection"  # self-reflection's intermediates (module docstring)
DIALOGUE = "dialogue"  # the clarifying dialogues' intermediates (module docstring)
DONE = ".done"  # a finished shard, with the fingerprint of its inputs
INPUTS = "inputs.sha256"  # the fingerprint of the inputs a shard is decoded from


def shard_of(items: List, job: int, num_jobs: int) -> List:
    """Contiguous 1-based shard ``job`` of ``num_jobs`` (Kaldi's split_scp)."""
    n = len(items)
    return items[(job - 1) * n // num_jobs : job * n // num_jobs]


def shard_dir(output_dir: str, job: int) -> str:
    return os.path.join(os.path.abspath(output_dir), "logdir", f"output.{job}")


def finished_ids(path: str) -> Dict[str, dict]:
    """Results already written by an earlier run of this shard."""
    done: Dict[str, dict] = {}
    if os.path.isfile(path):
        try:
            for _, row in iter_jsonl(path):
                done[row["id"]] = row
        except JsonlError:
            pass  # a line cut by a kill: that batch and the rest are redone
    return done


def _write_wav(path: str, audio: np.ndarray, rate: int) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    audio = np.asarray(audio, dtype=np.float32)
    data = audio.T if audio.ndim == 2 else audio  # soundfile: [samples, channels]
    soundfile.write(path, np.clip(data, -1.0, 1.0), int(rate), subtype="PCM_16")
    return path


def shard_inputs(args: argparse.Namespace, decode: dict, requests: List) -> dict:
    """What a shard's outputs depend on: the model (its files, or the hub
    id), the decoding settings, the task, the shard's items (and the audio
    files they read) and the split (``num_jobs``, ``job``)."""

    def stamped(value):
        return (
            file_stamp(value)
            if isinstance(value, str) and os.path.isfile(value)
            else value
        )

    items = [
        {
            "id": r.id,
            "fields": {k: stamped(v) for k, v in r.fields.items()},
            "audio": {k: stamped(v) for k, v in r.audio.items()},
            "plan": r.plan,
            "template": r.template,
        }
        for r in requests
    ]
    return {
        "model": tree_stamp(args.model) if os.path.exists(args.model) else args.model,
        "decode": decode,
        "task": args.task,
        "task_templates": args.task_templates and content_digest(args.task_templates),
        "answers": _answers_source(args),
        "items": items,
        "num_jobs": args.num_jobs,
        "job": args.job,
    }


def _answers_source(args: argparse.Namespace) -> Optional[str]:
    """Who answers a dialogue's questions (part of a shard's inputs)."""
    if getattr(args, "answers_file", None):
        return "file " + content_digest(args.answers_file)
    if getattr(args, "simulated_user", False):
        return "simulated user"
    return "stdin"


def read_answers(path: str) -> Dict[str, List[str]]:
    """``--answers_file``: ``<id> <answer>`` lines, each item's in order."""
    answers: Dict[str, List[str]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split(maxsplit=1)
            if len(parts) != 2 or not parts[1].strip():
                raise ValueError(f"{path}:{n}: expected '<id> <answer>', got {line!r}")
            answers.setdefault(parts[0], []).append(parts[1].strip())
    return answers


def dialogue_user(args: argparse.Namespace, stdin=None, stderr=None):
    """The user (``(item id, question, its number) -> answer``,
    ``UALM.with_user``) the options choose: ``--answers_file``,
    ``--simulated_user`` or the terminal."""
    if args.answers_file:
        answers = read_answers(args.answers_file)

        def from_file(item: str, question: str, k: int) -> str:
            mine = answers.get(item, [])
            if k >= len(mine):
                raise ValueError(
                    f"{args.answers_file} has {len(mine)} answers for item {item!r}; "
                    f"the model asked question {k + 1}: {question!r}"
                )
            return mine[k]

        return from_file
    if args.simulated_user:
        from espnet2.ualm.text.clarify import CLARIFY_FILE, SimulatedUser

        user = SimulatedUser.from_file(os.path.join(args.data_dir, CLARIFY_FILE))
        return lambda item, question, _: user.answer(item, question)

    def ask(item: str, question: str, _: int) -> str:
        err, inp = stderr or sys.stderr, stdin or sys.stdin
        err.write(f"[{item}] {question}\n> ")
        err.flush()
        line = inp.readline()
        if not line.strip():
            raise ValueError(f"item {item!r}: no answer on stdin to {question!r}")
        return line.strip()

    return ask


def _resume_point(out: str, fingerprint: str) -> Dict[str, dict]:
    """The results of an interrupted run of this shard with the same inputs;
    a shard of other inputs is emptied, so that it is redone from scratch."""
    inputs = os.path.join(out, INPUTS)
    recorded = None
    if os.path.isfile(inputs):
        with open(inputs, encoding="utf-8") as f:
            recorded = f.read().strip()
    if recorded != fingerprint:
        if os.path.isdir(out) and os.listdir(out):
            logging.info(
                f"{out}: the model, decoding settings, task, data or --num_jobs "
                "changed since this shard was (partly) decoded: redoing it"
            )
            shutil.rmtree(out)
        os.makedirs(out, exist_ok=True)
        with open(inputs, "w", encoding="utf-8") as f:
            f.write(fingerprint + "\n")
        return {}
    return finished_ids(os.path.join(out, RESULTS))


def run_shard(args: argparse.Namespace) -> None:
    """Decodes shard ``args.job``: batch by batch, each batch's results
    record written last (after its audio and codes), so that a killed run
    resumes after the last recorded batch."""
    import kaldiio
    import torch
    from tqdm import tqdm

    from espnet2.ualm.inference.data_dir import read_requests
    from espnet2.ualm.inference.pipeline import UALM, dialogue_request
    from espnet2.ualm.pretrained.layout import read_index
    from espnet2.ualm.pretrained.load import resolve_source
    from espnet2.ualm.tokens.tasks import DIALOGUE_TEMPLATE, load_tasks

    decode = {}
    if args.decode_config:
        with open(args.decode_config, encoding="utf-8") as f:
            decode = yaml.safe_load(f) or {}
    if args.batch_size:
        decode["batch_size"] = args.batch_size
    if args.max_turns is not None:
        decode["dialogue_turns"] = args.max_turns
    # the model's own task file (an import's tasks) joins the registry
    model_dir = resolve_source(args.model)
    tasks = load_tasks(args.task_templates)
    own = read_index(model_dir).task_templates
    if own:
        tasks = tasks.extended(own)
    dialogue = tasks.get(args.task).template == DIALOGUE_TEMPLATE
    prompts: Dict[str, str] = {}
    if dialogue:  # the prompts of vague_text, the enrichment task's
        requests, rejects = read_requests(args.data_dir, "enrichment", tasks)
        prompts = {r.id: r.fields["caption"] for r in requests}
        requests = [dialogue_request(r.id, r.fields["caption"]) for r in requests]
    else:
        requests, rejects = read_requests(args.data_dir, args.task, tasks)
    requests = shard_of(requests, args.job, args.num_jobs)
    fingerprint = digest(shard_inputs(args, decode, requests))
    out = shard_dir(args.output_dir, args.job)
    if is_done(os.path.join(out, DONE), fingerprint):
        logging.info(f"shard {args.job}/{args.num_jobs} already done, skipping")
        return
    done = _resume_point(out, fingerprint)
    if os.path.exists(os.path.join(out, DONE)):
        os.remove(os.path.join(out, DONE))
    rejected = os.path.join(out, "rejected.tsv")
    if len(rejects):
        rejects.write(rejected)
    elif os.path.exists(rejected):
        os.remove(rejected)
    torch.set_num_threads(max(1, args.num_threads))
    ualm = UALM.from_pretrained(model_dir, args.device, decode=decode, tasks=tasks)
    if dialogue:
        ualm = ualm.with_user(dialogue_user(args))
    write_geometry(out, codec_geometry(ualm.codec))
    results_path = os.path.join(out, RESULTS)
    todo = [r for r in requests if r.id not in done]
    logging.info(
        f"shard {args.job}/{args.num_jobs}: {len(requests)} items, "
        f"{len(requests) - len(todo)} already done; settings {ualm.settings}"
    )
    # Rewrite the results without a possibly cut last line before appending.
    with open(results_path, "w", encoding="utf-8") as f:
        for row in done.values():
            f.write(json.dumps(row) + "\n")
    ark = os.path.join(out, "codes.ark")
    start = time.time()
    size = max(1, ualm.settings.batch_size)
    truncated = collections.Counter()
    with tqdm(
        total=len(todo), desc=f"{args.task} shard {args.job}/{args.num_jobs}"
    ) as bar:
        for begin in range(0, len(todo), size):
            batch = todo[begin : begin + size]
            outputs = ualm.run(batch, progress=bar)
            rows, codes = [], {}
            for o in outputs:
                row = _output_row(o, out)
                if o.dialogue is not None and not row["error"]:
                    row["dialogue"] = _dialogue_record(o, prompts[o.id])
                if o.codes is not None and not row["error"]:
                    codes[o.id] = flatten_codes(o.codes.cpu().numpy())
                rows.append(row)
                truncated.update(set(o.truncated))
            for utt, pointer in _append_codes(kaldiio, ark, codes).items():
                next(r for r in rows if r["id"] == utt)["codes"] = pointer
            # Last: a kill before this line leaves this batch unrecorded, so a
            # re-run redoes it; its codes already in the ark are never pointed to.
            with open(results_path, "a", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
    _write_codes_scp(out, finished_ids(results_path))
    seconds = time.time() - start
    # a resumed shard's time covers the items it decoded this time only
    write_done(
        os.path.join(out, DONE),
        fingerprint,
        num_jobs=args.num_jobs,
        items=len(todo),
        seconds=seconds,
    )
    logging.info(f"shard {args.job}: {len(todo)} items in {seconds:.1f} s")
    for modality, n in sorted(truncated.items()):
        bound = "max_text_tokens" if modality == "text" else "max_audio_seconds"
        logging.warning(
            f"shard {args.job}: {n} of {len(todo)} items have a {modality} segment "
            f"cut at {bound} (their results.jsonl rows list it under 'truncated')"
        )


def _output_row(o, out: str) -> dict:
    """The results record of one output, its audio written; a write that
    fails (or an id that cannot be a file name) is that item's error."""
    row = {"id": o.id, "text": o.text, "error": o.error}
    if o.truncated:
        row["truncated"] = o.truncated
    if o.candidate_scores is not None:
        row["best_of"] = {"chosen": o.chosen_candidate, "scores": o.candidate_scores}
    if o.audio is None:
        return row
    problem = file_name_problem(o.id, ".wav")
    if problem is not None:
        row["error"] = f"its audio cannot be written: {problem}"
        return row
    try:
        row["wav"] = _write_wav(
            os.path.join(out, "wav", f"{o.id}.wav"), o.audio, o.sample_rate
        )
        if o.audio is not o.codec_audio:
            row["codec_wav"] = _write_wav(
                os.path.join(out, "codec_wav", f"{o.id}.wav"),
                o.codec_audio,
                o.codec_sample_rate,
            )
        if o.reflection is not None:
            row["reflection"] = _reflection_record(o, out)
    except Exception as e:  # this item only: the batch's other outputs are kept
        logging.warning(f"item {o.id!r}: writing its audio failed: {e}")
        return {**row, "error": f"writing its audio failed: {type(e).__name__}: {e}"}
    return row


def _reflection_record(o, out: str) -> dict:
    """Self-reflection's intermediates of one output, each attempt's audio
    written to ``reflection/v<n>/wav/`` (the module docstring's layout)."""
    r = o.reflection
    attempts = []
    for n, (attempt, audio) in enumerate(zip(r.attempts, o.attempts), 1):
        path = os.path.join(out, REFLECTION, f"v{n}", "wav", f"{o.id}.wav")
        attempts.append(
            {
                "wav": _write_wav(path, audio.audio, audio.sample_rate),
                "heard_caption": attempt.heard_caption,
                "critique": attempt.critique,
            }
        )
    return {
        "rich_caption": r.rich_caption,
        "rounds": r.rounds,
        "stopped_early": r.stopped_early,
        "attempts": attempts,
    }


def _dialogue_record(o, prompt: str) -> dict:
    """A clarifying dialogue's intermediates of one output."""
    d = o.dialogue
    return {
        "prompt": prompt,
        "questions": d.questions,
        "answers": d.answers,
        "rich_caption": d.rich_caption,
    }


def _write_dialogue(out: str, rows: Dict[str, dict]) -> int:
    """``dialogue/`` of the merged output from the results records (the
    module docstring's layout); returns the number of items with one."""
    from espnet2.ualm.text.clarify import dialogue_messages

    root, ordered = _intermediates_dir(out, DIALOGUE, rows)
    if not ordered:
        return 0
    write_kv(
        os.path.join(root, "rich_text"),
        [(u, r["rich_caption"]) for u, r in ordered if r["rich_caption"]],
    )
    write_kv(
        os.path.join(root, "turns"), [(u, str(len(r["answers"]))) for u, r in ordered]
    )
    with open(os.path.join(root, "dialogue.jsonl"), "w", encoding="utf-8") as f:
        for u, r in ordered:
            turns = list(zip(r["questions"], r["answers"]))
            audio = u if rows[u].get("wav") else None
            messages = dialogue_messages(r["prompt"], turns, r["rich_caption"], audio)
            f.write(json.dumps({"id": u, "messages": messages}, ensure_ascii=False))
            f.write("\n")
    return len(ordered)


def _intermediates_dir(
    out: str, name: str, rows: Dict[str, dict]
) -> Tuple[str, List[Tuple[str, dict]]]:
    """``out/name`` emptied of an earlier merge's (the audio is in the
    shards) and made again if some row has a ``name`` record; the records
    by id."""
    ordered = sorted((u, r[name]) for u, r in rows.items() if r.get(name))
    root = os.path.join(out, name)
    if os.path.isdir(root):
        shutil.rmtree(root)
    if ordered:
        os.makedirs(root, exist_ok=True)
    return root, ordered


def _write_reflection(out: str, rows: Dict[str, dict]) -> int:
    """``reflection/`` of the merged output from the results records (the
    module docstring's layout); returns the number of items with one."""
    root, ordered = _intermediates_dir(out, REFLECTION, rows)
    if not ordered:
        return 0
    records = dict(ordered)
    write_kv(
        os.path.join(root, "rich_text"),
        [(u, r["rich_caption"] or "") for u, r in ordered],
    )
    write_kv(
        os.path.join(root, "rounds"),
        [
            (u, f"{r['rounds']} {'yes' if r['stopped_early'] else 'no'}")
            for u, r in ordered
        ],
    )
    most = max(len(r["attempts"]) for r in records.values())
    for n in range(1, most + 1):
        d = os.path.join(root, f"v{n}")
        os.makedirs(d, exist_ok=True)
        wavs, heard, critiques = [], [], []
        for u, r in ordered:
            attempt = r["attempts"][min(n, len(r["attempts"])) - 1]
            wavs.append((u, attempt["wav"]))
            if n <= len(r["attempts"]) and attempt["critique"] is not None:
                heard.append((u, attempt["heard_caption"] or ""))
                critiques.append((u, attempt["critique"]))
        write_kv(os.path.join(d, "wav.scp"), wavs)
        for name, items in (("heard_text", heard), ("critique", critiques)):
            if items:
                write_kv(os.path.join(d, name), items)
    return len(records)


def _append_codes(kaldiio, ark: str, codes: Dict[str, np.ndarray]) -> Dict[str, str]:
    """Appends ``codes`` to the ark; returns each id's ``ark:offset``."""
    if not codes:
        return {}
    scp = io.StringIO()
    kaldiio.save_ark(ark, codes, scp=scp, append=True)
    return dict(line.split(maxsplit=1) for line in scp.getvalue().splitlines())


def _write_codes_scp(out: str, rows: Dict[str, dict]) -> None:
    """``codes.scp`` of a shard: the codes its results records point to."""
    lines = sorted(
        f"{utt} {row['codes']}\n" for utt, row in rows.items() if "codes" in row
    )
    path = os.path.join(out, "codes.scp")
    if lines:
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines)
    elif os.path.exists(path):
        os.remove(path)


def merge(args: argparse.Namespace) -> None:
    """Joins the finished shards into ``output_dir`` (ESPnet's layout)."""
    out = os.path.abspath(args.output_dir)
    markers = {
        j: read_done(os.path.join(shard_dir(out, j), DONE))
        for j in range(1, args.num_jobs + 1)
    }
    missing = [j for j, m in markers.items() if m is None]
    if missing:
        sys.exit(
            f"ualm_inference: shards {missing} of {out} are not finished; re-run "
            "the stage (finished items are skipped)"
        )
    other_split = [j for j, m in markers.items() if m.get("num_jobs") != args.num_jobs]
    if other_split:
        sys.exit(
            f"ualm_inference: shards {other_split} of {out} were decoded for another "
            f"--num_jobs than {args.num_jobs}; re-run the stage with --num_jobs "
            f"{args.num_jobs} (it redoes them)"
        )
    rows: Dict[str, dict] = {}
    errors = RejectLog(f"inference {out}")
    n_unread = 0
    for job in range(1, args.num_jobs + 1):
        d = shard_dir(out, job)
        shard_rows = finished_ids(os.path.join(d, RESULTS))
        repeated = sorted(set(rows) & set(shard_rows))
        if repeated:
            sys.exit(
                f"ualm_inference: id {repeated[0]} is in more than one shard of "
                f"{out} ({len(repeated)} such ids); re-run the stage"
            )
        rows.update(shard_rows)
        rejected = os.path.join(d, "rejected.tsv")
        if job == 1 and os.path.isfile(rejected):
            for r in RejectLog.read(rejected):
                errors.add(r.utt_id, r.source, r.reason)
                n_unread += 1
    token_lines = [
        f"{utt} {row['codes']}\n" for utt, row in rows.items() if "codes" in row
    ]
    texts, wavs, codec_wavs, best, cut = [], [], [], [], []
    for utt in sorted(rows):
        row = rows[utt]
        if row.get("truncated"):
            cut.append((utt, " ".join(row["truncated"])))
        if row.get("best_of"):
            shown = " ".join(f"{v:.4f}" for v in row["best_of"]["scores"])
            best.append((utt, f"{row['best_of']['chosen']} {shown}"))
        if row.get("error"):
            errors.add(utt, "ualm_inference", row["error"])
            continue
        if row.get("text") is not None:
            texts.append((utt, " | ".join(row["text"].split("\n"))))
        if row.get("wav"):
            wavs.append((utt, row["wav"]))
        if row.get("codec_wav"):
            codec_wavs.append((utt, row["codec_wav"]))
    for name, items in (
        ("text", texts),
        ("wav.scp", wavs),
        ("codec_wav.scp", codec_wavs),
        ("best_of.tsv", best),
        ("truncated.tsv", cut),
    ):
        path = os.path.join(out, name)
        if items:
            write_kv(path, items)
        elif os.path.exists(path):
            os.remove(path)
    if token_lines:
        with open(os.path.join(out, "codes.scp"), "w", encoding="utf-8") as f:
            f.writelines(sorted(token_lines))
        shutil.copy(
            os.path.join(shard_dir(out, 1), GEOMETRY_FILE),
            os.path.join(out, GEOMETRY_FILE),
        )
    elif os.path.exists(os.path.join(out, "codes.scp")):
        os.remove(os.path.join(out, "codes.scp"))  # of an earlier run
    kept = {u: r for u, r in rows.items() if not r.get("error")}
    n_reflected = _write_reflection(out, kept)
    n_dialogues = _write_dialogue(out, kept)
    errors.write(os.path.join(out, "errors.tsv"))
    shards = [
        {"job": j, "items": m.get("items"), "seconds": m.get("seconds")}
        for j, m in sorted(markers.items())
    ]
    known = [x["seconds"] for x in shards if x["seconds"] is not None]
    with open(os.path.join(out, "timing.json"), "w", encoding="utf-8") as f:
        json.dump(
            {"shards": shards, "wall_seconds": max(known) if known else None},
            f,
            indent=1,
        )
    logging.info(
        f"merged {len(rows)} items: {len(texts)} text, {len(wavs)} audio"
        + (f", {n_reflected} with reflection/" if n_reflected else "")
        + (f", {n_dialogues} with dialogue/" if n_dialogues else "")
        + (
            f", {len(cut)} with a segment cut at its length bound (truncated.tsv)"
            if cut
            else ""
        )
        + "; "
        f"{errors.summary(len(rows) + n_unread)}"
    )


def non_negative_int(value: str) -> int:
    """argparse type of ``--batch_size`` (0: the decoding config's)."""
    if not value.isdigit():
        raise argparse.ArgumentTypeError(
            f"must be 0 or a positive integer, got {value!r}"
        )
    return int(value)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--model", help="packed model dir, archive or hub id")
    parser.add_argument("--task", help="task of conf/datasets.yaml (asr, ...)")
    parser.add_argument(
        "--task_templates",
        default=None,
        help="YAML file of extra tasks (espnet2.ualm.tokens.tasks), as in training",
    )
    parser.add_argument("--data_dir", help="ESPnet data directory of the test set")
    parser.add_argument("--decode_config", help="YAML of decoding settings")
    parser.add_argument(
        "--batch_size", type=non_negative_int, default=0, help="0: the config's"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_threads", type=positive_int, default=1)
    parser.add_argument(
        "--job", type=positive_int, default=1, help="1-based shard index"
    )
    parser.add_argument("--num_jobs", type=positive_int, default=1)
    parser.add_argument("--merge", action="store_true", help="join finished shards")
    parser.add_argument(
        "--max_turns",
        type=non_negative_int,
        default=None,
        help="dialogue: most questions per item (default: the config's dialogue_turns)",
    )
    answers = parser.add_mutually_exclusive_group()
    answers.add_argument(
        "--answers_file",
        default=None,
        help="dialogue: '<id> <answer>' lines, each item's answers in order "
        "(default: ask on the terminal)",
    )
    answers.add_argument(
        "--simulated_user",
        action="store_true",
        help="dialogue: answer from the data dir's clarify.jsonl",
    )
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    if args.merge:
        merge(args)
        return
    for need in ("model", "task", "data_dir"):
        if not getattr(args, need):
            sys.exit(f"ualm_inference: --{need} is required (unless --merge)")
    if not 1 <= args.job <= args.num_jobs:
        sys.exit(f"ualm_inference: --job {args.job} not in 1..{args.num_jobs}")
    run_shard(args)


if __name__ == "__main__":
    main()
