"""ualm_fit_codec end to end on a tiny wav.scp: fit, save, reload, measure."""

import json
import os

import numpy as np
import pytest
import soundfile

from espnet2.bin.ualm_fit_codec import main
from espnet2.ualm.codec import SpecRVQCodec, build_codec
from espnet2.ualm.testing.tiny_codec import save_tiny_xcodec

SR = 16000


def _write_scp(directory, name, clips, rate=SR):
    os.makedirs(directory / "wav", exist_ok=True)
    lines = []
    for utt_id, x in clips:
        path = directory / "wav" / f"{utt_id}.wav"
        soundfile.write(path, x, rate)
        lines.append(f"{utt_id} {path}\n")
    scp = directory / name
    scp.write_text("".join(sorted(lines)))
    return str(scp)


def _tones(prefix, n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.8 * SR)) / SR
    return [
        (f"{prefix}{i:03d}", (0.3 * np.sin(2 * np.pi * rng.uniform(200, 1200) * t)))
        for i in range(n)
    ]


@pytest.fixture
def scps(tmp_path):
    train = _write_scp(tmp_path, "train.scp", _tones("tr", 30, 0))
    valid = _write_scp(tmp_path, "valid.scp", _tones("va", 3, 1))
    return train, valid


def test_fits_saves_and_measures(scps, tmp_path):
    train, valid = scps
    out = tmp_path / "exp"
    args = ["--codec", "spec_rvq", "--codec_conf", "n_codebooks=2"]
    args += ["--codec_conf", "codebook_size=16", "--train_scp", train]
    args += ["--valid_scp", valid, "--output_dir", str(out)]
    args += ["--max_train_frames", "600", "--seed", "1"]
    report = main(args)
    assert sorted(os.listdir(out)) == [
        "config.json",
        "metrics.json",
        "model.safetensors",
    ]
    with open(out / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["fit"]["frames_used"] == 600 and metrics["fit"]["seconds"] > 0
    summary = metrics["valid"]["summary"]
    assert summary["lsd_db"]["clips"] == 3 and summary["pitch_cents"]["clips"] == 3
    assert set(metrics["valid"]["per_clip"]) == {"va000", "va001", "va002"}
    assert report["n_codebooks"] == 2
    codec = build_codec("spec_rvq", {"model_dir": str(out)})
    assert isinstance(codec, SpecRVQCodec) and codec.codebook_size == 16


def test_wrong_sample_rate_names_file_and_id(tmp_path):
    scp = _write_scp(tmp_path, "bad.scp", _tones("bad", 1, 0), rate=8000)
    with pytest.raises(ValueError, match=r"bad\.scp: bad000: .* 8000 Hz"):
        main(["--codec", "spec_rvq", "--train_scp", scp, "--output_dir", str(tmp_path)])


def test_pretrained_codec_is_only_measured(scps, tmp_path, caplog):
    _, valid = scps
    model_dir = save_tiny_xcodec(str(tmp_path / "xcodec"))
    out = tmp_path / "exp_x"
    caplog.set_level("INFO")
    main(
        ["--codec", "xcodec", "--codec_conf", f"model_dir={model_dir}"]
        + ["--valid_scp", valid, "--output_dir", str(out)]
    )
    assert "not trainable" in caplog.text
    assert os.listdir(out) == ["metrics.json"]
    with open(out / "metrics.json") as f:
        assert json.load(f)["valid"]["summary"]["lsd_db"]["clips"] == 3


def test_batch_size_must_be_positive(scps, tmp_path):
    """--batch_size 0 would fit the codec, then fail measuring it (range step 0)."""
    train, valid = scps
    args = ["--codec", "spec_rvq", "--train_scp", train, "--valid_scp", valid]
    args += ["--output_dir", str(tmp_path / "exp"), "--batch_size", "0"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and not (tmp_path / "exp").exists()
