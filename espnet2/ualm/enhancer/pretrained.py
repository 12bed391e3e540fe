"""Loading a trained enhancer and applying it on the generation path.

A training run of ``espnet2.bin.ualm_enhancer_train`` leaves ``config.yaml``
and checkpoints in its output dir; :func:`load_enhancer` rebuilds the enhancer
from them (the discriminator is dropped), so inference and model packing can
carry just that directory. Inference configs name the enhancer with
:func:`enhancer_for_inference`.
"""

import glob
import logging
import os
from typing import Any, Dict, Optional

import numpy as np
import soundfile
import torch

from espnet2.ualm.data.kaldi_dir import read_kv, write_kv
from espnet2.ualm.enhancer.abs_enhancer import AbsEnhancer


def find_checkpoint(exp_dir: str) -> str:
    """The model file to load from a training dir: the best-by-validation one
    (``valid.*.best.pth``), else ``latest.pth``, else the last ``N epoch.pth``."""
    best = sorted(glob.glob(os.path.join(exp_dir, "valid.*.best.pth")))
    if best:
        return best[0]
    latest = os.path.join(exp_dir, "latest.pth")
    if os.path.exists(latest):
        return latest
    epochs = glob.glob(os.path.join(exp_dir, "*epoch.pth"))
    if epochs:
        return max(epochs, key=lambda p: int(os.path.basename(p).split("epoch")[0]))
    raise FileNotFoundError(f"{exp_dir}: no model file (*.best.pth, latest.pth)")


def load_enhancer(
    exp_dir: str, checkpoint: Optional[str] = None, device: str = "cpu"
) -> AbsEnhancer:
    """The trained enhancer of ``exp_dir`` (``config.yaml`` + a checkpoint), in
    eval mode. ``checkpoint``: a model file; default :func:`find_checkpoint`."""
    from espnet2.tasks.ualm_enhancer import UALMEnhancerTask

    config = os.path.join(exp_dir, "config.yaml")
    if not os.path.exists(config):
        raise FileNotFoundError(f"{exp_dir}: no config.yaml (not a training dir?)")
    checkpoint = checkpoint or find_checkpoint(exp_dir)
    logging.info(f"loading enhancer from {config} and {checkpoint}")
    model, _ = UALMEnhancerTask.build_model_from_file(config, checkpoint, device)
    return model.enhancer.eval()


def enhancer_for_inference(
    name: Optional[str], conf: Optional[Dict[str, Any]] = None
) -> Optional[AbsEnhancer]:
    """The enhancer an inference config asks for.

    ``none`` / ``None``: no enhancement (keep the codec output);
    ``resample``: :class:`ResampleEnhancer` built with ``conf``;
    ``vae``: a trained VAE, ``conf = {exp_dir: ..., checkpoint: ..., device: ...}``.
    """
    conf = dict(conf or {})
    if name is None or name == "none":
        return None
    if name == "vae":
        if "exp_dir" not in conf:
            raise ValueError("enhancer 'vae' needs enhancer_conf.exp_dir")
        return load_enhancer(**conf)
    from espnet2.ualm.enhancer import enhancer_choices

    return enhancer_choices.get_class(name)(**conf).eval()


def enhance_scp(
    enhancer: AbsEnhancer, wav_scp: str, output_dir: str, subtype: str = "PCM_16"
) -> str:
    """Enhances every clip of a mono ``wav.scp`` at the enhancer's input rate;
    writes ``output_dir/wav/<id>.wav`` (stereo at the output rate, peaks clipped
    to full scale) and ``output_dir/wav.scp``. Returns the new scp."""
    out_wav = os.path.join(output_dir, "wav")
    os.makedirs(out_wav, exist_ok=True)
    written = {}
    for utt_id, path in read_kv(wav_scp).items():
        wav, rate = soundfile.read(path, dtype="float32", always_2d=True)
        if rate != enhancer.input_sample_rate:
            raise ValueError(
                f"{wav_scp}: {utt_id}: {path} is at {rate} Hz, the enhancer takes "
                f"{enhancer.input_sample_rate} Hz"
            )
        with torch.no_grad():
            out = enhancer.enhance(wav.mean(axis=1))
        target = os.path.join(out_wav, f"{utt_id}.wav")
        soundfile.write(
            target,
            np.clip(out.T, -1.0, 1.0),
            enhancer.output_sample_rate,
            subtype=subtype,
        )
        written[utt_id] = os.path.abspath(target)
    scp = os.path.join(output_dir, "wav.scp")
    write_kv(scp, written.items())
    return scp
