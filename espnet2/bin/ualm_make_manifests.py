#!/usr/bin/env python3
"""Stage 5: manifests (task -> files, examples, lengths) for every dataset and split.

    python -m espnet2.bin.ualm_make_manifests --datasets conf/datasets.yaml \
        --audio_root dump/audio --codes_root dump/codec \
        --text_tokenizer data/text_tokenizer --out_dir dump/manifests \
        --audio_input_frame_rate "$(python -m espnet2.bin.ualm_encoder_geometry \
            --config conf/train_unified.yaml)"

``conf/datasets.yaml`` (format: ``espnet2/ualm/data/datasets_config.py``)::

    splits: [train, valid, test]
    datasets:                      # data dir = <audio_root>/<data>_<split>
      - {data: mini_sound, task: text_to_audio}
      - {data: mini_speech, task: asr}

Each (data, task) gives one manifest per split, named ``<data>_<task>``
(with several directories in a split, one per directory:
``<data>_<task>-<directory>``).
"""

import argparse
import collections
import glob
import json
import logging
import os
import sys
from typing import List, Optional

from espnet2.ualm.cli import setup_logging
from espnet2.ualm.data.codes_io import read_geometry
from espnet2.ualm.data.datasets_config import (
    dataset_name,
    load_datasets_config,
    manifest_dirs,
)
from espnet2.ualm.data.manifest import (
    LengthModel,
    build_manifest,
    plot_length_histograms,
)
from espnet2.ualm.text.tokenizer import load_text_tokenizer
from espnet2.ualm.tokens.tasks import load_tasks


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", required=True, help="datasets YAML")
    parser.add_argument("--audio_root", required=True, help="stage-2 output root")
    parser.add_argument("--codes_root", required=True, help="stage-4 output root")
    parser.add_argument("--text_tokenizer", required=True, help="stage-3 output")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument(
        "--task_templates",
        default=None,
        help="YAML file of extra tasks (espnet2.ualm.tokens.tasks), as in training",
    )
    parser.add_argument(
        "--audio_input_frame_rate",
        type=float,
        required=True,
        help="frames per second of the continuous acoustic encoder (after "
        "pooling), as espnet2.bin.ualm_encoder_geometry prints it",
    )
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    setup_logging(logging.INFO)
    try:
        tasks = load_tasks(args.task_templates)
        conf = load_datasets_config(args.datasets, known_tasks=tasks)
    except (OSError, ValueError) as e:
        sys.exit(f"ualm_make_manifests: {e}")
    geometries = glob.glob(os.path.join(args.codes_root, "*", "codec.json"))
    if not geometries:
        sys.exit(f"ualm_make_manifests: no codec.json under {args.codes_root}")
    geometry = read_geometry(os.path.dirname(geometries[0]))
    tokenizer = load_text_tokenizer(args.text_tokenizer)
    lengths = LengthModel(
        count_text_tokens=lambda t: len(tokenizer.encode(t)),
        codec_frame_rate=geometry["frame_rate"],
        n_codebooks=geometry["n_codebooks"],
        audio_input_frame_rate=args.audio_input_frame_rate,
        sample_rate=geometry["sample_rate"],
    )
    for split in conf["splits"]:
        manifests = []
        pairs = [
            (entry, data, name)
            for entry in conf["datasets"]
            for data, name in manifest_dirs(entry, split)
        ]
        if not pairs:
            sys.exit(f"ualm_make_manifests: no dataset has a {split} directory")
        for entry, data, name in pairs:
            try:
                m = build_manifest(
                    name=name,
                    task=entry["task"],
                    split=split,
                    data_dir=os.path.join(args.audio_root, data),
                    codes_dir=os.path.join(args.codes_root, data),
                    lengths=lengths,
                    out_dir=os.path.join(args.out_dir, split),
                    tasks=tasks,
                    dataset=dataset_name(entry),
                )
            except (OSError, ValueError) as e:
                sys.exit(f"ualm_make_manifests: {e}")
            logging.info(
                "%s/%s: %d examples (%d rejected), %d positions, mean %.0f, max %d",
                split,
                m["name"],
                m["num_examples"],
                m["num_rejected"],
                m["length"]["total"],
                m["length"]["mean"],
                m["length"]["max"],
            )
            manifests.append(m)
        by_task = collections.Counter()
        for m in manifests:
            by_task[m["task"]] += m["length"]["total"]
        total = sum(by_task.values()) or 1
        stats = {
            "split": split,
            "manifests": [m["name"] for m in manifests],
            "positions_by_task": dict(by_task),
            "share_by_task": {k: v / total for k, v in by_task.items()},
        }
        with open(os.path.join(args.out_dir, split, "stats.json"), "w") as f:
            json.dump(stats, f, indent=2)
        plot_length_histograms(
            manifests, os.path.join(args.out_dir, split, "lengths.png")
        )
        logging.info(
            "%s: token share by task: %s",
            split,
            ", ".join(f"{k} {v:.1%}" for k, v in stats["share_by_task"].items()),
        )


if __name__ == "__main__":
    main()
