#!/usr/bin/env python3
"""Import an ESPnet-SpeechLM second-generation checkpoint (Bagpiper) as a
packed UALM model, which ``UALM.from_pretrained`` and the recipe's stages
10-11 (``--packed_dir``) take, and (``--init_dir``) the starting point of its
stage 7 (``--align_exp``), from which stages 14-18 go on.

Example (Bagpiper, files downloaded beforehand)::

    python -m espnet2.bin.ualm_import_speechlm \\
        --checkpoint bagpiper/model.pt --train_config bagpiper/train.yaml \\
        --inference_config bagpiper/inference.yaml \\
        --backbone_dir Qwen3-8B-Base --codec_dir xcodec-hubert-general \\
        --encoder_dir Qwen3-Omni-30B-A3B-Instruct --out_dir exp/bagpiper/packed \\
        --init_dir exp/bagpiper --finetune_config conf/train_unified_qwen2.5_7b.yaml

``--encoder_dir`` needs only Qwen3-Omni's ``config.json`` and
``preprocessor_config.json``: the encoder's weights are in the checkpoint.
The checkpoint is read as tensors only (``torch.load(weights_only=True)``).
The packed model keeps the checkpoint's audio layout (the ``AudioLayout`` of
its ``vocabulary.json``: delays, closing after the delayed block, the CFG
branch's ``<cfg_null>``), so its text-to-audio is decoded, and stage 7 trains,
as ESPnet-SpeechLM lays audio out.
"""

import argparse
from typing import List, Optional

from espnet2.ualm.cli import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="{'module': state} .pt")
    parser.add_argument("--train_config", required=True, help="its train.yaml")
    parser.add_argument("--backbone_dir", required=True, help="HF backbone dir")
    parser.add_argument("--codec_dir", required=True, help="XcodecModel dir")
    parser.add_argument("--out_dir", required=True, help="packed model directory")
    parser.add_argument("--encoder_dir", help="Qwen3-Omni configs directory")
    parser.add_argument("--inference_config", help="its inference.yaml")
    parser.add_argument("--text_dir", help="tokenizer dir (default: backbone_dir)")
    parser.add_argument("--model_name", default="ualm_from_speechlm")
    parser.add_argument(
        "--init_dir",
        help="also write stage 7's start here: valid.loss.best.pth (--align_exp)",
    )
    parser.add_argument(
        "--finetune_config",
        help="with --init_dir: a stage-7 config whose training keys "
        "<init_dir>/train_unified.yaml takes, with the imported model's part",
    )
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    from espnet2.ualm.pretrained.speechlm import import_checkpoint

    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    out = import_checkpoint(
        checkpoint=args.checkpoint,
        train_config=args.train_config,
        backbone_dir=args.backbone_dir,
        codec_dir=args.codec_dir,
        out_dir=args.out_dir,
        encoder_dir=args.encoder_dir,
        inference_config=args.inference_config,
        text_dir=args.text_dir,
        model_name=args.model_name,
        init_dir=args.init_dir,
        finetune_config=args.finetune_config,
    )
    print(out)


if __name__ == "__main__":
    main()
