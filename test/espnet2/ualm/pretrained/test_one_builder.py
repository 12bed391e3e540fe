"""Training (``UALMTask.build_model``) and packed-model loading build through
the one builder: the same model from the same config, the same refusals."""

import copy
import os
import shutil

import pytest
import yaml

from espnet2.tasks.ualm import UALMTask
from espnet2.ualm.model.factory import MODEL_CONFIG_KEYS
from espnet2.ualm.pretrained import PretrainedFormatError, read_index
from espnet2.ualm.pretrained.load import build_model

# model-part overrides that no builder may accept, and what both say
BAD_CONFIGS = [
    ({"backbone": "rnn_lm"}, "backbone must be one of \\['hf_causal_lm'\\]"),
    (
        {"audio_encoder": "wav2vec"},
        "audio_encoder must be one of \\['qwen3_omni', 'whisper'\\]",
    ),
    (
        {"audio_adapter": "linear", "audio_adapter_conf": {"type": "mlp"}},
        "audio_adapter linear but audio_adapter_conf has type mlp",
    ),
    ({"audio_adapter_conf": {"width": 3}}, "adapter: unknown keys \\['width'\\]"),
    ({"model_conf": {"cfg_dropout_prob": 1.5}}, "cfg_dropout_prob must be in"),
]


def _yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _write_yaml(conf, path):
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(conf, f)


def _with(conf, override):
    conf = copy.deepcopy(conf)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(conf.get(key), dict):
            conf[key] = {**conf[key], **value}
        else:
            conf[key] = value
    return conf


def _training_copy(experiment, tmp_path, override):
    """A copy of the training run's config (and the vocabulary beside it)
    with ``override`` applied to its model part."""
    exp = os.path.dirname(experiment["train_config"])
    out = tmp_path / "train"
    out.mkdir()
    shutil.copy(os.path.join(exp, "vocabulary.json"), out)
    _write_yaml(_with(_yaml(experiment["train_config"]), override), out / "config.yaml")
    return str(out / "config.yaml")


def _packed_copy(packed_dir, tmp_path, override):
    """A copy of the packed directory with ``override`` applied to its
    ``model/config.yaml``."""
    out = str(tmp_path / "packed")
    shutil.copytree(packed_dir, out)
    config = os.path.join(out, "model", "config.yaml")
    _write_yaml(_with(_yaml(config), override), config)
    return read_index(out)


def test_packed_config_holds_the_model_keys_only(packed_dir):
    assert set(_yaml(read_index(packed_dir).model_config)) == set(MODEL_CONFIG_KEYS)


def test_training_and_packed_models_have_the_same_state_dict(experiment, packed_dir):
    trained, _ = UALMTask.build_model_from_file(experiment["train_config"])
    loaded = build_model(read_index(packed_dir))
    shapes = {k: tuple(v.shape) for k, v in trained.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in loaded.state_dict().items()}


@pytest.mark.parametrize("override, message", BAD_CONFIGS)
def test_a_bad_config_is_refused_alike_by_training_and_loading(
    experiment, packed_dir, tmp_path, override, message
):
    config = _training_copy(experiment, tmp_path, override)
    with pytest.raises(ValueError, match=message) as training:
        UALMTask.build_model_from_file(config)
    files = _packed_copy(packed_dir, tmp_path, override)
    with pytest.raises(PretrainedFormatError, match=message) as loading:
        build_model(files)
    # the same message; loading names the file first
    assert str(loading.value) == f"{files.model_config}: {training.value}"


def test_unknown_keys_of_a_packed_config_are_named(packed_dir, tmp_path):
    files = _packed_copy(packed_dir, tmp_path, {"adapter_conf": {}})
    message = "unknown keys \\['adapter_conf'\\]"
    with pytest.raises(PretrainedFormatError, match=message):
        build_model(files)
