"""ualm_pack: the directory from a training run, then card + archive."""

import os
import subprocess
import sys
import zipfile

from espnet2.bin.ualm_pack import main
from espnet2.ualm.pretrained import read_index


def test_pack_directory_then_archive(experiment, decode_config, tmp_path):
    out = str(tmp_path / "packed")
    main(
        [
            "--out_dir", out,
            "--train_config", experiment["train_config"],
            "--model_file", experiment["model_file"],
            "--text_tokenizer", experiment["text_tokenizer"],
            "--codec_config", experiment["codec_config"],
            "--codec_model_dir", experiment["codec_model_dir"],
            "--decode_config", decode_config,
        ]
    )  # fmt: skip
    assert read_index(out).decode_config
    results = tmp_path / "RESULTS.md"
    results.write_text("# RESULTS\n\nWER 10.0\n")
    archive = str(tmp_path / "ualm.zip")
    main(["--out_dir", out, "--results", str(results), "--archive", archive])
    with zipfile.ZipFile(archive) as z:
        card = z.read("packed/README.md").decode()
    assert "WER 10.0" in card
    assert os.path.getsize(archive) > 0


# ESPnet 202511 installs nltk; ESPnet 202611 no longer does (nothing to
# download then, and the rest of the check still holds).
_NO_NLTK = """
import sys
try:
    import nltk
except ImportError:
    nltk = None

def refuse(*args, **kwargs):
    raise SystemExit("nltk.download was called")

if nltk is not None:
    nltk.download = refuse
import espnet2.bin.ualm_pack
import espnet2.ualm.pretrained.build
from espnet2.tasks.ualm_enhancer import UALMEnhancerTask, load_enhancer
assert "g2p_en" not in sys.modules, "the pack path imports g2p_en (and nltk data)"
import argparse
# stage 8 training needs it
UALMEnhancerTask.build_collate_fn(argparse.Namespace(), train=True)
assert nltk is None or nltk.download is refuse
print("offline")
"""


def test_packing_and_the_enhancer_task_never_download_nltk_data():
    """ESPnet's preprocessor imports g2p_en, which downloads NLTK data at import
    time: the pack path never imports it, and stage 8 imports it offline."""
    out = subprocess.run(
        [sys.executable, "-c", _NO_NLTK], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and "offline" in out.stdout, out.stdout + out.stderr
