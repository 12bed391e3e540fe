"""ESPnet GAN task for the UALM Enhancement VAE (trained with ``GANTrainer``).

Data (``--train_data_path_and_name_and_type``):

* ``<wav48.scp>,target,sound`` (required): 48 kHz stereo masters;
* ``<codec_wav.scp>,input,sound`` (optional): the cached codec round trip of
  each master, written by ``python -m espnet2.ualm.enhancer.prepare_pairs``.
  Without it the codec round trip is made on the fly from ``--codec_config``
  (and ``--codec_model_dir``), which is slow with a Griffin-Lim codec on CPU.

Shape files only need the ids (``--batch_type unsorted``): pass the target
scp. Task options besides the ESPnet ones:

* ``--enhancer`` / ``--enhancer_conf``: the generator (``vae``; see
  ``espnet2.ualm.enhancer.vae.EnhancementVAE`` for its keys);
* ``--discriminator`` / ``--discriminator_conf``: an ESPnet GAN discriminator
  (``hifigan_multi_scale_multi_period``, ``hifigan_multi_period``,
  ``hifigan_multi_scale``, ``ms_stft``);
* ``--model_conf``: loss weights and resolutions
  (``espnet2.ualm.enhancer.espnet_model.ESPnetEnhancerGANModel``);
* ``--segment_seconds`` / ``--valid_segment_seconds``: crop lengths (random
  crops in training, centre crops in validation);
* ``--swap_channels_prob``: mirror augmentation of training targets;
* ``--codec_config`` / ``--codec_model_dir``: codec for on-the-fly pairs.

A training run leaves ``config.yaml`` and checkpoints in its output dir;
:func:`load_enhancer` rebuilds the enhancer from them through this task (the
discriminator is dropped), so inference and model packing can carry just that
directory. Inference configs name the enhancer with
:func:`enhancer_for_inference`. (These live here, beside the task they build
with, so that the enhancer package does not import its own task.)
"""

import argparse
import glob
import logging
import os
from typing import Any, Callable, Collection, Dict, List, Optional, Tuple

import numpy as np
import torch
from typeguard import typechecked

from espnet2.gan_codec.shared.discriminator.msstft_discriminator import (
    MultiScaleSTFTDiscriminator,
)
from espnet2.gan_tts.hifigan import (
    HiFiGANMultiPeriodDiscriminator,
    HiFiGANMultiScaleDiscriminator,
    HiFiGANMultiScaleMultiPeriodDiscriminator,
)
from espnet2.tasks.abs_task import AbsTask, optim_classes
from espnet2.train.class_choices import ClassChoices
from espnet2.ualm.data.io import AudioReadError, audio_info
from espnet2.ualm.enhancer import (
    AbsEnhancer,
    enhancer_choices,
    enhancer_sample_rates,
)
from espnet2.ualm.enhancer.espnet_model import ESPnetEnhancerGANModel
from espnet2.ualm.enhancer.pairs import EnhancerPairPreprocessor, log_pair_setup
from espnet2.ualm.train.resume import ResumingGANTrainer
from espnet2.utils.get_default_kwargs import get_default_kwargs
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import float_or_none, str2bool, str_or_none


def common_collate_fn_class() -> type:
    """ESPnet's ``CommonCollateFn``, imported without going online.

    Its module imports ESPnet's preprocessor, whose phoneme tokenizer imports
    ``g2p_en``, which calls ``nltk.download`` at import time for data UALM
    never uses (no phoneme tokenizer here): offline that prints a refusal, and
    online it fetches the data. The import is done here, only when training
    needs it (packing and inference never do), with ``nltk.download`` made a
    no-op for its duration.
    """
    try:
        import nltk
    except ImportError:  # no nltk, no download
        from espnet2.train.collate_fn import CommonCollateFn

        return CommonCollateFn
    download = nltk.download
    nltk.download = lambda *args, **kwargs: False
    try:
        from espnet2.train.collate_fn import CommonCollateFn
    finally:
        nltk.download = download
    return CommonCollateFn


discriminator_choices = ClassChoices(
    "discriminator",
    classes=dict(
        hifigan_multi_scale_multi_period=HiFiGANMultiScaleMultiPeriodDiscriminator,
        hifigan_multi_period=HiFiGANMultiPeriodDiscriminator,
        hifigan_multi_scale=HiFiGANMultiScaleDiscriminator,
        ms_stft=MultiScaleSTFTDiscriminator,
    ),
    default="hifigan_multi_scale_multi_period",
)


class UALMEnhancerTask(AbsTask):
    """Enhancement VAE: generator = enhancer, plus a discriminator."""

    num_optimizers: int = 2
    class_choices_list = [enhancer_choices, discriminator_choices]
    trainer = ResumingGANTrainer  # falls back to an epoch checkpoint

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(description="Enhancer task related")
        group.add_argument(
            "--model_conf",
            action=NestedDictAction,
            default=get_default_kwargs(ESPnetEnhancerGANModel),
            help="loss weights and resolutions (ESPnetEnhancerGANModel)",
        )
        group.add_argument(
            "--use_preprocessor",
            type=str2bool,
            default=True,
            help="crop aligned segments and make missing codec inputs",
        )
        group.add_argument(
            "--segment_seconds",
            type=float_or_none,
            default=0.5,
            help="training crop length in seconds (None: whole clips)",
        )
        group.add_argument(
            "--valid_segment_seconds",
            type=float_or_none,
            default=None,
            help="validation crop length (None: --segment_seconds)",
        )
        group.add_argument(
            "--swap_channels_prob",
            type=float,
            default=0.0,
            help="probability of mirroring a training target's stereo image",
        )
        group.add_argument(
            "--codec_config",
            type=str_or_none,
            default=None,
            help="codec YAML ({codec: name, codec_conf: {...}}) for on-the-fly "
            "pairs when the data has no cached 'input'",
        )
        group.add_argument(
            "--codec_model_dir",
            type=str_or_none,
            default=None,
            help="fitted codec directory (overrides the YAML's model_dir)",
        )
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    @typechecked
    def build_collate_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Callable[
        [Collection[Tuple[str, Dict[str, np.ndarray]]]],
        Tuple[List[str], Dict[str, torch.Tensor]],
    ]:
        return common_collate_fn_class()(float_pad_value=0.0, int_pad_value=0)

    @classmethod
    @typechecked
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, Dict[str, np.ndarray]], Dict[str, np.ndarray]]]:
        if not args.use_preprocessor:
            return None
        in_rate, out_rate = _enhancer_rates(args)
        data = (
            args.train_data_path_and_name_and_type
            if train
            else args.valid_data_path_and_name_and_type
        )
        _check_sample_rates(data or [], in_rate, out_rate)
        seconds = args.segment_seconds
        if not train and args.valid_segment_seconds is not None:
            seconds = args.valid_segment_seconds
        codec = None
        if args.codec_config is not None:
            from espnet2.ualm.codec.config import codec_from_config

            codec = codec_from_config(args.codec_config, args.codec_model_dir).eval()
        preprocessor = EnhancerPairPreprocessor(
            train=train,
            input_sample_rate=in_rate,
            target_sample_rate=out_rate,
            segment=None if seconds is None else int(round(seconds * in_rate)),
            codec=codec,
            seed=args.seed,
            swap_channels_prob=args.swap_channels_prob,
        )
        log_pair_setup(preprocessor)
        return preprocessor

    @classmethod
    def required_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ("target",)

    @classmethod
    def optional_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ("input",)

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> ESPnetEnhancerGANModel:
        enhancer = enhancer_choices.get_class(args.enhancer)(**args.enhancer_conf)
        if next(iter(enhancer.parameters()), None) is None:
            raise ValueError(
                f"--enhancer {args.enhancer} has no parameters: nothing to train "
                "(use it directly at inference)"
            )
        discriminator = discriminator_choices.get_class(args.discriminator)(
            **args.discriminator_conf
        )
        return ESPnetEnhancerGANModel(
            enhancer=enhancer, discriminator=discriminator, **args.model_conf
        )

    @classmethod
    def build_optimizers(
        cls, args: argparse.Namespace, model: ESPnetEnhancerGANModel
    ) -> List[torch.optim.Optimizer]:
        """Optimizer 0 (``--optim``) for the enhancer, 1 (``--optim2``) for the
        discriminator, as ``GANTrainer`` expects."""
        optimizers = []
        for name, conf, params in (
            (args.optim, args.optim_conf, model.enhancer.parameters()),
            (args.optim2, args.optim2_conf, model.discriminator.parameters()),
        ):
            optim_class = optim_classes.get(name)
            if optim_class is None:
                raise ValueError(f"must be one of {list(optim_classes)}: {name}")
            optimizers.append(optim_class(params, **conf))
        return optimizers


def _enhancer_rates(args: argparse.Namespace) -> Tuple[int, int]:
    """Input and output sample rates of the configured enhancer."""
    return enhancer_sample_rates(args.enhancer, args.enhancer_conf)


def _check_sample_rates(
    data: List[Tuple[str, str, str]], input_rate: int, target_rate: int
) -> None:
    """Fails early when the first file of an ``input`` / ``target`` scp is not at
    the enhancer's rate (ESPnet's loader does not pass rates on)."""
    expected = dict(input=input_rate, target=target_rate)
    for path, name, _ in data:
        if name not in expected:
            continue
        with open(path, encoding="utf-8") as f:
            first = f.readline().split(maxsplit=1)
        if len(first) != 2 or first[1].strip().endswith("|"):
            continue
        audio = first[1].strip()
        try:
            rate = audio_info(audio).samplerate
        except AudioReadError as e:
            logging.warning(f"{path}: cannot check the rate of {audio}: {e.detail}")
            continue
        if rate != expected[name]:
            raise ValueError(
                f"{path}: {audio} is at {rate} Hz, the enhancer's {name} rate is "
                f"{expected[name]} Hz"
            )


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
    return enhancer_choices.get_class(name)(**conf).eval()
