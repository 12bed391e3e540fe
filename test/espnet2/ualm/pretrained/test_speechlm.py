"""Import of ESPnet-SpeechLM (Bagpiper) checkpoints, against the peer's own code.

A tiny second-generation model is built with ESPnet's classes
(``SpeechLMJobTemplate``, its ``ParallelLLM`` over a tiny Qwen3 saved by
``save_pretrained``, ``HuggingFaceTextIO``, ``DiscreteAudioIO`` over a tiny
X-codec, ``ContinuousAudioIO`` over a tiny Qwen3-Omni audio tower), saved as
``export_checkpoint.py`` saves it, loaded back as ``bin/inference.py``'s
``load_checkpoint`` does, converted, and compared with the packed UALM model:
logits of every stream for the same multi-stream input, and greedy
generations (the peer's ``ParallelLLM.inference`` is the oracle).

Where ESPnet's code cannot run here (CPU, no network, transformers 5.24):

* ``ContinuousAudioIO._init_encoder`` downloads Qwen3-Omni-30B and then
  deletes ``thinker.visual``, which transformers 5 no longer has (the audio
  tower moved under ``thinker.model``): the stand-in builds the same
  attributes around a tiny ``Qwen3OmniMoeAudioEncoder``; the IO's
  ``preprocess`` / ``find_length`` / ``encode_batch`` are ESPnet's;
* ``bin/inference.py`` imports the data loaders (duckdb, omniio) and its
  worker requires CUDA: the model's own ``inference`` is called, with the
  checkpoint loaded as its ``load_checkpoint`` does.
"""

import contextlib
import copy
import dataclasses
import math
import os

import numpy as np
import pytest
import torch
import yaml

speechlm_job = pytest.importorskip(
    "espnet2.speechlm.model.speechlm.speechlm_job",
    reason="ESPnet-SpeechLM (ESPnet >= 202611 and liger-kernel)",
)

from espnet2.bin import ualm_import_speechlm  # noqa: E402
from espnet2.speechlm.model.speechlm.multimodal_io.audio import (  # noqa: E402
    ContinuousAudioIO,
)
from espnet2.torch_utils.safe_torch_load import safe_torch_load  # noqa: E402
from espnet2.ualm.inference.generate import UALMGenerator  # noqa: E402
from espnet2.ualm.inference.sampling import GREEDY  # noqa: E402
from espnet2.ualm.inference.settings import DecodeSettings  # noqa: E402
from espnet2.ualm.pretrained.load import load_parts  # noqa: E402
from espnet2.ualm.pretrained.speechlm import (  # noqa: E402
    SpeechLMImportError,
    import_checkpoint,
    peer_vocabulary,
    row_map,
    vocabulary_of,
)
from espnet2.ualm.testing.tiny_speechlm import (  # noqa: E402
    speechlm_train_config,
    tiny_speechlm_dirs,
)
from espnet2.ualm.tokens.conversation import AudioInputSegment  # noqa: E402
from espnet2.ualm.tokens.sequence import SequenceBuilder  # noqa: E402
from espnet2.ualm.tokens.tasks import load_tasks  # noqa: E402

N_MELS = 8
SR = 16000
MINI_UNIFIED = os.path.join(
    os.path.dirname(__file__), *[".."] * 4, "egs2/ualm/mini/conf/train_unified.yaml"
)
TOL = 1e-5  # float32: the same arithmetic (logits of the tiny model: ~0.1-1)


def tiny_omni_audio_config():
    from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import (
        Qwen3OmniMoeAudioEncoderConfig,
    )

    return Qwen3OmniMoeAudioEncoderConfig(
        num_mel_bins=N_MELS,
        encoder_layers=1,
        encoder_attention_heads=2,
        encoder_ffn_dim=32,
        d_model=16,
        output_dim=24,
        downsample_hidden_size=8,
        max_source_positions=200,
    )


class TinyThinker(torch.nn.Module):
    """What ``ContinuousAudioIO`` keeps of Qwen3-Omni's thinker (its
    ``audio_tower``), with transformers' own ``get_audio_features``."""

    def __init__(self, config):
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
            Qwen3OmniMoeAudioEncoder,
        )

        super().__init__()
        self.audio_tower = Qwen3OmniMoeAudioEncoder(config)

    def get_audio_features(self, input_features, feature_attention_mask):
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
            Qwen3OmniMoeThinkerModel,
        )

        return Qwen3OmniMoeThinkerModel.get_audio_features(
            self, input_features, feature_attention_mask
        )


class TinyContinuousAudioIO(ContinuousAudioIO):
    """ESPnet's ``ContinuousAudioIO`` with a tiny encoder in place of the
    hub's Qwen3-Omni (``_init_encoder``: the attributes it sets)."""

    def _init_encoder(self):
        from transformers import WhisperFeatureExtractor

        torch.manual_seed(5)
        self.model = TinyThinker(tiny_omni_audio_config())
        tower = self.model.audio_tower
        convs = (tower.conv2d1, tower.conv2d2, tower.conv2d3)
        with torch.no_grad():  # as if trained: at init the frames ignore the audio
            for layer in (*convs, tower.conv_out, tower.proj1, tower.proj2):
                torch.nn.init.kaiming_normal_(layer.weight)
        self.processor = WhisperFeatureExtractor(feature_size=N_MELS)
        self.d_model = self.model.audio_tower.config.output_dim
        self.sample_rate = self.processor.sampling_rate
        self.hop_length = self.processor.hop_length


def _wav(seconds: float, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wav = 0.3 * np.sin(2 * np.pi * (200 + 300 * seed) * t) + 0.05 * g.normal(
        size=t.shape
    )
    return wav.astype(np.float32)


def _build_peer(root, delay_interleave=True, encoder=True):
    """The peer model, its saved checkpoint, configs and the converted model."""
    from transformers import WhisperFeatureExtractor

    dirs = tiny_speechlm_dirs(str(root))
    qwen3, codec = dirs["qwen3"], dirs["codec"]
    omni = root / "omni"
    if encoder:
        tiny_omni_audio_config().save_pretrained(omni)
        WhisperFeatureExtractor(feature_size=N_MELS).save_pretrained(omni)
    config = speechlm_train_config(
        qwen3, codec, encoder=encoder, delay_interleave=delay_interleave
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(
            speechlm_job._multimodal_ios, "continuous_audio", TinyContinuousAudioIO
        )
        job = speechlm_job.SpeechLMJobTemplate(config, is_train=False)
        train_job = speechlm_job.SpeechLMJobTemplate(config, is_train=True)
        torch.manual_seed(1)
        trained = job.build_model()
        with torch.no_grad():  # as if trained: streams differ (init is zero)
            trained.stream_emb.weight.normal_(std=0.5)
        ckpt = root / "model.pt"
        torch.save({"module": trained.state_dict()}, ckpt)  # export_checkpoint.py
        torch.manual_seed(2)
        model = job.build_model()  # another init: everything comes from ckpt
    # bin/inference.py's load_checkpoint
    model.load_state_dict(safe_torch_load(ckpt, map_location="cpu")["module"])
    model.prepare_inference()
    model.eval()

    # the layout the peer's trainer records in its saved train.yaml
    saved = copy.deepcopy(config)
    saved["vocab_intervals"] = {
        k: [[int(a), int(b)] for a, b in v]
        for k, v in job.vocab_meta["vocab_intervals"].items()
    }
    saved["multimodal_io"]["text"]["tokenizer_name"] = "Qwen/Qwen3-8B-Base"
    saved["model"]["model_hf_tag"] = "Qwen/Qwen3-8B-Base"
    train_yaml = root / "train.yaml"
    train_yaml.write_text(yaml.safe_dump(saved, sort_keys=False))
    inference_yaml = root / "inference.yaml"
    inference_yaml.write_text(
        yaml.safe_dump(
            {
                "dtype": "float32",
                "audio": {"temperature": 0.8, "topk": 20, "cfg": 3, "max_step": 100},
                "text": {"temperature": 0.0, "topk": 20, "cfg": 1, "max_step": 50},
            }
        )
    )
    out = str(root / "packed")
    ualm_import_speechlm.main(
        [
            f"--checkpoint={ckpt}",
            f"--train_config={train_yaml}",
            f"--backbone_dir={qwen3}",
            f"--codec_dir={codec}",
            f"--out_dir={out}",
            *([f"--encoder_dir={omni}"] if encoder else []),
            f"--inference_config={inference_yaml}",
            f"--init_dir={root / 'init'}",
            f"--finetune_config={MINI_UNIFIED}",
        ]
    )
    parts = load_parts(out, with_enhancer=False)
    ours = parts.model.float().eval()
    return dict(
        job=job,
        train_job=train_job,
        model=model,
        meta={**job.vocab_meta, "delay_interleave": delay_interleave},
        ours=ours,
        parts=parts,
        out=out,
        config=config,
        qwen3=qwen3,
        codec=codec,
        args=dict(
            checkpoint=str(ckpt),
            backbone_dir=qwen3,
            codec_dir=codec,
            encoder_dir=str(omni),
        ),
        saved=saved,
    )


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    """Bagpiper's shape: delay-interleaved audio, Qwen3-Omni input audio."""
    return _build_peer(tmp_path_factory.mktemp("speechlm"))


@pytest.fixture(scope="module")
def parallel_peer(tmp_path_factory):
    """``delay_interleave: false`` (the streams in parallel), no encoder."""
    root = tmp_path_factory.mktemp("speechlm_parallel")
    return _build_peer(root, delay_interleave=False, encoder=False)


def _peer_to_ours(peer):
    """Peer id -> our id (the converter's row map, inverted)."""
    from espnet2.ualm.pretrained.speechlm import row_map

    vocab = peer["ours"].vocabulary
    names = peer["parts"].tokenizer.tok.convert_ids_to_tokens(
        list(range(vocab.text_vocab_size))
    )
    mapping = row_map(vocab, peer["meta"], names)
    inverse = {}
    for ours, theirs in enumerate(mapping):
        if theirs is not None:
            inverse.setdefault(theirs, ours)
    return mapping, inverse


def test_vocabulary_is_the_peers(peer):
    """Our layout has the peer's geometry: 256 specials, the text ids, then
    K x (codebook + 1) audio ids; every audio row has a peer row."""
    vocab, meta = peer["ours"].vocabulary, peer["meta"]
    assert vocab.num_reserved == meta["text_start"] == 256
    assert vocab.n_codebooks == meta["num_stream"] == 8
    assert vocab.size == meta["vocab_size"]
    mapping, _ = _peer_to_ours(peer)
    for k in range(vocab.n_codebooks):
        pad = vocab.audio_pad_id(k)
        assert meta["vocab"][mapping[pad]] == f"<codec_layer{k}_pad>"
        assert meta["vocab"][mapping[vocab.audio_id(k, 3)]] == f"<codec_layer{k}_3>"
    # our reconstruction is ESPnet's own: built again from the config
    again = peer_vocabulary(peer["config"], peer["qwen3"], peer["codec"])
    assert again["vocab"] == meta["vocab"]


def test_mismatched_tokenizer_names_the_token(peer):
    vocab, meta = peer["ours"].vocabulary, peer["meta"]
    names = peer["parts"].tokenizer.tok.convert_ids_to_tokens(
        list(range(vocab.text_vocab_size))
    )
    names[7] = "Ġnot_this"
    with pytest.raises(SpeechLMImportError, match="text token 7: .*'Ġnot_this'"):
        row_map(vocab, meta, names)
    with pytest.raises(SpeechLMImportError, match="text range"):
        row_map(vocabulary_of(meta, vocab.text_vocab_size + 5), meta, names + ["x"] * 5)


def test_checkpoint_with_objects_is_refused(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"module": {"w": torch.zeros(1)}, "extra": object()}, path)
    with pytest.raises(SpeechLMImportError, match="not a readable tensor checkpoint"):
        from espnet2.ualm.pretrained.speechlm import read_checkpoint

        read_checkpoint(str(path))


def _training_batch(peer):
    """A multi-stream example in the peer's layout: user audio (encoder
    input) and text, assistant text and delay-interleaved codec audio."""
    pre = peer["train_job"].build_preprocessor()
    pre.audio_cfg = 0.0
    example = {
        "dialogue": [
            ["user", "audio", (_wav(0.7, 1)[None], SR)],
            ["user", "text", "what sound is this?"],
            ["assistant", "text", "a dog barks"],
            ["assistant", "audio", (_wav(0.3, 2)[None], SR)],
        ]
    }
    return pre.collate_fn([(("dialogue", "tiny", "utt1"), example)])


def test_logits_match_stream_by_stream(peer):
    model, ours = peer["model"], peer["ours"]
    batch = _training_batch(peer)
    seqs = batch["seqs"].clone()
    with torch.no_grad():
        embeds = model._embed(seqs, batch)  # writes the codec codes into seqs
        logits, _ = model._step(input_embeds=embeds)  # [1, T, K, V_peer]
    vocab = ours.vocabulary
    mapping, inverse = _peer_to_ours(peer)
    ids = seqs.clone().apply_(lambda i: inverse[i])
    # continuous audio: our marker and placeholders where the peer has
    # <|audio|> + <|pad|> rows overwritten by the encoder
    spans = batch["continuous_audio_indices"]
    assert spans.shape[0] == 1
    b, start, n = spans[0].tolist()
    ids[b, start - 1, 0] = vocab.modality_id("audio_input")
    ids[b, start : start + n, 0] = vocab.audio_placeholder_id
    wav = torch.from_numpy(_wav(0.7, 1))[None]
    assert ours.audio_encoder.num_frames(wav.shape[1]) == n
    with torch.no_grad():
        hidden = ours.hidden_states(
            ours.embed(ids, wav, torch.tensor([wav.shape[1]]), spans),
            torch.arange(ids.shape[1])[None],
        )
        cols = torch.tensor([m for m in mapping if m is not None])
        ours_cols = torch.tensor([i for i, m in enumerate(mapping) if m is not None])
        diffs = []
        for k in range(vocab.n_codebooks):
            mine = ours.stream_logits(hidden, k, "full")[..., ours_cols]
            theirs = logits[:, :, k][..., cols]
            diffs.append(float((mine - theirs).abs().max()))
        # the comparison sees the encoder: other audio, other logits
        other = torch.from_numpy(_wav(0.7, 4))[None]
        quiet = ours.hidden_states(
            ours.embed(ids, other, torch.tensor([wav.shape[1]]), spans),
            torch.arange(ids.shape[1])[None],
        )
        moved = ours.stream_logits(quiet, 0, "full")[..., ours_cols]
        moved = float((moved - logits[:, :, 0][..., cols]).abs().max())
    print("max |logit difference| per stream:", ["%.2e" % d for d in diffs])
    print(f"stream 0 with other audio: {moved:.2e}")
    assert max(diffs) < TOL, diffs
    assert moved > 100 * TOL
    # the input really is multi-stream: codes in every stream, encoder frames
    assert int((seqs[0, :, 7] > 0).sum()) > 0 and n > 0


@pytest.mark.parametrize("which", ["peer", "parallel_peer"])
def test_builder_writes_the_peers_training_layout(request, which):
    """A text-to-audio training example: our sequence builder (the imported
    vocabulary's ``AudioLayout``) writes ESPnet's preprocessor and collate
    output, id for id (the codes as ESPnet's ``_embed`` places them), and
    the same targets except the assistant's role token, which ESPnet trains
    on and ours gives at inference."""
    peer = request.getfixturevalue(which)
    model, ours, parts = peer["model"], peer["ours"], peer["parts"]
    pre = peer["train_job"].build_preprocessor()
    pre.audio_cfg = 0.0
    example = {"text1": CAPTION, "audio1": (_wav(0.3, 2)[None], SR)}
    batch = pre.collate_fn([(("text_to_audio", "tiny", "u4"), example)])
    seqs = batch["seqs"].clone()
    with torch.no_grad():
        model._embed(seqs, batch)  # writes the codec codes into seqs
    theirs, their_mask = seqs[0], batch["loss_masks"][0] > 0
    _, start, length = batch["discrete_audio_indices"][0].tolist()
    io = model.multimodal_io_dict["discrete_audio"]
    block = theirs[start : start + length][None]
    frames = (io._apply_delay_deinterleave(block) if io.delay_interleave else block)[0]
    first = torch.tensor([a + 1 for a, _ in model.vocab_intervals["discrete_audio"]])
    codes = frames - first

    registry = load_tasks(parts.files.root + "/task_templates.yaml")
    builder = SequenceBuilder(ours.vocabulary, parts.tokenizer)
    built = builder.build_example(
        registry.templates["speechlm_text_to_audio"],
        {"text1": CAPTION, "audio1": codes},
    )
    mapping, _ = _peer_to_ours(peer)
    mine = built.ids.clone().apply_(lambda i: mapping[i])
    assert torch.equal(mine, theirs)
    differ = (built.loss_mask != their_mask).nonzero().tolist()
    role = built.turns[-1].start
    assert differ == [[role, 0]] and int(built.ids[role, 0]) == ours.vocabulary.role_id(
        "assistant"
    )


def test_caption_generation_is_the_peers(peer):
    """Audio -> text, greedy, fixed length (closing disabled before the
    last step in both, so <eos>/<eot> choices cannot differ by rule): our
    generator gives the peer's ``inference`` tokens."""
    model, ours, parts = peer["model"], peer["ours"], peer["parts"]
    n_tokens = 12
    wav = _wav(0.9, 3)
    pre = peer["job"].build_preprocessor()
    sample = pre.collate_fn(
        [(("audio_to_text", "tiny", "u2"), {"audio1": (wav[None], SR), "text1": ""})]
    )
    seen = []
    decode = model.multimodal_io_dict["text"].decode_batch
    model.multimodal_io_dict["text"].decode_batch = lambda s, n: (
        seen.append(s.clone()) or decode(s, n)
    )
    try:
        config = {
            "enforce_modality": ["text"],
            "text": {
                "temperature": 0,
                "topk": 1,
                "cfg": 1,
                "max_step": n_tokens,
                "min_step": n_tokens,
            },
        }
        messages, _ = model.inference(config, **sample)
    finally:
        model.multimodal_io_dict["text"].decode_batch = decode
    theirs = seen[0][0, :, 0].tolist()  # text ids, offset removed
    assert messages[0][1] == "text" and len(theirs) == n_tokens

    registry = load_tasks(parts.files.root + "/task_templates.yaml")
    builder = SequenceBuilder(ours.vocabulary, parts.tokenizer)
    frames = ours.audio_encoder.num_frames(len(wav))
    prompt = builder.build_example(
        registry.templates["speechlm_audio_to_text"],
        {"audio1": AudioInputSegment("a", frames)},
        prompt_only=True,
    )
    gen = UALMGenerator(ours, parts.tokenizer, backend="hf")
    result = gen.generate(
        [prompt],
        DecodeSettings(text_sampling=GREEDY),
        modalities="text",
        waveforms={"a": torch.from_numpy(wav)},
        min_text_tokens=n_tokens,
        max_text_tokens=n_tokens,
    )[0]
    print("peer:", theirs, "ours:", result.segments[0].token_ids)
    assert result.segments[0].token_ids == theirs


CAPTION = "a dog barks while rain falls"


def _peer_text_to_audio(peer, audio_conf):
    """ESPnet's ``inference`` (greedy): the delayed ids its ``decode_batch``
    gets (``[S, K]`` peer ids, the finishing frame dropped) and the codes
    its codec decodes (``[T, K]``, de-interleaved and clipped)."""
    model = peer["model"]
    pre = peer["job"].build_preprocessor()
    sample = pre.collate_fn([(("text_to_audio", "tiny", "u3"), {"text1": CAPTION})])
    io = model.multimodal_io_dict["discrete_audio"]
    steps, codes = [], []
    decode, codec_decode = io.decode_batch, io._codec_decode_batch
    io.decode_batch = lambda s, n: steps.append(s.clone()) or decode(s, n)
    io._codec_decode_batch = lambda c, n: codes.append(c.clone()) or codec_decode(c, n)
    try:
        config = {
            "enforce_modality": ["audio"],
            "audio": {"temperature": 0, "topk": 1, **audio_conf},
        }
        messages, _ = model.inference(config, **sample)
    finally:
        io.decode_batch, io._codec_decode_batch = decode, codec_decode
    assert messages[0][1] == "audio" and len(steps) == len(codes) == 1
    # ids relative to the discrete_audio range, as inference hands them over
    offset = model.vocab_intervals["discrete_audio"][0][0]
    return steps[0][0] + offset, codes[0][0]


def _our_text_to_audio(peer, min_steps, max_steps, cfg, backend="hf"):
    """Our ``UALMGenerator`` on the converted model, greedy, with the peer's
    step bounds as seconds of frames (``decode_settings``' conversion)."""
    ours, parts = peer["ours"], peer["parts"]
    delay = max(ours.vocabulary.audio_delays)
    rate = parts.codec.frame_rate
    registry = load_tasks(parts.files.root + "/task_templates.yaml")
    prompt = SequenceBuilder(ours.vocabulary, parts.tokenizer).build_example(
        registry.templates["speechlm_text_to_audio"], {"text1": CAPTION}, True
    )
    gen = UALMGenerator(ours, parts.tokenizer, frame_rate=rate, backend=backend)
    settings = DecodeSettings(
        audio_sampling=GREEDY,
        cfg_scale=cfg if cfg > 1 else None,
        min_audio_seconds=(min_steps - delay) / rate,
        max_audio_seconds=(max_steps - delay) / rate,
    )
    return gen.generate([prompt], settings, modalities="audio")[0]


def _compare_text_to_audio(peer, audio_conf, backend="hf"):
    theirs, their_codes = _peer_text_to_audio(peer, audio_conf)
    mine = _our_text_to_audio(
        peer, audio_conf["min_step"], audio_conf["max_step"], audio_conf["cfg"], backend
    )
    mapping, _ = _peer_to_ours(peer)
    (segment,) = mine.segments
    # our frames: the marker, the delayed steps, the closing step
    steps = mine.ids[1:-1].clone().apply_(lambda i: mapping[i])
    equal = (
        int((segment.codes == their_codes).sum())
        if (segment.codes.shape == their_codes.shape)
        else 0
    )
    print(
        f"{audio_conf}: {len(theirs)} peer steps, {len(steps)} ours; codes equal "
        f"at {equal} of {their_codes.numel()}"
    )
    assert int(mine.ids[-1, 0]) == peer["ours"].vocabulary.eos_id
    assert not bool(mine.ids[-1, 1:].any())  # the closing step: id 0 elsewhere
    assert torch.equal(steps, theirs)
    assert torch.equal(segment.codes, their_codes)
    return theirs, segment


@pytest.mark.parametrize("cfg", [1, 3])
def test_text_to_audio_generation_is_the_peers(peer, cfg):
    """Text -> audio, greedy, fixed length (the peer's closing disabled
    before its max_step, ours forced at the same step): our generator on the
    converted model (its vocabulary's ``AudioLayout``: ESPnet's delays,
    closing and CFG branch) gives ESPnet's ``inference`` steps and codes,
    with guidance too."""
    n = 14
    conf = {"cfg": cfg, "min_step": n, "max_step": n}
    theirs, segment = _compare_text_to_audio(peer, conf)
    k = peer["ours"].vocabulary.n_codebooks
    assert theirs.shape == (n, k) and segment.codes.shape == (n - (k - 1), k)


def test_text_to_audio_cfg_changes_the_codes(peer):
    """The guided comparison is not the unguided one in disguise."""
    conf = {"min_step": 14, "max_step": 14}
    plain, _ = _peer_text_to_audio(peer, {**conf, "cfg": 1})
    guided, _ = _peer_text_to_audio(peer, {**conf, "cfg": 3})
    assert not torch.equal(plain, guided)


@contextlib.contextmanager
def _louder_eos(peer, scale):
    """Both models' ``<eos>`` head row scaled (the tiny model's own never
    wins): the closing step is then the model's choice, the same row in
    both."""
    rows = [
        (peer["model"].lm_head.weight, peer["meta"]["vocab"].index("<|eos|>")),
        (peer["ours"].head_weight, peer["ours"].vocabulary.eos_id),
    ]
    saved = [w[i].clone() for w, i in rows]
    with torch.no_grad():
        for w, i in rows:
            w[i] *= scale
    try:
        yield
    finally:
        with torch.no_grad():
            for (w, i), row in zip(rows, saved):
                w[i] = row


@pytest.mark.parametrize("which", ["peer", "parallel_peer"])
@pytest.mark.parametrize("cfg", [1, 3])
def test_free_length_text_to_audio_is_the_peers(request, which, cfg):
    """Free length: the segment closes where the model puts ``<eos>``,
    between the bounds, the same step in both, and the same codes."""
    peer = request.getfixturevalue(which)
    low, high = 10, 40
    with _louder_eos(peer, 3.0):
        theirs, segment = _compare_text_to_audio(
            peer, {"cfg": cfg, "min_step": low, "max_step": high}
        )
    assert low < len(theirs) < high


@pytest.mark.parametrize(
    "change",
    [
        {"closing": "frame"},  # our own closing frame and forced delay holes
        {"cfg_null": "<pad>"},  # the zero row in the CFG branch
    ],
)
def test_each_part_of_the_layout_matters(peer, change):
    """The converted model with one field of its ``AudioLayout`` changed
    no longer gives the peer's steps (guided, fixed length). (``cfg_extent``
    does not show here: a text-to-audio prompt is all condition; it decides
    prompts with assistant turns, ``test_decoder``.)"""
    ours = peer["ours"]
    vocab = ours.vocabulary
    conf = {"cfg": 3, "min_step": 14, "max_step": 14}
    theirs, _ = _peer_text_to_audio(peer, conf)
    other = dataclasses.replace(
        vocab, audio_layout=dataclasses.replace(vocab.audio_layout, **change)
    )
    mapping, _ = _peer_to_ours(peer)
    ours.vocabulary = other
    try:
        mine = _our_text_to_audio(peer, 14, 14, 3)
    finally:
        ours.vocabulary = vocab
    n = len(theirs)
    steps = mine.ids[1 : 1 + n].clone().apply_(lambda i: mapping[i])
    assert not torch.equal(steps, theirs)


@pytest.mark.parametrize("cfg", [1, 3])
def test_parallel_text_to_audio_is_the_peers(parallel_peer, cfg):
    """``delay_interleave: false``: the streams in parallel, no delay steps."""
    n = 9
    theirs, segment = _compare_text_to_audio(
        parallel_peer, {"cfg": cfg, "min_step": n, "max_step": n}
    )
    assert segment.codes.shape == theirs.shape == (n, 8)


def _fixed_length_greedy(ualm, n_steps, cfg):
    """Decode settings of ESPnet's greedy fixed-length ``inference`` config."""
    delay = max(ualm.vocab.audio_delays)
    seconds = (n_steps - delay) / ualm.codec.frame_rate
    return {
        "audio_sampling": {"greedy": True},
        "cfg_scale": float(cfg),
        "min_audio_seconds": seconds,
        "max_audio_seconds": seconds,
        "enhancer": "none",
    }


def test_text_to_audio_through_the_api_is_the_peers(peer):
    """The packed import through ``UALM``, the peer's own task (its task file
    joins the registry), greedy, guided, fixed length: ESPnet's codes. (Our
    built-in text_to_audio task has our instruction in the prompt, so it is
    not the peer's prompt.)"""
    from espnet2.ualm.inference.pipeline import UALM
    from espnet2.ualm.inference.requests import Request

    n, cfg = 14, 3
    _, their_codes = _peer_text_to_audio(
        peer, {"cfg": cfg, "min_step": n, "max_step": n}
    )
    ualm = UALM.from_pretrained(peer["out"])
    assert "speechlm_text_to_audio" in ualm.requests.tasks
    request = Request("u3", "speechlm_text_to_audio", {"text1": CAPTION})
    (out,) = ualm.run([request], **_fixed_length_greedy(ualm, n, cfg))
    assert out.error is None, out.error
    assert torch.equal(out.codes, their_codes)


def test_text_to_audio_through_stage10_is_the_peers(peer, tmp_path):
    """Stage 10's entry point (``espnet2.bin.ualm_inference``) on a data
    directory, the peer's task of the packed import: ESPnet's codes."""
    from espnet2.bin.ualm_inference import main
    from espnet2.ualm.data.codes_io import CodesReader
    from espnet2.ualm.inference.pipeline import UALM

    n, cfg = 14, 3
    _, their_codes = _peer_text_to_audio(
        peer, {"cfg": cfg, "min_step": n, "max_step": n}
    )
    data = tmp_path / "data"
    data.mkdir()
    (data / "text").write_text(f"u3 {CAPTION}\n")
    settings = _fixed_length_greedy(UALM.from_pretrained(peer["out"]), n, cfg)
    decode = tmp_path / "decode.yaml"
    decode.write_text(yaml.safe_dump(settings))
    out = str(tmp_path / "out")
    args = ["--model", peer["out"], "--task", "speechlm_text_to_audio"]
    args += [
        "--data_dir",
        str(data),
        "--output_dir",
        out,
        "--decode_config",
        str(decode),
    ]
    main(args + ["--job", "1", "--num_jobs", "1"])
    main(["--merge", "--output_dir", out, "--num_jobs", "1"])
    assert torch.equal(torch.as_tensor(CodesReader(out)["u3"]), their_codes)


def test_ualm1_bagpiper_datasets_config_names_the_imports_tasks(peer):
    """egs2/ualm/ualm1/conf/datasets_bagpiper.yaml (stages 10-11 with the
    peer's prompts): its tasks are the import's, on datasets.yaml's test sets."""
    from espnet2.ualm.data.datasets_config import decode_sets, load_datasets_config

    conf_dir = os.path.join(
        os.path.dirname(__file__), *[".."] * 4, "egs2", "ualm", "ualm1", "conf"
    )
    ours = load_datasets_config(os.path.join(conf_dir, "datasets_bagpiper.yaml"))
    tasks = load_tasks(os.path.join(peer["out"], "task_templates.yaml"))
    pairs = decode_sets(ours)
    assert pairs and all(task in tasks for _, task in pairs)
    default = load_datasets_config(os.path.join(conf_dir, "datasets.yaml"))
    assert {d for d, _ in pairs} <= {d for d, _ in decode_sets(default)}


def test_packed_model_loads_as_ualm(peer):
    """The converted directory is a packed model: UALM.from_pretrained, the
    peer's decoding settings and task templates with it."""
    from espnet2.ualm.inference.pipeline import UALM

    ualm = UALM.from_pretrained(peer["out"])
    assert ualm.model.vocabulary == peer["ours"].vocabulary
    decode = yaml.safe_load(open(peer["out"] + "/decode.yaml"))
    assert decode["cfg_scale"] == 3.0 and decode["audio_sampling"]["top_k"] == 20
    assert decode["text_sampling"] == {"greedy": True}
    frame_rate = peer["parts"].codec.frame_rate
    # the peer's max_step counts delayed steps, ours seconds of frames
    delay = max(ualm.model.vocabulary.audio_delays)
    assert delay == 7
    assert math.isclose(decode["max_audio_seconds"], (100 - delay) / frame_rate)


def test_stage7_starts_from_the_import(peer):
    """``--init_dir``: stage 7's config (the mini's training keys, the
    imported model's part) builds the model that ``valid.loss.best.pth``
    (``--init_param``, read with weights_only) fills: the packed weights."""
    from espnet2.ualm.model.factory import build_model_from_config, model_config_of

    init = os.path.join(os.path.dirname(peer["out"]), "init")
    merged = yaml.safe_load(open(os.path.join(init, "train_unified.yaml")))
    mini = yaml.safe_load(open(MINI_UNIFIED))
    assert merged["optim"] == mini["optim"] and merged["audio_encoder"] == "qwen3_omni"
    model = build_model_from_config(model_config_of(merged), peer["ours"].vocabulary)
    state = torch.load(os.path.join(init, "valid.loss.best.pth"), weights_only=True)
    model.load_state_dict(state, strict=True)
    for key, value in peer["ours"].state_dict().items():
        assert torch.equal(model.state_dict()[key].float(), value), key


def test_a_reordered_config_is_refused(peer, tmp_path):
    """A train.yaml whose recorded token layout is not the one its
    ``multimodal_io`` order builds (ESPnet's own check) is refused."""
    saved = copy.deepcopy(peer["saved"])
    saved["vocab_intervals"]["text"] = [[300, 301]]
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(saved, sort_keys=False))
    with pytest.raises(SpeechLMImportError, match="train config: .*layout"):
        import_checkpoint(
            train_config=str(path), out_dir=str(tmp_path / "out"), **peer["args"]
        )
