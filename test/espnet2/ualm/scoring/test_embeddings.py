"""Model adapters: clear errors without packages/weights, the wiring with stand-in
packages, and the always-available models."""

import sys
import types

import numpy as np
import pytest

from espnet2.ualm.data.io import resample
from espnet2.ualm.scoring.embeddings import (
    NOT_COMPARABLE,
    ClapModel,
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
