"""A short Enhancement VAE training through the ESPnet GAN task's main(), then
loading the trained enhancer and evaluating it as the recipe does."""

import os

import numpy as np
import pytest
import soundfile
import torch

from espnet2.bin.ualm_enhancer_eval import main as eval_main
from espnet2.tasks.ualm_enhancer import (
    UALMEnhancerTask,
    enhancer_for_inference,
    load_enhancer,
)
from espnet2.ualm.codec import SpecRVQCodec
from espnet2.ualm.data.io import load_audio
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.enhancer import EnhancementVAE, ResampleEnhancer
from espnet2.ualm.enhancer.prepare_pairs import prepare_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
FAST_CONFIG = os.path.join(ROOT, "egs2/ualm/mini/conf/enhancer_fast.yaml")


def _masters(directory, n, seed):
    """``n`` 0.4 s stereo 48 kHz tones, panned at random; returns the scp."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(19200) / 48000
    lines = []
    for i in range(n):
        x = 0.2 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t)
        pan = rng.uniform(-0.8, 0.8)
        path = os.path.join(directory, f"u{i}.flac")
        soundfile.write(path, np.stack([x * (1 - pan), x * (1 + pan)], 1), 48000)
        lines.append(f"u{i} {path}\n")
    scp = os.path.join(directory, "wav48.scp")
    with open(scp, "w") as f:
        f.writelines(lines)
    return scp


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """Codec fitted on tiny data, then the cached pairs of train/valid/test."""
    root = tmp_path_factory.mktemp("enhancer_recipe")
    codec = SpecRVQCodec(n_codebooks=2, codebook_size=16, griffin_lim_iters=4)
    t = np.arange(16000) / 16000
    codec.fit([0.3 * np.sin(2 * np.pi * f * t) for f in (300, 900, 2500)], 200)
    codec.save_pretrained(str(root / "codec"))
    conf = root / "codec.yaml"
    conf.write_text("codec: spec_rvq\ncodec_conf: {}\n")
    dirs = {}
    for seed, split in enumerate(("train", "valid", "test")):
        scp = _masters(str(root / "audio" / split), 4, seed)
        dirs[split] = str(root / "pairs" / split)
        prepare_pairs(
            scp,
            str(conf),
            dirs[split],
            FAST_CONFIG,
            codec_model_dir=str(root / "codec"),
        )
    return root, conf, dirs


def _train_args(dirs, out):
    args = ["--config", FAST_CONFIG, "--ngpu", "0", "--output_dir", out]
    for split in ("train", "valid"):
        d = dirs[split]
        args += [
            f"--{split}_data_path_and_name_and_type",
            f"{d}/wav48.scp,target,sound",
            f"--{split}_data_path_and_name_and_type",
            f"{d}/codec_wav.scp,input,sound",
            f"--{split}_shape_file",
            f"{d}/wav48.scp",
        ]
    return args


@pytest.mark.slow
def test_trains_loads_and_evaluates(recipe, tmp_path):
    root, conf, dirs = recipe
    out = str(tmp_path / "exp")
    torch.set_num_threads(1)
    UALMEnhancerTask.main(cmd=_train_args(dirs, out))
    assert os.path.exists(os.path.join(out, "config.yaml"))
    assert os.path.exists(os.path.join(out, "valid.generator_stft_loss.best.pth"))

    enhancer = load_enhancer(out)
    assert isinstance(enhancer, EnhancementVAE) and not enhancer.training
    wav = enhancer.enhance(np.zeros(1600, dtype=np.float32))
    assert wav.shape == (2, 4800)

    report = eval_main(
        ["--exp_dir", out, "--wav48_scp", f"{dirs['test']}/wav48.scp"]
        + ["--input_scp", f"{dirs['test']}/codec_wav.scp"]
    )
    assert set(report["summary"]) == {
        "lsd_db",
        "lsd_high_db",
        "mrstft",
        "ild_error_db",
    }
    text = open(os.path.join(out, "RESULTS.md")).read()
    assert text.count("## Enhancement VAE on test") == 1
    # Evaluating again replaces the section instead of appending another.
    eval_main(
        ["--exp_dir", out, "--wav48_scp", f"{dirs['test']}/wav48.scp"]
        + ["--codec_config", str(conf), "--codec_model_dir", str(root / "codec")]
    )
    text = open(os.path.join(out, "RESULTS.md")).read()
    assert text.count("## Enhancement VAE on test") == 1

    # Inference configs pick the enhancer by name.
    vae = enhancer_for_inference("vae", {"exp_dir": out})
    assert isinstance(vae, EnhancementVAE)
    assert isinstance(enhancer_for_inference("resample"), ResampleEnhancer)
    assert enhancer_for_inference("none") is None

    # The generation path: 16 kHz mono codec output -> 48 kHz stereo.
    first = next(iter(read_kv(f"{dirs['test']}/codec_wav.scp").values()))
    wav, _ = load_audio(first, vae.input_sample_rate, strict=True)
    with torch.no_grad():
        out = vae.enhance(wav)
    assert vae.output_sample_rate == 48000 and out.shape == (2, 3 * len(wav))


@pytest.mark.slow
def test_wrong_sample_rate_is_refused(recipe, tmp_path):
    _, _, dirs = recipe
    args = _train_args(dirs, str(tmp_path / "exp"))
    args += ["--enhancer_conf", "input_sample_rate=8000"]
    with pytest.raises(ValueError, match="rate"):
        UALMEnhancerTask.main(cmd=args)
