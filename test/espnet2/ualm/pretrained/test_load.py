"""Loading a packed model safely: archives never write outside the cache,
weight digests are checked, broken files are named, and a file inside a
packed directory (what espnet_model_zoo returns) identifies it."""

import io
import logging
import os
import re
import shutil
import tarfile
import zipfile

import pytest
import yaml

from espnet2.ualm import UALM
from espnet2.ualm.pretrained import PretrainedFormatError, read_index, resolve_source
from espnet2.ualm.pretrained.load import load_parts
from espnet2.ualm.pretrained.pack import pack_pretrained_dir

META = yaml.safe_dump({"files": {"ualm_index": "m/ualm.yaml"}, "yaml_files": {}})


def _tar_with(path, member: tarfile.TarInfo, data: bytes = b"") -> str:
    with tarfile.open(path, "w:gz") as t:
        info = tarfile.TarInfo("meta.yaml")
        info.size = len(META)
        t.addfile(info, io.BytesIO(META.encode()))
        member.size = len(data) if member.isfile() else 0
        t.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return str(path)


def _evil_tars(tmp_path):
    absolute = tarfile.TarInfo(str(tmp_path / "abs_evil"))
    link = tarfile.TarInfo("m/link")
    link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
    return {
        "dotdot": (tarfile.TarInfo("../../../../evil"), "climbs out"),
        "absolute": (absolute, "absolute"),
        "symlink": (link, "'m/link' is a link"),
    }


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_a_crafted_tar_is_refused_and_writes_nothing_outside(tmp_path, kind):
    work = tmp_path / "work"
    work.mkdir()
    member, message = _evil_tars(work)[kind]
    archive = _tar_with(work / "evil.tar.gz", member, b"pwned")
    cache = work / "a" / "b" / "cache"  # <cache>/unpacked/<key>/../../../.. = a
    cache.mkdir(parents=True)
    before = sorted(work.rglob("*"))
    match = f"{re.escape(archive)}: member .*{re.escape(message)}"
    with pytest.raises(PretrainedFormatError, match=match):
        resolve_source(archive, cache_dir=str(cache))
    outside = [p for p in work.rglob("*") if not str(p).startswith(str(cache) + "/")]
    assert sorted(outside) == before
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_a_zip_member_climbing_out_is_refused(tmp_path):
    archive = str(tmp_path / "evil.zip")
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("meta.yaml", META)
        z.writestr("../../../../zip_evil/f", "pwned")  # from <cache>/unpacked/<key>
    cache = tmp_path / "x" / "cache"
    match = f"{re.escape(archive)}: member '../../../../zip_evil/f' climbs out"
    with pytest.raises(PretrainedFormatError, match=match):
        resolve_source(archive, cache_dir=str(cache))
    assert sorted(os.listdir(tmp_path)) == ["evil.zip", "x"]
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_tar_archive_round_trip(packed_dir, tmp_path):
    archive = pack_pretrained_dir(packed_dir, str(tmp_path / "ualm_tiny.tar.gz"))
    root = resolve_source(archive, cache_dir=str(tmp_path / "cache"))
    assert root.startswith(str(tmp_path / "cache"))
    assert read_index(root).sha256 == read_index(packed_dir).sha256
    assert resolve_source(archive, cache_dir=str(tmp_path / "cache")) == root


def test_index_paths_stay_inside_the_packed_directory(packed_dir, tmp_path):
    copy = tmp_path / "packed"
    shutil.copytree(packed_dir, copy)
    index = yaml.safe_load((copy / "ualm.yaml").read_text())
    index["model"]["weights"] = "../../outside.safetensors"
    (copy / "ualm.yaml").write_text(yaml.safe_dump(index))
    with pytest.raises(PretrainedFormatError, match="lies outside"):
        read_index(str(copy))


# ----- digests ----------------------------------------------------------------


def test_every_weight_file_has_a_digest(packed_dir):
    digests = read_index(packed_dir).sha256
    assert "model/model.safetensors" in digests
    assert "model/vocabulary.json" in digests
    assert any(p.startswith("codec/model/") for p in digests)
    assert any(p.startswith("text_tokenizer/") for p in digests)
    assert all(len(h) == 64 for h in digests.values())


def _flip_a_byte(path: str) -> None:
    with open(path, "r+b") as f:
        f.seek(-3, os.SEEK_END)  # inside the tensor data, past the header
        byte = f.read(1)
        f.seek(-3, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_a_flipped_byte_in_the_weights_is_refused_by_name(packed_dir, tmp_path):
    copy = str(tmp_path / "packed")
    shutil.copytree(packed_dir, copy)
    weights = os.path.join(copy, "model", "model.safetensors")
    _flip_a_byte(weights)
    with pytest.raises(PretrainedFormatError, match=f"{weights}: sha256 differs"):
        UALM.from_pretrained(copy)


def test_a_flipped_byte_in_the_codec_is_refused_by_name(packed_dir, tmp_path):
    copy = str(tmp_path / "packed")
    shutil.copytree(packed_dir, copy)
    weights = os.path.join(copy, "codec", "model", "model.safetensors")
    _flip_a_byte(weights)
    with pytest.raises(PretrainedFormatError, match=f"{weights}: sha256 differs"):
        load_parts(copy)


def _without_digests(packed_dir, tmp_path) -> str:
    copy = str(tmp_path / "old_packed")
    shutil.copytree(packed_dir, copy)
    index_path = os.path.join(copy, "ualm.yaml")
    index = yaml.safe_load(open(index_path))
    index.pop("sha256", None)
    with open(index_path, "w") as f:
        yaml.safe_dump(index, f)
    return copy


def test_an_older_directory_loads_with_a_warning_naming_unverified_files(
    packed_dir, tmp_path, caplog
):
    old = _without_digests(packed_dir, tmp_path)
    with caplog.at_level(logging.WARNING):
        UALM.from_pretrained(old)
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "no sha256" in warning and "model/model.safetensors" in warning


# ----- broken files name themselves -------------------------------------------


def test_a_broken_yaml_config_is_named(packed_dir, tmp_path):
    copy = _without_digests(packed_dir, tmp_path)
    config = os.path.join(copy, "model", "config.yaml")
    with open(config, "w") as f:
        f.write("backbone: [unclosed\n")
    with pytest.raises(ValueError, match=f"{config}: not valid YAML"):
        UALM.from_pretrained(copy)


def test_a_broken_json_file_is_named(packed_dir, tmp_path):
    copy = _without_digests(packed_dir, tmp_path)
    vocabulary = os.path.join(copy, "model", "vocabulary.json")
    with open(vocabulary, "w") as f:
        f.write('{"n_codebooks": ')
    with pytest.raises(ValueError, match=f"{vocabulary}: not valid JSON"):
        UALM.from_pretrained(copy)


@pytest.mark.parametrize("part", ["model", "codec/model"])
def test_a_truncated_safetensors_file_is_named(packed_dir, tmp_path, part):
    copy = _without_digests(packed_dir, tmp_path)
    weights = os.path.join(copy, *part.split("/"), "model.safetensors")
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    with pytest.raises(ValueError, match=f"{weights}: not a readable safetensors"):
        UALM.from_pretrained(copy)


# ----- a file identifies its packed directory ---------------------------------


def test_a_file_inside_the_packed_directory_identifies_it(packed_dir):
    root = os.path.abspath(packed_dir)
    for name in ("ualm.yaml", "model/config.yaml", "codec/model/config.json"):
        assert os.path.abspath(resolve_source(os.path.join(packed_dir, name))) == root
    ualm = UALM.from_pretrained(os.path.join(packed_dir, "ualm.yaml"))
    assert ualm.model is not None


def test_a_missing_path_that_looks_like_a_hub_id_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="exp/packed: no such local directory"):
        resolve_source("exp/packed", str(tmp_path), local_files_only=True)


CODE_RUNNING_LOADS = (
    "weights_only=False",
    "trust_remote_code=",
    "pickle.load",
    "yaml.load(",
    "unsafe_load",
    "UnsafeLoader",
    "FullLoader",
)


def test_no_loader_of_the_plugin_can_run_code():
    """Keeps the claim of load.py true: no pickle, no remote code anywhere."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
    found = []
    for base in ("espnet2/ualm", "espnet2/tasks", "espnet2/bin"):
        for folder, _, names in os.walk(os.path.join(root, base)):
            for name in names:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                text = open(path, encoding="utf-8").read()
                found += [f"{path}: {p}" for p in CODE_RUNNING_LOADS if p in text]
    assert not found
