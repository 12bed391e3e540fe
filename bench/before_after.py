#!/usr/bin/env python3
"""Generation speed of this tree against an earlier revision, runs alternated.

    tools/venv/bin/python bench/before_after.py --rev 5787303 [--rounds 2]
        [--json bench/results/before_after.json] [-- extra bench_generation args]

Checks out ``--rev`` into a temporary git worktree and runs its own
``bench/bench_generation.py --no_ablations`` and this tree's, one after the
other (the order reversed every round), in the same venv: the earlier
revision's ``espnet2.ualm`` is imported from the worktree by pointing the
editable install's finder at it for that process only. Each run times UALM and
transformers' MusicGen decoder of the same shape, so besides UALM's frames per
second (old vs new, alternated on the same machine) the UALM/MusicGen ratio of
each run is a load-independent comparison.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from typing import List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs a bench script with espnet2.ualm taken from another checkout: the
# editable install maps package names to directories in a module-level dict
# that its finder reads at import time.
_RUN_WITH_ROOT = """
import glob, os, runpy, sys
root, script = sys.argv[1], sys.argv[2]
for finder in glob.glob(os.path.join(sys.prefix, "lib", "python*", "site-packages",
                                     "__editable___espnet_ualm*_finder.py")):
    name = os.path.basename(finder)[:-3]
    mod = __import__(name)
    for pkg in list(mod.MAPPING):
        mod.MAPPING[pkg] = os.path.join(root, *pkg.split("."))
import espnet2.ualm
assert espnet2.ualm.__file__.startswith(root), espnet2.ualm.__file__
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
"""


def run_bench(root: str, out: str, extra: list) -> dict:
    """One bench_generation run of the tree at ``root``; its JSON report."""
    script = os.path.join(root, "bench", "bench_generation.py")
    cmd = [sys.executable, "-c", _RUN_WITH_ROOT, root, script, "--no_ablations"]
    subprocess.run(cmd + ["--json", out] + extra, check=True, cwd=root)
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def ratio_interval(
    after: List[float], before: List[float], draws: int = 10000
) -> Tuple[float, float]:
    """95 % bootstrap interval of median(after) / median(before), the runs of
    each side resampled with replacement."""
    rng = random.Random(0)
    ratios = sorted(
        statistics.median(rng.choices(after, k=len(after)))
        / statistics.median(rng.choices(before, k=len(before)))
        for _ in range(draws)
    )
    return ratios[int(0.025 * draws)], ratios[int(0.975 * draws) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", required=True, help="the earlier git revision")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each tree")
    parser.add_argument(
        "--json", default=os.path.join(REPO, "bench", "results", "before_after.json")
    )
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    runs = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        old = os.path.join(tmp, "before")
        subprocess.run(
            ["git", "-C", REPO, "worktree", "add", "-q", "--detach", old, args.rev],
            check=True,
        )
        try:
            for r in range(args.rounds):
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for name in order:
                    root = old if name == "before" else REPO
                    out = os.path.join(tmp, f"{name}_{r}.json")
                    print(f"round {r + 1}/{args.rounds}: {name}", flush=True)
                    runs[name].append(run_bench(root, out, extra))
        finally:
            subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", old])
    summary = {}
    for b in runs["after"][0]["results"]["ualm"]:
        row = {}
        for name, reports in runs.items():
            row[f"{name}_fps"] = [r["results"]["ualm"][b]["fps"] for r in reports]
            row[f"{name}_over_musicgen"] = [
                r["results"]["ualm"][b]["fps_over_musicgen"] for r in reports
            ]
        for measure in ("fps", "over_musicgen"):
            after, before = row[f"after_{measure}"], row[f"before_{measure}"]
            ratio = statistics.median(after) / statistics.median(before)
            row[f"after_over_before_{measure}"] = ratio
            row[f"after_over_before_{measure}_ci95"] = ratio_interval(after, before)
        summary[b] = row
        print(f"batch {b}, after / before (median of {args.rounds} runs, 95 % CI):")
        for measure, label in (("fps", "UALM fps"), ("over_musicgen", "UALM/MusicGen")):
            low, high = row[f"after_over_before_{measure}_ci95"]
            print(
                f"  {label:14s} {row[f'after_over_before_{measure}']:.3f} "
                f"[{low:.3f}, {high:.3f}]"
            )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(
            {
                "rev": args.rev,
                "rounds": args.rounds,
                "extra": extra,
                "batches": summary,
            },
            f,
            indent=1,
        )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
