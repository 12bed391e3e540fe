"""Stage 4 tokenization: shards, resume, merge, bad files listed."""

import os

import numpy as np
import pytest
import soundfile
import yaml

from espnet2.bin.ualm_tokenize_audio import main, shard_of
from espnet2.ualm.codec import build_codec
from espnet2.ualm.data.codes_io import CodesReader
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog

FS = 16000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small fitted spec_rvq codec, its config, and a wav.scp with one bad file."""
    root = tmp_path_factory.mktemp("tok")
    rng = np.random.default_rng(0)
    conf = {
        "codec": "spec_rvq",
        "codec_conf": {"n_codebooks": 2, "codebook_size": 8, "n_fft": 1024},
    }
    codec = build_codec(conf["codec"], dict(conf["codec_conf"]))
    t = np.arange(FS) / FS
    train = [np.sin(2 * np.pi * f * t).astype("float32") * 0.3 for f in (200, 400, 800)]
    codec.fit(train, seed=0)
    codec.save_pretrained(str(root / "codec"))
    with open(root / "codec.yaml", "w") as f:
        yaml.safe_dump(conf, f)
    lines = []
    for i in range(7):
        n = int(FS * (0.3 + 0.1 * i))
        path = root / f"u{i}.wav"
        soundfile.write(path, (rng.standard_normal(n) * 0.1).astype("float32"), FS)
        lines.append(f"u{i} {path}")
    soundfile.write(root / "bad_rate.wav", np.zeros(800, dtype="float32") + 0.1, 8000)
    lines.append(f"bad_rate {root / 'bad_rate.wav'}")
    (root / "wav.scp").write_text("\n".join(lines) + "\n")
    return root


def _tokenize(root, out, job, num_jobs):
    main(
        [
            "--codec_config", str(root / "codec.yaml"),
            "--codec_model_dir", str(root / "codec"),
            "--wav_scp", str(root / "wav.scp"),
            "--output_dir", str(out),
            "--job", str(job), "--num_jobs", str(num_jobs), "--batch_size", "3",
        ]
    )  # fmt: skip


def test_shards_cover_every_key_once():
    keys = [f"k{i}" for i in range(10)]
    shards = [shard_of(keys, j, 3) for j in (1, 2, 3)]
    assert sum(shards, []) == keys


def test_sharded_tokenization_equals_single_job_and_resumes(setup, tmp_path):
    one, three = tmp_path / "one", tmp_path / "three"
    _tokenize(setup, one, 1, 1)
    main(["--merge", "--output_dir", str(one), "--num_jobs", "1"])
    for job in (1, 2, 3):
        _tokenize(setup, three, job, 3)
    # a re-run skips finished shards: the ark is not rewritten
    ark = three / "shards" / "codes.2.ark"
    mtime = os.path.getmtime(ark)
    _tokenize(setup, three, 2, 3)
    assert os.path.getmtime(ark) == mtime
    main(["--merge", "--output_dir", str(three), "--num_jobs", "3"])

    a, b = CodesReader(str(one)), CodesReader(str(three))
    assert sorted(a.keys()) == sorted(b.keys()) == [f"u{i}" for i in range(7)]
    codec = build_codec("spec_rvq", {"model_dir": str(setup / "codec")})
    frames = read_kv(str(three / "utt2num_frames"))
    for k in a.keys():
        assert np.array_equal(a[k], b[k])
        assert a[k].shape == (int(frames[k]), 2)
        assert a[k].max() < 8
    n = soundfile.info(str(setup / "u3.wav")).frames
    assert a["u3"].shape[0] == codec.num_frames(n)
    rejected = RejectLog.read(str(three / "rejected.tsv"))
    assert [r.utt_id for r in rejected] == ["bad_rate"]
    assert "8000 Hz" in rejected[0].reason


def test_merge_refuses_unfinished_shards(setup, tmp_path):
    _tokenize(setup, tmp_path, 1, 2)
    with pytest.raises(SystemExit, match=r"shards \[2\]"):
        main(["--merge", "--output_dir", str(tmp_path), "--num_jobs", "2"])


def _own_wav_scp(setup, tmp_path):
    """A copy of the corpus the test may change (the fixture is shared)."""
    tmp_path.mkdir()
    lines = []
    for line in (setup / "wav.scp").read_text().splitlines():
        utt, path = line.split()
        copy = tmp_path / os.path.basename(path)
        copy.write_bytes(open(path, "rb").read())
        lines.append(f"{utt} {copy}")
    (tmp_path / "wav.scp").write_text("\n".join(lines) + "\n")
    return tmp_path


def _tokenize_scp(setup, wav_dir, out, job, num_jobs):
    main(
        [
            "--codec_config", str(setup / "codec.yaml"),
            "--codec_model_dir", str(setup / "codec"),
            "--wav_scp", str(wav_dir / "wav.scp"),
            "--output_dir", str(out),
            "--job", str(job), "--num_jobs", str(num_jobs), "--batch_size", "3",
        ]
    )  # fmt: skip


def test_changed_audio_or_wav_scp_redoes_the_shard(setup, tmp_path):
    wav_dir = _own_wav_scp(setup, tmp_path / "wavs")
    out = tmp_path / "out"
    ark = out / "shards" / "codes.1.ark"
    _tokenize_scp(setup, wav_dir, out, 1, 1)
    mtime = os.stat(ark).st_mtime_ns
    _tokenize_scp(setup, wav_dir, out, 1, 1)
    assert os.stat(ark).st_mtime_ns == mtime  # unchanged inputs: skipped
    # new audio for u3 (other content and length)
    rng = np.random.default_rng(1)
    soundfile.write(
        wav_dir / "u3.wav", (rng.standard_normal(FS) * 0.1).astype("float32"), FS
    )
    _tokenize_scp(setup, wav_dir, out, 1, 1)
    main(["--merge", "--output_dir", str(out), "--num_jobs", "1"])
    assert CodesReader(str(out))["u3"].shape[0] == build_codec(
        "spec_rvq", {"model_dir": str(setup / "codec")}
    ).num_frames(FS)
    # u0 dropped from wav.scp
    lines = (wav_dir / "wav.scp").read_text().splitlines()
    (wav_dir / "wav.scp").write_text("\n".join(lines[1:]) + "\n")
    _tokenize_scp(setup, wav_dir, out, 1, 1)
    main(["--merge", "--output_dir", str(out), "--num_jobs", "1"])
    assert sorted(CodesReader(str(out)).keys()) == [f"u{i}" for i in range(1, 7)]


def test_another_number_of_jobs_never_merges_stale_shards(setup, tmp_path):
    expected = [f"u{i}" for i in range(7)]
    for num_jobs in (2, 3, 1):
        for job in range(1, num_jobs + 1):
            _tokenize(setup, tmp_path, job, num_jobs)
        main(["--merge", "--output_dir", str(tmp_path), "--num_jobs", str(num_jobs)])
        keys = [
            line.split()[0] for line in open(tmp_path / "codes.scp", encoding="utf-8")
        ]
        assert sorted(keys) == expected, num_jobs  # each id once
    _tokenize(setup, tmp_path, 1, 2)  # shard 1 of 2 again, shard 2 still of 3
    with pytest.raises(SystemExit, match=r"shards \[2\] .* another --num_jobs"):
        main(["--merge", "--output_dir", str(tmp_path), "--num_jobs", "2"])


@pytest.mark.parametrize(
    "args",
    [
        ["--merge", "--num_jobs", "0"],
        ["--num_jobs", "0"],
        ["--num_jobs", "2", "--job", "3"],
        ["--job", "0"],
        ["--batch_size", "0"],
    ],
)
def test_job_options_out_of_range_are_refused(setup, tmp_path, args):
    codes = tmp_path / "codes.scp"
    codes.write_text("u0 somewhere.ark:12\n")  # an earlier run's, kept
    cmd = ["--codec_config", str(setup / "codec.yaml"), "--wav_scp"]
    cmd += [str(setup / "wav.scp"), "--output_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as e:
        main(cmd + args)
    assert e.value.code not in (0, None)
    assert codes.read_text() == "u0 somewhere.ark:12\n"
