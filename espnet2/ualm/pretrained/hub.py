"""The Hugging Face hub: downloading a packed model by id, uploading one.

Uploads need an explicit repository id and a token from the environment
(``HF_TOKEN`` or ``HUGGING_FACE_HUB_TOKEN``); the token is passed to
huggingface_hub and never printed or logged.
"""

import logging
import os
from typing import Optional

from espnet2.ualm.pretrained.layout import read_index

TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


class HubTokenError(RuntimeError):
    """No token in the environment for an upload."""


def token_from_env() -> str:
    for name in TOKEN_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    raise HubTokenError(
        f"uploading needs a Hugging Face token in ${TOKEN_VARIABLES[0]} "
        f"(or ${TOKEN_VARIABLES[1]}); none is set"
    )


def download(
    hub_id: str, cache_dir: Optional[str] = None, local_files_only: bool = False
) -> str:
    """``owner/name[@revision]`` -> local snapshot directory (checked)."""
    from huggingface_hub import snapshot_download

    repo_id, _, revision = hub_id.partition("@")
    root = snapshot_download(
        repo_id=repo_id,
        revision=revision or None,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
    )
    read_index(root)
    return root


def upload(
    pretrained_dir: str,
    repo_id: str,
    private: bool = True,
    commit_message: str = "Upload UALM model",
    api=None,
) -> str:
    """Uploads a packed-model directory to ``repo_id`` (created if missing,
    private by default). ``api``: an ``HfApi`` (tests pass a stand-in).
    Returns the commit URL."""
    if not repo_id or "/" not in repo_id:
        raise ValueError(f"give an explicit repository id owner/name, not {repo_id!r}")
    read_index(pretrained_dir)
    token = token_from_env()
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(repo_id=repo_id, token=token, private=private, exist_ok=True)
    logging.info(f"uploading {pretrained_dir} to {repo_id}")
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=pretrained_dir,
        token=token,
        commit_message=commit_message,
    )
    return str(getattr(info, "commit_url", info))
