import os

import pytest

from espnet2.ualm.data.corpora import prepare_corpus

CSV = (
    "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
    "Rain on roof.wav,Rain falls.,Rain hits a roof.,,Drops patter.,Steady rain.\n"
    "café bells.wav,Bells ring.,Church bells.,Bells chime.,Ringing.,A bell tolls.\n"
    "gone.wav,a,b,c,d,e\n"  # line 4: audio missing
    '"Rain on roof.wav",x,y,z,u,v\n'  # line 5: duplicate file
    "short row.wav,only one\n"  # line 6: malformed
)


@pytest.fixture
def corpus(tmp_path, write_audio):
    audio = tmp_path / "development"
    write_audio(str(audio / "Rain on roof.wav"))
    write_audio(str(audio / "café bells.wav"))
    csv = tmp_path / "clotho_captions_development.csv"
    csv.write_text(CSV, encoding="utf-8")
    return str(csv), str(audio)


def test_one_utterance_per_caption(corpus, tmp_path, table, rejected):
    csv, audio = corpus
    out = str(tmp_path / "data")
    kept, _ = prepare_corpus("clotho", out, csv=csv, audio_dir=audio)

    text, wav = table(out, "text"), table(out, "wav.scp")
    rain = [f"clotho_Rain_on_roof_c{n}" for n in (1, 2, 4, 5)]
    bells = [f"clotho_cafe_bells_c{n}" for n in range(1, 6)]
    assert kept == 9 and sorted(text) == sorted(rain + bells) == sorted(wav)
    assert text["clotho_Rain_on_roof_c2"] == "Rain hits a roof."
    assert wav["clotho_cafe_bells_c1"] == os.path.join(audio, "café bells.wav")

    bad = rejected(out)
    assert bad["clotho_Rain_on_roof_c3"][0] == (f"{csv}:2", "empty caption (caption_3)")
    for n in range(1, 6):
        assert bad[f"clotho_gone_c{n}"][0][0] == f"{csv}:4"
        assert bad[f"clotho_gone_c{n}"][0][1].startswith("missing audio file")
    for n in range(1, 6):  # the whole duplicate row, c3 included
        assert (f"{csv}:5", f"duplicate file (row at {csv}:2 kept)") in bad[
            f"clotho_Rain_on_roof_c{n}"
        ]
    assert bad["clotho_short_row.wav"][0][0] == f"{csv}:6"
    assert bad["clotho_short_row.wav"][0][1].startswith("malformed row")


def test_one_utterance_per_file(corpus, tmp_path, table, rejected):
    csv, audio = corpus
    out = str(tmp_path / "data")
    kept, _ = prepare_corpus(
        "clotho", out, csv=csv, audio_dir=audio, mode="file", caption_index=3
    )
    assert kept == 1
    assert table(out, "text") == {"clotho_cafe_bells": "Bells chime."}
    bad = rejected(out)
    assert bad["clotho_Rain_on_roof"][0][1] == "empty caption (caption_3)"
    assert bad["clotho_gone"][0][1].startswith("missing audio file")
