"""The GPU recipe for real corpora (egs2/ualm/ualm1): its files fit together.

It cannot run here (no corpora, checkpoints or GPUs), so this checks what can
be checked on a CPU: ualm.sh accepts every option run.sh gives and stops at
stage 1 naming the empty corpus variable; the datasets config names exactly
the directories local/data.sh makes; the decode and codec configs load.
"""

import os
import re
import shutil
import subprocess

import yaml

from espnet2.ualm.codec.config import load_codec_config
from espnet2.ualm.data.datasets_config import (
    decode_sets,
    load_datasets_config,
    split_dirs,
)
from espnet2.ualm.inference.pipeline import DecodeSettings
from espnet2.ualm.tokens.tasks import TASKS

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
)
RECIPE = os.path.join(ROOT, "egs2", "ualm", "ualm1")
DB_VARS = ("AUDIOCAPS", "AUDIOCAPS_AUDIO", "CLOTHO", "LIBRISPEECH", "AF3", "ETTA")


def _default(var: str, script: str) -> str:
    """A ``name="value"`` default of a shell script."""
    with open(script, encoding="utf-8") as f:
        match = re.search(rf'^{var}="([^"]*)"', f.read(), re.M)
    assert match, f"{var} not in {script}"
    return match.group(1)


def _data_sh_dirs() -> set:
    """The data directories local/data.sh makes with its default splits."""
    data_sh = os.path.join(RECIPE, "local", "data.sh")
    dirs = {f"audiocaps_{s}" for s in _default("audiocaps_splits", data_sh).split()}
    dirs |= {f"clotho_{s}" for s in _default("clotho_splits", data_sh).split()}
    dirs |= {
        "librispeech_" + s.replace("-", "_")
        for s in _default("librispeech_splits", data_sh).split()
    }
    return dirs


def test_the_setup_has_what_ualm_sh_needs():
    for name in ("run.sh", "cmd.sh", "path.sh", "db.sh", "local/data.sh"):
        assert os.path.isfile(os.path.join(RECIPE, name)), name
    assert os.access(os.path.join(RECIPE, "run.sh"), os.X_OK)
    assert os.path.realpath(os.path.join(RECIPE, "ualm.sh")) == os.path.join(
        ROOT, "egs2", "ualm", "ualm.sh"
    )
    assert os.path.isdir(os.path.join(RECIPE, "scripts"))
    with open(os.path.join(RECIPE, "run.sh"), encoding="utf-8") as f:
        named = re.findall(r"(conf/[\w.]+\.(?:yaml|json))", f.read())
    assert len(named) >= 6
    for conf in named:
        assert os.path.isfile(os.path.join(RECIPE, conf)), conf


def test_datasets_config_names_the_directories_data_sh_makes():
    conf = load_datasets_config(
        os.path.join(RECIPE, "conf", "datasets.yaml"), known_tasks=TASKS
    )
    made = _data_sh_dirs()
    for split in conf["splits"]:
        assert split_dirs(conf, split), split
        assert set(split_dirs(conf, split)) <= made, split
    tasks = {task for _, task in decode_sets(conf)}
    assert tasks == {"text_to_audio", "audio_caption", "asr", "tts"}
    assert ("librispeech_test_other", "asr") in decode_sets(conf)
    assert ("librispeech_test_other", "tts") not in decode_sets(conf)


def test_decode_and_codec_configs_load():
    with open(os.path.join(RECIPE, "conf", "decode.yaml"), encoding="utf-8") as f:
        settings = DecodeSettings.from_dict(yaml.safe_load(f))
    assert settings.cfg_scale == 3.0 and settings.backend == "auto"
    codec = load_codec_config(os.path.join(RECIPE, "conf", "codec.yaml"))
    assert codec["codec"] == "xcodec" and "model_dir" in codec["codec_conf"]


def test_run_sh_options_are_ualm_sh_options(tmp_path):
    """run.sh in a copy of the tree: every option it passes is accepted, and
    stage 1 stops naming the corpus variable db.sh leaves empty."""
    egs = tmp_path / "egs2" / "ualm"
    shutil.copytree(RECIPE, egs / "ualm1", symlinks=True)
    shutil.copy(os.path.join(ROOT, "egs2", "ualm", "ualm.sh"), egs)
    shutil.copytree(os.path.join(ROOT, "egs2", "ualm", "scripts"), egs / "scripts")
    env = {k: v for k, v in os.environ.items() if k not in DB_VARS}
    env["UALM_MAIN_ROOT"] = ROOT
    out = subprocess.run(
        ["bash", "run.sh", "--stop_stage", "1"],
        cwd=egs / "ualm1",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = out.stdout + out.stderr
    assert out.returncode != 0
    stage1 = "Stage 1: data preparation (local/data.sh --corpora audiocaps,clotho,"
    assert stage1 in log, log[-3000:]
    assert "AUDIOCAPS is empty" in log, log[-3000:]
    assert "audiocaps clotho librispeech" in log  # the commas became spaces
