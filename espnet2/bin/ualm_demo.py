#!/usr/bin/env python3
"""UALM web demo: a Gradio app with every capability of a packed model.

Example (the mini recipe's model)::

    make -C tools demo   # once: Gradio, an optional extra
    python -m espnet2.bin.ualm_demo \\
        --model egs2/ualm/mini/exp/ualm_unified/ualm_mini.zip

``--model``: a packed model directory, an archive of ``ualm_pack`` or a hub
id ``owner/name[@revision]``. The app serves on ``--host`` (default
127.0.0.1: this machine only) at ``--port``; ``--share true`` asks Gradio
for a public link. Tabs: text-to-audio, understanding (caption, transcribe,
answer), chat, reasoning (not yet), and the model card with the decoding
settings.
"""

import argparse
import logging
from typing import List, Optional

from espnet2.ualm.cli import setup_logging


def str2bool(value: str) -> bool:
    """``true`` / ``false`` (ESPnet's option style)."""
    from espnet2.utils.types import str2bool as espnet_str2bool

    return espnet_str2bool(value)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", required=True, help="packed model directory, archive or hub id"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache_dir", help="where archives unpack / hub downloads go")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (0.0.0.0: all)"
    )
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--share", type=str2bool, default=False, help="a public Gradio link"
    )
    parser.add_argument(
        "--max_batch_size",
        type=int,
        default=0,
        help="most queued requests answered in one batch (0: the model's "
        "batch_size decode setting)",
    )
    parser.add_argument("--workdir", help="where generated files go (default: temp)")
    parser.add_argument("--log_level", default="INFO")
    return parser


def launch(args: argparse.Namespace, block: bool = True):
    """Loads the model, builds the app and serves it; returns the app
    (``block=False``: the server runs in a thread, for tests)."""
    from espnet2.ualm.demo.app import build_demo, import_gradio
    from espnet2.ualm.demo.handlers import DemoModel

    import_gradio()  # fail before loading the model when gradio is missing
    model = DemoModel.load(args.model, args.device, args.cache_dir, args.workdir)
    demo = build_demo(model, args.max_batch_size)
    demo.queue()  # Gradio's queue: what batches the events (batch=True)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        allowed_paths=[model.workdir],
        prevent_thread_lock=not block,
    )
    return demo


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    logging.info(f"serving {args.model} on http://{args.host}:{args.port}")
    launch(args)


if __name__ == "__main__":
    main()
