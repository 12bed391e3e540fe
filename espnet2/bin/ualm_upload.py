#!/usr/bin/env python3
"""Upload a packed UALM directory to the Hugging Face hub.

Needs an explicit ``--repo_id owner/name`` and a token in ``$HF_TOKEN`` (or
``$HUGGING_FACE_HUB_TOKEN``); the token is never printed. The repository is
created private unless ``--public``.

    HF_TOKEN=... python -m espnet2.bin.ualm_upload \\
        --pretrained_dir exp/ualm_unified/packed --repo_id me/ualm-mini
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

from espnet2.ualm.cli import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pretrained_dir", required=True)
    parser.add_argument("--repo_id", required=True, help="owner/name on the hub")
    parser.add_argument("--public", action="store_true")
    parser.add_argument("--commit_message", default="Upload UALM model")
    parser.add_argument("--log_level", default="INFO")
    return parser


def hub_errors() -> tuple:
    """What a refused or failed hub call raises: ``HfHubHTTPError`` (refusals,
    with the hub's message), its base, the HTTP client's ``HTTPError``
    (network failures; requests' or httpx's, by huggingface_hub version), and
    ``OSError`` (offline mode, connection errors)."""
    from huggingface_hub.errors import HfHubHTTPError

    return (HfHubHTTPError, *HfHubHTTPError.__bases__, OSError)


def one_line(error: BaseException) -> str:
    """The error's message on one line, any token of the environment masked."""
    from espnet2.ualm.pretrained.hub import TOKEN_VARIABLES

    text = " ".join(str(error).split()) or type(error).__name__
    for name in TOKEN_VARIABLES:
        if os.environ.get(name):
            text = text.replace(os.environ[name], "***")
    return text


def main(cmd: Optional[List[str]] = None, api=None) -> None:
    from espnet2.ualm.pretrained.hub import HubTokenError, upload

    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    try:
        url = upload(
            args.pretrained_dir,
            args.repo_id,
            private=not args.public,
            commit_message=args.commit_message,
            api=api,
        )
    except (HubTokenError, ValueError) as e:
        sys.exit(f"ualm_upload: {one_line(e)}")
    except hub_errors() as e:
        sys.exit(
            f"ualm_upload: uploading {args.pretrained_dir} to {args.repo_id} failed: "
            f"{type(e).__name__}: {one_line(e)}"
        )
    logging.info(f"uploaded: {url}")


if __name__ == "__main__":
    main()
