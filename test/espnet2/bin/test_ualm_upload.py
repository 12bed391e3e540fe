"""ualm_upload: a refusal of the hub is one line naming the repository and
the hub's message, with a nonzero exit, and never shows the token."""

import types

import pytest
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from espnet2.bin import ualm_upload

SECRET = "hf_secret_token_value_123"


class RefusingHfApi:
    """An ``HfApi`` stand-in whose hub refuses ``method`` with ``error``."""

    def __init__(self, method, error):
        self.method, self.error = method, error

    def create_repo(self, **kwargs):
        if self.method == "create_repo":
            raise self.error

    def upload_folder(self, **kwargs):
        raise self.error


def _response():
    # what HfHubHTTPError reads of the HTTP response
    return types.SimpleNamespace(headers={"x-request-id": "req-1"}, request=None)


@pytest.mark.parametrize(
    "method, error",
    [
        (
            "create_repo",
            HfHubHTTPError(
                f"403 Forbidden: You don't have the rights to create a model "
                f'under the namespace "me" (token {SECRET})\nRequest ID: req-1',
                response=_response(),
            ),
        ),
        (
            "upload_folder",
            RepositoryNotFoundError(
                "404 Client Error.\n\nRepository Not Found for url: "
                "https://huggingface.co/api/models/me/ualm-tiny/preupload/main",
                response=_response(),
            ),
        ),
    ],
)
def test_a_refused_upload_is_one_line_without_the_token(
    packed_dir, monkeypatch, capsys, method, error
):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    api = RefusingHfApi(method, error)
    with pytest.raises(SystemExit) as exit_info:
        ualm_upload.main(
            ["--pretrained_dir", packed_dir, "--repo_id", "me/ualm-tiny"], api=api
        )
    message = str(exit_info.value.code)
    assert "\n" not in message
    assert message.startswith("ualm_upload: uploading ")
    assert "me/ualm-tiny" in message and type(error).__name__ in message
    assert ("rights to create" if method == "create_repo" else "Not Found") in message
    out = capsys.readouterr()
    assert SECRET not in message + out.out + out.err
