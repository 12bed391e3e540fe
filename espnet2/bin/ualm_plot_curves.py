#!/usr/bin/env python3
"""Plot a training run's curves once, from its ``checkpoint.pth``.

ESPnet's Trainer redraws every curve after every epoch (``--use_matplotlib
true``): for the ~40 statistics of a UALM run that is ~2-3 s an epoch on a
CPU, minutes of a short run. The mini configs train with
``use_matplotlib: false`` and ``ualm.sh`` calls this after each training
stage: ESPnet's own ``Reporter.matplotlib_plot`` on the reporter state the
Trainer saved, so ``<exp>/images/`` holds the same plots.

    python -m espnet2.bin.ualm_plot_curves --exp_dir exp/ualm_unified
"""

import argparse
import logging
import os
from pathlib import Path
from typing import List, Optional

from espnet2.train.reporter import Reporter
from espnet2.ualm.cli import setup_logging
from espnet2.ualm.data.safe_io import plain_value_globals, read_checkpoint


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exp_dir", required=True, help="holds checkpoint.pth")
    parser.add_argument(
        "--out_dir", default=None, help="default: <exp_dir>/images, as the Trainer"
    )
    parser.add_argument("--log_level", default="INFO")
    return parser


def plot_curves(exp_dir: str, out_dir: Optional[str] = None) -> Path:
    """Draws every statistic of the run's reporter; returns the image folder."""
    checkpoint = os.path.join(exp_dir, "checkpoint.pth")
    if not os.path.exists(checkpoint):
        raise FileNotFoundError(f"{checkpoint}: no training checkpoint to plot from")
    # weights-only, with the reporter's plain values allowed (numpy numbers,
    # timedeltas); optimizer and scheduler states are tensors and dicts
    state = read_checkpoint(checkpoint, safe_globals=plain_value_globals())
    reporter = Reporter()
    reporter.load_state_dict(state["reporter"])
    out = Path(out_dir or os.path.join(exp_dir, "images"))
    reporter.matplotlib_plot(out)
    logging.info(f"{exp_dir}: curves of {reporter.get_epoch()} epochs -> {out}")
    return out


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    plot_curves(args.exp_dir, args.out_dir)


if __name__ == "__main__":
    main()
