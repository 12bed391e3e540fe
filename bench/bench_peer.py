#!/usr/bin/env python3
"""UALM against ESPnet-SpeechLM (the peer's ``ParallelLLM``), side by side in
one run: one training step on the same packed batch, one decode step with CFG.

    tools/venv/bin/python bench/bench_peer.py            # ~3 min on 2 busy cores
    # --hidden 256 --layers 4 --text_vocab 151936 --length 512 --frames 64
    # --repeats 3 --threads 1; writes bench/results/bench_peer.json

Both models are the same Qwen3 backbone (``--hidden``, ``--layers``; sdpa),
the same vocabulary (256 special ids, ``--text_vocab`` text ids: Qwen3's
151,936 by default, 8 x 1,025 X-codec ids: 160,392 rows) and the same
weights: the peer's are built by ESPnet's ``SpeechLMJobTemplate`` (tiny
X-codec, no audio encoder) and converted into ours by
``espnet2.ualm.pretrained.speechlm.convert_state``.

Training step: forward + backward of one packed row of ``--length``
positions (text-to-audio and text examples built by our ``SequenceBuilder``,
position ids restarting per example; the peer gets the same ids through the
id map, its float loss mask, its ``position_ids``). The peer's loss is
Liger's fused linear + cross-entropy Triton kernel, which runs only on a
GPU: here ``LigerFusedLinearCrossEntropyFunction`` is replaced by the same
computation in plain torch (logits materialised, float32 cross-entropy sum,
z-loss), the rest of the peer's ``forward`` / ``_loss`` /
``fused_cross_entropy_loss`` unchanged.

Decode step with CFG (scale 3, temperature 0.8, top-k 20, ``--frames``
audio frames forced): ours ``UALMGenerator.generate`` (backend auto), the
peer's ``ParallelLLM.inference`` (its codec decoding stubbed out); each call's
wall time, prefill included, over its decode forwards. Medians of
``--repeats`` interleaved rounds after one warm-up.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Dict

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

# the backbone's shape, as our model config takes it
BACKBONE_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "tie_word_embeddings",
)


class TorchFusedLinearCE:
    """Liger's ``LigerFusedLinearCrossEntropyFunction.apply`` (its positional
    arguments and its first three outputs) in plain torch, for a CPU."""

    @staticmethod
    def apply(x, weight, target, bias, ce_weight, ignore_index, z_scale, *rest):
        logits = F.linear(x, weight, bias).float()
        valid = target != ignore_index
        loss = F.cross_entropy(
            logits,
            target,
            weight=None if ce_weight is None else ce_weight.float(),
            ignore_index=ignore_index,
            reduction="sum",
        )
        lse = torch.logsumexp(logits[valid], dim=-1)
        z_loss = z_scale * (lse**2).sum()
        acc = (logits[valid].argmax(-1) == target[valid]).float().mean()
        return loss + z_loss, z_loss, acc


def build(args, root: str):
    """The peer model (ESPnet's classes), ours with its weights, the maps."""
    from espnet2.speechlm.model.speechlm import speechlm_job
    from espnet2.ualm.data.safe_io import read_json
    from espnet2.ualm.model.factory import build_ualm_model
    from espnet2.ualm.pretrained.speechlm import (
        convert_state,
        peer_vocabulary,
        row_map,
        vocabulary_of,
    )
    from espnet2.ualm.testing.tiny_speechlm import (
        speechlm_train_config,
        tiny_speechlm_dirs,
    )

    dirs = tiny_speechlm_dirs(
        root,
        vocab_size=args.text_vocab,
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=max(1, args.hidden // 64),
        num_key_value_heads=max(1, args.hidden // 128),
        head_dim=64,
        max_position_embeddings=4096,
    )
    config = speechlm_train_config(dirs["qwen3"], dirs["codec"], encoder=False)
    backbone = read_json(os.path.join(dirs["qwen3"], "config.json"))
    backbone = {k: v for k, v in backbone.items() if k in BACKBONE_KEYS}
    job = speechlm_job.SpeechLMJobTemplate(config, is_train=False)
    torch.manual_seed(1)
    peer = job.build_model()
    with torch.no_grad():
        peer.stream_emb.weight.normal_(std=0.02)
    # the importer's reading of the peer's vocabulary (its audio layout included)
    meta = peer_vocabulary(config, dirs["qwen3"], dirs["codec"])
    # the bench's text ids are the peer's own (its padded text range)
    vocab = vocabulary_of(meta, meta["text_end"] - meta["text_start"])
    names = list(meta["vocab"][meta["text_start"] : meta["text_end"]])
    mapping = row_map(vocab, meta, names)
    ours = build_ualm_model(
        vocab, backbone={"config": dict(backbone, model_type="qwen3")}
    )
    state, _ = convert_state(peer.state_dict(), ours.state_dict(), mapping, False)
    ours.load_state_dict(state)
    peer.prepare_inference()  # its decoding buffers, after the state is read
    return peer, ours, vocab, mapping, job


def packed_row(vocab, length: int, seed: int = 0):
    """One row of whole examples (text-to-audio, text dialogue), ours."""
    from espnet2.ualm.model.batch import collate_sequences
    from espnet2.ualm.text.tokenizer import TextTokenizer
    from espnet2.ualm.tokens.sequence import SequenceBuilder

    class Bytes(TextTokenizer):  # a tokenizer of the bench's text vocabulary
        vocab_size = vocab.text_vocab_size

        def encode(self, text):
            return [b + 1 for b in text.encode()]

        def decode(self, ids):
            return bytes(i - 1 for i in ids).decode(errors="replace")

    builder = SequenceBuilder(vocab, Bytes())
    g = torch.Generator().manual_seed(seed)

    def clip(frames: int):
        codes = torch.randint(
            0, vocab.codebook_size, (frames, vocab.n_codebooks), generator=g
        )
        return builder.build_example(
            "text_to_audio", {"caption": "a dog barks in the rain", "audio": codes}
        )

    examples, used, i = [], 0, 0
    while True:
        if i % 3 == 2:
            ex = builder.build_example(
                "text_dialogue",
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "text", "text": "hi " * 9}],
                        },
                        {
                            "role": "assistant",
                            "content": [{"type": "text", "text": "ok " * 20}],
                        },
                    ]
                },
            )
        else:
            ex = clip(int(torch.randint(40, 120, (1,), generator=g)))
        if used + len(ex) > length:
            # the last example: a clip as long as the row has room for
            overhead = len(clip(1)) - 1
            if length - used > overhead:
                examples.append(clip(length - used - overhead))
            break
        examples.append(ex)
        used += len(ex)
        i += 1
    batch = collate_sequences([examples], pad_to_multiple_of=length)
    return batch, len(examples)


def train_steps(peer, ours, vocab, mapping, batch, repeats: int) -> Dict:
    import espnet2.speechlm.model.speechlm.lm.loss as peer_loss

    peer_loss.LigerFusedLinearCrossEntropyFunction = TorchFusedLinearCE
    table = torch.tensor([-1 if m is None else m for m in mapping])
    peer_ids = table[batch["ids"]]
    if bool((peer_ids < 0).any()):
        raise RuntimeError("the packed row holds an id the peer's vocabulary lacks")
    peer_batch = {
        "seqs": peer_ids,
        "loss_masks": batch["loss_mask"].float(),
        "position_ids": batch["position_ids"],
        "attn_args": {},
    }

    def ours_step(audio_softmax="codebook"):
        ours.audio_softmax = audio_softmax
        loss = ours(**batch)[0]
        loss.backward()
        ours.zero_grad(set_to_none=True)

    def peer_step():
        peer.reset_loss_stats()
        loss = peer(
            **{k: (v.clone() if k == "seqs" else v) for k, v in peer_batch.items()}
        )
        loss.backward()
        peer.zero_grad(set_to_none=True)

    codec_io = peer.multimodal_io_dict["discrete_audio"]

    def peer_step_lm_only():
        # without the codec's dummy forward its training step runs when a batch
        # brings no waveform to encode (ours reads stage-4 codes: no codec)
        codec_io.dummy_forward = lambda ref_tensor: ref_tensor.new_zeros(1)
        try:
            peer_step()
        finally:
            del codec_io.dummy_forward

    ours.train()
    peer.train()
    return interleaved(
        {
            "ualm": ours_step,
            # the peer's objective: streams 1.. against all 8 x 1025 codec ids
            "ualm_audio_softmax": lambda: ours_step("audio"),
            "speechlm": peer_step,
            "speechlm_lm_only": peer_step_lm_only,
        },
        repeats,
    )


def decode_steps(peer, ours, vocab, mapping, job, frames: int, repeats: int) -> Dict:
    from espnet2.ualm.inference.generate import UALMGenerator
    from espnet2.ualm.inference.settings import DecodeSettings

    ours.eval()
    peer.eval()
    caption = "a dog barks while rain falls on a tin roof"
    pre = job.build_preprocessor()
    sample = pre.collate_fn([(("text_to_audio", "bench", "u"), {"text1": caption})])
    prompt_ids = sample["seqs"][0]
    table = {}
    for o, p in enumerate(mapping):  # the peer's id -> our first id of that token
        table.setdefault(p, o)
    ours_prompt = prompt_ids.clone().apply_(lambda i: table[i])
    ours_prompt = torch.cat(
        [ours_prompt, torch.tensor([[vocab.role_id("assistant")] + [0] * 7])]
    )
    frame_rate = 50.0  # the tiny X-codec's (16 kHz, hop 320)
    gen = UALMGenerator(ours, None, frame_rate=frame_rate)
    settings = DecodeSettings(
        cfg_scale=3.0,
        audio_sampling={"temperature": 0.8, "top_k": 20},
        min_audio_seconds=frames / frame_rate,
        max_audio_seconds=frames / frame_rate,
        batch_size=1,
    )
    io = peer.multimodal_io_dict["discrete_audio"]
    io.decode_batch = lambda codes, lengths: (codes, lengths, None)  # no codec
    peer_config = {
        "enforce_modality": ["audio"],
        "audio": {
            "temperature": 0.8,
            "topk": 20,
            "cfg": 3,
            "max_step": frames,
            "min_step": frames,
        },
    }
    counts = {}

    def ours_call():
        with torch.no_grad():
            out = gen.generate([ours_prompt], settings, "audio")[0]
        counts["ualm"] = out.ids.shape[0]

    def peer_call():
        with torch.no_grad():
            messages, _ = peer.inference(peer_config, **sample)
        counts["speechlm"] = frames + 2  # <assistant>, the frames, the last prefill

    calls = interleaved({"ualm": ours_call, "speechlm": peer_call}, repeats)
    return {
        k: {"call_s": v, "forwards": counts[k], "step_ms": 1e3 * v / counts[k]}
        for k, v in calls.items()
    }


def interleaved(fns: Dict, repeats: int) -> Dict[str, float]:
    """Median seconds of each callable, one warm-up each, rounds interleaved."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--text_vocab", type=int, default=151936)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=common.default_json("bench_peer"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        peer, ours, vocab, mapping, job = build(args, root)
        batch, n_examples = packed_row(vocab, args.length)
        train = train_steps(peer, ours, vocab, mapping, batch, args.repeats)
        decode = decode_steps(
            peer, ours, vocab, mapping, job, args.frames, args.repeats
        )
    report = {
        "args": vars(args),
        "vocab_rows": vocab.size,
        "packed_examples": n_examples,
        "positions": int(batch["ids_lengths"].sum()),
        "targets_stream0": int(batch["loss_mask"][0, 1:, 0].sum()),
        "targets_streams_1_up": int(batch["loss_mask"][0, 1:, 1:].sum()),
        "train_step_s": train,
        "train_ratio_speechlm_over_ualm": train["speechlm"] / train["ualm"],
        "train_ratio_speechlm_lm_only_over_ualm": train["speechlm_lm_only"]
        / train["ualm"],
        "train_ratio_speechlm_lm_only_over_ualm_audio_softmax": train[
            "speechlm_lm_only"
        ]
        / train["ualm_audio_softmax"],
        "decode": decode,
        "decode_step_ratio_speechlm_over_ualm": decode["speechlm"]["step_ms"]
        / decode["ualm"]["step_ms"],
    }
    for key in (
        "train_step_s",
        "train_ratio_speechlm_over_ualm",
        "train_ratio_speechlm_lm_only_over_ualm",
        "train_ratio_speechlm_lm_only_over_ualm_audio_softmax",
        "decode",
        "decode_step_ratio_speechlm_over_ualm",
    ):
        print(key, report[key])
    common.write_json(args.json, report)


if __name__ == "__main__":
    main()
