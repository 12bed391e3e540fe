#!/usr/bin/env python3
"""Prints the audio encoder's geometry of a training config, for the recipe.

The encoder (``espnet2/ualm/model/audio_encoder.py``) owns its frame rate;
stage 5 asks it here instead of holding a number of its own::

    python -m espnet2.bin.ualm_encoder_geometry --config conf/train_unified.yaml
    25

Any ``ualm_train`` option may follow (e.g. ``--audio_encoder_conf
pretrained_dir=...``), as the training stage gives them. ``--field`` picks
``frame_rate`` (default), ``sample_rate`` or ``samples_per_frame``.
"""

import argparse
import contextlib
import sys
from typing import List, Optional

FIELDS = ("frame_rate", "sample_rate", "samples_per_frame")


def main(cmd: Optional[List[str]] = None) -> None:
    """Prints one field of the configured encoder's geometry on stdout."""
    parser = argparse.ArgumentParser(description=__doc__, add_help=False)
    parser.add_argument("--field", choices=FIELDS, default="frame_rate")
    ours, rest = parser.parse_known_args(cmd)
    # what ESPnet prints while importing goes to stderr: stdout is the answer
    with contextlib.redirect_stdout(sys.stderr):
        from espnet2.tasks.ualm import UALMTask
        from espnet2.ualm.model.audio_encoder import encoder_geometry

        args = UALMTask.get_parser().parse_args(rest)
        if args.audio_encoder is None:
            sys.exit("ualm_encoder_geometry: the config has no audio_encoder")
        geometry = encoder_geometry(args.audio_encoder_conf or {}, args.audio_encoder)
    print(f"{getattr(geometry, ours.field):g}")


if __name__ == "__main__":
    main()
