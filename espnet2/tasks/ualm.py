"""The UALM task: ESPnet's AbsTask wiring for training UALM with ESPnet's Trainer.

Pluggable components are ClassChoices, picked by name in the training YAML
(``codec: spec_rvq`` / ``codec_conf: {...}``). The codec is chosen here so that
its geometry (codebooks, frame rate) reaches the model; the decoder, acoustic
encoder and adapter join with the model.
"""

import argparse
from typing import Callable, Collection, Dict, List, Optional, Tuple

import numpy as np
import torch

from espnet2.tasks.abs_task import AbsTask
from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet2.train.trainer import Trainer
from espnet2.ualm.codec import codec_choices
from espnet2.utils.types import str_or_none


class UALMTask(AbsTask):
    num_optimizers: int = 1
    class_choices_list = [codec_choices]
    trainer = Trainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(description="UALM task related")
        group.add_argument(
            "--text_tokenizer",
            type=str_or_none,
            default=None,
            help="stage-3 text tokenizer directory (data/text_tokenizer)",
        )
        group.add_argument(
            "--codec_model_dir",
            type=str_or_none,
            default=None,
            help="fitted codec directory (exp/codec) for trainable codecs",
        )
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    def build_collate_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Callable[
        [Collection[Tuple[str, Dict[str, np.ndarray]]]],
        Tuple[List[str], Dict[str, torch.Tensor]],
    ]:
        raise NotImplementedError(
            "UALM training needs the UALM model and sequence builder, which are "
            "not in this version yet"
        )

    @classmethod
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, Dict[str, np.ndarray]], Dict[str, np.ndarray]]]:
        return None

    @classmethod
    def required_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ()

    @classmethod
    def optional_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ("codes", "text", "speech", "dialogue")

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> AbsESPnetModel:
        raise NotImplementedError(
            "UALM training needs the UALM model, which is not in this version yet"
        )
