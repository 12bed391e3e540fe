"""Stage 2: re-encode a data directory's audio at the codec's sample rate, mono.

Every item is checked on the way: missing, unreadable, truncated or empty
files, NaN samples, digital silence, a sample rate below the allowed minimum,
bad segment times and durations outside ``[min_sec, max_sec]`` are rejected
with the utterance id, the file and the reason. Conversions that keep the item
(resampling, down-mixing several channels) are counted and logged. The other
files of the data directory are copied, filtered to the kept ids;
conversations that refer to rejected audio are rejected too.

With ``master_sample_rate`` set (real corpora: 48 kHz), each kept item whose
source is stereo and recorded at ``min_master_sample_rate`` or above also gets
a stereo copy at that rate, ``masters/<id>.flac`` in ``wav48.scp``: the
Enhancement VAE's training target (stage 8). A data directory that brings its
own ``wav48.scp`` (the mini corpus) keeps it instead. Items left without a
master (mono or low-rate sources) stay in the data set; they are counted by
reason and listed in ``no_master.tsv``.
"""

import collections
import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile
import torch
from tqdm import tqdm

from espnet2.ualm.data.io import (
    AudioReadError,
    audio_info,
    downmix,
    read_audio,
    read_jsonl,
    resample,
)
from espnet2.ualm.data.kaldi_dir import file_name_problem, read_kv, write_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.text.clarify import CLARIFY_FILE

# Files of a data directory that map an utterance id to a value, filtered to
# the kept ids. wav.scp and segments are rewritten; dialogue.jsonl,
# meta.jsonl and clarify.jsonl are JSON lines keyed by their "id".
KEYED_FILES = ("text", "rich_text", "vague_text", "utt2spk", "wav48.scp")
JSONL_FILES = ("meta.jsonl", CLARIFY_FILE)
_CHUNK = 16  # items a pool worker takes at a time


@dataclass
class FormatOptions:
    sample_rate: int
    min_input_sample_rate: int
    min_sec: float = 0.1
    max_sec: float = 30.0
    audio_format: str = "flac"
    master_sample_rate: Optional[int] = None  # None: no masters (see module doc)
    min_master_sample_rate: int = 44100


@dataclass
class AudioItem:
    utt_id: str
    path: str
    start: Optional[float] = None  # seconds, from segments
    end: Optional[float] = None


def read_audio_items(data_dir: str, rejects: RejectLog) -> List[AudioItem]:
    """wav.scp (+ segments) of a data directory as a list of items to format."""
    wav_scp = os.path.join(data_dir, "wav.scp")
    recordings = read_kv(wav_scp, rejects)
    seg_path = os.path.join(data_dir, "segments")
    if not os.path.exists(seg_path):
        return [AudioItem(k, v) for k, v in recordings.items()]
    items = []
    for utt_id, value in read_kv(seg_path, rejects).items():
        fields = value.split()
        where = f"{seg_path} ({utt_id})"
        if len(fields) != 3:
            rejects.add(utt_id, where, "malformed segment line (want rec start end)")
            continue
        rec, start, end = fields
        try:
            start_s, end_s = float(start), float(end)
        except ValueError:
            rejects.add(utt_id, where, f"non-numeric segment times {start} {end}")
            continue
        if rec not in recordings:
            rejects.add(utt_id, where, f"recording {rec} not in wav.scp")
            continue
        if not 0 <= start_s < end_s:
            rejects.add(utt_id, where, f"bad segment times {start_s}-{end_s}")
            continue
        items.append(AudioItem(utt_id, recordings[rec], start_s, end_s))
    return items


def format_one(
    item: AudioItem,
    out_path: str,
    opts: FormatOptions,
    master_path: Optional[str] = None,
) -> Tuple[Optional[int], List[str], Optional[str]]:
    """Formats one item. Returns (num_samples or None, conversions, reject reason).

    With ``master_path``, a kept item's stereo master is written there too; a
    conversion starting with ``NO_MASTER`` says why none was.
    """
    if "|" in item.path:
        return None, [], "pipes in wav.scp are not supported; give a file path"
    if not os.path.isfile(item.path):
        return None, [], "missing file"
    try:
        info = audio_info(item.path)
        start = 0 if item.start is None else int(round(item.start * info.samplerate))
        stop = None if item.end is None else int(round(item.end * info.samplerate))
        if stop is not None and stop > info.frames:
            return (
                None,
                [],
                (
                    f"segment end {item.end:.2f} s past the file's "
                    f"{info.frames / info.samplerate:.2f} s"
                ),
            )
        wav, fs = read_audio(item.path, start=start, stop=stop, dtype="float32")
    except AudioReadError as e:
        return None, [], f"unreadable audio: {e.detail}"
    if (stop is not None and wav.shape[0] < stop - start) or wav_is_truncated(
        item.path
    ):
        return None, [], "truncated file: fewer samples than its header says"
    if wav.shape[0] == 0:
        return None, [], "empty audio (0 samples)"
    if not np.isfinite(wav).all():
        return None, [], "audio contains NaN or infinite samples"
    if fs < opts.min_input_sample_rate:
        return (
            None,
            [],
            (f"sample rate {fs} Hz below the minimum {opts.min_input_sample_rate} Hz"),
        )
    conversions = []
    source = wav
    if wav.shape[1] > 1:
        conversions.append(f"downmixed {wav.shape[1]} channels")
    wav = downmix(wav)
    if fs != opts.sample_rate:
        conversions.append(f"resampled {fs} Hz")
        wav = resample(wav, fs, opts.sample_rate).astype(np.float32)
    seconds = len(wav) / opts.sample_rate
    if seconds < opts.min_sec:
        return None, conversions, f"too short: {seconds:.3f} s < {opts.min_sec} s"
    if seconds > opts.max_sec:
        return None, conversions, f"too long: {seconds:.2f} s > {opts.max_sec} s"
    if not np.any(wav):
        return None, conversions, "digital silence (all samples zero)"
    peak = float(np.abs(wav).max())
    if peak > 1.0:
        conversions.append("rescaled to avoid clipping")
        wav = wav / peak * 0.99
    soundfile.write(out_path, wav, opts.sample_rate, format=opts.audio_format.upper())
    if master_path is not None:
        conversions.append(write_master(source, fs, master_path, opts))
    return len(wav), conversions, None


NO_MASTER = "no master: "  # format_one's conversion notes about masters
MASTER_MADE = "master made"


def write_master(
    source: np.ndarray, fs: int, master_path: str, opts: FormatOptions
) -> str:
    """Writes the stereo master of ``source`` (frames x channels) at
    ``opts.master_sample_rate``; returns what was done or, after ``NO_MASTER``,
    why nothing was."""
    assert opts.master_sample_rate is not None
    if source.shape[1] < 2:
        return NO_MASTER + "mono source"
    if fs < opts.min_master_sample_rate:
        return NO_MASTER + f"source at {fs} Hz, below {opts.min_master_sample_rate} Hz"
    stereo = source[:, :2]
    note = MASTER_MADE
    if source.shape[1] > 2:
        note += f" from the first 2 of {source.shape[1]} channels"
    if fs != opts.master_sample_rate:
        note += f", resampled from {fs} Hz"
        stereo = resample(stereo, fs, opts.master_sample_rate).astype(np.float32)
    peak = float(np.abs(stereo).max())
    if peak > 1.0:
        stereo = stereo / peak * 0.99
    soundfile.write(master_path, stereo, opts.master_sample_rate, format="FLAC")
    return note


def wav_is_truncated(path: str) -> bool:
    """True when a RIFF/WAVE file holds fewer data bytes than its header declares.

    libsndfile silently shortens such files (FLAC and others raise instead),
    so the declared size of the ``data`` chunk is checked here.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        file_size = os.fstat(f.fileno()).st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return False
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                return size != 0xFFFFFFFF and f.tell() + size > file_size
            f.seek(size + (size & 1), os.SEEK_CUR)


def _one_thread() -> None:
    torch.set_num_threads(1)


def _format_star(args):
    return format_one_or_reason(*args)


def format_one_or_reason(
    item: AudioItem,
    out_path: str,
    opts: FormatOptions,
    master_path: Optional[str] = None,
) -> Tuple[Optional[int], List[str], Optional[str]]:
    """``format_one``, with any error of this one item (a failed write, an
    unforeseen decoder error) turned into its reject reason, so that the
    other items and the rejected list survive it."""
    try:
        return format_one(item, out_path, opts, master_path)
    except Exception as e:
        for path in (out_path, master_path):
            if path is not None and os.path.isfile(path):
                os.remove(path)  # no half-written file is left behind
        return None, [], f"formatting failed: {type(e).__name__}: {e}"


def format_data_dir(
    in_dir: str, out_dir: str, opts: FormatOptions, nj: int = 1
) -> RejectLog:
    """Formats ``in_dir`` into ``out_dir`` (layout in doc/data_layout.md)."""
    logger = logging.getLogger("format_audio")
    rejects = RejectLog("format_audio", logger)
    os.makedirs(out_dir, exist_ok=True)
    has_audio = os.path.exists(os.path.join(in_dir, "wav.scp"))
    kept: Dict[str, int] = {}
    if has_audio:
        kept = _format_audio(in_dir, out_dir, opts, nj, rejects, logger)
    _copy_side_files(in_dir, out_dir, kept if has_audio else None, rejects)
    total = len(kept) + len(rejects)
    rejects.write(os.path.join(out_dir, "rejected.tsv"))
    logger.info("%s -> %s: %s", in_dir, out_dir, rejects.summary(total))
    return rejects


def _format_audio(in_dir, out_dir, opts, nj, rejects, logger) -> Dict[str, int]:
    items = []
    for it in read_audio_items(in_dir, rejects):
        problem = file_name_problem(it.utt_id, f".{opts.audio_format}")
        if problem is None:
            items.append(it)
        else:
            rejects.add(it.utt_id, it.path, f"id cannot be a file name: {problem}")
    audio_dir = os.path.join(out_dir, "data")
    os.makedirs(audio_dir, exist_ok=True)
    master_dir = None
    if opts.master_sample_rate is not None:
        if os.path.exists(os.path.join(in_dir, "wav48.scp")):
            logger.info("%s has its own wav48.scp: kept, no masters made", in_dir)
        else:
            master_dir = os.path.join(out_dir, "masters")
            os.makedirs(master_dir, exist_ok=True)
    jobs = [
        (
            it,
            os.path.join(audio_dir, f"{it.utt_id}.{opts.audio_format}"),
            opts,
            None
            if master_dir is None
            else os.path.join(master_dir, f"{it.utt_id}.flac"),
        )
        for it in items
    ]
    # A pool pays for its start-up (each spawned worker imports torch, about
    # 3 s) only when a second worker gets a chunk of items.
    if nj > 1 and len(jobs) > _CHUNK:
        # spawn, not fork: a forked child inherits torch's thread pool and hangs.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(nj, mp_context=ctx, initializer=_one_thread) as pool:
            results = list(
                tqdm(
                    pool.map(_format_star, jobs, chunksize=_CHUNK),
                    total=len(jobs),
                    desc=f"format {os.path.basename(in_dir)}",
                )
            )
    else:
        results = [
            format_one_or_reason(*j)
            for j in tqdm(jobs, desc=f"format {os.path.basename(in_dir)}")
        ]
    kept: Dict[str, int] = {}
    kept_paths: Dict[str, str] = {}
    masters: Dict[str, str] = {}
    # items without a master stay in the data set: counted, listed, not warned
    no_master = RejectLog("masters", logger, warn_each=False)
    conversion_counts = collections.Counter()
    for (item, out_path, _, master_path), (n, conversions, reason) in zip(
        jobs, results
    ):
        if reason is not None:
            rejects.add(item.utt_id, item.path, reason)
            continue
        kept[item.utt_id] = n
        kept_paths[item.utt_id] = os.path.abspath(out_path)
        for c in conversions:
            if c.startswith(NO_MASTER):
                no_master.add(item.utt_id, item.path, c[len(NO_MASTER) :])
                continue
            if master_path is not None and c.startswith(MASTER_MADE):
                masters[item.utt_id] = os.path.abspath(master_path)
            conversion_counts[c] += 1
            logger.info("%s (%s): %s", item.utt_id, item.path, c)
    for what, n in conversion_counts.most_common():
        logger.info("format_audio: %s: %d items", what, n)
    write_kv(os.path.join(out_dir, "wav.scp"), kept_paths.items())
    write_kv(os.path.join(out_dir, "utt2num_samples"), kept.items())
    if master_dir is not None:
        write_kv(os.path.join(out_dir, "wav48.scp"), masters.items())
        no_master.write(os.path.join(out_dir, "no_master.tsv"))
        why = ", ".join(f"{n} {r}" for r, n in no_master.reason_counts().items())
        logger.info(
            "%s: stereo masters at %d Hz (wav48.scp) for %d of %d kept items%s",
            out_dir,
            opts.master_sample_rate,
            len(masters),
            len(kept),
            f"; none for {why} (listed in no_master.tsv)" if why else "",
        )
    return kept


def _copy_side_files(
    in_dir: str, out_dir: str, kept: Optional[Dict[str, int]], rejects: RejectLog
) -> None:
    """Copies the other data-dir files, keeping only ids whose audio survived."""
    for name in KEYED_FILES:
        path = os.path.join(in_dir, name)
        if not os.path.exists(path):
            continue
        values = read_kv(path, rejects)
        if kept is not None:
            values = {k: v for k, v in values.items() if k in kept}
        write_kv(os.path.join(out_dir, name), values.items())
    for name in JSONL_FILES:
        path = os.path.join(in_dir, name)
        if os.path.exists(path):
            rows = read_jsonl(path, rejects)
            _write_jsonl(
                os.path.join(out_dir, name),
                [r for r in rows if kept is None or r["id"] in kept],
            )
    path = os.path.join(in_dir, "dialogue.jsonl")
    if os.path.exists(path):
        good = []
        for conv in read_jsonl(path, rejects):
            missing = [
                a for a in dialogue_audio_ids(conv) if kept is None or a not in kept
            ]
            if missing:
                rejects.add(
                    conv["id"],
                    path,
                    f"refers to missing or rejected audio {missing[0]}",
                )
                continue
            good.append(conv)
        _write_jsonl(os.path.join(out_dir, "dialogue.jsonl"), good)


def dialogue_audio_ids(conversation: dict) -> List[str]:
    """Utterance ids of the audio segments a conversation refers to."""
    return [
        seg["audio"]
        for msg in conversation.get("messages", [])
        for seg in msg.get("content", [])
        if seg.get("type") == "audio"
    ]


def _write_jsonl(path: str, rows: List[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in sorted(rows, key=lambda r: r["id"]):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
