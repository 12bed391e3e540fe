#!/usr/bin/env python3
"""UALM training through ESPnet's AbsTask and Trainer.

python -m espnet2.bin.ualm_train --config conf/train.yaml ...
"""

from typing import List, Optional

from espnet2.tasks.ualm import UALMTask


def get_parser():
    return UALMTask.get_parser()


def main(cmd: Optional[List[str]] = None) -> None:
    UALMTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
