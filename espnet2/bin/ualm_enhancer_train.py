#!/usr/bin/env python3
"""Train the UALM Enhancement VAE with ESPnet's GAN trainer.

    python -m espnet2.bin.ualm_enhancer_train --config conf/enhancer.yaml \\
        --train_data_path_and_name_and_type $d/wav48.scp,target,sound \\
        --train_data_path_and_name_and_type $d/codec_wav.scp,input,sound \\
        --train_shape_file $d/wav48.scp ... --output_dir exp/enhancer

with ``d=dump/enhancer/<train set>`` written by
``python -m espnet2.ualm.enhancer.prepare_pairs``.

Task options: ``espnet2/tasks/ualm_enhancer.py``.
"""

import sys
from typing import List, Optional

from espnet2.tasks.ualm_enhancer import UALMEnhancerTask
from espnet2.ualm.train.resume import ResumeError


def get_parser():
    return UALMEnhancerTask.get_parser()


def main(cmd: Optional[List[str]] = None) -> None:
    try:
        UALMEnhancerTask.main(cmd=cmd)
    except ResumeError as e:  # a message, not a traceback: nothing to resume
        sys.exit(f"ualm_enhancer_train: {e}")


if __name__ == "__main__":
    main()
