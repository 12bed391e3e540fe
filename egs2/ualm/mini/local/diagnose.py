#!/usr/bin/env python3
"""Where does the mini model lose text-to-audio quality? Teacher-forced checks.

For each clip of a mini_sound data set it builds the training example of the
text-to-audio task (caption -> codes), runs the packed model over it once
with the caption and once with the caption dropped (the unconditional branch
of classifier-free guidance), and reports:

* next-frame accuracy and loss of every codec stream, by frame class:
  ``silence`` (no event), ``onset`` (an event's first frame), ``inside``,
  ``offset`` (the first frame after an event) and ``end`` (the end of audio);
* the same for the unconditional branch: how much the caption buys;
* with ``--judge_dir``, the teacher-forced argmax clips (each frame predicted
  from the true prefix) decoded by the codec and written as a wav.scp, to be
  judged beside the free-running clips (exposure bias).

  python local/diagnose.py --model_dir exp/ualm_unified/packed \\
      --data_dir dump/audio/mini_sound_valid --output_json exp/diagnosis.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np
import soundfile
import torch

from espnet2.ualm.inference.pipeline import UALM
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.train.dataset import UALMDataset, read_manifest

FRAME_CLASSES = ("silence", "onset", "inside", "offset", "end")


def frame_classes(meta: dict, n_frames: int, frame_rate: float) -> list[str]:
    """The class of every codec frame from the clip's event spans."""
    classes = ["silence"] * n_frames
    for e in meta["events"]:
        first = int(np.floor(e["onset_s"] * frame_rate))
        last = int(np.ceil(e["offset_s"] * frame_rate))  # first frame after
        for f in range(max(first, 0), min(last, n_frames)):
            classes[f] = "onset" if f == first else "inside"
        if last < n_frames:
            classes[last] = "offset"
    return classes


@torch.no_grad()
def teacher_forced(model, seq, condition: bool):
    """Argmax and log-probability of every target of one built sequence.

    Returns ``(pred [T-1, K], logp [T-1, K], targets [T-1, K], mask [T-1, K])``
    where row t is the prediction made at position t for position t + 1.
    """
    ids = seq.ids.clone()
    if not condition:
        # the unconditional branch: the condition's positions padded, as CFG
        # dropout trains it (espnet2.ualm.model.cfg_dropout)
        ids[seq.condition_mask] = model.vocabulary.pad_id
    ids = ids[None]
    positions = torch.arange(ids.shape[1])[None]
    hidden = model.hidden_states(model.embed(ids), positions)[0, :-1]
    targets, mask = seq.ids[1:], seq.loss_mask[1:]
    preds, logps = [], []
    for k in range(ids.shape[-1]):
        restrict = "full" if k == 0 else "codebook"
        logits = model.stream_logits(hidden, k, restrict=restrict).float()
        low = 0 if k == 0 else model.vocabulary.codebook_range(k)[0]
        logp = torch.log_softmax(logits, -1)
        tgt = (targets[:, k] - low).clamp(0, logits.shape[-1] - 1)
        preds.append(logits.argmax(-1) + low)
        logps.append(logp.gather(-1, tgt[:, None])[:, 0])
    return torch.stack(preds, -1), torch.stack(logps, -1), targets, mask


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model_dir", required=True)
    p.add_argument("--manifest", required=True, help="text_to_audio manifest (.json)")
    p.add_argument("--meta", required=True, help="the data set's meta.jsonl")
    p.add_argument("--num", type=int, default=100, help="first N clips")
    p.add_argument("--judge_dir", default=None, help="write teacher-forced clips")
    p.add_argument(
        "--targets",
        action="store_true",
        help="write the true codes instead (checks the frame bookkeeping)",
    )
    p.add_argument("--output_json", default=None)
    args = p.parse_args(argv)

    ualm = UALM.from_pretrained(args.model_dir)
    model, vocab = ualm.model, ualm.model.vocabulary
    frame_rate = ualm.codec.frame_rate
    with open(args.meta, encoding="utf-8") as f:
        metas = {r["id"]: r for r in map(json.loads, f) if r}
    manifest = read_manifest(args.manifest)
    dataset = UALMDataset(
        [manifest],
        SequenceBuilder(vocab, ualm.tokenizer),
    )
    ids = sorted(metas)[: args.num]
    n_streams = vocab.n_codebooks
    # stats[branch][class][k] = [correct, count, logp sum]
    stats = {
        b: defaultdict(lambda: np.zeros((n_streams, 3))) for b in ("cond", "uncond")
    }
    wavs = {}
    for uid in ids:
        seq, _ = dataset.example(f"{manifest['name']}/{uid}")
        is_audio = seq.loss_mask[:, 0] & (seq.ids[:, 0] >= vocab.audio_offset)
        audio_pos = torch.nonzero(is_audio).flatten()
        for branch in ("cond", "uncond"):
            pred, logp, targets, mask = teacher_forced(model, seq, branch == "cond")
            # frame f of stream k is the target at position start + f + k; the
            # first audio target row (row = position - 1) is audio_pos[0] - 1
            start = int(audio_pos[0]) - 1
            n_frames = int(mask[:, n_streams - 1].sum())
            classes = frame_classes(metas[uid], n_frames, frame_rate)
            for k in range(n_streams):
                for f in range(n_frames + 1):
                    row = start + f + k
                    if row >= len(mask) or not mask[row, k]:
                        continue
                    cls = classes[f] if f < n_frames else "end"
                    s = stats[branch][cls][k]
                    s += [
                        float(pred[row, k] == targets[row, k]),
                        1.0,
                        float(logp[row, k]),
                    ]
            if branch == "cond" and args.judge_dir:
                source = targets if args.targets else pred
                frames = torch.stack(
                    [
                        source[start + k : start + k + n_frames, k]
                        for k in range(n_streams)
                    ],
                    -1,
                )
                codes = frames - torch.tensor(
                    [vocab.codebook_range(k)[0] for k in range(n_streams)]
                )
                codes = codes.clamp(0, vocab.codebook_size - 1)
                wav = ualm.decode_codes(codes)
                os.makedirs(args.judge_dir, exist_ok=True)
                path = os.path.join(args.judge_dir, f"{uid}.wav")
                soundfile.write(
                    path, np.asarray(wav).reshape(-1), ualm.codec.sample_rate
                )
                wavs[uid] = os.path.abspath(path)
        print(
            f"\r{len(wavs) or ids.index(uid) + 1}/{len(ids)} clips",
            end="",
            file=sys.stderr,
        )
    print(file=sys.stderr)
    if args.judge_dir:
        with open(os.path.join(args.judge_dir, "wav.scp"), "w", encoding="utf-8") as f:
            f.writelines(f"{k} {v}\n" for k, v in sorted(wavs.items()))
    report = {}
    for branch, per_class in stats.items():
        report[branch] = {
            cls: {
                "frames": int(per_class[cls][0, 1]),
                "accuracy": [round(c / n, 4) for c, n, _ in per_class[cls]],
                "nll": [round(-s / n, 4) for _, n, s in per_class[cls]],
            }
            for cls in FRAME_CLASSES
            if cls in per_class
        }
    for branch in report:
        print(f"== {branch}")
        for cls, r in report[branch].items():
            acc = " ".join(f"{a:.2f}" for a in r["accuracy"])
            nll = " ".join(f"{a:.2f}" for a in r["nll"])
            print(f"{cls:8s} {r['frames']:6d} frames  acc {acc}  nll {nll}")
    if args.output_json:
        with open(args.output_json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
