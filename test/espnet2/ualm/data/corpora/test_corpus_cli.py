"""The command line (``espnet2.bin.ualm_prepare_corpus``) and local/data.sh."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))
RECIPE = os.path.join(REPO, "egs2", "ualm", "ualm1")
DB_VARS = ("AUDIOCAPS", "AUDIOCAPS_AUDIO", "CLOTHO", "LIBRISPEECH", "AF3", "AF3_AUDIO")
DB_VARS += ("ETTA", "ETTA_AUDIO", "TEXT_INSTRUCT")
CLOTHO_CSV = "file_name,caption_1,caption_2\na.wav,One.,Two.\ngone.wav,x,y\n"


def _cli(*args):
    cmd = [sys.executable, "-m", "espnet2.bin.ualm_prepare_corpus", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _clotho(root, write_audio, split="development"):
    os.makedirs(root, exist_ok=True)
    write_audio(os.path.join(root, split, "a.wav"))
    with open(os.path.join(root, f"clotho_captions_{split}.csv"), "w") as f:
        f.write(CLOTHO_CSV)


def test_cli_writes_dir_and_summary(tmp_path, write_audio, table, rejected):
    _clotho(str(tmp_path), write_audio)
    out = str(tmp_path / "data" / "clotho_dev")
    result = _cli(
        "clotho",
        "--out_dir",
        out,
        "--csv",
        str(tmp_path / "clotho_captions_development.csv"),
        "--audio_dir",
        str(tmp_path / "development"),
    )
    assert result.returncode == 0, result.stderr
    assert "prepare clotho: kept 2 of 4 items, rejected 2 (2 missing audio file)" in (
        result.stdout
    )
    assert sorted(table(out, "text")) == ["clotho_a_c1", "clotho_a_c2"]
    assert sorted(rejected(out)) == ["clotho_gone_c1", "clotho_gone_c2"]


def test_cli_missing_root_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "no_such_corpus")
    result = _cli(
        "librispeech",
        "--out_dir",
        str(tmp_path / "d"),
        "--root",
        missing,
        "--split",
        "dev-clean",
    )
    assert result.returncode != 0
    assert os.path.join(missing, "dev-clean") in result.stderr
    assert "does not exist" in result.stderr


def test_cli_fails_when_nothing_is_kept(tmp_path, rejected):
    csv = tmp_path / "clotho_captions_x.csv"
    csv.write_text(CLOTHO_CSV)
    os.makedirs(tmp_path / "x")
    out = str(tmp_path / "d")
    result = _cli(
        "clotho",
        "--out_dir",
        out,
        "--csv",
        str(csv),
        "--audio_dir",
        str(tmp_path / "x"),
    )
    assert result.returncode == 1
    assert "no item kept" in result.stderr
    assert len(rejected(out)) == 4


@pytest.fixture
def recipe(tmp_path):
    """A copy of the recipe's db.sh and local/data.sh (db.sh paths empty)."""
    recipe = tmp_path / "egs2" / "ualm" / "ualm1"
    os.makedirs(recipe / "local")
    shutil.copy(os.path.join(RECIPE, "local", "data.sh"), recipe / "local")
    shutil.copy(os.path.join(RECIPE, "db.sh"), recipe)
    # as in the checkout: the recipe links the shared scripts/
    os.symlink(os.path.join(REPO, "egs2", "ualm", "scripts"), recipe / "scripts")
    return str(recipe)


def _data_sh(recipe, *args, **db):
    env = {k: v for k, v in os.environ.items() if k not in DB_VARS}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    env.update(db)
    return subprocess.run(
        ["bash", "local/data.sh", *args],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_data_sh_names_the_empty_db_variable(recipe):
    result = _data_sh(recipe)  # default --corpora: audiocaps clotho
    assert result.returncode != 0
    assert "AUDIOCAPS is empty" in result.stderr
    assert os.path.join(recipe, "db.sh") in result.stderr


def test_data_sh_names_a_missing_db_path(recipe, tmp_path):
    missing = str(tmp_path / "nowhere")
    result = _data_sh(recipe, AUDIOCAPS=str(tmp_path), CLOTHO=missing)
    assert result.returncode != 0
    assert f"CLOTHO={missing}" in result.stderr and "does not exist" in result.stderr
    assert not os.path.exists(os.path.join(recipe, "data"))  # checked before any run


def test_data_sh_default_corpora(recipe, tmp_path, write_audio):
    audiocaps = tmp_path / "audiocaps"
    for split in ("train", "val", "test"):
        write_audio(str(audiocaps / "audio" / split / f"yt{split}.wav"))
        header = "audiocap_id,youtube_id,start_time,caption\n"
        (audiocaps / f"{split}.csv").write_text(header + f"1,yt{split},0,A sound\n")
    clotho = str(tmp_path / "clotho")
    for split in ("development", "validation", "evaluation"):
        _clotho(clotho, write_audio, split)
    result = _data_sh(recipe, AUDIOCAPS=str(audiocaps), CLOTHO=clotho)
    assert result.returncode == 0, result.stderr
    for name in (
        "audiocaps_train",
        "audiocaps_val",
        "audiocaps_test",
        "clotho_evaluation",
    ):
        assert os.path.exists(os.path.join(recipe, "data", name, "text"))
        assert os.path.exists(os.path.join(recipe, "data", name, "rejected.tsv"))


def test_data_sh_options(recipe, tmp_path, write_audio):
    texts = tmp_path / "texts"
    os.makedirs(texts)
    (texts / "alpaca-small.json").write_text('[{"instruction": "Q", "output": "A"}]')
    result = _data_sh(recipe, "--corpora", "text_instruct", TEXT_INSTRUCT=str(texts))
    assert result.returncode == 0, result.stderr
    assert os.path.exists(
        os.path.join(recipe, "data", "text_alpaca_small", "dialogue.jsonl")
    )
    result = _data_sh(recipe, "--corpora", "librispeech")
    assert result.returncode != 0 and "LIBRISPEECH is empty" in result.stderr
