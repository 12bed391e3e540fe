"""Collating built sequences into the batch ``UALMModel.forward`` reads.

Each batch row holds one or more examples (packing): their ids are
concatenated and their position ids restart at 0, which confines attention
to each example. The later data pipeline chooses which examples share a row
(best-fit packing or length buckets); this module only lays them out.
"""

from typing import Dict, List, Mapping, Optional, Sequence

import torch

from espnet2.ualm.tokens.sequence import BuiltSequence


def collate_sequences(
    rows: Sequence[Sequence[BuiltSequence]],
    waveforms: Optional[Mapping[str, torch.Tensor]] = None,
    pad_to_multiple_of: int = 1,
) -> Dict[str, torch.Tensor]:
    """Batch of ``rows`` (each a list of examples packed into one row).

    ``waveforms`` maps the audio-input keys of the sequences to 1-D
    waveforms at the encoder's sample rate. Padding positions continue the
    last example's position ids (so they add no example boundary).
    See ``ualm_model.py`` for the keys.
    """
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("every row needs at least one sequence")
    n_streams = rows[0][0].n_streams
    lengths = [sum(len(s) for s in row) for row in rows]
    length = max(lengths)
    length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    batch = len(rows)
    ids = torch.zeros(batch, length, n_streams, dtype=torch.long)
    loss_mask = torch.zeros(batch, length, n_streams, dtype=torch.bool)
    condition = torch.zeros(batch, length, dtype=torch.bool)
    positions = torch.zeros(batch, length, dtype=torch.long)
    spans: List[List[int]] = []
    audio: List[torch.Tensor] = []
    for b, row in enumerate(rows):
        start = 0
        for seq in row:
            if seq.n_streams != n_streams:
                raise ValueError(
                    "sequences of one batch need the same number of streams"
                )
            end = start + len(seq)
            ids[b, start:end] = seq.ids
            loss_mask[b, start:end] = seq.loss_mask
            condition[b, start:end] = seq.condition_mask
            positions[b, start:end] = torch.arange(len(seq))
            for span in seq.audio_inputs:
                if waveforms is None or span.key not in waveforms:
                    raise KeyError(f"no waveform for audio input {span.key!r}")
                spans.append([b, start + span.start, span.num_frames])
                audio.append(torch.as_tensor(waveforms[span.key]).float().reshape(-1))
            start = end
        last = positions[b, start - 1]
        positions[b, start:] = last + 1 + torch.arange(length - start)
    out = {
        "ids": ids,
        "ids_lengths": torch.tensor(lengths, dtype=torch.long),
        "loss_mask": loss_mask,
        "position_ids": positions,
        "condition_mask": condition,
    }
    if audio:
        n_samples = max(len(a) for a in audio)
        wav = torch.zeros(len(audio), n_samples)
        for i, a in enumerate(audio):
            wav[i, : len(a)] = a
        out["audio_input"] = wav
        out["audio_input_lengths"] = torch.tensor([len(a) for a in audio])
        out["audio_input_spans"] = torch.tensor(spans, dtype=torch.long)
    return out
