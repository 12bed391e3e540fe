"""RESULTS.md: one table per task and test set, the decoding settings, plots.

Every metric row names the model that produced it; numbers from the
always-available stand-in models carry "not comparable to published numbers"
in the table itself, so a table copied out of the file keeps the warning.
Each table has a ``chance`` column (the metric's chance level on the same test
set, ``chance.py``; empty where there is none) and a ``shuffled outputs``
column (the key metrics' permutation test of the model's own outputs: mean
and p-value), and the file opens with a summary: one line per task and test
set with its key metric and its 95 % bootstrap interval over the test items
(``value [low, high]``), the chance level and whether the model beats it, and
whether its outputs depend on their inputs.
"""

import datetime
import os
import textwrap
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from espnet2.ualm.scoring.chance import (
    LOWER_IS_BETTER,
    SIGNIFICANCE,
    beats_chance,
    depends_on_input,
)
from espnet2.ualm.scoring.embeddings import NOT_COMPARABLE
from espnet2.ualm.scoring.tasks import ScoreResult

# Metrics shown first, per task kind, then the rest in alphabetical order.
PREFERRED_ORDER: Tuple[str, ...] = (
    "fd",
    "kl",
    "is",
    "is_reference",
    "clap",
    "clap_reference",
    "judge_overall",
    "judge_exact",
    "judge_event_type",
    "judge_count",
    "judge_pitch_band",
    "judge_order",
    "judge_loudness",
    "judge_position",
    "judge_num_groups",
    "mcd",
    "roundtrip_wer",
    "roundtrip_cer",
    "wer",
    "cer",
    "sentence_error_rate",
    "accuracy",
    "multiple_choice_accuracy",
    "short_answer_accuracy",
    "bleu_1",
    "bleu_2",
    "bleu_3",
    "bleu_4",
    "rouge_l",
    "cider_d",
    "attribute_accuracy",
    "attribute_exact",
    "attribute_event_type",
    "attribute_count",
    "attribute_pitch_band",
    "attribute_order",
    "attribute_num_groups",
    "meteor_lite",
)
# Headline metrics of the bar plots.
BAR_METRICS: Tuple[str, ...] = (
    "fd",
    "kl",
    "is",
    "clap",
    "judge_overall",
    "mcd",
    "roundtrip_wer",
    "wer",
    "cer",
    "accuracy",
    "multiple_choice_accuracy",
    "short_answer_accuracy",
    "bleu_4",
    "rouge_l",
    "cider_d",
    "attribute_accuracy",
)
# The summary's key metrics per task kind.
_COUNT_PREFIXES = ("items", "clips", "captions", "utterances", "missing", "unparsed")
_COUNT_NAMES = {"empty_refs", "ref_words", "substitutions", "deletions", "insertions"}


def _is_count(name: str) -> bool:
    return name.startswith(_COUNT_PREFIXES) or name in _COUNT_NAMES


def ordered_metrics(metrics: Dict[str, float]) -> List[str]:
    first = [m for m in PREFERRED_ORDER if m in metrics]
    rest = sorted(m for m in metrics if m not in first and not m.endswith("_std"))
    return first + rest


def _fmt(name: str, value: float, metrics: Dict[str, float]) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if _is_count(name):
        return str(int(round(value)))
    text = f"{value:.4f}"
    if f"{name}_std" in metrics:
        text += f" ± {metrics[name + '_std']:.4f}"
    return text


def _fmt_interval(interval: Optional[Sequence[float]]) -> str:
    """`` [low, high]`` (3 decimals), or nothing without an interval."""
    if not interval:
        return ""
    lo, hi = interval
    return f" [{lo:.3f}, {hi:.3f}]"


def _model_for(name: str, result: ScoreResult) -> str:
    if name.startswith("judge_"):
        return result.models.get("judge", "")
    return result.models.get(name, "")


def _fmt_chance(name: str, result: ScoreResult) -> str:
    if name not in result.chance:
        return ""
    value = result.chance[name]
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4f}"


def _fmt_shuffled(name: str, result: ScoreResult) -> str:
    test = result.shuffled.get(name)
    if not test:
        return ""
    return f"{test['level']:.4f} (p {test['p_value']:.3f})"


def metrics_table(result: ScoreResult) -> str:
    """Markdown table ``metric | value | chance | shuffled outputs | model``."""
    lines = [
        "| metric | value | chance | shuffled outputs | model |",
        "|---|---:|---:|---:|---|",
    ]
    for name in ordered_metrics(result.metrics):
        value = _fmt(name, result.metrics[name], result.metrics)
        value += _fmt_interval(result.intervals.get(name))
        lines.append(
            f"| {name} | {value} | {_fmt_chance(name, result)} "
            f"| {_fmt_shuffled(name, result)} | {_model_for(name, result)} |"
        )
    return "\n".join(lines)


# Headline metrics of a scoring kind when none of its key metrics was
# computed: generation on real corpora has no judge (it is the mini corpus's),
# so FD and the CLAP score, as in the paper's tables.
HEADLINE_FALLBACK: Dict[str, Tuple[str, ...]] = {
    "generation": ("fd", "clap"),
    "speech": ("fd", "clap"),
}


def headline_metrics(result: ScoreResult) -> Tuple[str, ...]:
    """The metric names of ``result``'s headline: its task's key metrics that
    were computed (all of them when none was; see ``HEADLINE_FALLBACK``)."""
    kind = result.kind
    names = result.key_metrics
    present = tuple(n for n in names if n in result.metrics)
    if present:
        return present
    if not any(n in result.metrics for n in names):
        fallback = tuple(
            n for n in HEADLINE_FALLBACK.get(kind, ()) if n in result.metrics
        )
        if fallback:
            return fallback
    return names


def headline(result: ScoreResult) -> List[Dict[str, Any]]:
    """The key metrics of ``result`` (``ScoreResult.key_metrics``): name, value, its
    bootstrap interval, chance level and whether the value beats it (None:
    not known)."""
    out = []
    for name in headline_metrics(result):
        value = result.metrics.get(name)
        level = result.chance.get(name)
        test = result.shuffled.get(name)
        out.append(
            {
                "metric": name,
                "value": value,
                "interval": (
                    list(result.intervals[name]) if name in result.intervals else None
                ),
                "chance": level,
                "lower_is_better": name in LOWER_IS_BETTER,
                "better_than_chance": beats_chance(name, value, level),
                "shuffled_outputs": test["level"] if test else None,
                "p_value": test["p_value"] if test else None,
                "depends_on_input": depends_on_input(name, test, value),
            }
        )
    return out


def _num(value: Optional[float]) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.4f}"


def summary_lines(results: Sequence[ScoreResult]) -> List[str]:
    """One line per task and test set: key metric, value, chance level and
    whether the model beats chance."""
    lines = []
    for r in results:
        parts = []
        for h in headline(r):
            verdict = {True: "yes", False: "no", None: "n/a"}[h["better_than_chance"]]
            lower = ", lower is better" if h["lower_is_better"] else ""
            text = (
                f"{h['metric']} {_num(h['value'])}{_fmt_interval(h['interval'])} "
                f"(chance {_num(h['chance'])}"
                f"{lower}; better than chance: {verdict}"
            )
            if h["p_value"] is not None:
                depends = "yes" if h["depends_on_input"] else "no"
                text += (
                    f"; own outputs shuffled {_num(h['shuffled_outputs'])}, "
                    f"p {h['p_value']:.3f}: depends on its input: {depends}"
                )
            parts.append(text + ")")
        lines.append(f"{r.task} / {r.test_set}: " + ("; ".join(parts) or "n/a"))
    return lines


def _yaml_block(config: Dict[str, Any]) -> str:
    return "```yaml\n" + yaml.safe_dump(config, sort_keys=False).rstrip() + "\n```"


def write_results_md(
    path: str,
    results: Sequence[ScoreResult],
    decode_config: Optional[Dict[str, Any]] = None,
    decode_config_path: Optional[str] = None,
    command: Optional[str] = None,
    extra_plots: Sequence[str] = (),
) -> str:
    """Write RESULTS.md at ``path`` and return its text. Plot paths are written
    relative to the file's directory."""
    out_dir = os.path.dirname(os.path.abspath(path))
    lines = ["# RESULTS", ""]
    lines.append(f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    if command:
        lines.append(f"- command: `{command}`")
    stand_ins = sorted(
        {m for r in results for m in r.models.values() if NOT_COMPARABLE in m}
    )
    if stand_ins:
        lines += [
            "",
            f"**Note**: metrics computed with stand-in models are {NOT_COMPARABLE}"
            " (no pretrained evaluation weights were available): "
            + ", ".join(stand_ins)
            + ". Their rows say so in the model column.",
        ]
    lines += ["", "## Summary", ""]
    lines += [f"- {line}" for line in summary_lines(results)]
    lines += [
        "",
        "Chance: the same metric on the same test set for a model that ignores "
        "its input (text tasks: another item's reference; captions: training "
        "captions: the higher of another test clip's reference and a training "
        "caption; generation: the judge's shuffled prompts; speech synthesis: "
        "another item's reference recording); see "
        "each task's notes. [low, high]: 95 % bootstrap interval over the "
        "test items. Own outputs "
        "shuffled: this model's outputs each scored against another item "
        "(permutation test); 'depends on its input' when the score beats "
        f"that level with p < {SIGNIFICANCE}.",
    ]
    lines += ["", "## Decoding settings", ""]
    if decode_config:
        if decode_config_path:
            lines.append(f"From `{decode_config_path}`:")
            lines.append("")
        lines.append(_yaml_block(decode_config))
    else:
        lines.append("(none given: pass --decode_config)")
    tasks = list(dict.fromkeys(r.task for r in results))
    for task in tasks:
        lines += ["", f"## {task}", ""]
        for r in [r for r in results if r.task == task]:
            lines += [f"### {task} / {r.test_set}", ""]
            lines.append(f"- hypotheses: `{r.hyp_dir}`")
            lines.append(f"- references: `{r.ref_dir}`")
            for note in r.notes:
                lines.append(f"- {note}")
            lines += ["", metrics_table(r), ""]
            if r.decode_config:
                lines += [
                    "Decoding settings of this set:",
                    "",
                    _yaml_block(r.decode_config),
                    "",
                ]
            for plot in r.plots:
                rel = os.path.relpath(plot, out_dir)
                lines.append(f"![{os.path.basename(plot)}]({rel})")
                lines.append("")
    if extra_plots:
        lines += ["", "## Plots", ""]
        for plot in extra_plots:
            rel = os.path.relpath(plot, out_dir)
            lines += [f"![{os.path.basename(plot)}]({rel})", ""]
    text = "\n".join(lines).rstrip() + "\n"
    os.makedirs(out_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text


# --------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log_spec(wav: np.ndarray, rate: int) -> Tuple[np.ndarray, float, float]:
    """dB magnitude spectrogram ``[freq, frames]``, its duration and top frequency."""
    n_fft, hop = 512, 128
    x = np.asarray(wav, dtype=np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    n = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=1)).T
    db = 20 * np.log10(spec + 1e-8)
    return np.maximum(db, db.max() - 80), len(wav) / rate, rate / 2


def plot_spectrograms(
    path: str,
    items: Sequence[
        Tuple[str, Tuple[np.ndarray, int], Optional[Tuple[np.ndarray, int]]]
    ],
) -> str:
    """One row per clip: the generated clip beside the reference for the same
    prompt; ``items`` are ``(prompt, (gen_wav, rate), (ref_wav, rate) or None)``."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(items), 2, figsize=(11, 2.6 * len(items)), squeeze=False
    )
    for row, (prompt, gen, ref) in enumerate(items):
        for col, clip in enumerate((gen, ref)):
            ax = axes[row, col]
            if clip is None:
                ax.axis("off")
                continue
            db, dur, top = _log_spec(*clip)
            ax.imshow(db, origin="lower", aspect="auto", extent=(0, dur, 0, top / 1000))
            ax.set_ylabel("kHz")
            if col == 0:
                title = "generated: " + textwrap.shorten(prompt, 70, placeholder="...")
            else:
                title = "reference clip of the same prompt"
            ax.set_title(title, fontsize=8, loc="left")
        axes[row, 0].set_xlabel("s")
        axes[row, 1].set_xlabel("s")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_metric_bars(
    path: str, task: str, results: Sequence[ScoreResult]
) -> Optional[str]:
    """One small bar chart per headline metric, one bar per test set, its
    chance level marked in red where there is one."""
    names = [m for m in BAR_METRICS if any(m in r.metrics for r in results)]
    if not names:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(names), figsize=(2.4 * len(names) + 0.5, 2.8), squeeze=False
    )
    for ax, name in zip(axes[0], names):
        sets = [r.test_set for r in results if name in r.metrics]
        values = [r.metrics[name] for r in results if name in r.metrics]
        ax.bar(range(len(values)), values, color="tab:blue")
        levels = [
            (i, r.chance[name])
            for i, r in enumerate(r for r in results if name in r.metrics)
            if np.isfinite(r.chance.get(name, np.nan))
        ]
        if levels:
            ax.scatter(
                [i for i, _ in levels],
                [v for _, v in levels],
                marker="_",
                s=400,
                color="tab:red",
                label="chance",
                zorder=3,
            )
            ax.legend(fontsize=6, loc="best")
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(sets, rotation=30, ha="right", fontsize=7)
        ax.set_title(name, fontsize=9)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    fig.suptitle(task, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
