import json
import os

from espnet2.ualm.data.corpora import prepare_corpus


def test_segments_by_recording(tmp_path, write_audio, table, rejected):
    write_audio(str(tmp_path / "rec" / "long.wav"), seconds=2.0)
    write_audio(str(tmp_path / "rec" / "other.flac"), seconds=0.5)
    items = [
        {"location": "rec/long.wav", "start": 0.0, "end": 1.0, "captions": "A dog."},
        {
            "location": "rec/long.wav",
            "start": 1.0,
            "end": 1.5,
            "caption": ["Bird.", "Tweet."],
        },
        {"location": "rec/other.flac", "captions": "Whole file."},  # end from header
        {"location": "rec/long.wav", "start": 1.5, "end": 1.5, "captions": "Zero."},
        {"location": "rec/long.wav", "start": -1, "end": 1, "captions": "Negative."},
        {"location": "rec/gone.wav", "start": 0, "end": 1, "captions": "Lost."},
        {"location": "rec/long.wav", "start": 0.0, "end": 1.0, "captions": "Again."},
        {"location": "rec/long.wav", "start": 0.2, "end": 0.4, "captions": "  "},
        {"start": 0, "end": 1, "captions": "Nowhere."},
    ]
    path = tmp_path / "etta.jsonl"
    lines = [json.dumps(item) for item in items]
    lines.insert(3, '{"location": "rec/long.wav", "start": 0, ')  # line 4
    path.write_text("\n".join(lines) + "\n")

    out = str(tmp_path / "data")
    kept, _ = prepare_corpus("etta", out, json=str(path))

    assert kept == 4
    rec = os.path.join(str(tmp_path), "rec")
    assert table(out, "wav.scp") == {
        "etta_rec_long": os.path.join(rec, "long.wav"),
        "etta_rec_other": os.path.join(rec, "other.flac"),
    }
    assert table(out, "segments") == {
        "etta_rec_long_00000000_00001000": "etta_rec_long 0.000 1.000",
        "etta_rec_long_00001000_00001500_c1": "etta_rec_long 1.000 1.500",
        "etta_rec_long_00001000_00001500_c2": "etta_rec_long 1.000 1.500",
        "etta_rec_other_00000000_00000500": "etta_rec_other 0.000 0.500",
    }
    assert table(out, "text")["etta_rec_long_00001000_00001500_c2"] == "Tweet."

    bad = rejected(out)
    where = {source: reason for items in bad.values() for source, reason in items}
    assert where[f"{path}:4"].startswith("malformed JSON line")
    assert where[f"{path}:5"] == "bad time stamps: end 1.5 <= start 1.5"
    assert where[f"{path}:6"] == "bad time stamps: start=-1"
    assert where[f"{path}:7"].startswith("missing audio file")
    assert bad["etta_rec_long_00000000_00001000"] == [
        (f"{path}:8", "duplicate id (first occurrence kept)")
    ]
    assert bad["etta_rec_long_00000200_00000400"] == [(f"{path}:9", "empty caption")]
    assert where[f"{path}:10"] == "no 'location'"
    assert len(where) == 7
