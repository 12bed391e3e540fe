"""The recipe's geometry queries: the encoder's frame rate, the enhancer's rates."""

import os

import pytest
import yaml

from espnet2.bin.ualm_encoder_geometry import main
from espnet2.bin.ualm_enhancer_rates import main as rates
from espnet2.ualm.model.factory import build_audio_encoder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
MINI = os.path.join(ROOT, "egs2", "ualm", "mini", "conf", "train_unified.yaml")


def _printed(capsys, *cmd) -> str:
    main(["--config", MINI, *cmd])
    return capsys.readouterr().out


def test_prints_the_built_encoders_geometry(capsys):
    with open(MINI, encoding="utf-8") as f:
        conf = yaml.safe_load(f)["audio_encoder_conf"]
    encoder = build_audio_encoder(conf)
    assert _printed(capsys) == f"{encoder.frame_rate:g}\n"
    assert _printed(capsys, "--field", "sample_rate") == f"{encoder.sample_rate}\n"
    wider = build_audio_encoder({**conf, "pool_stride": 4})
    assert _printed(
        capsys, "--field", "samples_per_frame", "--audio_encoder_conf", "pool_stride=4"
    ) == (f"{wider.samples_per_frame}\n")


def test_a_config_without_an_encoder_is_an_error():
    with pytest.raises(SystemExit, match="no audio_encoder"):
        main(["--config", MINI, "--audio_encoder", "none"])


def test_enhancer_rates_are_the_built_enhancers(capsys, tmp_path):
    config = tmp_path / "enhancer.yaml"
    config.write_text(
        "enhancer: resample\n"
        "enhancer_conf: {input_sample_rate: 24000, output_sample_rate: 96000}\n"
    )
    rates(["--config", str(config)])
    assert capsys.readouterr().out == "96000\n"
    rates(["--config", str(config), "--field", "input_sample_rate"])
    assert capsys.readouterr().out == "24000\n"
