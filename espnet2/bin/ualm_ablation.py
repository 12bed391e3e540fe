#!/usr/bin/env python3
"""An ablation table from scored decodings: each row's mean score with a 95 %
bootstrap interval and a paired test against its baseline row.

    python -m espnet2.bin.ualm_ablation --output_dir exp/ablation \\
        --run unified/base=exp/ualm_unified/decode \\
        --run unified/cfg1=exp/ablation/unified/cfg1 \\
        --run dpo/base=exp/ualm_dpo/decode \\
        --baseline unified/base --row "dpo/base:unified/base"

A run is a decode directory that stage 11 scored (``scores/per_item/<task>.
<test set>.json``, ``<task>/<test set>/timing.json``). Every row compares the
same test items of two runs: the difference of per-item means with its
bootstrap interval and the two-sided p-value of a paired sign-flip
permutation test. Beside the metric (default the judge's ``overall``) the
table gives a score the selection or training may not have optimised: the
mean of ``--held_out`` attributes (those the pair and best-of-N scorer did
not use), the run's FD against the test clips (``scores.json``), and the
generation time. Writes ``RESULTS.md``, ``ablation.json`` and a plot.
"""

import argparse
import json
import logging
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2.ualm.cli import setup_logging
from espnet2.ualm.scoring.bootstrap import mean_interval

PERMUTATIONS = 10000
SEED = 0


def paired_test(
    a: Sequence[float], b: Sequence[float], permutations: int = PERMUTATIONS
) -> Tuple[float, Optional[Tuple[float, float]], float, int]:
    """Mean of ``a - b`` over items where both are finite, its bootstrap
    interval, the two-sided sign-flip permutation p-value and the item count."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan"), None, float("nan"), 0
    observed = abs(d.mean())
    signs = np.random.default_rng(SEED).choice([-1.0, 1.0], size=(permutations, d.size))
    extreme = np.sum(np.abs((signs * d).mean(axis=1)) >= observed - 1e-12)
    return float(d.mean()), mean_interval(d), (extreme + 1) / (permutations + 1), d.size


def _per_item(run_dir: str, task: str, test_set: str) -> Dict[str, dict]:
    path = os.path.join(run_dir, "scores", "per_item", f"{task}.{test_set}.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} missing: score {run_dir} first (stage 11)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _value(item: dict, keys: Sequence[str]) -> float:
    """Mean of the item's ``judge.<attr>``-style entries in ``keys`` that it has."""
    values = []
    for key in keys:
        node = item
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, (int, float)) and np.isfinite(node):
            values.append(float(node))
    return float(np.mean(values)) if values else float("nan")


def _run_info(run_dir: str, task: str, test_set: str) -> dict:
    info = {"fd": None, "seconds": None}
    scores = os.path.join(run_dir, "scores", "scores.json")
    if os.path.isfile(scores):
        with open(scores, encoding="utf-8") as f:
            metrics = json.load(f).get(f"{task}/{test_set}", {}).get("metrics", {})
        info["fd"] = metrics.get("fd")
    timing = os.path.join(run_dir, task, test_set, "timing.json")
    if os.path.isfile(timing):
        with open(timing, encoding="utf-8") as f:
            info["seconds"] = json.load(f).get("wall_seconds")
    return info


def _sets(run_dir: str) -> List[Tuple[str, str]]:
    """(task, test set) pairs a run was scored on."""
    d = os.path.join(run_dir, "scores", "per_item")
    if not os.path.isdir(d):
        raise FileNotFoundError(f"{d} missing: score {run_dir} first (stage 11)")
    return sorted(
        tuple(name[: -len(".json")].split(".", 1))  # type: ignore[misc]
        for name in os.listdir(d)
        if name.endswith(".json")
    )


def _row(spec: str, baseline: str, runs: Dict[str, str]) -> Tuple[str, ...]:
    """``NAME[@TASK][:BASELINE[@TASK]]`` -> (name, its task or "", baseline,
    its task or ""): a row compares two runs on the same task unless a side
    names its own (enrichment against vague_text_to_audio)."""
    mine, _, theirs = spec.partition(":")
    name, _, task = mine.partition("@")
    base, _, base_task = (theirs or baseline).partition("@")
    for r in (name, base):
        if r not in runs:
            sys.exit(f"ualm_ablation: row {spec!r}: no --run named {r!r}")
    return name, task, base, base_task


def ablation(args: argparse.Namespace) -> dict:
    runs = dict(r.split("=", 1) for r in args.run)
    specs = args.row or [f"{name}:{args.baseline}" for name in runs]
    rows = [_row(spec, args.baseline, runs) for spec in specs]
    table = []
    for name, name_task, base, base_task in rows:
        for task, test_set in _sets(runs[base]):
            if base_task and task != base_task:
                continue
            if not base_task and args.task and task not in args.task:
                continue
            mine_task = name_task or task
            mine = _per_item(runs[name], mine_task, test_set)
            theirs = _per_item(runs[base], task, test_set)
            ids = sorted(set(mine) & set(theirs))
            shown = task if mine_task == task else f"{mine_task} vs {task}"
            entry = {"row": name, "baseline": base, "task": shown, "test_set": test_set}
            entry["prompts"] = len(ids)
            for label, keys in (("metric", [args.metric]), ("held_out", args.held_out)):
                a = [_value(mine[k], keys) for k in ids]
                b = [_value(theirs[k], keys) for k in ids]
                diff, interval, p, n = paired_test(a, b)
                entry[label] = {
                    "mean": float(np.nanmean(a)) if ids else float("nan"),
                    "interval": mean_interval(a),
                    "diff": diff,
                    "diff_interval": interval,
                    "p_value": p,
                    "paired_items": n,
                }
            entry.update(_run_info(runs[name], mine_task, test_set))
            table.append(entry)
    # grouped by task and test set, the rows in the order given (stable sort)
    table.sort(key=lambda e: (e["task"], e["test_set"]))
    return {"metric": args.metric, "held_out": args.held_out, "rows": table}


def _fmt(x: Optional[float], digits: int = 3) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _ci(iv) -> str:
    return "" if not iv else f" [{iv[0]:.3f}, {iv[1]:.3f}]"


def write_markdown(result: dict, path: str, runs: Dict[str, str]) -> None:
    held = ", ".join(result["held_out"])
    lines = [
        "# Ablations",
        "",
        f"Metric: `{result['metric']}` per test prompt; held-out: the mean of "
        f"`{held}` per prompt (attributes the pair and best-of-N scorer did not "
        "use); FD: stage 11's embedding FD against the test clips (lower is "
        "better); time: wall seconds of the decoding (slowest shard). "
        "[low, high]: 95 % bootstrap interval over the prompts; p: two-sided "
        f"paired sign-flip permutation test ({PERMUTATIONS} permutations) "
        "against the row's baseline.",
        "",
        "| task / test set | row | baseline | prompts | metric | Δ metric | p "
        "| held-out | Δ held-out | p | FD | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["rows"]:
        m, h = e["metric"], e["held_out"]
        same = e["row"] == e["baseline"] and " vs " not in e["task"]
        lines.append(
            f"| {e['task']} / {e['test_set']} | {e['row']} | {e['baseline']} "
            f"| {e['prompts']} | {_fmt(m['mean'])}{_ci(m['interval'])} "
            f"| {'' if same else _fmt(m['diff']) + _ci(m['diff_interval'])} "
            f"| {'' if same else _fmt(m['p_value'], 4)} "
            f"| {_fmt(h['mean'])}{_ci(h['interval'])} "
            f"| {'' if same else _fmt(h['diff']) + _ci(h['diff_interval'])} "
            f"| {'' if same else _fmt(h['p_value'], 4)} "
            f"| {_fmt(e['fd'], 1)} | {_fmt(e['seconds'], 1)} |"
        )
    lines += ["", "Runs:", ""] + [f"- `{k}`: `{v}`" for k, v in runs.items()]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(rows) + 2), 3.2))
    series = (
        (-0.2, "metric", "C0", "metric"),
        (0.2, "held_out", "C1", "held-out attributes"),
    )
    for i, e in enumerate(rows):
        for offset, key, color, label in series:
            m = e[key]
            iv = m["interval"] or (m["mean"], m["mean"])
            # one legend entry per series (the bars', not the error bars')
            ax.bar(
                i + offset, m["mean"], 0.4, color=color, label=label if i == 0 else None
            )
            err = [[m["mean"] - iv[0]], [iv[1] - m["mean"]]]
            ax.errorbar(i + offset, m["mean"], yerr=err, color="k", capsize=2)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([e["row"] for e in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean per prompt (95 % CI)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--run", action="append", required=True, help="NAME=scored decode dir"
    )
    parser.add_argument("--baseline", required=True, help="the rows' default baseline")
    parser.add_argument(
        "--row",
        action="append",
        default=[],
        help="NAME[@TASK][:BASELINE[@TASK]], in table order (default: every "
        "run, in order); @TASK compares that task of the run (default: the "
        "baseline's tasks, each against itself)",
    )
    parser.add_argument("--task", action="append", default=[], help="default: all")
    parser.add_argument("--metric", default="judge.overall")
    parser.add_argument(
        "--held_out",
        nargs="+",
        default=["judge.pitch_band", "judge.order", "judge.loudness", "judge.position"],
    )
    return parser


def main(cmd: Optional[List[str]] = None) -> dict:
    args = get_parser().parse_args(cmd)
    setup_logging(cmd=cmd)
    bad = [r for r in args.run if "=" not in r]
    if bad:
        sys.exit(f"ualm_ablation: --run {bad[0]!r}: give NAME=DIR")
    runs = dict(r.split("=", 1) for r in args.run)
    if args.baseline not in runs:
        sys.exit(f"ualm_ablation: --baseline {args.baseline!r} is no --run")
    result = ablation(args)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "ablation.json"), "w") as f:
        json.dump(result, f, indent=1)
    write_markdown(result, os.path.join(args.output_dir, "RESULTS.md"), runs)
    plot(result, os.path.join(args.output_dir, "ablation.png"))
    logging.info(f"{len(result['rows'])} rows -> {args.output_dir}/RESULTS.md")
    return result


if __name__ == "__main__":
    main()
