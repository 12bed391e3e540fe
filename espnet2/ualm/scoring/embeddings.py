"""Models behind the text-to-audio metrics: one interface, several adapters.

* :class:`AudioEmbedder` (FD), :class:`AudioTagger` (KL, IS) and
  :class:`TextAudioModel` (CLAP score) take mono float waveforms at their own
  ``sample_rate`` (:func:`embed_clips` resamples).
* Adapters for the published models load them through their packages from
  **local checkpoint paths** (nothing is downloaded): ``openl3`` (the paper's
  FD), ``vggish`` (``frechet_audio_distance``), ``panns`` (``panns_inference``,
  IS), ``passt`` (``hear21passt``, KL), ``clap`` (``laion_clap``) and
  ``hf_clap`` (CLAP through transformers' own ``ClapModel``, from a local
  ``save_pretrained`` directory such as a copy of ``laion/clap-htsat-unfused``;
  no laion_clap, whose numpy pin clashes with this environment). Packages are
  imported lazily; a missing package or checkpoint raises
  :class:`MissingModelError` naming what is missing and how to get it.
* Always available, for machines without those weights: ``logmel_stats``
  (log-mel statistics, FD) and ``probe`` (a softmax classifier on those
  statistics fitted on a labelled training set, KL/IS). Their ``comparable``
  flag is False and every report says that their numbers are not comparable
  to published ones.
"""

import abc
import contextlib
import importlib
import json
import os
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
)

import numpy as np

from espnet2.ualm.data.io import resample

NOT_COMPARABLE = "not comparable to published numbers"


class MissingModelError(RuntimeError):
    """A metric's model cannot be loaded here (package or weights missing)."""


class AudioModel:
    """What every adapter states about itself (shown in RESULTS.md)."""

    name: str = "?"
    sample_rate: int = 16000
    #: True only for a published model with its published weights.
    comparable: bool = False

    @property
    def description(self) -> str:
        note = "" if self.comparable else f" ({NOT_COMPARABLE})"
        return f"{self.name} @ {self.sample_rate} Hz{note}"


class AudioEmbedder(AudioModel, abc.ABC):
    @abc.abstractmethod
    def embed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, D]`` clip embeddings of mono waveforms at ``sample_rate``."""


class AudioTagger(AudioModel, abc.ABC):
    @abc.abstractmethod
    def posteriors(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, C]`` class probabilities (non-negative) of mono waveforms."""


class TextAudioModel(AudioEmbedder):
    @abc.abstractmethod
    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """``[N, D]`` text embeddings in the audio embeddings' space."""


def embed_clips(
    model: AudioModel,
    clips: Sequence[Tuple[np.ndarray, int]],
    fn: Optional[Callable[[Sequence[np.ndarray]], np.ndarray]] = None,
) -> np.ndarray:
    """Apply ``fn`` (default ``model.embed``) to ``(wav, rate)`` clips after
    resampling them to the model's rate."""
    fn = fn or model.embed  # type: ignore[attr-defined]
    return fn([resample(w, r, model.sample_rate) for w, r in clips])


# --------------------------------------------------------------------------
# Checks shared by the adapters
# --------------------------------------------------------------------------


def _import(module: str, pip_name: str, problems: List[str]) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as e:  # ImportError, or a package that fails on import
        problems.append(
            f"python package '{module}' unavailable ({type(e).__name__}: {e}); "
            f"install it with `pip install {pip_name}`"
        )
        return None


def _check_file(path: Optional[str], what: str, problems: List[str]) -> None:
    if not path:
        problems.append(f"no checkpoint given: pass checkpoint=<local path to {what}>")
    elif not os.path.exists(path):
        problems.append(f"checkpoint {path!r} not found (expected: {what})")


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Hugging Face hub requests refused meanwhile, so a package that loads HF
    files by name (laion_clap's ``roberta-base``) reads the local cache only.

    ``HF_HUB_OFFLINE`` is read when huggingface_hub is imported, so its
    constant is set here; ``is_offline_mode()`` reads it on every request.
    """
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def _raise(name: str, problems: List[str]) -> None:
    if problems:
        raise MissingModelError(
            f"{name} cannot be loaded: "
            + "; ".join(problems)
            + ". Nothing is downloaded at run time: put the weights on a local "
            "path, or use the always-available models (logmel_stats / probe), "
            f"whose numbers are {NOT_COMPARABLE}."
        )


# --------------------------------------------------------------------------
# Always-available models
# --------------------------------------------------------------------------


class LogMelStatsEmbedder(AudioEmbedder):
    """Mean and standard deviation over time of a log-mel spectrogram.

    Cheap, deterministic and weight-free, so FD can be computed anywhere; it
    sees spectral balance and its variation, not semantics.
    """

    name = "logmel_stats"

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 40,
        n_fft: int = 1024,
        hop_length: int = 256,
        floor_db: float = -80.0,
    ) -> None:
        import librosa

        self.sample_rate = int(sample_rate)
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.floor_db = float(floor_db)
        self.mel = librosa.filters.mel(
            sr=self.sample_rate, n_fft=self.n_fft, n_mels=int(n_mels)
        )
        self.config = dict(
            sample_rate=self.sample_rate,
            n_mels=int(n_mels),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            floor_db=self.floor_db,
        )

    def log_mel(self, wav: np.ndarray) -> np.ndarray:
        """``[frames, n_mels]`` log-mel power (dB re full scale), floored."""
        x = np.asarray(wav, dtype=np.float64)
        if len(x) < self.n_fft:
            x = np.pad(x, (0, self.n_fft - len(x)))
        n = 1 + (len(x) - self.n_fft) // self.hop_length
        idx = np.arange(self.n_fft)[None] + self.hop_length * np.arange(n)[:, None]
        spec = np.abs(np.fft.rfft(x[idx] * np.hanning(self.n_fft), axis=1)) ** 2
        mel = spec @ self.mel.T / (self.n_fft / 4)
        return np.maximum(10 * np.log10(mel + 1e-20), self.floor_db)

    def embed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        feats = []
        for w in wavs:
            m = self.log_mel(w)
            feats.append(np.concatenate([m.mean(axis=0), m.std(axis=0)]))
        return np.stack(feats)


class ProbeTagger(AudioTagger):
    """Softmax regression on :class:`LogMelStatsEmbedder` features.

    Fitted on a labelled training set (e.g. the mini corpus with the ordered
    event types of each clip as its class), it gives KL and IS a tagger where
    no pretrained one exists. Saved as ``.npz`` with its embedder's settings.
    """

    name = "probe"

    def __init__(self, checkpoint: Optional[str] = None) -> None:
        self.embedder = LogMelStatsEmbedder()
        self.classes: List[str] = []
        self.weight = self.bias = self.mean = self.scale = None
        if checkpoint is not None:
            self.load(checkpoint)

    @property
    def sample_rate(self) -> int:  # type: ignore[override]
        return self.embedder.sample_rate

    def fit(
        self,
        wavs: Sequence[np.ndarray],
        labels: Sequence[str],
        l2: float = 1e-3,
        iters: int = 500,
        lr: float = 0.5,
    ) -> Dict[str, float]:
        """Full-batch gradient descent on the L2-regularised cross-entropy."""
        x = self.embedder.embed(wavs)
        self.classes = sorted(set(labels))
        y = np.array([self.classes.index(label) for label in labels])
        self.mean, self.scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = (x - self.mean) / self.scale
        n, d = z.shape
        w, b = np.zeros((d, len(self.classes))), np.zeros(len(self.classes))
        onehot = np.eye(len(self.classes))[y]
        for _ in range(iters):
            p = _softmax(z @ w + b)
            w -= lr * (z.T @ (p - onehot) / n + l2 * w)
            b -= lr * (p - onehot).mean(axis=0)
        self.weight, self.bias = w, b
        p = _softmax(z @ w + b)
        return {
            "train_accuracy": float(np.mean(p.argmax(axis=1) == y)),
            "classes": float(len(self.classes)),
            "clips": float(n),
        }

    def posteriors(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        if self.weight is None:
            raise RuntimeError("the probe tagger is not fitted (fit() or load())")
        z = (self.embedder.embed(wavs) - self.mean) / self.scale
        return _softmax(z @ self.weight + self.bias)

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        np.savez(
            path,
            weight=self.weight,
            bias=self.bias,
            mean=self.mean,
            scale=self.scale,
            classes=np.array(self.classes),
            embedder=np.array(json.dumps(self.embedder.config)),
        )

    def load(self, path: str) -> None:
        if not os.path.exists(path):
            raise MissingModelError(f"probe checkpoint {path!r} not found")
        data = np.load(path)
        self.embedder = LogMelStatsEmbedder(**json.loads(str(data["embedder"])))
        self.weight, self.bias = data["weight"], data["bias"]
        self.mean, self.scale = data["mean"], data["scale"]
        self.classes = [str(c) for c in data["classes"]]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------
# Adapters for published models (local checkpoints only)
# --------------------------------------------------------------------------


class PannsModel(AudioEmbedder, AudioTagger):
    """PANNs CNN14 (AudioSet, 527 classes, 32 kHz) through ``panns_inference``:
    clip-wise sigmoid posteriors (IS) and 2048-d embeddings."""

    name = "panns_cnn14"
    sample_rate = 32000
    comparable = True

    def __init__(self, checkpoint: Optional[str] = None, device: str = "cpu") -> None:
        problems: List[str] = []
        _check_file(checkpoint, "Cnn14_mAP=0.431.pth (zenodo record 3987831)", problems)
        pkg = _import("panns_inference", "panns-inference", problems)
        _raise("PANNs (panns_inference)", problems)
        self.model = pkg.AudioTagging(checkpoint_path=checkpoint, device=device)

    def _run(self, wavs: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        probs, embs = [], []
        for w in wavs:
            p, e = self.model.inference(np.asarray(w, dtype=np.float32)[None])
            probs.append(p[0])
            embs.append(e[0])
        return np.stack(probs), np.stack(embs)

    def embed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        return self._run(wavs)[1]

    def posteriors(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        return self._run(wavs)[0]


class PasstTagger(AudioTagger):
    """PaSST-S (AudioSet, 32 kHz) through ``hear21passt``, built without its
    download and loaded from a local state dict (KL)."""

    name = "passt_s"
    sample_rate = 32000
    comparable = True

    def __init__(
        self,
        checkpoint: Optional[str] = None,
        arch: str = "passt_s_swa_p16_128_ap476",
        activation: str = "softmax",
        device: str = "cpu",
    ) -> None:
        problems: List[str] = []
        _check_file(checkpoint, "passt-s-f128-p16-s10-ap.476-swa.pt", problems)
        base = _import("hear21passt.base", "hear21passt", problems)
        models = _import("hear21passt.models.passt", "hear21passt", problems)
        _raise("PaSST (hear21passt)", problems)
        import torch

        net = models.get_model(arch=arch, pretrained=False, n_classes=527)
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        net.load_state_dict(
            state.get("state_dict", state) if isinstance(state, dict) else state
        )
        mel = base.AugmentMelSTFT(
            n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024,
            freqm=48, timem=192, htk=False, fmin=0.0, fmax=None, norm=1,
            fmin_aug_range=10, fmax_aug_range=2000,
        )  # fmt: skip
        self.model = base.PasstBasicWrapper(mel=mel, net=net, mode="logits")
        self.model.eval().to(device)
        self.device, self.activation = device, activation

    def posteriors(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for w in wavs:
                x = torch.as_tensor(np.asarray(w, dtype=np.float32))[None]
                logits = self.model(x.to(self.device))[0]
                act = torch.softmax if self.activation == "softmax" else None
                p = act(logits, dim=-1) if act else torch.sigmoid(logits)
                out.append(p.cpu().numpy())
        return np.stack(out)


class ClapModel(TextAudioModel):
    """LAION-CLAP (48 kHz) through ``laion_clap`` from a local checkpoint. Its
    text branch also needs the ``roberta-base`` tokenizer in the local Hugging
    Face cache: it is loaded offline (:func:`hub_offline`), never downloaded."""

    name = "laion_clap"
    sample_rate = 48000
    comparable = True

    def __init__(
        self,
        checkpoint: Optional[str] = None,
        amodel: str = "HTSAT-tiny",
        enable_fusion: bool = False,
        device: str = "cpu",
    ) -> None:
        problems: List[str] = []
        _check_file(
            checkpoint, "630k-audioset-best.pt or music_audioset_*.pt", problems
        )
        pkg = _import("laion_clap", "laion-clap", problems)
        _raise("CLAP (laion_clap)", problems)
        with hub_offline():  # its roberta-base tokenizer: from the local cache
            self.model = pkg.CLAP_Module(
                enable_fusion=enable_fusion, amodel=amodel, device=device
            )
            self.model.load_ckpt(ckpt=checkpoint, verbose=False)

    def embed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for w in wavs:
            x = np.clip(np.asarray(w, dtype=np.float32), -1, 1)[None]
            out.append(
                self.model.get_audio_embedding_from_data(x=x, use_tensor=False)[0]
            )
        return np.stack(out)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.get_text_embedding(list(texts), use_tensor=False))


class HFClapModel(TextAudioModel):
    """CLAP through transformers' ``ClapModel`` from a local directory written
    by ``save_pretrained`` (model, feature extractor and tokenizer, e.g. a copy
    of ``laion/clap-htsat-unfused``). Loaded with ``local_files_only`` and the
    hub offline: nothing is downloaded.

    ``sample_rate`` is the feature extractor's ``sampling_rate`` (48 kHz for
    the released checkpoints). Length handling: the extractor works on
    windows of ``max_length_s`` (10 s for the released checkpoints).

    * Shorter clips are padded by the extractor as configured (``repeatpad``
      for the released ones: the clip repeated as many whole times as fit in
      the window, then zero-padded to it). An empty clip is one sample of
      silence.
    * Longer clips, unfused model (``enable_fusion`` False, the extractor run
      with ``truncation="rand_trunc"``): the extractor would take a *random*
      window; here every clip is first cut to its first ``max_seconds``
      (default and upper bound: the extractor's window), so the extractor
      never crops and the embedding of a clip is deterministic: that of its
      first 10 s.
    * Longer clips, fused model (``enable_fusion`` True, run with
      ``truncation="fusion"``): the extractor stacks a downsampled view of the
      whole clip (cut to its first ``max_seconds`` when given) and three
      random 10 s crops, and marks a random clip of a batch without long ones
      as long. Each clip is therefore featurised alone, with numpy's global
      random state set to a fixed seed meanwhile (and restored after), so its
      embedding does not depend on the call or on the other clips.

    Embeddings (audio and text) are L2-normalised ``projection_dim`` vectors.
    """

    name = "hf_clap"
    comparable = True
    batch_size = 16
    seed = 0

    def __init__(
        self,
        model_dir: Optional[str] = None,
        device: str = "cpu",
        max_seconds: Optional[float] = None,
    ) -> None:
        problems: List[str] = []
        what = (
            "a local directory saved by save_pretrained with config.json, "
            "the weights, preprocessor_config.json and the tokenizer files "
            "(e.g. a copy of laion/clap-htsat-unfused)"
        )
        if not model_dir:
            problems.append(f"no model directory given: pass model_dir=<{what}>")
        elif not os.path.isdir(model_dir):
            problems.append(f"model directory {model_dir} does not exist ({what})")
        pkg = _import("transformers", "transformers", problems)
        _raise("CLAP (transformers ClapModel)", problems)
        import torch

        try:
            with hub_offline():
                self.model = pkg.ClapModel.from_pretrained(
                    model_dir, local_files_only=True
                )
                self.processor = pkg.ClapProcessor.from_pretrained(
                    model_dir, local_files_only=True
                )
        except OSError as e:  # a file missing from the directory
            raise MissingModelError(
                f"CLAP (transformers ClapModel) cannot be loaded from {model_dir}: "
                f"{e}. Nothing is downloaded at run time."
            ) from e
        self.model.eval().to(device)
        self.device, self.torch = device, torch
        self.extractor = self.processor.feature_extractor
        self.tokenizer = self.processor.tokenizer
        self.sample_rate = int(self.extractor.sampling_rate)
        self.fusion = bool(self.model.config.audio_config.enable_fusion)
        self.truncation = "fusion" if self.fusion else "rand_trunc"
        window = int(self.extractor.nb_max_samples)
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        cap = None if max_seconds is None else int(max_seconds * self.sample_rate)
        if not self.fusion:  # never let rand_trunc crop at random
            cap = window if cap is None else min(cap, window)
        self.max_samples = cap

    def _features(self, wav: np.ndarray) -> Dict[str, Any]:
        x = np.asarray(wav, dtype=np.float64).reshape(-1)
        if self.max_samples is not None:
            x = x[: self.max_samples]
        if len(x) == 0:
            x = np.zeros(1)
        state = np.random.get_state()
        np.random.seed(self.seed)  # fusion's crops and "longer" flag: fixed
        try:
            return self.extractor(
                [x],
                sampling_rate=self.sample_rate,
                truncation=self.truncation,
                return_tensors="pt",
            )
        finally:
            np.random.set_state(state)

    def _normalised(self, out: Any) -> np.ndarray:
        # transformers 5 returns a ModelOutput whose pooler_output holds the
        # (already normalised) projection; 4.x returned the tensor itself.
        emb = out if isinstance(out, self.torch.Tensor) else out.pooler_output
        emb = self.torch.nn.functional.normalize(emb.float(), dim=-1)
        return emb.cpu().numpy()

    def embed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        torch = self.torch
        out = [np.zeros((0, self.model.config.projection_dim), np.float32)]
        with torch.no_grad():
            for start in range(0, len(wavs), self.batch_size):
                feats = [
                    self._features(w) for w in wavs[start : start + self.batch_size]
                ]
                batch = {
                    key: torch.cat([f[key] for f in feats]).to(self.device)
                    for key in ("input_features", "is_longer")
                }
                out.append(self._normalised(self.model.get_audio_features(**batch)))
        return np.concatenate(out)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        inputs = self.tokenizer(
            list(texts), padding=True, truncation=True, return_tensors="pt"
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with self.torch.no_grad():
            return self._normalised(self.model.get_text_features(**inputs))


class OpenL3Embedder(AudioEmbedder):
    """OpenL3 (the paper's FD model, 44.1 kHz in the paper) through ``openl3``,
    whose weights ship inside the package; frame embeddings mean-pooled per clip."""

    name = "openl3"
    comparable = True

    def __init__(
        self,
        sample_rate: int = 44100,
        content_type: str = "env",
        input_repr: str = "mel256",
        embedding_size: int = 512,
        hop_size: float = 0.5,
    ) -> None:
        problems: List[str] = []
        self.openl3 = _import("openl3", "openl3 (needs tensorflow)", problems)
        _raise("OpenL3 (openl3)", problems)
        self.sample_rate = int(sample_rate)
        self.hop_size = hop_size
        self.model = self.openl3.models.load_audio_embedding_model(
            input_repr=input_repr,
            content_type=content_type,
            embedding_size=embedding_size,
        )

    def embed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for w in wavs:
            emb, _ = self.openl3.get_audio_embedding(
                np.asarray(w), self.sample_rate, model=self.model,
                hop_size=self.hop_size, verbose=False,
            )  # fmt: skip
            out.append(emb.mean(axis=0))
        return np.stack(out)


class VGGishEmbedder(AudioEmbedder):
    """VGGish (16 kHz, the classic FAD model) through ``frechet_audio_distance``,
    with its torch hub checkpoint directory given locally; frames mean-pooled."""

    name = "vggish"
    sample_rate = 16000
    comparable = True

    def __init__(self, checkpoint: Optional[str] = None) -> None:
        problems: List[str] = []
        _check_file(checkpoint, "a torch hub directory holding torchvggish", problems)
        pkg = _import("frechet_audio_distance", "frechet-audio-distance", problems)
        _raise("VGGish (frechet_audio_distance)", problems)
        self.fad = pkg.FrechetAudioDistance(
            ckpt_dir=checkpoint, model_name="vggish", sample_rate=16000,
            use_pca=False, use_activation=False, verbose=False,
        )  # fmt: skip

    def embed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for w in wavs:
            emb = self.fad.get_embeddings([np.asarray(w)], sr=self.sample_rate)
            out.append(np.asarray(emb).mean(axis=0))
        return np.stack(out)


EMBEDDERS: Dict[str, Type[AudioEmbedder]] = {
    "logmel_stats": LogMelStatsEmbedder,
    "openl3": OpenL3Embedder,
    "vggish": VGGishEmbedder,
    "panns": PannsModel,
    "clap": ClapModel,
    "hf_clap": HFClapModel,
}
TAGGERS: Dict[str, Type[AudioTagger]] = {
    "probe": ProbeTagger,
    "panns": PannsModel,
    "passt": PasstTagger,
}
TEXT_AUDIO_MODELS: Dict[str, Type[TextAudioModel]] = {
    "clap": ClapModel,
    "hf_clap": HFClapModel,
}


def _build(registry: Dict[str, type], kind: str, name: str, conf: Optional[Dict]):
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; choose from {sorted(registry)}")
    return registry[name](**(conf or {}))


def build_embedder(name: str, conf: Optional[Dict] = None) -> AudioEmbedder:
    return _build(EMBEDDERS, "embedding model", name, conf)


def build_tagger(name: str, conf: Optional[Dict] = None) -> AudioTagger:
    return _build(TAGGERS, "tagging model", name, conf)


def build_text_audio_model(name: str, conf: Optional[Dict] = None) -> TextAudioModel:
    return _build(TEXT_AUDIO_MODELS, "text-audio model", name, conf)
