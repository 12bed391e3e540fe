"""What every ``espnet2/bin/ualm_*`` entry point does first."""

import argparse
import logging
import sys
from typing import Optional, Sequence, Union

try:  # ESPnet 202611: ESPnet1 utilities live in espnet2.legacy
    from espnet2.legacy.utils.cli_utils import get_commandline_args
except ImportError:  # ESPnet 202511
    from espnet.utils.cli_utils import get_commandline_args


def setup_logging(
    level: Union[int, str] = logging.INFO, cmd: Optional[Sequence[str]] = None
) -> None:
    """ESPnet's log format, then the command line that is running."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
    if cmd is None:
        logging.info(get_commandline_args())
    else:
        logging.info("%s %s", sys.argv[0], " ".join(cmd))


def positive_int(value: str) -> int:
    """argparse type of a count that must be at least 1 (jobs, batch size)."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return n
