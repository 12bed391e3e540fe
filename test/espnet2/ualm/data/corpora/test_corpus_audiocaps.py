import os

import pytest

from espnet2.ualm.data.corpora import CorpusError, prepare_corpus

HEADER = b"audiocap_id,youtube_id,start_time,caption\n"
ROWS = [
    b'100,ytgood1,30,"A dog barks, then a car passes."\n',  # line 2
    b"101,ytnone,0,Rain falls on a roof\n",  # line 3: named by audiocap_id
    b"102,ytgood2,0,Wind blows\n",  # line 4: named Y<youtube_id>
    b"103,ytmissing,10,Birds sing\n",  # line 5: no audio
    b"104,ytgood1,30,   \n",  # line 6: empty caption
    b"100,ytgood1,30,Duplicate row\n",  # line 7: duplicate id
    b"105,ytgood1,30,caf\xe9 noise\n",  # line 8: latin-1, not UTF-8
    b"106,ytgood1\n",  # line 9: malformed
    b"107,ytgood1,abc,Something\n",  # line 10: bad start_time
    b'108,ytshare,0,"multi\nline caption"\n',  # lines 11-12
    b"109,ytshare,0,Second caption of a shared clip\n",  # line 13
]


@pytest.fixture
def corpus(tmp_path, write_audio):
    audio = tmp_path / "audio"
    for name in ("ytgood1.wav", "101.wav", "Yytgood2.wav", "ytshare.wav"):
        write_audio(str(audio / name))
    csv = tmp_path / "train.csv"
    csv.write_bytes(HEADER + b"".join(ROWS))
    return str(csv), str(audio)


def test_good_rows_kept_bad_rows_reported(corpus, tmp_path, table, rejected):
    csv, audio = corpus
    out = str(tmp_path / "data")
    kept, rejects = prepare_corpus("audiocaps", out, csv=csv, audio_dir=audio)

    wav, text = table(out, "wav.scp"), table(out, "text")
    good = ["audiocaps_100", "audiocaps_101", "audiocaps_102"]
    good += ["audiocaps_108", "audiocaps_109"]
    assert kept == 5 and sorted(wav) == good and sorted(text) == good
    assert wav["audiocaps_100"] == os.path.join(audio, "ytgood1.wav")
    assert wav["audiocaps_101"] == os.path.join(audio, "101.wav")
    assert wav["audiocaps_102"] == os.path.join(audio, "Yytgood2.wav")
    assert wav["audiocaps_108"] == wav["audiocaps_109"]
    assert text["audiocaps_100"] == "A dog barks, then a car passes."
    assert text["audiocaps_108"] == "multi line caption"

    bad = rejected(out)
    assert set(bad) == {f"audiocaps_{i}" for i in (100, 103, 104, 105, 106, 107)}
    assert bad["audiocaps_103"][0][0] == f"{csv}:5"
    assert bad["audiocaps_103"][0][1].startswith("missing audio file")
    assert bad["audiocaps_104"] == [(f"{csv}:6", "empty caption")]
    assert bad["audiocaps_100"][0] == (
        f"{csv}:7",
        "duplicate id (first occurrence kept)",
    )
    assert bad["audiocaps_105"][0][0] == f"{csv}:8"
    assert bad["audiocaps_105"][0][1].startswith("non-UTF-8")
    assert bad["audiocaps_106"][0][0] == f"{csv}:9"
    assert bad["audiocaps_106"][0][1].startswith("malformed row")
    assert bad["audiocaps_107"] == [(f"{csv}:10", "bad start_time 'abc'")]
    assert "kept 5 of 11" in rejects.summary(kept + len(rejects))


def test_audio_pattern_with_times(tmp_path, write_audio, table):
    write_audio(str(tmp_path / "clips" / "Yabc_30.000_40.000.flac"))
    csv = tmp_path / "test.csv"
    csv.write_bytes(HEADER + b"1,abc,30,A bell rings\n")
    out = str(tmp_path / "data")
    pattern = ["Y{youtube_id}_{start:.3f}_{end:.3f}.flac"]
    kept, _ = prepare_corpus(
        "audiocaps",
        out,
        csv=str(csv),
        audio_dir=str(tmp_path / "clips"),
        audio_pattern=pattern,
    )
    assert kept == 1
    assert table(out, "wav.scp")["audiocaps_1"].endswith("Yabc_30.000_40.000.flac")


def test_corpus_errors(tmp_path, corpus):
    csv, audio = corpus
    out = str(tmp_path / "data")
    with pytest.raises(CorpusError, match="nowhere.csv"):
        prepare_corpus(
            "audiocaps", out, csv=str(tmp_path / "nowhere.csv"), audio_dir=audio
        )
    with pytest.raises(CorpusError, match="youtube"):
        prepare_corpus(
            "audiocaps", out, csv=csv, audio_dir=audio, audio_pattern=["{youtube}.wav"]
        )
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("file_name,caption_1\na.wav,x\n")
    with pytest.raises(CorpusError, match="audiocap_id"):
        prepare_corpus("audiocaps", out, csv=str(wrong), audio_dir=audio)
