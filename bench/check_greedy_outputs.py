"""Greedy outputs of a packed model on every test set of a recipe, and their comparison.

A refactor of the decoding code must not change what a model says. This
script records, for every item of every test set a recipe decodes (stage 10's
``(data directory, task)`` pairs), the greedy reply's text token ids and audio
codes, using only the public API (``UALM.from_pretrained`` and ``UALM.run``),
so the same file runs against the code before and after a change::

    # in a checkout of the old code, then of the new one (same packed model)
    python bench/check_greedy_outputs.py dump --model exp/ualm_unified/packed \\
        --recipe_dir egs2/ualm/mini --out old.pt
    python bench/check_greedy_outputs.py dump ... --out new.pt
    python bench/check_greedy_outputs.py compare old.pt new.pt  # 1 on a difference

Greedy means text and audio tokens by arg-max, CFG as the recipe's decode
settings say; the recipe's length bounds are kept.
"""

import argparse
import os
import sys
from typing import Dict, List

import torch
import yaml

GREEDY = {"greedy": True}


def _task_table(ualm):
    """What ``read_requests`` takes: the task registry, or in code before it
    (the reference side of a comparison) the template table."""
    requests = ualm.requests
    return requests.tasks if hasattr(requests, "tasks") else requests.templates


def dump(args: argparse.Namespace) -> None:
    from espnet2.ualm import UALM
    from espnet2.ualm.data.datasets_config import decode_sets, load_datasets_config
    from espnet2.ualm.inference.data_dir import read_requests

    recipe = args.recipe_dir
    with open(os.path.join(recipe, "conf", "decode.yaml")) as f:
        decode = yaml.safe_load(f) or {}
    decode.update(text_sampling=GREEDY, audio_sampling=GREEDY, beam_size=1)
    decode.update(enhancer="none", batch_size=args.batch_size)
    ualm = UALM.from_pretrained(args.model, decode=decode)
    conf = load_datasets_config(os.path.join(recipe, "conf", "datasets.yaml"))
    out: Dict[str, List[dict]] = {}
    for dset, task in decode_sets(conf):
        data_dir = os.path.join(recipe, "dump", "audio", dset)
        requests, _ = read_requests(data_dir, task, _task_table(ualm))
        if args.limit:
            requests = requests[: args.limit]
        items = []
        for r, o in zip(requests, ualm.run(requests)):
            items.append(
                {
                    "id": r.id,
                    "error": o.error,
                    "segments": [
                        (s.modality, s.closing, s.token_ids, s.codes)
                        for s in o.segments
                    ],
                }
            )
        out[f"{task}/{dset}"] = items
        print(f"{task}/{dset}: {len(items)} items", flush=True)
    torch.save(out, args.out)


def _same_segment(a, b) -> bool:
    if a[:3] != b[:3]:
        return False
    if (a[3] is None) != (b[3] is None):
        return False
    return a[3] is None or torch.equal(a[3], b[3])


def compare(args: argparse.Namespace) -> int:
    old, new = torch.load(args.old), torch.load(args.new)
    if sorted(old) != sorted(new):
        print(f"different test sets: {sorted(old)} vs {sorted(new)}")
        return 1
    differ = 0
    for name in sorted(old):
        a = {i["id"]: i for i in old[name]}
        b = {i["id"]: i for i in new[name]}
        bad = [k for k in a if k not in b or a[k]["error"] != b[k]["error"]]
        bad += [
            k
            for k in a
            if k in b
            and (
                len(a[k]["segments"]) != len(b[k]["segments"])
                or not all(
                    _same_segment(x, y)
                    for x, y in zip(a[k]["segments"], b[k]["segments"])
                )
            )
        ]
        bad += [k for k in b if k not in a]
        n_seg = sum(len(i["segments"]) for i in a.values())
        print(
            f"{name}: {len(a)} items, {n_seg} segments, "
            f"{len(set(bad))} differ"
            + (f" (e.g. {sorted(set(bad))[:5]})" if bad else "")
        )
        differ += len(set(bad))
    print("identical" if not differ else f"{differ} items differ")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump", help="greedy outputs of every test set -> a .pt file")
    d.add_argument("--model", required=True, help="packed model directory")
    d.add_argument("--recipe_dir", required=True, help="recipe with dump/ and conf/")
    d.add_argument("--out", required=True)
    d.add_argument("--batch_size", type=int, default=8)
    d.add_argument("--limit", type=int, default=0, help="first N items per set")
    c = sub.add_parser("compare", help="exit 1 unless two dumps are identical")
    c.add_argument("old")
    c.add_argument("new")
    args = parser.parse_args()
    if args.cmd == "dump":
        dump(args)
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
