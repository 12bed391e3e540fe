"""Hub upload and download, tested up to the call that would leave the machine:
an explicit repository, the token only from the environment and never shown."""

import logging
import os

import pytest

from espnet2.bin import ualm_upload
from espnet2.ualm.pretrained import hub
from espnet2.ualm.pretrained.load import resolve_source

SECRET = "hf_secret_token_value_123"


class FakeHfApi:
    """Records the calls ``HfApi`` would send to the hub."""

    def __init__(self):
        self.calls = []

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))

        class Info:
            commit_url = f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"

        return Info()


def test_upload_sends_the_folder_with_the_env_token(
    packed_dir, monkeypatch, caplog, capsys
):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    api = FakeHfApi()
    with caplog.at_level(logging.DEBUG):
        ualm_upload.main(
            ["--pretrained_dir", packed_dir, "--repo_id", "me/ualm-tiny"], api=api
        )
    (name1, create), (name2, upload) = api.calls
    assert (name1, name2) == ("create_repo", "upload_folder")
    assert create["repo_id"] == "me/ualm-tiny" and create["private"] is True
    assert upload["folder_path"] == packed_dir and upload["token"] == SECRET
    out = capsys.readouterr()
    assert SECRET not in caplog.text + out.out + out.err
    assert "commit/abc" in caplog.text


def test_upload_needs_a_token_and_a_repository(packed_dir, monkeypatch):
    for name in hub.TOKEN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="HF_TOKEN"):
        ualm_upload.main(
            ["--pretrained_dir", packed_dir, "--repo_id", "me/x"], api=FakeHfApi()
        )
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", SECRET)
    with pytest.raises(SystemExit, match="explicit repository id"):
        ualm_upload.main(
            ["--pretrained_dir", packed_dir, "--repo_id", "noslash"], api=FakeHfApi()
        )


def test_hub_id_resolves_through_snapshot_download(packed_dir, monkeypatch, tmp_path):
    seen = {}

    def fake_snapshot_download(**kwargs):
        seen.update(kwargs)
        return packed_dir

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    root = resolve_source("espnet/ualm-mini@v1.0", cache_dir=str(tmp_path))
    assert root == packed_dir
    assert seen["repo_id"] == "espnet/ualm-mini" and seen["revision"] == "v1.0"
    assert os.path.isfile(os.path.join(root, "ualm.yaml"))
