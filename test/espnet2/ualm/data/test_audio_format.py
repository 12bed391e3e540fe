"""Stage 2 keeps every good item and lists every planted bad one with its reason."""

import json

import numpy as np
import pytest
import soundfile

from espnet2.bin.ualm_format_audio import main as format_main
from espnet2.ualm.data.audio_format import FormatOptions, format_data_dir
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog

FS = 16000


def _tone(seconds, fs=FS, channels=1, freq=440.0):
    t = np.arange(int(seconds * fs)) / fs
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32")
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture
def corpus(tmp_path):
    """A data dir with good items and one of each kind of bad item."""
    audio = tmp_path / "audio"
    audio.mkdir()
    d = tmp_path / "data"
    d.mkdir()
    wav = {}

    def put(utt, array, fs=FS, name=None, subtype=None):
        path = audio / (name or f"{utt}.wav")
        soundfile.write(path, array, fs, subtype=subtype)
        wav[utt] = str(path)
        return path

    put("good_mono", _tone(1.0))
    put("good_stereo48k", _tone(1.5, fs=48000, channels=2), fs=48000)
    put("good_flac", _tone(0.8), name="good_flac.flac")
    put("bad_lowrate", _tone(1.0, fs=8000), fs=8000)
    wav["bad_missing"] = str(audio / "nope.wav")
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x01garbage-not-audio" * 10)
    wav["bad_corrupt"] = str(audio / "corrupt.wav")
    p = put("bad_truncated", _tone(1.0))
    p.write_bytes(p.read_bytes()[:9000])
    put("bad_empty", np.zeros(0, dtype="float32"))
    put("bad_long", _tone(3.0))
    put("bad_silent", np.zeros(FS, dtype="float32"))
    nan = _tone(1.0)
    nan[100] = np.nan
    put("bad_nan", nan, subtype="FLOAT")
    put("good_dup", _tone(1.0, freq=660.0))

    lines = [f"{k} {v}" for k, v in sorted(wav.items())]
    lines.append(f"good_dup {audio / 'other.wav'}")  # duplicate id: first kept
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    text = b"".join(f"{k} caption of {k}\n".encode() for k in sorted(wav))
    text += b"bad_utf8 caf\xe9 latin-1\n"
    (d / "text").write_bytes(text)
    dialogues = [
        {
            "id": "conv_good",
            "messages": [
                {"role": "user", "content": [{"type": "audio", "audio": "good_mono"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "a tone"}]},
            ],
        },
        {
            "id": "conv_bad",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "audio", "audio": "bad_corrupt"}],
                },
                {"role": "assistant", "content": [{"type": "text", "text": "?"}]},
            ],
        },
    ]
    with open(d / "dialogue.jsonl", "w") as f:
        for row in dialogues:
            f.write(json.dumps(row) + "\n")
        f.write("{not json\n")
    return d


EXPECTED_REASONS = {
    "bad_lowrate": "sample rate 8000 Hz below",
    "bad_missing": "missing file",
    "bad_corrupt": "unreadable audio",
    "bad_truncated": "truncated file",
    "bad_empty": "empty audio",
    "bad_long": "too long",
    "bad_silent": "digital silence",
    "bad_nan": "NaN",
    "good_dup": "duplicate id",
    "bad_utf8": "non-UTF-8",
    "conv_bad": "rejected audio bad_corrupt",
    "line3": "malformed JSON",
}
GOOD = {"good_mono", "good_stereo48k", "good_flac", "good_dup"}


def test_bad_items_are_listed_and_good_ones_survive(corpus, tmp_path):
    out = tmp_path / "out"
    opts = FormatOptions(sample_rate=FS, min_input_sample_rate=FS, max_sec=2.0)
    rejects = format_data_dir(str(corpus), str(out), opts, nj=1)

    listed = RejectLog.read(str(out / "rejected.tsv"))
    assert len(listed) == len(rejects) == len(EXPECTED_REASONS)
    by_id = {r.utt_id: r for r in listed}
    for utt, reason in EXPECTED_REASONS.items():
        assert utt in by_id, utt
        assert reason in by_id[utt].reason, (utt, by_id[utt])
    # the report names the file (or file:line) each rejected item came from
    assert by_id["bad_missing"].source.endswith("nope.wav")
    assert by_id["bad_utf8"].source.endswith("text:13")
    assert by_id["line3"].source.endswith("dialogue.jsonl:3")

    wav = read_kv(str(out / "wav.scp"))
    assert set(wav) == GOOD
    lengths = {k: int(v) for k, v in read_kv(str(out / "utt2num_samples")).items()}
    assert lengths["good_stereo48k"] == int(1.5 * FS)
    for utt, path in wav.items():
        x, fs = soundfile.read(path, always_2d=True)
        assert fs == FS and x.shape == (lengths[utt], 1)
    assert set(read_kv(str(out / "text"))) == GOOD
    convs = [json.loads(line) for line in open(out / "dialogue.jsonl")]
    assert [c["id"] for c in convs] == ["conv_good"]


def test_parallel_run_gives_the_same_result(corpus, tmp_path, monkeypatch):
    from espnet2.ualm.data import audio_format

    opts = FormatOptions(sample_rate=FS, min_input_sample_rate=FS, max_sec=2.0)
    format_data_dir(str(corpus), str(tmp_path / "a"), opts, nj=1)
    pools = []
    pool = audio_format.ProcessPoolExecutor
    monkeypatch.setattr(audio_format, "_CHUNK", 1)  # a pool even for a few items
    monkeypatch.setattr(
        audio_format,
        "ProcessPoolExecutor",
        lambda *a, **k: pools.append(a) or pool(*a, **k),
    )
    format_data_dir(str(corpus), str(tmp_path / "b"), opts, nj=2)
    assert pools  # the parallel path ran
    for name in ("utt2num_samples", "text", "rejected.tsv"):
        assert (tmp_path / "a" / name).read_text() == (
            tmp_path / "b" / name
        ).read_text()


def test_low_rate_accepted_when_allowed(corpus, tmp_path):
    out = tmp_path / "out"
    format_main(
        [
            "--in_dir",
            str(corpus),
            "--out_dir",
            str(out),
            "--fs",
            str(FS),
            "--min_input_fs",
            "0",
            "--max_sec",
            "2",
        ]
    )
    assert "bad_lowrate" in read_kv(str(out / "wav.scp"))


def test_segments_cut_and_bad_segments_reported(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    soundfile.write(tmp_path / "rec.wav", _tone(3.0), FS)
    (d / "wav.scp").write_text(f"rec {tmp_path / 'rec.wav'}\n")
    (d / "segments").write_text(
        "seg_ok rec 0.5 1.5\nseg_past rec 2.0 9.0\nseg_back rec 1.0 0.5\n"
        "seg_norec other 0 1\n"
    )
    opts = FormatOptions(sample_rate=FS, min_input_sample_rate=FS)
    rejects = format_data_dir(str(d), str(tmp_path / "out"), opts)
    assert {r.utt_id for r in rejects.items} == {"seg_past", "seg_back", "seg_norec"}
    lengths = read_kv(str(tmp_path / "out" / "utt2num_samples"))
    assert lengths == {"seg_ok": str(FS)}


def test_text_only_dir_copies_dialogues(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    row = {
        "id": "t1",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "2+2?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
        ],
    }
    (d / "dialogue.jsonl").write_text(json.dumps(row) + "\n")
    opts = FormatOptions(sample_rate=FS, min_input_sample_rate=FS)
    rejects = format_data_dir(str(d), str(tmp_path / "out"), opts)
    assert len(rejects) == 0
    assert not (tmp_path / "out" / "wav.scp").exists()
    assert json.loads((tmp_path / "out" / "dialogue.jsonl").read_text()) == row


def _masters_dir(tmp_path):
    """Sources of every kind a master is made or refused for."""
    audio, d = tmp_path / "audio", tmp_path / "data"
    audio.mkdir()
    d.mkdir()
    left = _tone(1.0, fs=48000, freq=300.0)
    right = _tone(1.0, fs=48000, freq=900.0)
    sources = {
        "st48": (np.stack([left, right], axis=1), 48000),
        "st44": (_tone(1.0, fs=44100, channels=2), 44100),
        "quad48": (_tone(1.0, fs=48000, channels=4), 48000),
        "mono48": (_tone(1.0, fs=48000), 48000),
        "st32": (_tone(1.0, fs=32000, channels=2), 32000),
    }
    for utt, (x, fs) in sources.items():
        soundfile.write(audio / f"{utt}.wav", x, fs)
    (d / "wav.scp").write_text(
        "".join(f"{utt} {audio / utt}.wav\n" for utt in sorted(sources))
    )
    return d, left, right


def test_masters_from_stereo_sources(tmp_path):
    d, left, right = _masters_dir(tmp_path)
    out = tmp_path / "out"
    format_main(
        ["--in_dir", str(d), "--out_dir", str(out), "--fs", str(FS)]
        + ["--min_input_fs", "0", "--master_fs", "48000", "--nj", "2"]
    )
    assert set(read_kv(str(out / "wav.scp"))) == {
        "st48",
        "st44",
        "quad48",
        "mono48",
        "st32",
    }  # every item kept: a missing master rejects nothing
    masters = read_kv(str(out / "wav48.scp"))
    assert set(masters) == {"st48", "st44", "quad48"}
    for utt, path in masters.items():
        assert path == str(out / "masters" / f"{utt}.flac")
        x, fs = soundfile.read(path, always_2d=True)
        assert fs == 48000 and x.shape == (48000, 2), utt
    # the channels keep their own content (not a down-mix copied twice)
    x, _ = soundfile.read(masters["st48"])
    assert np.abs(x[:, 0] - left).max() < 1e-4
    assert np.abs(x[:, 1] - right).max() < 1e-4
    missing = {r.utt_id: r.reason for r in RejectLog.read(str(out / "no_master.tsv"))}
    assert missing == {
        "mono48": "mono source",
        "st32": "source at 32000 Hz, below 44100 Hz",
    }
    assert RejectLog.read(str(out / "rejected.tsv")) == []


def test_a_data_dir_with_its_own_masters_keeps_them(tmp_path):
    d, _, _ = _masters_dir(tmp_path)
    (d / "wav48.scp").write_text("st48 /corpus/masters/st48.flac\n")
    opts = FormatOptions(
        sample_rate=FS, min_input_sample_rate=0, master_sample_rate=48000
    )
    format_data_dir(str(d), str(tmp_path / "out"), opts)
    assert read_kv(str(tmp_path / "out" / "wav48.scp")) == {
        "st48": "/corpus/masters/st48.flac"
    }
    assert not (tmp_path / "out" / "masters").exists()


def test_no_masters_unless_asked(corpus, tmp_path):
    opts = FormatOptions(sample_rate=FS, min_input_sample_rate=FS, max_sec=2.0)
    format_data_dir(str(corpus), str(tmp_path / "out"), opts)
    assert not (tmp_path / "out" / "wav48.scp").exists()
    assert not (tmp_path / "out" / "no_master.tsv").exists()


def _two_items(tmp_path, bad_id):
    d = tmp_path / "data"
    d.mkdir()
    soundfile.write(tmp_path / "good.wav", _tone(1.0), FS)
    soundfile.write(tmp_path / "bad.wav", _tone(1.0, freq=660.0), FS)
    (d / "wav.scp").write_text(
        f"good {tmp_path / 'good.wav'}\n{bad_id} {tmp_path / 'bad.wav'}\n"
    )
    (d / "text").write_text(f"good a tone\n{bad_id} another tone\n")
    return d


@pytest.mark.parametrize("bad_id", ["a/b", "..", "x" * 300])
def test_an_id_that_cannot_be_a_file_name_is_rejected_alone(tmp_path, bad_id):
    d = _two_items(tmp_path, bad_id)
    out = tmp_path / "out"
    format_main(["--in_dir", str(d), "--out_dir", str(out), "--fs", str(FS)])
    assert set(read_kv(str(out / "wav.scp"))) == {"good"}
    assert set(read_kv(str(out / "text"))) == {"good"}
    (listed,) = RejectLog.read(str(out / "rejected.tsv"))
    assert listed.utt_id == bad_id
    assert "cannot be a file name" in listed.reason


def test_a_failed_write_rejects_that_item_only(tmp_path, monkeypatch):
    import espnet2.ualm.data.audio_format as audio_format

    d = _two_items(tmp_path, "unwritable")
    real_write = soundfile.write

    def write(path, *args, **kwargs):
        if "unwritable" in str(path):
            open(path, "wb").close()  # a partial file, then the disk fails
            raise OSError(28, "No space left on device")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(audio_format.soundfile, "write", write)
    out = tmp_path / "out"
    rejects = format_data_dir(
        str(d), str(out), FormatOptions(sample_rate=FS, min_input_sample_rate=FS)
    )
    assert set(read_kv(str(out / "wav.scp"))) == {"good"}
    assert [(r.utt_id, r.reason.split(":")[0]) for r in rejects.items] == [
        ("unwritable", "formatting failed")
    ]
    assert "No space left" in RejectLog.read(str(out / "rejected.tsv"))[0].reason
    assert not (out / "data" / "unwritable.flac").exists()


def test_nj_must_be_positive(corpus, tmp_path):
    with pytest.raises(SystemExit) as e:
        format_main(["--in_dir", str(corpus), "--out_dir", str(tmp_path / "o")]
                    + ["--fs", str(FS), "--nj", "0"])  # fmt: skip
    assert e.value.code == 2 and not (tmp_path / "o").exists()
