#!/usr/bin/env python3
"""UALM training through ESPnet's AbsTask and Trainer (recipe stages 6 and 7).

    # stage 6: modality alignment
    python -m espnet2.bin.ualm_train --config conf/train_align.yaml --ngpu 0 \\
        --text_tokenizer data/text_tokenizer \\
        --train_manifest_dir dump/manifests/train \\
        --valid_manifest_dir dump/manifests/valid --output_dir exp/ualm_align
    # stage 7: unified pre-training, from the alignment checkpoint
    python -m espnet2.bin.ualm_train --config conf/train_unified.yaml --ngpu 0 \\
        --text_tokenizer data/text_tokenizer \\
        --train_manifest_dir dump/manifests/train \\
        --valid_manifest_dir dump/manifests/valid --output_dir exp/ualm_unified \\
        --init_param exp/ualm_align/valid.loss.best.pth

Every ESPnet training option applies (``--resume true``, ``--max_epoch``,
``--use_deepspeed``, ...); the UALM options are described in
``espnet2/tasks/ualm.py``. ``--print_config`` shows them all.
"""

import sys
from typing import List, Optional

from espnet2.tasks.ualm import UALMTask
from espnet2.ualm.train.resume import ResumeError


def get_parser():
    return UALMTask.get_parser()


def main(cmd: Optional[List[str]] = None) -> None:
    try:
        UALMTask.main(cmd=cmd)
    except ResumeError as e:  # a message, not a traceback: nothing to resume
        sys.exit(f"ualm_train: {e}")


if __name__ == "__main__":
    main()
