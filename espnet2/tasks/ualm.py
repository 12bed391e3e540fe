"""The UALM task: ESPnet's AbsTask wiring for training UALM with ESPnet's Trainer.

Everything after the data is ESPnet's: ``Trainer`` (or ``DeepSpeedTrainer``
with ``--use_deepspeed true``), logging, ``images/`` plots, checkpoints,
``--resume``, ``--init_param``, DDP. What is UALM's:

Model (ClassChoices, picked by name in the YAML):
    ``--backbone hf_causal_lm``  any ``AutoModelForCausalLM``;
        ``backbone_conf``: ``build_backbone``'s keys (``pretrained_dir`` or
        ``config``, ``attn_implementation``, ``dtype``,
        ``gradient_checkpointing``, ``new_row_init``);
    ``--audio_encoder whisper|qwen3_omni|none``  ``audio_encoder_conf``:
        ``pretrained_dir`` or ``config``, ``pool_stride``, ``freeze``,
        ``window_batch_size`` (and ``sample_rate``/``hop_length``/``n_fft``
        with ``config``);
    ``--audio_adapter mlp|linear``  ``audio_adapter_conf``: ``hidden_size``
        (``--adapter`` is ESPnet's LoRA option);
    ``--model_conf``  ``UALMModel``'s keys (``cfg_dropout_prob``, ...);
    ``--freeze_for_alignment true``  modality alignment: only the adapter,
        the audio rows and the stream embeddings train.
    ``--preference_conf``  DPO against a frozen reference checkpoint
        (``reference``, ``beta``, ``ce_weight``; ``espnet2/ualm/model/dpo.py``);
        preference batches carry ``pair_index`` and ``chosen``.

Vocabulary: ``--vocabulary`` (a ``vocabulary.json``), or the text
tokenizer's size (``--text_tokenizer``) and the codec geometry, read from the
``codec.json`` that stage 4 wrote beside the codes the manifests name (no
codec is built at train time; only when no manifest has codes is it built
from ``--codec`` / ``--codec_conf`` / ``--codec_model_dir``). The layout is
written to ``<output_dir>/vocabulary.json``; with ``--resume`` a different
layout there is an error (a checkpoint's rows would be mixed up).
``build_model_from_file`` reads it from beside ``config.yaml``, so a trained
model builds without the training data.

Data: stage-5 manifests instead of ``--train_data_path_and_name_and_type``
and shape files (which this task refuses)::

    --train_manifest_dir dump/manifests/train --valid_manifest_dir dump/manifests/valid

``blend:`` (YAML) selects and weights the training datasets
(``Blend.from_config``; names resolve in ``--train_manifest_dir``; default:
every manifest there, factor 1). ``valid_blend:`` does the same for
validation (default: the training blend's names, all valid data); its
batches are drawn once and kept, each from a single dataset, and the model's
validation loss is also reported per dataset (``loss_<manifest name>``).
Batches: ``--batch_mode pack`` (best-fit rows of ``--max_tokens_per_row``
positions, ``--rows_per_batch`` or ``--batch_tokens`` rows per batch, all
ranks together) or ``bucket`` (``--batch_tokens`` padded positions per
batch, one example per row). ESPnet's ``--num_iters_per_epoch`` works as
usual. ``--batch_size``, ``--batch_bins``, ``--batch_type`` are not used.
"""

import argparse
import logging
import os
from pathlib import Path
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)

import numpy as np
import torch

from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory
from espnet2.tasks.abs_task import AbsTask
from espnet2.train.distributed_utils import DistributedOption
from espnet2.train.trainer import Trainer
from espnet2.ualm.codec import codec_choices
from espnet2.ualm.data.codes_io import read_geometry
from espnet2.ualm.data.safe_io import read_checkpoint, read_yaml
from espnet2.ualm.model.audio_encoder import encoder_geometry
from espnet2.ualm.model.dpo import PreferenceObjective
from espnet2.ualm.model.factory import (
    audio_adapter_choices,
    audio_encoder_choices,
    backbone_choices,
    build_model_from_config,
    model_config_of,
)
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.text.tokenizer import load_text_tokenizer
from espnet2.ualm.tokens.sequence import LOSS_REGIONS, SequenceBuilder
from espnet2.ualm.tokens.tasks import load_tasks
from espnet2.ualm.tokens.vocabulary import UALMVocabulary
from espnet2.ualm.train.blend import Blend, BlendSource
from espnet2.ualm.train.dataset import (
    AudioInputGeometry,
    UALMCollateFn,
    UALMDataset,
    manifest_paths,
    read_manifest,
    sources_of_batch,
)
from espnet2.ualm.train.resume import ResumingTrainer
from espnet2.ualm.train.sampler import (
    BucketBatchSampler,
    PackedBatchSampler,
    RankSampler,
    shard_batches,
)
from espnet2.ualm.train.threads import ThreadCountFromFile
from espnet2.utils.get_default_kwargs import get_default_kwargs
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import int_or_none, str2bool, str_or_none

VOCABULARY_FILE = "vocabulary.json"
BATCH_MODES = ("pack", "bucket")

# ----- data configs, vocabulary and geometry --------------------------------------


def blend_conf(
    conf: Optional[Dict[str, Any]], manifest_dir: Optional[str]
) -> Dict[str, Any]:
    """A blend config with every dataset's ``manifest`` path filled in.

    Without ``datasets``, every manifest of ``manifest_dir`` is used.
    """
    conf = dict(conf or {})
    entries = conf.get("datasets")
    if not entries:
        if manifest_dir is None:
            raise ValueError("no blend datasets and no manifest directory")
        entries = [{"name": n} for n in manifest_paths(manifest_dir)]
    resolved = []
    for i, entry in enumerate(entries):
        entry = dict(entry)
        if "manifest" not in entry:
            if "name" not in entry or manifest_dir is None:
                raise ValueError(
                    f"blend datasets[{i}] needs 'manifest', or 'name' with a "
                    "manifest directory"
                )
            entry["manifest"] = os.path.join(manifest_dir, f"{entry['name']}.json")
        if not os.path.isfile(entry["manifest"]):
            raise FileNotFoundError(
                f"blend datasets[{i}]: manifest {entry['manifest']} not found"
            )
        resolved.append(entry)
    conf["datasets"] = resolved
    return conf


def manifest_dataset(manifest: Mapping[str, Any]) -> str:
    """The datasets-config entry of a manifest (its name, for manifests
    written before stage 5 recorded it)."""
    return manifest.get("dataset", manifest["name"])


def valid_blend_conf(args: argparse.Namespace) -> Dict[str, Any]:
    """``--valid_blend``; without datasets, every validation manifest of the
    training blend's datasets-config entries (a corpus may have several
    training directories and one validation directory, or the reverse)."""
    conf = dict(args.valid_blend or {})
    if not conf.get("datasets"):
        train = blend_conf(args.blend, args.train_manifest_dir)
        wanted: List[str] = []  # in the training blend's order
        for entry in train["datasets"]:
            dataset = manifest_dataset(read_manifest(entry["manifest"]))
            if dataset not in wanted:
                wanted.append(dataset)
        if args.valid_manifest_dir is None:
            raise ValueError("--valid_manifest_dir or valid_blend datasets needed")
        valid: Dict[str, List[str]] = {}
        for name, path in manifest_paths(args.valid_manifest_dir).items():
            valid.setdefault(manifest_dataset(read_manifest(path)), []).append(name)
        missing = [d for d in wanted if d not in valid]
        if missing:
            logging.warning(f"no validation manifests for {missing}")
        conf["datasets"] = [
            {"name": name} for d in wanted for name in sorted(valid.get(d, []))
        ]
    return blend_conf(conf, args.valid_manifest_dir)


def codec_geometry_of(args: argparse.Namespace) -> Dict[str, Any]:
    """Codebooks and codebook size of the codes the manifests name.

    Read from stage 4's ``codec.json``; all must agree. Without any codes,
    the codec is built from ``--codec``/``--codec_conf``.
    """
    found: Dict[Tuple[int, int], str] = {}
    for conf in (
        blend_conf(args.blend, args.train_manifest_dir),
        valid_blend_conf(args),
    ):
        for entry in conf["datasets"]:
            codes = read_manifest(entry["manifest"])["files"].get("codes")
            if codes is None:
                continue
            geometry = read_geometry(os.path.dirname(codes))
            found.setdefault(
                (int(geometry["n_codebooks"]), int(geometry["codebook_size"])),
                os.path.dirname(codes),
            )
    if len(found) > 1:
        raise ValueError(
            "the manifests' codes come from different codec geometries: "
            + "; ".join(f"{d}: {k[0]} x {k[1]}" for k, d in found.items())
        )
    if found:
        ((n_codebooks, codebook_size), where), *_ = found.items()
        logging.info(f"codec geometry from {where}/codec.json")
        return {"n_codebooks": n_codebooks, "codebook_size": codebook_size}
    conf = dict(args.codec_conf or {})
    if args.codec_model_dir is not None:
        conf["model_dir"] = args.codec_model_dir
    codec = codec_choices.get_class(args.codec)(**conf)
    logging.info(f"codec geometry from --codec {args.codec}")
    return {"n_codebooks": codec.n_codebooks, "codebook_size": codec.codebook_size}


def audio_input_geometry(args: argparse.Namespace) -> Optional[AudioInputGeometry]:
    """The encoder's rate and samples per frame, asked of the encoder module
    from its config (``encoder_geometry``), without building it."""
    if args.audio_encoder is None:
        return None
    return encoder_geometry(args.audio_encoder_conf or {}, args.audio_encoder)


def _is_rank0() -> bool:
    return not (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_rank() != 0
    )


# ----- model hooks ---------------------------------------------------------------


def report_loss_per_dataset(module, args, kwargs, output):
    """Forward hook: in evaluation, ``loss_<dataset>`` for single-dataset batches.

    Validation batches each come from one dataset (``valid_batches``), and
    every rank holds rows of the same batch, so all ranks add the same key.
    """
    if module.training or "utt_id" not in kwargs:
        return None
    loss, stats, weight = output
    names = sources_of_batch(kwargs["utt_id"])
    if len(names) != 1:
        return None
    key = f"loss_{names[0]}"
    if key in stats:
        raise ValueError(f"dataset name {names[0]} clashes with the stat {key}")
    return loss, {**stats, key: stats["loss"]}, weight


def loss_as_sum(module, args, kwargs, output):
    """Forward hook for ``DeepSpeedTrainer``, which divides the returned loss by
    the all-reduced weight: return the sum over targets, not their mean, so
    the gradient is that of the global per-token mean (as with ``Trainer``)."""
    loss, stats, weight = output
    return loss * weight.to(loss.dtype), stats, weight


# ----- the task ------------------------------------------------------------------


class UALMTask(AbsTask):
    num_optimizers: int = 1
    class_choices_list = [
        backbone_choices,
        audio_encoder_choices,
        audio_adapter_choices,
        codec_choices,
    ]
    trainer = ResumingTrainer  # falls back to an epoch checkpoint (train/resume.py)

    @classmethod
    def main_worker(cls, args: argparse.Namespace) -> None:
        """ESPnet's worker, then the process group torn down. ESPnet leaves it
        to the interpreter's exit, where gloo's threads sometimes abort a rank
        that finished training ("terminate called without an active
        exception", exit -6: one run in about six of the two-rank test)."""
        trainer = cls.trainer
        # ESPnet takes DeepSpeed only with its own Trainer (which then resumes
        # from DeepSpeed's checkpoint directory, not checkpoint.pth)
        if getattr(args, "use_deepspeed", False) and trainer is ResumingTrainer:
            cls.trainer = Trainer
        try:
            super().main_worker(args)
        finally:
            cls.trainer = trainer  # ESPnet sets it to DeepSpeedTrainer
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.set_defaults(
            required=["output_dir", "text_tokenizer"],
            num_att_plot=0,  # no attention plots for a decoder-only LM
            use_tensorboard=False,  # tensorboard is not a dependency
        )
        group = parser.add_argument_group(description="UALM task related")
        group.add_argument(
            "--text_tokenizer",
            type=str_or_none,
            default=None,
            help="stage-3 text tokenizer directory (data/text_tokenizer)",
        )
        group.add_argument(
            "--vocabulary",
            type=str_or_none,
            default=None,
            help="vocabulary.json to use instead of deriving the layout from the "
            "tokenizer and the codes (fine-tuning, inference)",
        )
        group.add_argument(
            "--codec_model_dir",
            type=str_or_none,
            default=None,
            help="fitted codec directory (exp/codec); only used when no manifest "
            "has codes (the geometry is then read from the codec)",
        )
        group.add_argument(
            "--model_conf",
            action=NestedDictAction,
            default={
                k: v
                for k, v in get_default_kwargs(UALMModel).items()
                if k not in ("audio_encoder", "adapter")  # built from their options
            },
            help="keyword arguments of UALMModel",
        )
        group.add_argument(
            "--preference_conf",
            action=NestedDictAction,
            default={},
            help="DPO instead of CE (espnet2/ualm/model/dpo.py): reference "
            "(the reference model's checkpoint, e.g. the CE-on-winners stage's "
            "valid.loss.best.pth), beta, ce_weight; empty: CE",
        )
        group.add_argument(
            "--freeze_for_alignment",
            type=str2bool,
            default=False,
            help="modality alignment: train only the audio adapter, the audio "
            "embedding rows and the stream embeddings",
        )
        group.add_argument(
            "--loss_region",
            type=str,
            default="assistant",
            choices=LOSS_REGIONS,
            help="targets: the assistant's turns, or every turn",
        )
        group.add_argument(
            "--task_templates",
            default=None,
            help="YAML file (or mapping) of extra tasks and their templates "
            "(espnet2.ualm.tokens.tasks)",
        )

        group.add_argument(
            "--num_threads_file",
            type=str_or_none,
            default=None,
            help="a file holding a thread count: read at the start of every "
            "training epoch and, once it exists, the intra-op threads are set to "
            "it (ualm.sh writes it when the background enhancer is done, handing "
            "its core to the LM; espnet2/ualm/train/threads.py)",
        )
        group = parser.add_argument_group(description="UALM data related")
        group.add_argument(
            "--train_manifest_dir",
            type=str_or_none,
            default=None,
            help="stage-5 manifests of the training split (dump/manifests/train)",
        )
        group.add_argument(
            "--valid_manifest_dir",
            type=str_or_none,
            default=None,
            help="stage-5 manifests of the validation split (dump/manifests/valid)",
        )
        group.add_argument(
            "--blend",
            action=NestedDictAction,
            default=dict(),
            help="training blend: {group_weights, epoch_tokens, datasets: "
            "[{name|manifest, weight|factor}]} (Blend.from_config)",
        )
        group.add_argument(
            "--valid_blend",
            action=NestedDictAction,
            default=dict(),
            help="validation blend, same keys (default: the training datasets)",
        )
        group.add_argument(
            "--batch_mode",
            type=str,
            default="pack",
            choices=BATCH_MODES,
            help="pack: best-fit packed rows; bucket: length buckets",
        )
        group.add_argument(
            "--max_tokens_per_row",
            type=int,
            default=2048,
            help="row length in LM positions (pack); longest example (bucket)",
        )
        group.add_argument(
            "--rows_per_batch",
            type=int_or_none,
            default=None,
            help="rows per batch, all ranks together (pack)",
        )
        group.add_argument(
            "--batch_tokens",
            type=int_or_none,
            default=None,
            help="positions per batch, all ranks together (pack: rows = "
            "batch_tokens // max_tokens_per_row; bucket: padded budget)",
        )
        group.add_argument(
            "--pad_to_multiple_of",
            type=int,
            default=1,
            help="round each batch's length up to a multiple of this",
        )
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    def check_required_command_args(cls, args: argparse.Namespace) -> None:
        super().check_required_command_args(args)
        problems = []
        if args.collect_stats:
            problems.append("UALM has no --collect_stats stage (nothing to normalise)")
        for opt in ("train", "valid"):
            if getattr(args, f"{opt}_data_path_and_name_and_type") or getattr(
                args, f"{opt}_shape_file"
            ):
                problems.append(
                    f"--{opt}_data_path_and_name_and_type / --{opt}_shape_file are "
                    f"not used: give --{opt}_manifest_dir (stage-5 manifests)"
                )
        if args.train_manifest_dir is None and not (args.blend or {}).get("datasets"):
            problems.append("--train_manifest_dir (or blend: datasets) is required")
        if args.valid_manifest_dir is None and not (args.valid_blend or {}).get(
            "datasets"
        ):
            problems.append(
                "--valid_manifest_dir (or valid_blend: datasets) is required"
            )
        if args.multiple_iterator or args.iterator_type != "sequence":
            problems.append("UALM builds its own sequence iterator (no other types)")
        if args.batch_mode == "pack" and (args.rows_per_batch is None) == (
            args.batch_tokens is None
        ):
            problems.append(
                "--batch_mode pack needs --rows_per_batch or --batch_tokens"
            )
        if args.batch_mode == "bucket" and args.batch_tokens is None:
            problems.append("--batch_mode bucket needs --batch_tokens")
        if problems:
            raise SystemExit("ualm_train: " + "\n  ".join(["error:", *problems]))

    # ----- model ----------------------------------------------------------------

    @classmethod
    def build_vocabulary(cls, args: argparse.Namespace) -> UALMVocabulary:
        """The layout: ``--vocabulary``, or the tokenizer size and the codes'
        geometry. Kept as ``<output_dir>/vocabulary.json``; when resuming (a
        checkpoint exists), a different layout there is an error."""
        if getattr(args, "vocabulary", None):
            vocab = UALMVocabulary.load(args.vocabulary)
        else:
            tokenizer = load_text_tokenizer(args.text_tokenizer)
            geometry = codec_geometry_of(args)
            vocab = UALMVocabulary(text_vocab_size=tokenizer.vocab_size, **geometry)
        path = os.path.join(args.output_dir, VOCABULARY_FILE)
        if os.path.exists(path):
            saved = UALMVocabulary.load(path)
            if saved == vocab:
                return vocab
            checkpoint = os.path.join(args.output_dir, "checkpoint.pth")
            if args.resume and os.path.exists(checkpoint):
                saved.check_same(vocab, where=f"run to resume ({path})")
            logging.warning(f"{path} differs from this run's vocabulary; replaced")
        if _is_rank0():
            os.makedirs(args.output_dir, exist_ok=True)
            vocab.save(path)
        return vocab

    @classmethod
    def build_model_from_file(
        cls,
        config_file: Optional[Union[Path, str]] = None,
        model_file: Optional[Union[Path, str]] = None,
        device: str = "cpu",
    ) -> Tuple[UALMModel, argparse.Namespace]:
        """The trained model from its ``config.yaml`` and checkpoint.

        The layout comes from the ``vocabulary.json`` beside the config, so
        the training data need not exist any more.
        """
        if config_file is None:
            if model_file is None:
                raise ValueError("give config_file or model_file")
            config_file = Path(model_file).parent / "config.yaml"
        config_file = Path(config_file)
        args = argparse.Namespace(**(read_yaml(str(config_file)) or {}))
        args.vocabulary = str(config_file.parent / VOCABULARY_FILE)
        args.output_dir = str(config_file.parent)
        args.resume = True  # never replace the saved layout
        args.preference_conf = {}  # a trained model needs no DPO reference
        model = cls.build_model(args)
        if model_file is not None:
            state = read_checkpoint(str(model_file))  # weights only: no code runs
            model.load_state_dict(state.get("module", state))
        return model.to(device), args

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> UALMModel:
        """The model of the run's model options (``build_model_from_config``
        checks them), then the training-only parts: freezing and loss hooks."""
        vocab = cls.build_vocabulary(args)
        model = build_model_from_config(model_config_of(vars(args)), vocab)
        if args.freeze_for_alignment:
            model.freeze_for_modality_alignment()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        logging.info(
            f"UALM: {total / 1e6:.2f} M parameters, {trainable / 1e6:.2f} M "
            f"trainable{' (modality alignment)' if args.freeze_for_alignment else ''}"
        )
        if getattr(args, "preference_conf", None):  # absent in older configs
            model.attach_preference(
                cls.build_preference(args.preference_conf, vars(args), vocab)
            )
        model.register_forward_hook(report_loss_per_dataset, with_kwargs=True)
        if (
            getattr(args, "use_deepspeed", False)
            and torch.distributed.is_available()
            and torch.distributed.is_initialized()
        ):
            model.register_forward_hook(loss_as_sum, with_kwargs=True)
        return model

    @staticmethod
    def build_preference(
        conf: Dict[str, Any], config: Dict[str, Any], vocab: UALMVocabulary
    ) -> PreferenceObjective:
        """The DPO objective of ``--preference_conf``: its reference is the
        run's model architecture with the weights of ``conf["reference"]``,
        read again on every start, so a resumed run has the same one."""
        conf = dict(conf)
        unknown = sorted(set(conf) - {"reference", "beta", "ce_weight"})
        if unknown:
            raise ValueError(
                f"--preference_conf: unknown keys {unknown}; known: reference, "
                "beta, ce_weight"
            )
        path = conf.pop("reference", None)
        if not path or not os.path.isfile(path):
            raise FileNotFoundError(
                f"--preference_conf reference: {path!r} is not a checkpoint file"
            )
        reference = build_model_from_config(model_config_of(config), vocab)
        state = read_checkpoint(path)
        try:
            reference.load_state_dict(state.get("module", state))
        except RuntimeError as e:
            raise ValueError(f"--preference_conf reference {path}: {e}") from e
        logging.info(f"DPO against the reference {path}: {conf}")
        return PreferenceObjective(reference, **conf)

    # ----- data -----------------------------------------------------------------

    @classmethod
    def build_collate_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Callable[
        [Collection[Tuple[str, Any]]],
        Tuple[List[str], Dict[str, torch.Tensor]],
    ]:
        return UALMCollateFn(pad_to_multiple_of=args.pad_to_multiple_of)

    @classmethod
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, Dict[str, np.ndarray]], Dict[str, np.ndarray]]]:
        return None  # UALMDataset builds the sequences itself

    @classmethod
    def required_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ()

    @classmethod
    def optional_data_names(
        cls, train: bool = True, inference: bool = False
    ) -> Tuple[str, ...]:
        return ()

    @classmethod
    def build_dataset_for(
        cls, args: argparse.Namespace, manifests: List[Dict[str, Any]]
    ) -> UALMDataset:
        """The dataset reading ``manifests`` in this run's vocabulary."""
        tokenizer = load_text_tokenizer(args.text_tokenizer)
        vocab = UALMVocabulary.load(os.path.join(args.output_dir, VOCABULARY_FILE))
        builder = SequenceBuilder(vocab, tokenizer, loss_region=args.loss_region)
        return UALMDataset(
            manifests,
            builder,
            audio_input=audio_input_geometry(args),
            tasks=load_tasks(args.task_templates),
        ).preload()

    @classmethod
    def _sampler_kwargs(cls, args: argparse.Namespace, world_size: int) -> dict:
        if args.batch_mode == "pack":
            return dict(
                max_tokens_per_row=args.max_tokens_per_row,
                rows_per_batch=args.rows_per_batch,
                batch_tokens=args.batch_tokens,
                world_size=world_size,
            )
        return dict(
            batch_tokens=args.batch_tokens,
            max_length=args.max_tokens_per_row,
            world_size=world_size,
        )

    @classmethod
    def _sampler(
        cls, args: argparse.Namespace, blend: Blend, world_size: int, shuffle: bool
    ):
        kind = PackedBatchSampler if args.batch_mode == "pack" else BucketBatchSampler
        return kind(
            blend,
            seed=args.seed,
            shuffle=shuffle,
            **cls._sampler_kwargs(args, world_size),
        )

    @classmethod
    def valid_batches(
        cls, args: argparse.Namespace, blend: Blend, world_size: int
    ) -> List[Tuple[str, ...]]:
        """The validation batches: drawn once, each from a single dataset."""
        draw = blend.draw(args.seed)
        batches: List[Tuple[str, ...]] = []
        for src in blend.sources:
            prefix = f"{src.name}/"
            picked = {
                k[len(prefix) :]: int(n)
                for k, n in zip(draw.keys, draw.lengths)
                if k.startswith(prefix)
            }
            if not picked:
                continue
            one = BlendSource.from_lengths(src.name, src.task, picked)
            sampler = cls._sampler(args, Blend([one]), world_size, shuffle=False)
            batches += sampler.generate(args.seed)
        return batches

    @classmethod
    def build_iter_factory(
        cls,
        args: argparse.Namespace,
        distributed_option: DistributedOption,
        mode: str,
        kwargs: Optional[dict] = None,
    ) -> AbsIterFactory:
        """Manifests -> blend -> sampler -> ``SequenceIterFactory``.

        Training passes the sampler itself, so each epoch draws and packs
        anew (seeded by ``seed + epoch``: resuming reproduces it); validation
        passes fixed batches.
        """
        if mode not in ("train", "valid"):
            raise NotImplementedError(f"UALM has no {mode} iterator")
        if distributed_option.distributed:
            world_size = torch.distributed.get_world_size()
            rank = torch.distributed.get_rank()
        else:
            world_size, rank = 1, 0
        if mode == "train":
            conf = blend_conf(args.blend, args.train_manifest_dir)
        else:
            conf = valid_blend_conf(args)
        manifests = [read_manifest(e["manifest"]) for e in conf["datasets"]]
        blend = Blend.from_config(conf)
        dataset = cls.build_dataset_for(args, manifests)
        if mode == "train":
            batches = cls._sampler(args, blend, world_size, shuffle=True)
            if world_size > 1:
                batches = RankSampler(batches, rank, world_size)
        else:
            batches = cls.valid_batches(args, blend, world_size)
            if world_size > 1:
                batches = shard_batches(batches, rank, world_size)
        logging.info(f"[{mode}] {dataset}; batches: {batches!r:.300}")
        factory = SequenceIterFactory(
            dataset=dataset,
            batches=batches,
            seed=args.seed,
            num_iters_per_epoch=args.num_iters_per_epoch if mode == "train" else None,
            shuffle=mode == "train",
            num_workers=args.num_workers,
            collate_fn=cls.build_collate_fn(args, train=mode == "train"),
            pin_memory=args.ngpu > 0,
        )
        if mode == "train" and getattr(args, "num_threads_file", None):
            return ThreadCountFromFile(factory, args.num_threads_file)
        return factory
