"""UALM: one decoder-only LM reading and writing text and audio token streams.

Batch keys of ``forward`` (``collate_sequences`` in ``batch.py`` makes them):

========================  ===============  =====================================
key                       shape / dtype    meaning
========================  ===============  =====================================
``ids``                   [B, T, K] long   multi-stream ids, padded with 0
``ids_lengths``           [B] long         valid positions per row
``loss_mask``             [B, T, K] bool   True where ``ids`` is a target
``position_ids``          [B, T] long      optional; restart at 0 for each
                                           example packed into a row
``condition_mask``        [B, T] bool      optional; what CFG dropout may pad
``audio_input``           [N, S] float     optional; waveforms for the encoder,
                                           at its ``sample_rate``
``audio_input_lengths``   [N] long         valid samples per waveform
``audio_input_spans``     [N, 3] long      (row, first position, frames) where
                                           each waveform's features go
========================  ===============  =====================================

Packing: rows may hold several examples one after the other, each with
position ids from 0; attention stays inside each example (HF derives the
block-diagonal mask from the position ids for sdpa/eager; with
``flatten_batch`` the batch becomes one row so flash-attention-2 runs
varlen). Padding sits at the end of a row.

Preference batches add ``pair_index`` and ``chosen`` per example; with a
preference objective attached (``attach_preference``) ``forward`` returns
the DPO loss of ``dpo.py`` instead of the CE loss.

``forward`` returns ``(loss, stats, weight)`` for ESPnet's Trainer; ``weight``
is the number of stream-0 targets, so the Trainer's weighted average over
workers is the global per-token loss.
"""

import logging
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet2.ualm.model.adapter import AudioAdapter
from espnet2.ualm.model.audio_encoder import WhisperAudioEncoder
from espnet2.ualm.model.cfg_dropout import drop_condition
from espnet2.ualm.model.dpo import PreferenceObjective
from espnet2.ualm.model.loss import AUDIO_SOFTMAX, MultiStreamLoss, multistream_loss
from espnet2.ualm.tokens.vocabulary import UALMVocabulary

LOGIT_RESTRICTIONS = ("full", "audio", "codebook")
AUTOCAST_DTYPES = (None, "bfloat16", "auto")


def native_bfloat16(device_type: str) -> bool:
    """Whether this device type runs bfloat16 matmuls natively. A CPU without
    AVX512 (AVX2 only) emulates them: a mini training step took 1.5 s under
    bfloat16 autocast there, several times its float32 time."""
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # pragma: no cover - platform
            return False
    return False


def _fingerprint_tensor(vocabulary: UALMVocabulary) -> torch.Tensor:
    return torch.tensor(
        list(bytes.fromhex(vocabulary.fingerprint())), dtype=torch.uint8
    )


class UALMModel(AbsESPnetModel):
    """Backbone LM + stream embeddings (+ audio encoder and adapter).

    Args:
        vocabulary: token layout; the backbone's tables must be in it
            (``backbone.extend_vocabulary``).
        backbone: a HF causal LM.
        audio_encoder, adapter: continuous audio input (both or neither).
        audio_token_weight: loss weight of each audio target; default 1/K.
        cfg_dropout_prob: probability of padding an example's condition in
            training (release: 0.05).
        logits_chunk_size: positions whose logits exist at once in the loss
            (per stream); more rows are chunked and recomputed in backward.
        audio_softmax: training softmax of streams 1..K-1: ``"codebook"``
            (default; each stream over its own codebook's ids, pad included,
            the range inference samples from: ``stream_logits``) or
            ``"audio"`` (over all audio ids); see ``loss.py``.
        flatten_batch: run the batch as one packed row (flash-attention-2
            varlen); default: only with ``flash_attention_2``.
        autocast_dtype: ``"bfloat16"`` runs ``forward`` under
            ``torch.autocast`` on the batch's device (matmuls in bfloat16,
            weights, optimizer and loss in float32; no loss scaling needed).
            ESPnet's ``--use_amp`` autocasts on CUDA only; this works on a
            CPU too (``bench/bench_train_throughput.py``, what-if
            ``ualm_bf16_autocast``: a mini training step 0.31 -> 0.15 CPU-s
            on one core with AVX512-BF16). ``"auto"``: bfloat16 where the
            batch's device runs it natively (``native_bfloat16``), else
            float32. ``None``: the parameters' dtype.
    """

    def __init__(
        self,
        vocabulary: UALMVocabulary,
        backbone: nn.Module,
        audio_encoder: Optional[WhisperAudioEncoder] = None,
        adapter: Optional[AudioAdapter] = None,
        audio_token_weight: Optional[float] = None,
        cfg_dropout_prob: float = 0.0,
        logits_chunk_size: int = 4096,
        flatten_batch: Optional[bool] = None,
        audio_softmax: str = "codebook",
        autocast_dtype: Optional[str] = None,
    ):
        super().__init__()
        if autocast_dtype not in AUTOCAST_DTYPES:
            raise ValueError(
                f"autocast_dtype must be one of {AUTOCAST_DTYPES}, got "
                f"{autocast_dtype!r} (float16 needs loss scaling: on a GPU use "
                "ESPnet's --use_amp)"
            )
        if audio_softmax not in AUDIO_SOFTMAX:
            raise ValueError(
                f"audio_softmax must be one of {AUDIO_SOFTMAX}, got {audio_softmax!r}"
            )
        if (audio_encoder is None) != (adapter is None):
            raise ValueError("audio_encoder and adapter come together (or neither)")
        embed = backbone.get_input_embeddings()
        if embed.weight.shape[0] != vocabulary.size:
            raise ValueError(
                f"backbone has {embed.weight.shape[0]} embedding rows, the vocabulary "
                f"{vocabulary.size}: call extend_vocabulary first"
            )
        if not 0.0 <= cfg_dropout_prob < 1.0:
            raise ValueError(
                f"cfg_dropout_prob must be in [0, 1), got {cfg_dropout_prob}"
            )
        self.vocabulary = vocabulary
        self.backbone = backbone
        self.audio_encoder = audio_encoder
        self.adapter = adapter
        self.n_streams = vocabulary.n_codebooks
        self.audio_token_weight = (
            1.0 / self.n_streams
            if audio_token_weight is None
            else float(audio_token_weight)
        )
        self.cfg_dropout_prob = float(cfg_dropout_prob)
        self.logits_chunk_size = int(logits_chunk_size)
        self.audio_softmax = audio_softmax
        self.autocast_dtype = autocast_dtype
        if flatten_batch is None:
            attn = getattr(backbone.config, "_attn_implementation", None)
            flatten_batch = attn == "flash_attention_2"
        self.flatten_batch = bool(flatten_batch)

        dim = embed.weight.shape[1]
        std = float(getattr(backbone.config, "initializer_range", 0.02))
        # stream 0 has no embedding (zero); streams 1..K-1 one row each
        self.stream_embeddings = nn.Parameter(
            torch.randn(
                self.n_streams - 1,
                dim,
                dtype=embed.weight.dtype,
                device=embed.weight.device,
            )
            * std
        )
        self.register_buffer("vocabulary_fingerprint", _fingerprint_tensor(vocabulary))
        # DPO instead of CE when attached (attach_preference); not a submodule
        self.preference: Optional[PreferenceObjective] = None
        self.register_load_state_dict_pre_hook(self._check_vocabulary)

        # rows whose gradient is kept; None = all but <pad>
        self._trainable_rows: Optional[Tuple[int, int]] = None
        tables = {id(embed.weight): embed.weight}
        head = backbone.get_output_embeddings()
        if head is not None:
            tables[id(head.weight)] = head.weight
        for weight in tables.values():
            weight.register_hook(self._mask_table_grad)

    # ----- vocabulary safety ---------------------------------------------------

    def _check_vocabulary(self, module, state_dict, prefix, *args) -> None:
        saved = state_dict.get(prefix + "vocabulary_fingerprint")
        if saved is not None and not torch.equal(
            saved.cpu(), self.vocabulary_fingerprint.cpu()
        ):
            raise ValueError(
                "the checkpoint was trained with another vocabulary layout than this "
                "model's (vocabulary.json); loading it would mix up token rows"
            )

    def _mask_table_grad(self, grad: torch.Tensor) -> torch.Tensor:
        """Keeps <pad>'s row at zero; in alignment, trains only the audio rows."""
        if self._trainable_rows is None:
            return grad.index_fill(0, torch.tensor([0], device=grad.device), 0.0)
        start, stop = self._trainable_rows
        keep = torch.zeros(grad.shape[0], 1, dtype=grad.dtype, device=grad.device)
        keep[start:stop] = 1
        return grad * keep

    def freeze_for_modality_alignment(self) -> None:
        """Stage 2: train only the adapter, the audio rows and stream embeddings.

        The Transformer and the encoder are frozen; text and special rows of the
        tables get zero gradient (note: an optimizer's weight decay still
        shrinks them unless those tables are excluded from decay).
        """
        if self.adapter is None:
            raise ValueError("modality alignment needs an audio encoder and adapter")
        self.backbone.requires_grad_(False)
        self.backbone.get_input_embeddings().weight.requires_grad_(True)
        head = self.backbone.get_output_embeddings()
        if head is not None:
            head.weight.requires_grad_(True)
        self.adapter.requires_grad_(True)
        self.stream_embeddings.requires_grad_(True)
        self._trainable_rows = (self.vocabulary.audio_offset, self.vocabulary.size)

    # ----- building blocks (also used at inference) ---------------------------

    @property
    def head_weight(self) -> torch.Tensor:
        head = self.backbone.get_output_embeddings()
        return (
            head if head is not None else self.backbone.get_input_embeddings()
        ).weight

    def embed(
        self,
        ids: torch.Tensor,
        audio_input: Optional[torch.Tensor] = None,
        audio_input_lengths: Optional[torch.Tensor] = None,
        audio_input_spans: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``[B, T, K]`` ids -> ``[B, T, D]``: sum of the streams' embeddings,
        encoder features written at the audio placeholders."""
        batch, length, n_streams = ids.shape
        weight = self.backbone.get_input_embeddings().weight
        embeds = F.embedding_bag(
            ids.reshape(-1, n_streams), weight, mode="sum", padding_idx=0
        ).view(batch, length, -1)
        placeholders = ids[..., 0] == self.vocabulary.audio_placeholder_id
        n_placeholders = int(placeholders.sum())
        if audio_input_spans is None or audio_input_spans.numel() == 0:
            if n_placeholders:
                raise ValueError(
                    f"{n_placeholders} audio placeholders but no audio_input_spans"
                )
            return embeds
        if self.audio_encoder is None:
            raise ValueError("the batch has audio input, the model no audio encoder")
        features, frames = self.audio_encoder(audio_input, audio_input_lengths)
        adapter_dtype = next(self.adapter.parameters()).dtype
        features = self.adapter(features.to(adapter_dtype)).to(embeds.dtype)
        rows, cols, values = [], [], []
        for j, (row, start, n) in enumerate(audio_input_spans.tolist()):
            if n != int(frames[j]):
                raise ValueError(
                    f"audio input {j}: the sequence holds {n} placeholders, the "
                    f"encoder gives {int(frames[j])} frames (count them with "
                    "audio_encoder.num_frames)"
                )
            if not placeholders[row, start]:
                continue  # dropped with the condition (CFG)
            rows.append(torch.full((n,), row, dtype=torch.long))
            cols.append(torch.arange(start, start + n))
            values.append(features[j, :n])
        n_written = sum(len(r) for r in rows)
        if n_written != n_placeholders:
            raise ValueError(
                f"audio_input_spans cover {n_written} of {n_placeholders} placeholders"
            )
        if not rows:
            return embeds + 0 * features.sum()
        index = (torch.cat(rows).to(ids.device), torch.cat(cols).to(ids.device))
        return embeds.index_put(index, torch.cat(values))

    def hidden_states(
        self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        """Final hidden states ``[B, T, D]`` (the backbone's final norm applied)."""
        batch, length, dim = inputs_embeds.shape
        base = self.backbone.base_model
        if self.flatten_batch and batch > 1:
            out = base(
                inputs_embeds=inputs_embeds.reshape(1, batch * length, dim),
                position_ids=position_ids.reshape(1, batch * length),
                use_cache=False,
            )
            return out.last_hidden_state.view(batch, length, dim)
        out = base(
            inputs_embeds=inputs_embeds, position_ids=position_ids, use_cache=False
        )
        return out.last_hidden_state

    def stream_logits(
        self, hidden: torch.Tensor, stream: int, restrict: str = "codebook"
    ) -> torch.Tensor:
        """Logits of one stream for hidden states ``[..., D]``.

        Stream 0: the full vocabulary. Streams >= 1: the audio slice
        (``restrict="audio"``, columns from ``audio_offset``) or the stream's
        own codebook range, its pad included (``"codebook"``, columns from
        ``codebook_range(stream)[0]``), as at inference.
        """
        if restrict not in LOGIT_RESTRICTIONS:
            raise ValueError(f"restrict must be one of {LOGIT_RESTRICTIONS}")
        weight = self.head_weight
        if stream == 0 or restrict == "full":
            if stream:
                hidden = hidden + self.stream_embeddings[stream - 1]
            return torch.matmul(hidden, weight.T)
        hidden = hidden + self.stream_embeddings[stream - 1]
        if restrict == "audio":
            start, stop = self.vocabulary.audio_offset, self.vocabulary.size
        else:
            start, stop = self.vocabulary.codebook_range(stream)
        return torch.matmul(hidden, weight[start:stop].T)

    # ----- training -------------------------------------------------------------

    def attach_preference(self, objective: Optional[PreferenceObjective]) -> None:
        """Trains on preference batches by ``objective`` (DPO, ``dpo.py``);
        its reference stays out of the parameters and the state dict.
        ``None`` detaches it."""
        self.preference = objective

    def _apply(self, fn, recurse=True):
        # device and dtype moves reach the reference, which is no submodule
        super()._apply(fn, recurse)
        if self.preference is not None:
            self.preference.to_(fn)
        return self

    def _unused_parameter_guard(self) -> torch.Tensor:
        """0 * trainable audio-side parameters: each step touches every parameter
        (DDP without find_unused_parameters), even in text-only batches."""
        params = [self.stream_embeddings]
        for module in (self.adapter, self.audio_encoder):
            if module is not None:
                params += [p for p in module.parameters() if p.requires_grad]
        return sum(0.0 * p.sum() for p in params if p.requires_grad)

    def multistream(
        self,
        ids: torch.Tensor,
        ids_lengths: torch.Tensor,
        loss_mask: torch.Tensor,
        position_ids: Optional[torch.Tensor] = None,
        condition_mask: Optional[torch.Tensor] = None,
        audio_input: Optional[torch.Tensor] = None,
        audio_input_lengths: Optional[torch.Tensor] = None,
        audio_input_spans: Optional[torch.Tensor] = None,
        per_target: bool = False,
    ) -> MultiStreamLoss:
        """The multi-stream loss of a batch (keys: the module docstring),
        with CFG condition dropout in training where ``condition_mask`` is
        given; ``forward`` and preference optimisation (``dpo.py``) call it."""
        batch, length, n_streams = ids.shape
        if n_streams != self.n_streams:
            raise ValueError(
                f"ids have {n_streams} streams, the model {self.n_streams}"
            )
        valid = torch.arange(length, device=ids.device) < ids_lengths[:, None]
        loss_mask = loss_mask.bool() & valid[..., None]
        if position_ids is None:
            position_ids = torch.arange(length, device=ids.device).expand(batch, length)
        if self.training and self.cfg_dropout_prob > 0 and condition_mask is not None:
            ids, dropped = drop_condition(
                ids,
                condition_mask.bool() & valid,
                position_ids,
                self.cfg_dropout_prob,
                null_id=self.vocabulary.cfg_null_id,
            )
            loss_mask = loss_mask & ~dropped[..., None]
        autocast = self.autocast_dtype
        if autocast == "auto":
            autocast = "bfloat16" if native_bfloat16(ids.device.type) else None
        with torch.autocast(
            ids.device.type,
            dtype=getattr(torch, autocast or "float32"),
            enabled=autocast is not None,
        ):
            embeds = self.embed(
                ids, audio_input, audio_input_lengths, audio_input_spans
            )
            hidden = self.hidden_states(embeds, position_ids)
            return multistream_loss(  # logits cast to float32 for the softmax
                hidden,
                ids,
                loss_mask,
                self.head_weight,
                self.stream_embeddings,
                audio_offset=self.vocabulary.audio_offset,
                audio_weight=self.audio_token_weight,
                chunk_size=self.logits_chunk_size,
                audio_size=self.vocabulary.audio_size,
                audio_softmax=self.audio_softmax,
                per_target=per_target,
            )

    def forward(
        self,
        ids: torch.Tensor,
        ids_lengths: torch.Tensor,
        loss_mask: torch.Tensor,
        position_ids: Optional[torch.Tensor] = None,
        condition_mask: Optional[torch.Tensor] = None,
        audio_input: Optional[torch.Tensor] = None,
        audio_input_lengths: Optional[torch.Tensor] = None,
        audio_input_spans: Optional[torch.Tensor] = None,
        pair_index: Optional[torch.Tensor] = None,
        chosen: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        if pair_index is not None or chosen is not None:
            if self.preference is None:
                raise ValueError(
                    "a preference batch (pair_index, chosen) needs a preference "
                    "objective (attach_preference)"
                )
            batch = dict(
                ids=ids,
                ids_lengths=ids_lengths,
                loss_mask=loss_mask,
                position_ids=position_ids,
                audio_input=audio_input,
                audio_input_lengths=audio_input_lengths,
                audio_input_spans=audio_input_spans,
                pair_index=pair_index,
                chosen=chosen,
            )
            return self.preference(self, batch)
        out = self.multistream(
            ids,
            ids_lengths,
            loss_mask,
            position_ids,
            condition_mask,
            audio_input,
            audio_input_lengths,
            audio_input_spans,
        )
        loss = out.loss
        if self.training:
            loss = loss + self._unused_parameter_guard()
        stats = {"loss": loss.detach(), **out.stats}
        weight = out.n_stream0_targets.float()
        return force_gatherable((loss, stats, weight), loss.device)

    def collect_feats(self, **batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        """No feature statistics to collect (no normalisation layer)."""
        return {}

    def save_vocabulary(self, path: str) -> str:
        """Writes ``vocabulary.json`` (beside the checkpoint)."""
        written = self.vocabulary.save(path)
        logging.info(f"vocabulary written to {written}")
        return written
