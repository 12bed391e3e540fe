"""Clarifying-dialogue training data (UALM-Reason) from a data directory.

A data directory with ``clarify.jsonl`` (each clip's vague prompt, the
questions its parameters answer and how many a dialogue asks,
``espnet2.ualm.text.clarify``), ``rich_text`` and ``wav.scp`` becomes one
conversation per clip in ``dialogue.jsonl``: the vague prompt, the
assistant's questions and the user's answers, then the rich caption and the
clip (``text.clarify.dialogue_messages``, the layout ``UALM.dialogue``
decodes), with ``wav.scp`` naming the clips: the ``clarifying_dialogue``
task's data. The clip's codes are those of the source directory (same ids).

    python -m espnet2.bin.ualm_prepare_corpus clarify \\
        --data_dir dump/audio/mini_sound_train \\
        --out_dir dump/audio/mini_sound_clarify_train
"""

import os

from espnet2.ualm.data.corpora.common import require_dir, require_file
from espnet2.ualm.data.corpora.writer import DataDirWriter
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.text.clarify import (
    CLARIFY_FILE,
    dialogue_messages,
    read_clarifications,
)
from espnet2.ualm.text.rich_caption import RichCaptionError, parse, render

NAME = "clarify"
# the dialogue's id: the clip's id with this suffix (its audio keeps the clip's)
DIALOGUE_SUFFIX = "_clarify"


def prepare_clarify(out_dir: str, rejects: RejectLog, *, data_dir: str) -> int:
    """Writes ``dialogue.jsonl`` and ``wav.scp``.

    Args:
        data_dir: Data directory with clarify.jsonl, rich_text and wav.scp.
    """
    require_dir(data_dir, "data directory")
    clarify = require_file(os.path.join(data_dir, CLARIFY_FILE), "clarify file")
    plans = read_kv(os.path.join(data_dir, "rich_text"), rejects)
    clips = read_kv(os.path.join(data_dir, "wav.scp"), rejects)
    writer = DataDirWriter(rejects)
    for utt, clip in sorted(read_clarifications(clarify).items()):
        dialogue_id = utt + DIALOGUE_SUFFIX
        missing = [n for n, t in (("rich_text", plans), ("wav.scp", clips))
                   if utt not in t]  # fmt: skip
        if missing:
            rejects.add(dialogue_id, clarify, f"clip {utt}: no {missing[0]} entry")
            continue
        try:
            rich = render(parse(plans[utt]))
        except RichCaptionError as e:
            rejects.add(dialogue_id, os.path.join(data_dir, "rich_text"), str(e))
            continue
        path = clips[utt]
        if not os.path.isabs(path):
            path = os.path.abspath(path)
        writer.add(
            dialogue_id,
            clarify,
            audio={utt: path},
            messages=dialogue_messages(clip.prompt, clip.turns(), rich, audio=utt),
        )
    return writer.write(out_dir)
