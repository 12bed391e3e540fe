import os

import pytest

from espnet2.ualm.data.corpora import CorpusError, prepare_corpus
from espnet2.ualm.data.corpora.librispeech import normalise


@pytest.fixture
def root(tmp_path, write_audio):
    chapter = tmp_path / "LibriSpeech" / "dev-clean" / "1089" / "134686"
    for n in ("0000", "0002", "0003", "0004"):
        write_audio(str(chapter / f"1089-134686-{n}.flac"))
    (chapter / "1089-134686.trans.txt").write_bytes(
        b"1089-134686-0000 HE HOPED THERE WOULD BE STEW\n"  # line 1
        b"1089-134686-0001 NO AUDIO FOR THIS ONE\n"  # line 2
        b"1089-134686-0002\n"  # line 3: empty transcript
        b"1089-134686-0000 DUPLICATE LINE\n"  # line 4
        b"1089-134686-0004 CAF\xc9 OLE\n"  # line 5: not UTF-8
        b"2000-1-0000 WRONG CHAPTER\n"  # line 6
    )
    # 0003.flac has no transcript line; chapter 2 has no transcript file.
    write_audio(
        str(tmp_path / "LibriSpeech" / "dev-clean" / "121" / "55" / "121-55-0000.flac")
    )
    other = tmp_path / "LibriSpeech" / "dev-clean" / "1188" / "133604"
    write_audio(str(other / "1188-133604-0000.flac"))
    (other / "1188-133604.trans.txt").write_text("1188-133604-0000 I THINK I'M SURE\n")
    return str(tmp_path / "LibriSpeech")


def test_transcripts_and_speakers(root, tmp_path, table, rejected):
    out = str(tmp_path / "data")
    kept, _ = prepare_corpus("librispeech", out, root=root, split="dev-clean")

    assert kept == 2
    text = table(out, "text")
    assert text == {
        "librispeech_1089-134686-0000": "HE HOPED THERE WOULD BE STEW",
        "librispeech_1188-133604-0000": "I THINK I'M SURE",
    }
    assert table(out, "utt2spk") == {
        "librispeech_1089-134686-0000": "librispeech_1089",
        "librispeech_1188-133604-0000": "librispeech_1188",
    }
    assert table(out, "spk2utt")["librispeech_1089"] == "librispeech_1089-134686-0000"
    assert table(out, "wav.scp")["librispeech_1089-134686-0000"].endswith(
        os.path.join("1089", "134686", "1089-134686-0000.flac")
    )

    trans = os.path.join(root, "dev-clean", "1089", "134686", "1089-134686.trans.txt")
    bad = rejected(out)
    assert bad["librispeech_1089-134686-0001"][0][0] == f"{trans}:2"
    assert bad["librispeech_1089-134686-0001"][0][1].startswith("missing audio file")
    assert bad["librispeech_1089-134686-0002"] == [(f"{trans}:3", "empty transcript")]
    assert bad["librispeech_1089-134686-0000"] == [
        (f"{trans}:4", "duplicate id (first occurrence kept)")
    ]
    assert bad["librispeech_1089-134686-0004"][0][0] == f"{trans}:5"
    assert bad["librispeech_1089-134686-0004"][0][1].startswith("non-UTF-8")
    assert bad["librispeech_2000-1-0000"][0][1] == "id does not belong to 1089/134686"
    assert bad["librispeech_1089-134686-0003"][0][1].startswith("no transcript line")
    assert bad["librispeech_121-55-0000"][0][1].startswith("no transcript file")
    # 0004.flac is in rejected.tsv once, for its undecodable line only.
    assert len(bad["librispeech_1089-134686-0004"]) == 1


def test_text_normalisation(root, tmp_path, table):
    out = str(tmp_path / "data")
    prepare_corpus(
        "librispeech", out, root=root, split="dev-clean", text_norm="sentence"
    )
    assert table(out, "text")["librispeech_1188-133604-0000"] == "I think I'm sure"
    assert normalise("HE  HOPED", "lower") == "he hoped"
    assert normalise("HE HOPED", "none") == "HE HOPED"


def test_missing_split(root, tmp_path):
    with pytest.raises(CorpusError, match="train-clean-100"):
        prepare_corpus(
            "librispeech", str(tmp_path / "d"), root=root, split="train-clean-100"
        )
