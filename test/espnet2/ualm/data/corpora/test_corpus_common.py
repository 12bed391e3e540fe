"""Shared converter pieces: ids, the CSV reader and the data directory writer."""

import os

from espnet2.ualm.data.corpora.common import safe_id
from espnet2.ualm.data.corpora.readers import iter_csv_rows
from espnet2.ualm.data.corpora.writer import DataDirWriter
from espnet2.ualm.data.rejects import RejectLog


def test_safe_id():
    assert safe_id("clotho", "Rain on  roof") == "clotho_Rain_on_roof"
    assert safe_id("clotho", "café/bells", "c1") == "clotho_cafe_bells_c1"
    assert safe_id("x", "a-b.c_d") == "x_a-b.c_d"
    assert safe_id("x", "???") == "x_x"


def test_csv_reader_bom_and_line_numbers(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b'\xef\xbb\xbfid,text\n1,"two\nlines"\n\n2,x\n3\n')
    rejects = RejectLog("test")
    rows = list(iter_csv_rows(str(path), rejects, "t", ["id", "text"]))
    assert rows == [
        (f"{path}:2", {"id": "1", "text": "two\nlines"}),
        (f"{path}:5", {"id": "2", "text": "x"}),
    ]
    assert [(r.utt_id, r.source) for r in rejects.items] == [("t_3", f"{path}:6")]


def test_writer_rejects_conflicts_and_clears_stale_files(tmp_path):
    out = str(tmp_path / "d")
    os.makedirs(out)
    with open(os.path.join(out, "segments"), "w") as f:
        f.write("old rec 0 1\n")
    rejects = RejectLog("test")
    writer = DataDirWriter(rejects)
    assert writer.add("u1", "f:1", audio={"u1": "/a b.wav"}, text="one")
    assert not writer.add("u1", "f:2", audio={"u1": "/c.wav"}, text="dup")
    assert not writer.add("u2", "f:3", audio={"u1": "/c.wav"}, text="other path")
    assert not writer.add("u3", "f:4", audio={"u3": "/two  spaces.wav"}, text="x")
    assert writer.write(out) == 1
    assert sorted(os.listdir(out)) == ["text", "wav.scp"]
    assert [r.reason.split(":")[0] for r in rejects.items] == [
        "duplicate id (first occurrence kept)",
        "audio id u1 already names /a b.wav",
        "audio path has white space wav.scp cannot keep",
    ]
