"""Converters from real corpora to the stage-1 data directory layout.

``CORPORA`` maps a corpus name to its prepare function. Every prepare
function has the signature ``prepare(out_dir, rejects, *, <options>) -> int``
(the number of items written); its keyword-only options, their type hints and
the ``Args:`` section of its docstring become the command-line options of
``python -m espnet2.bin.ualm_prepare_corpus <name>``. See README.md here for
how to add a corpus.
"""

import os
from typing import Any, Callable, Dict, Tuple

from espnet2.ualm.data.corpora.af3 import prepare_af3
from espnet2.ualm.data.corpora.audiocaps import prepare_audiocaps
from espnet2.ualm.data.corpora.clarify import prepare_clarify
from espnet2.ualm.data.corpora.clotho import prepare_clotho
from espnet2.ualm.data.corpora.common import BadItem, CorpusError
from espnet2.ualm.data.corpora.etta import prepare_etta
from espnet2.ualm.data.corpora.librispeech import prepare_librispeech
from espnet2.ualm.data.corpora.rich_captions import (
    prepare_reflection,
    prepare_rich_captions,
)
from espnet2.ualm.data.corpora.text_instruct import prepare_text_instruct
from espnet2.ualm.data.rejects import RejectLog

PrepareFn = Callable[..., int]

CORPORA: Dict[str, PrepareFn] = {
    "audiocaps": prepare_audiocaps,
    "clotho": prepare_clotho,
    "librispeech": prepare_librispeech,
    "af3": prepare_af3,
    "etta": prepare_etta,
    "text_instruct": prepare_text_instruct,
    "rich_captions": prepare_rich_captions,
    "reflection": prepare_reflection,
    "clarify": prepare_clarify,
}


def prepare_corpus(name: str, out_dir: str, **options: Any) -> Tuple[int, RejectLog]:
    """Runs one converter and leaves ``rejected.tsv`` next to its output.

    Returns the number of items written and the log of rejected ones (so the
    caller can print ``rejects.summary(kept + len(rejects))``).
    """
    if name not in CORPORA:
        raise CorpusError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    rejects = RejectLog(f"prepare {name}")
    kept = CORPORA[name](out_dir, rejects, **options)
    rejects.write(os.path.join(out_dir, "rejected.tsv"))
    return kept, rejects


__all__ = ["CORPORA", "BadItem", "CorpusError", "PrepareFn", "prepare_corpus"]
