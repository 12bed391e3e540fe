"""A tiny trained UALM experiment (for tests and CPU dry runs of inference,
packing and loading): the tiny corpus, one epoch of ESPnet training, and a
spec_rvq codec fitted with the corpus's code geometry."""

import os
from typing import Dict

import numpy as np
import yaml

from espnet2.ualm.testing.tiny_corpus import (
    FRAME_RATE,
    SAMPLE_RATE,
    tiny_train_args,
    tiny_train_config,
    write_tiny_corpus,
)

N_CODEBOOKS = 3
CODEBOOK_SIZE = 16


def write_tiny_codec(root: str) -> Dict[str, str]:
    """Fits and saves a spec_rvq codec with the tiny corpus's geometry."""
    from espnet2.ualm.codec.spec_rvq import SpecRVQCodec

    rng = np.random.default_rng(0)
    codec = SpecRVQCodec(
        sample_rate=SAMPLE_RATE,
        frame_rate=FRAME_RATE,
        n_codebooks=N_CODEBOOKS,
        codebook_size=CODEBOOK_SIZE,
        n_fft=1024,
        griffin_lim_iters=4,
        kmeans_iters=2,
        seed=0,
    )
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    wavs = [
        (0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.size))
        for f in (220.0, 440.0, 880.0, 330.0)
    ]
    codec.fit([w.astype(np.float32) for w in wavs], max_frames=2048)
    model_dir = os.path.join(root, "exp", "codec")
    codec.save_pretrained(model_dir)
    config = os.path.join(root, "conf", "codec.yaml")
    os.makedirs(os.path.dirname(config), exist_ok=True)
    with open(config, "w") as f:
        yaml.safe_dump({"codec": "spec_rvq", "codec_conf": {}}, f)
    return {"codec_config": config, "codec_model_dir": model_dir}


def write_tiny_experiment(root: str, max_epoch: int = 1) -> Dict[str, str]:
    """Corpus + codec + one short training run; returns their paths
    (``train_config``, ``model_file``, ``text_tokenizer``, ``codec_config``,
    ``codec_model_dir``, ``corpus_root``)."""
    from espnet2.tasks.ualm import UALMTask

    corpus = write_tiny_corpus(root, splits=("train", "valid", "test"))
    paths = dict(write_tiny_codec(root))
    config = os.path.join(root, "conf", "train.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(tiny_train_config(max_epoch=max_epoch), f)
    exp = os.path.join(root, "exp", "ualm")
    UALMTask.main(cmd=tiny_train_args(corpus, config, exp))
    paths.update(
        train_config=os.path.join(exp, "config.yaml"),
        model_file=os.path.join(exp, "valid.loss.best.pth"),
        text_tokenizer=corpus["text_tokenizer"],
        corpus_root=root,
    )
    return paths
