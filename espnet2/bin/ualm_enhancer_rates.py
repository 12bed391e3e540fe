#!/usr/bin/env python3
"""Prints a sample rate of the enhancer an enhancer config builds, for the recipe.

The enhancer's config owns its rates; stage 2 asks it here for the rate of
the stereo masters it keeps (``--master_fs enhancer``)::

    python -m espnet2.bin.ualm_enhancer_rates --config conf/enhancer.yaml
    48000

``--field`` picks ``output_sample_rate`` (default) or ``input_sample_rate``.
"""

import argparse
import contextlib
import sys
from typing import List, Optional

FIELDS = ("output_sample_rate", "input_sample_rate")


def main(cmd: Optional[List[str]] = None) -> None:
    """Prints one of the configured enhancer's rates on stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="enhancer config (YAML)")
    parser.add_argument("--field", choices=FIELDS, default=FIELDS[0])
    args = parser.parse_args(cmd)
    # what ESPnet prints while importing goes to stderr: stdout is the answer
    with contextlib.redirect_stdout(sys.stderr):
        from espnet2.ualm.enhancer import enhancer_config_rates

        input_rate, output_rate = enhancer_config_rates(args.config)
    print(output_rate if args.field == "output_sample_rate" else input_rate)


if __name__ == "__main__":
    main()
