"""Pair generation: master -> (codec output at the codec rate, aligned target)."""

import json
import os

import numpy as np
import pytest
import soundfile

from espnet2.ualm.codec.config import codec_from_config
from espnet2.ualm.data.io import downmix
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.enhancer.pairs import EnhancerPairPreprocessor, crop_pair, make_input
from espnet2.ualm.enhancer.prepare_pairs import main as prepare_main


def test_make_input_downmixes_resamples_and_runs_the_codec(codec_config, master):
    codec = codec_from_config(codec_config)
    x = make_input(master, 48000, codec)
    assert x.dtype == np.float32 and x.shape == (8000,)
    # The codec keeps the level of the down-mix (panning cancels in L + R).
    mono = downmix(master)[::3]
    assert 0.3 < np.sqrt((x**2).mean() / (mono**2).mean()) < 3.0
    # What the codec changes is not nothing: the pair teaches restoration.
    assert np.abs(x - mono).max() > 1e-3


def test_crops_stay_aligned():
    x = np.arange(1000, dtype=np.float32)
    y = np.repeat(x, 3)[:, None].repeat(2, axis=1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        cx, cy = crop_pair(x, y, 3, 100, rng)
        assert cx.shape == (100,) and cy.shape == (300, 2)
        np.testing.assert_array_equal(cy[::3, 0], cx)
    cx, cy = crop_pair(x, y, 3, 100, None)  # centre crop
    assert cx[0] == 450
    cx, cy = crop_pair(x[:50], y[:150], 3, 100, None)  # short: padded
    assert cx.shape == (100,) and cy.shape == (300, 2) and cx[60] == 0


def test_preprocessor_with_cached_input_and_on_the_fly(codec_config, master):
    codec = codec_from_config(codec_config)
    cached = make_input(master, 48000, codec)
    pre = EnhancerPairPreprocessor(True, 16000, 48000, 1600, None, seed=1)
    out = pre("a", dict(target=master, input=cached))
    assert out["input"].shape == (1600,) and out["target"].shape == (4800, 2)
    fly = EnhancerPairPreprocessor(False, 16000, 48000, 1600, codec)
    out = fly("a", dict(target=master))
    assert out["input"].shape == (1600,) and out["target"].shape == (4800, 2)
    with pytest.raises(ValueError, match="no cached 'input'"):
        pre("a", dict(target=master))
    with pytest.raises(ValueError, match="rate pair"):
        pre("a", dict(target=master, input=cached[:1000]))


def test_prepare_pairs_caches_the_round_trip(masters, codec_config, tmp_path):
    bad = tmp_path / "bad.flac"
    soundfile.write(bad, np.zeros((4800, 2)), 16000)
    scp = tmp_path / "all.scp"
    scp.write_text(open(masters).read() + f"zz_bad {bad}\n")
    out = tmp_path / "pairs"
    enhancer = tmp_path / "enhancer.yaml"  # its default rates: 16 -> 48 kHz
    enhancer.write_text("enhancer: resample\nenhancer_conf: {}\n")
    info = prepare_main(
        ["--wav48_scp", str(scp), "--codec_config", codec_config]
        + ["--enhancer_config", str(enhancer), "--output_dir", str(out)]
    )
    assert info["clips"] == 3 and info["rejected"] == 1
    inputs = read_kv(str(out / "codec_wav.scp"))
    targets = read_kv(str(out / "wav48.scp"))
    assert sorted(inputs) == sorted(targets) == ["utt000", "utt001", "utt002"]
    x, rate = soundfile.read(inputs["utt000"])
    y, _ = soundfile.read(targets["utt000"])
    assert rate == 16000 and x.shape[0] * 3 == y.shape[0]
    assert "zz_bad" in (out / "rejected.tsv").read_text()
    assert json.loads((out / "info.json").read_text())["codec_sample_rate"] == 16000
    assert os.path.isabs(inputs["utt000"])


def test_prepare_pairs_takes_its_rates_from_the_enhancer(
    masters, codec_config, tmp_path
):
    enhancer = tmp_path / "enhancer.yaml"
    enhancer.write_text(
        "enhancer: resample\n"
        "enhancer_conf: {input_sample_rate: 24000, output_sample_rate: 48000}\n"
    )
    cmd = ["--wav48_scp", masters, "--codec_config", codec_config]
    cmd += ["--enhancer_config", str(enhancer), "--output_dir", str(tmp_path / "p")]
    with pytest.raises(ValueError, match="takes 24000 Hz, the codec gives 16000"):
        prepare_main(cmd)


def test_swap_mirrors_training_targets_only(master):
    x = master[::3, 0].copy()
    swap = EnhancerPairPreprocessor(True, 16000, 48000, None, swap_channels_prob=1.0)
    out = swap("a", dict(target=master, input=x))
    np.testing.assert_array_equal(out["target"], master[:, ::-1])
    valid = EnhancerPairPreprocessor(False, 16000, 48000, None, swap_channels_prob=1.0)
    np.testing.assert_array_equal(
        valid("a", dict(target=master, input=x))["target"], master
    )


def test_prepare_pairs_redoes_the_cache_when_a_master_changes(
    masters, codec_config, tmp_path
):
    scp = tmp_path / "all.scp"
    lines = []
    for line in open(masters).read().splitlines():  # own copies, to change one
        utt, path = line.split()
        (tmp_path / f"{utt}.flac").write_bytes(open(path, "rb").read())
        lines.append(f"{utt} {tmp_path / f'{utt}.flac'}")
    scp.write_text("\n".join(lines) + "\nbad/id " + lines[0].split()[1] + "\n")
    enhancer = tmp_path / "enhancer.yaml"
    enhancer.write_text("enhancer: resample\nenhancer_conf: {}\n")
    out = tmp_path / "pairs"
    cmd = ["--wav48_scp", str(scp), "--codec_config", codec_config]
    cmd += ["--enhancer_config", str(enhancer), "--output_dir", str(out)]
    first = prepare_main(cmd)
    assert first["clips"] == 3 and first["rejected"] == 1
    assert "cannot be a file name" in (out / "rejected.tsv").read_text()
    assert prepare_main(cmd) == first  # unchanged inputs: the cache is kept
    x, rate = soundfile.read(tmp_path / "utt001.flac")
    soundfile.write(tmp_path / "utt001.flac", x[: len(x) // 2], rate)
    again = prepare_main(cmd)
    assert again["fingerprint"] != first["fingerprint"]
    y, _ = soundfile.read(read_kv(str(out / "codec_wav.scp"))["utt001"])
    assert y.shape[0] * 3 == len(x) // 2
