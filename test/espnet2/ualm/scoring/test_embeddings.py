"""Model adapters: clear errors without packages/weights, the wiring with stand-in
packages, and the always-available models."""

import sys
import types

import numpy as np
import pytest

from espnet2.ualm.data.io import resample
from espnet2.ualm.scoring.embeddings import (
    EMBEDDERS,
    NOT_COMPARABLE,
    TEXT_AUDIO_MODELS,
    ClapModel,
    HFClapModel,
    LogMelStatsEmbedder,
    MissingModelError,
    OpenL3Embedder,
    PannsModel,
    PasstTagger,
    ProbeTagger,
    VGGishEmbedder,
    build_embedder,
    build_tagger,
    build_text_audio_model,
    embed_clips,
)

SR = 16000


def _tone(freq: float, seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return 0.3 * np.sin(2 * np.pi * freq * t)


def _noise(seed: int, seconds: float = 0.5) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))


@pytest.mark.parametrize(
    "cls, package",
    [
        (PannsModel, "panns_inference"),
        (PasstTagger, "hear21passt"),
        (ClapModel, "laion_clap"),
        (VGGishEmbedder, "frechet_audio_distance"),
    ],
)
def test_adapters_name_what_is_missing(cls, package, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    with pytest.raises(MissingModelError) as err:
        cls(checkpoint=None)
    msg = str(err.value)
    assert "no checkpoint given" in msg and package in msg and "pip install" in msg
    with pytest.raises(MissingModelError) as err:
        cls(checkpoint=str(tmp_path / "absent.pt"))
    assert "absent.pt" in str(err.value) and "not found" in str(err.value)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"")
    with pytest.raises(MissingModelError) as err:
        cls(checkpoint=str(weights))
    assert (
        "checkpoint" not in str(err.value).split("cannot be loaded:")[1].split(";")[0]
    )
    assert package in str(err.value)


def test_openl3_without_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "openl3", None)
    with pytest.raises(MissingModelError, match="openl3"):
        OpenL3Embedder()


def test_builders():
    assert isinstance(build_embedder("logmel_stats"), LogMelStatsEmbedder)
    assert isinstance(build_tagger("probe"), ProbeTagger)
    with pytest.raises(ValueError, match="unknown"):
        build_embedder("nope")
    with pytest.raises(MissingModelError):
        build_text_audio_model("clap", {"checkpoint": None})


def test_panns_adapter_wiring_with_a_stand_in_package(tmp_path, monkeypatch):
    """The adapter calls panns_inference the documented way; a fake package
    records the calls (real weights cannot be had here)."""
    calls = {}

    class AudioTagging:
        def __init__(self, model=None, checkpoint_path=None, device="cuda"):
            calls["init"] = (checkpoint_path, device)

        def inference(self, audio):
            calls.setdefault("shapes", []).append(audio.shape)
            return np.full((1, 527), 0.5), np.ones((1, 2048)) * audio.shape[1]

    monkeypatch.setitem(
        sys.modules, "panns_inference", types.SimpleNamespace(AudioTagging=AudioTagging)
    )
    ckpt = tmp_path / "Cnn14.pth"
    ckpt.write_bytes(b"x")
    model = PannsModel(checkpoint=str(ckpt))
    assert calls["init"] == (str(ckpt), "cpu")
    emb = embed_clips(model, [(_tone(440), SR), (_tone(440, 1.0), SR)])
    assert emb.shape == (2, 2048)
    assert calls["shapes"] == [(1, 16000), (1, 32000)]  # resampled to 32 kHz
    assert model.posteriors([_tone(440, sr=32000)]).shape == (1, 527)
    assert model.comparable and NOT_COMPARABLE not in model.description


def test_clap_adapter_wiring_with_a_stand_in_package(tmp_path, monkeypatch):
    class CLAP_Module:  # noqa: N801 - the package's name
        def __init__(self, enable_fusion=False, amodel="HTSAT-tiny", device=None):
            import huggingface_hub

            self.amodel = amodel
            self.offline = huggingface_hub.is_offline_mode()  # roberta: no download

        def load_ckpt(self, ckpt=None, verbose=True):
            self.ckpt = ckpt

        def get_audio_embedding_from_data(self, x, use_tensor=False):
            return np.ones((x.shape[0], 512)) * x.shape[1]

        def get_text_embedding(self, texts, use_tensor=False):
            return np.ones((len(texts), 512))

    monkeypatch.setitem(
        sys.modules, "laion_clap", types.SimpleNamespace(CLAP_Module=CLAP_Module)
    )
    ckpt = tmp_path / "630k-audioset-best.pt"
    ckpt.write_bytes(b"x")
    model = ClapModel(checkpoint=str(ckpt))
    assert model.model.ckpt == str(ckpt)
    assert model.model.offline
    audio = embed_clips(model, [(_tone(440), SR)])
    assert audio.shape == (1, 512) and audio[0, 0] == 24000  # 48 kHz
    assert model.embed_text(["a beep", "a tone"]).shape == (2, 512)


# --------------------------------------------------------------------------
# hf_clap: a tiny transformers ClapModel saved locally
# --------------------------------------------------------------------------

TINY_SR, TINY_WINDOW_S, TINY_DIM = 16000, 1, 16
WORDS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + (
    "a the two of dog cat bark beep beeps tone noise sound loud quiet".split()
)


@pytest.fixture(scope="module")
def tiny_clap_dir(tmp_path_factory):
    """A ``save_pretrained`` directory of a tiny random ClapModel (HTSAT of two
    stages), its feature extractor (16 kHz, 1 s windows, 16 mel bins,
    ``rand_trunc`` / ``repeatpad`` like laion/clap-htsat-unfused) and a
    word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers import ClapModel as TransformersClap

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, "<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip
    extractor = ClapFeatureExtractor(
        feature_size=16, sampling_rate=TINY_SR, hop_length=160,
        max_length_s=TINY_WINDOW_S, fft_window_size=400, frequency_max=8000,
        truncation="rand_trunc", padding="repeatpad",
    )  # fmt: skip
    config = ClapConfig(
        text_config=dict(
            vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=37,
            max_position_embeddings=64,
        ),
        audio_config=dict(
            spec_size=64, num_mel_bins=16, window_size=4, depths=[1, 1],
            num_attention_heads=[2, 2], patch_embeds_hidden_size=16,
            hidden_size=32, num_hidden_layers=2,
        ),
        projection_dim=TINY_DIM,
    )  # fmt: skip
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("tiny_clap"))
    TransformersClap(config).save_pretrained(path)
    ClapProcessor(extractor, tokenizer).save_pretrained(path)
    return path


def _tiny_clips():
    # shorter than the 1 s window, equal to it, longer (cut to its first 1 s)
    return [_tone(440, 0.3), _noise(1, 1.0), _noise(2, 2.5)]


def test_hf_clap_loads_locally_and_embeds_unit_vectors(tiny_clap_dir):
    model = HFClapModel(tiny_clap_dir)
    assert model.sample_rate == TINY_SR  # the saved extractor's, not 48 kHz
    assert model.comparable and model.name == "hf_clap"
    assert not model.model.training
    audio = model.embed(_tiny_clips())
    assert audio.shape == (3, TINY_DIM)
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(audio, model.embed(_tiny_clips()))  # no rand crop
    # a clip's embedding does not depend on its batch
    np.testing.assert_allclose(model.embed(_tiny_clips()[2:]), audio[2:], atol=1e-6)
    assert model.embed([]).shape == (0, TINY_DIM)
    text = model.embed_text(["a dog bark", "two beeps", "noise"])
    assert text.shape == (3, TINY_DIM)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)


def test_hf_clap_matches_transformers_directly(tiny_clap_dir):
    import torch
    from transformers import ClapModel as TransformersClap
    from transformers import ClapProcessor

    ref = TransformersClap.from_pretrained(tiny_clap_dir).eval()
    processor = ClapProcessor.from_pretrained(tiny_clap_dir)
    clips = _tiny_clips()
    window = TINY_SR * TINY_WINDOW_S
    with torch.no_grad():
        feats = processor.feature_extractor(
            [c[:window] for c in clips], sampling_rate=TINY_SR, return_tensors="pt"
        )
        audio = ref.get_audio_features(**feats).pooler_output
        texts = ["a dog bark", "the loud beeps of a tone"]
        tokens = processor.tokenizer(texts, padding=True, return_tensors="pt")
        text = ref.get_text_features(**tokens).pooler_output
    audio = torch.nn.functional.normalize(audio, dim=-1).numpy()
    text = torch.nn.functional.normalize(text, dim=-1).numpy()
    model = HFClapModel(tiny_clap_dir)
    np.testing.assert_allclose(model.embed(clips), audio, atol=1e-5)
    np.testing.assert_allclose(model.embed_text(texts), text, atol=1e-5)
    # max_seconds cuts earlier: the longer clip's first 0.5 s
    half = HFClapModel(tiny_clap_dir, max_seconds=0.5).embed(clips[2:])
    with torch.no_grad():
        feats = processor.feature_extractor(
            [clips[2][: window // 2]], sampling_rate=TINY_SR, return_tensors="pt"
        )
        expected = ref.get_audio_features(**feats).pooler_output.numpy()
    np.testing.assert_allclose(half, expected, atol=1e-5)


def test_hf_clap_missing_directory_fetches_nothing(tmp_path, monkeypatch):
    import huggingface_hub
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("nothing may be fetched or loaded")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    monkeypatch.setattr(transformers.ClapModel, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.ClapProcessor, "from_pretrained", refuse)
    absent = str(tmp_path / "clap-htsat-unfused")
    with pytest.raises(MissingModelError) as err:
        HFClapModel(absent)
    assert absent in str(err.value) and "does not exist" in str(err.value)
    with pytest.raises(MissingModelError, match="no model directory given"):
        HFClapModel()
    with pytest.raises(MissingModelError, match="laion/clap-htsat-unfused"):
        build_text_audio_model("hf_clap", {"model_dir": "laion/clap-htsat-unfused"})


def test_hf_clap_directory_without_files(tmp_path):
    with pytest.raises(MissingModelError, match=str(tmp_path)):
        HFClapModel(str(tmp_path))


def test_hf_clap_through_the_builder_and_the_scorer(tiny_clap_dir):
    from espnet2.ualm.scoring.preference import Candidate, TextAudioScorer

    assert TEXT_AUDIO_MODELS["hf_clap"] is HFClapModel
    assert EMBEDDERS["hf_clap"] is HFClapModel
    model = build_text_audio_model("hf_clap", {"model_dir": tiny_clap_dir})
    assert isinstance(model, HFClapModel)
    scorer = TextAudioScorer(model)
    assert scorer.sample_rate == TINY_SR
    candidates = [
        Candidate("a", "a dog bark", _tone(440, 0.4), SR),
        Candidate("a", "a dog bark", np.stack([_noise(3, 1.5)] * 2), SR),  # stereo
        Candidate("b", "two beeps", _tone(880, 0.2, sr=48000), 48000),
    ]
    scores = scorer.score(candidates)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert np.all(np.abs(scores) <= 1 + 1e-6)


def test_the_pair_scorer_config_builds_the_hf_clap_scorer(tiny_clap_dir):
    from espnet2.ualm.scoring.preference import TextAudioScorer, build_scorer

    scorer = build_scorer(
        {"name": "clap", "model": "hf_clap", "conf": {"model_dir": tiny_clap_dir}}
    )
    assert isinstance(scorer, TextAudioScorer)
    assert isinstance(scorer.model, HFClapModel)


def test_logmel_stats_embedder():
    emb = LogMelStatsEmbedder()
    x = emb.embed([_tone(300), _tone(300), _tone(3000), _noise(0)])
    assert x.shape == (4, 80)
    np.testing.assert_allclose(x[0], x[1])
    assert np.linalg.norm(x[0] - x[2]) > 1 and np.linalg.norm(x[0] - x[3]) > 1
    assert emb.embed([np.zeros(100)]).shape == (1, 80)  # shorter than a frame
    assert NOT_COMPARABLE in emb.description and not emb.comparable


def test_probe_tagger_fit_save_load(tmp_path):
    wavs = [_tone(f) for f in (200, 250, 300, 350)] + [_noise(s) for s in range(4)]
    labels = ["tone"] * 4 + ["noise"] * 4
    probe = ProbeTagger()
    stats = probe.fit(wavs, labels)
    assert stats["train_accuracy"] == 1.0 and probe.classes == ["noise", "tone"]
    p = probe.posteriors([_tone(275), _noise(9)])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p[0].argmax() == 1 and p[1].argmax() == 0
    path = str(tmp_path / "probe.npz")
    probe.save(path)
    again = ProbeTagger(checkpoint=path)
    np.testing.assert_allclose(again.posteriors([_tone(275)]), p[:1])
    with pytest.raises(MissingModelError):
        ProbeTagger(checkpoint=str(tmp_path / "absent.npz"))
    with pytest.raises(RuntimeError, match="not fitted"):
        ProbeTagger().posteriors([_tone(275)])


def test_resample_keeps_a_tone():
    y = resample(_tone(1000, 1.0), SR, 48000)
    assert len(y) == 48000
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 48000 / len(y) - 1000) < 2
