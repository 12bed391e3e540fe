"""A task declared once, in a recipe's YAML, runs through every stage: the
manifests, training, inference and scoring all take it from ``--task_templates``."""

import json
import os

import yaml

from espnet2.bin import ualm_inference, ualm_make_manifests, ualm_score
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.model.audio_encoder import encoder_geometry
from espnet2.ualm.testing.tiny_corpus import (
    tiny_train_args,
    tiny_train_config,
    write_tiny_corpus,
)
from espnet2.ualm.testing.tiny_pretrained import write_tiny_codec

# The new task: a clip -> a description of it, read from the caption file,
# answered with text and scored as captioning.
TASK_FILE = """
tasks:
  describe_sound:
    messages:
      - role: user
        content:
          - audio_input: "{audio}"
          - text: "Describe the sound."
      - role: assistant
        content:
          - text: "{description}"
    files: [wav, text]
    fields: {description: text}
    group: understanding
    scoring: captioning
    key_metrics: [cider_d]
    aliases: [describe]
    description: "sound -> free description"
"""


def test_a_yaml_task_runs_through_every_stage(tmp_path, one_torch_thread):
    from espnet2.tasks.ualm import UALMTask
    from espnet2.ualm.pretrained import write_pretrained_dir

    root = str(tmp_path)
    corpus = write_tiny_corpus(root, splits=("train", "valid", "test"))
    tasks_yaml = tmp_path / "tasks.yaml"
    tasks_yaml.write_text(TASK_FILE)
    datasets = tmp_path / "datasets.yaml"
    datasets.write_text(  # with a built-in task beside it (and its codes)
        "splits: [train, valid, test]\ndatasets:\n"
        "  - {data: tiny_sound, task: describe_sound}\n"
        "  - {data: tiny_sound, task: text_to_audio}\n"
    )
    manifests = tmp_path / "manifests"
    encoder_rate = encoder_geometry(
        tiny_train_config()["audio_encoder_conf"]
    ).frame_rate
    ualm_make_manifests.main(
        ["--datasets", str(datasets), "--task_templates", str(tasks_yaml)]
        + ["--audio_root", os.path.join(root, "dump", "audio")]
        + ["--codes_root", os.path.join(root, "dump", "codec")]
        + ["--text_tokenizer", corpus["text_tokenizer"], "--out_dir", str(manifests)]
        + ["--audio_input_frame_rate", f"{encoder_rate:g}"]
    )
    manifest = json.loads(
        (manifests / "train" / "tiny_sound_describe_sound.json").read_text()
    )
    assert manifest["task"] == "describe_sound"
    assert manifest["group"] == "understanding"
    assert sorted(manifest["files"]) == ["text", "wav"]
    assert manifest["num_examples"] == 12 and manifest["num_rejected"] == 0

    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(tiny_train_config(max_epoch=1)))
    exp = str(tmp_path / "exp")
    corpus = {
        **corpus,
        "manifests_train": str(manifests / "train"),
        "manifests_valid": str(manifests / "valid"),
    }
    UALMTask.main(
        cmd=tiny_train_args(corpus, str(config), exp)
        + ["--task_templates", str(tasks_yaml)]
    )
    assert os.path.isfile(os.path.join(exp, "valid.loss.best.pth"))

    decode = tmp_path / "decode.yaml"
    decode.write_text("batch_size: 4\nmax_text_tokens: 8\nenhancer: none\n")
    packed = write_pretrained_dir(
        str(tmp_path / "packed"),
        train_config=os.path.join(exp, "config.yaml"),
        model_file=os.path.join(exp, "valid.loss.best.pth"),
        text_tokenizer=corpus["text_tokenizer"],
        decode_config=str(decode),
        model_name="ualm-tiny-describe",
        **write_tiny_codec(root),
    )
    test_dir = os.path.join(root, "dump", "audio", "tiny_sound_test")
    hyp = str(tmp_path / "decode" / "describe_sound")
    ualm_inference.main(
        ["--model", packed, "--task", "describe", "--data_dir", test_dir]
        + ["--output_dir", hyp, "--task_templates", str(tasks_yaml)]
    )
    ualm_inference.main(["--merge", "--output_dir", hyp])
    hyps = read_kv(os.path.join(hyp, "text"), allow_empty_value=True)
    assert sorted(hyps) == sorted(read_kv(os.path.join(test_dir, "text")))

    (result,) = ualm_score.main(
        ["--output_dir", str(tmp_path / "scores"), "--task_templates", str(tasks_yaml)]
        + ["--eval", "describe_sound", hyp, test_dir]
    )
    assert result.task == "describe_sound" and result.kind == "captioning"
    assert result.key_metrics == ("cider_d",) and "cider_d" in result.metrics
    assert "## describe_sound" in (tmp_path / "scores" / "RESULTS.md").read_text()
