"""ualm_pack: the directory from a training run, then card + archive."""

import os
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
