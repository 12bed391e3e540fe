"""Loading a packed UALM model from a directory, an archive or the hub.

Only safetensors weights and YAML/JSON configs are read: no pickle, no remote
code (``trust_remote_code`` is never set, every HF loader is local-only), so a
downloaded model cannot run code on the user's machine; weight files are
checked against the sha256 digests of the index, and an archive is unpacked
only inside the cache directory.
"""

import dataclasses
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Dict, List, Optional, Tuple

import torch

from espnet2.ualm.data.safe_io import is_within, read_yaml
from espnet2.ualm.pretrained.layout import (
    INDEX_FILE,
    PretrainedFiles,
    PretrainedFormatError,
    load_weights,
    read_index,
    verify_digests,
)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
ARCHIVE_META = "meta.yaml"  # ESPnet pack's table of contents
# a file given as the source (e.g. the ualm.yaml espnet_model_zoo returns, or
# model/config.yaml) identifies the packed directory this many levels up
MAX_LEVELS_UP = 3
DEFAULT_CACHE = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ualm"
)


def is_hub_id(source: str) -> bool:
    """``owner/name`` (optionally ``@revision``) that is not a local path."""
    name = source.split("@", 1)[0]
    parts = name.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not os.path.exists(source)
        and not name.startswith((".", "/", "~"))
    )


def resolve_source(
    source: str,
    cache_dir: Optional[str] = None,
    local_files_only: bool = False,
) -> str:
    """The packed-model directory of ``source``: a directory, an archive
    (unpacked once into ``cache_dir``) or a hub id ``owner/name[@revision]``
    (downloaded with huggingface_hub)."""
    source = os.fspath(source)
    cache_dir = cache_dir or DEFAULT_CACHE
    if os.path.isdir(source):
        read_index(source)
        return source
    if os.path.isfile(source):
        if source.endswith(ARCHIVE_SUFFIXES):
            return unpack_archive(source, cache_dir)
        root = packed_dir_of_file(source)
        if root is None:
            raise PretrainedFormatError(
                f"{source}: not a packed model (expected a directory, a file inside "
                f"one, or an archive ending in {ARCHIVE_SUFFIXES})"
            )
        return root
    if is_hub_id(source):
        from espnet2.ualm.pretrained.hub import download

        try:
            return download(
                source, cache_dir=cache_dir, local_files_only=local_files_only
            )
        except (OSError, ValueError) as e:  # hub errors are OSErrors
            if isinstance(e, PretrainedFormatError):
                raise
            raise FileNotFoundError(
                f"{source}: no such local directory, and as a hub id: {e}"
            ) from e
    raise FileNotFoundError(
        f"{source}: no such directory or archive, and not a hub id (owner/name)"
    )


def packed_dir_of_file(path: str) -> Optional[str]:
    """The packed directory a file lies in (its nearest ancestor holding
    ``ualm.yaml``, at most ``MAX_LEVELS_UP`` up), or ``None``."""
    folder = os.path.dirname(os.path.abspath(path))
    for _ in range(MAX_LEVELS_UP):
        if os.path.isfile(os.path.join(folder, INDEX_FILE)):
            read_index(folder)
            return folder
        folder = os.path.dirname(folder)
    return None


def unpack_archive(archive: str, cache_dir: str) -> str:
    """Unpacks an archive of ``espnet2.bin.ualm_pack`` (ESPnet's ``pack``
    layout: ``meta.yaml`` naming ``ualm_index``) into a cache directory keyed
    by its path, size and modification time; returns the packed directory.

    Not ESPnet's ``unpack``: it extracts tar members without a filter and
    makes each member's parent directory first, so a crafted archive could
    write outside the cache. Here every member is checked before anything is
    written (:func:`_check_members`), tar members are extracted with
    ``filter="data"`` as well, and the archive is unpacked into a temporary
    directory renamed into place, so a cache hit is always complete.
    """
    stat = os.stat(archive)
    key = hashlib.sha1(
        f"{os.path.abspath(archive)}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    ).hexdigest()[:16]
    unpacked = os.path.join(cache_dir, "unpacked")
    out = os.path.join(unpacked, key)
    meta = os.path.join(out, ARCHIVE_META)
    if not os.path.isfile(meta):
        os.makedirs(unpacked, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{key}.", dir=unpacked)
        try:
            _extract(archive, tmp)
            if os.path.isdir(out):  # an incomplete unpack of an older version
                shutil.rmtree(out)
            try:
                os.replace(tmp, out)
            except OSError:
                if not os.path.isfile(meta):  # else another process unpacked it
                    raise
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp)
    return _index_root(archive, out)


def _extract(archive: str, out: str) -> None:
    """Extracts every member of ``archive`` into ``out`` after checking them."""
    try:
        if archive.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                _check_members(archive, [(i.filename, "file") for i in z.infolist()])
                z.extractall(out)
        else:
            with tarfile.open(archive) as t:
                members = t.getmembers()
                _check_members(archive, [(m.name, _tar_kind(m)) for m in members])
                # the library's own guard too (Python >= 3.10.12 / 3.11.4)
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                t.extractall(out, members=members, **kwargs)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise PretrainedFormatError(f"{archive}: cannot unpack: {e}") from e


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isfile():
        return "file"
    if member.isdir():
        return "directory"
    if member.issym() or member.islnk():
        return f"link to {member.linkname!r}"
    return "device or fifo"


def _check_members(archive: str, members: List[Tuple[str, str]]) -> None:
    """Refuses (naming the archive and the member) any member that is not a
    plain file or directory or whose path is absolute or climbs out (``..``)."""
    for name, kind in members:
        path = PurePosixPath(name.replace("\\", "/"))
        if kind not in ("file", "directory"):
            why = f"is a {kind}"
        elif path.is_absolute() or PureWindowsPath(name).drive:
            why = "has an absolute path"
        elif ".." in path.parts:
            why = "climbs out of the archive (..)"
        else:
            continue
        raise PretrainedFormatError(
            f"{archive}: member {name!r} {why}; refusing to unpack it"
        )


def _index_root(archive: str, out: str) -> str:
    """The packed directory that the archive's ``meta.yaml`` names."""
    meta_path = os.path.join(out, ARCHIVE_META)
    if not os.path.isfile(meta_path):
        raise PretrainedFormatError(f"{archive}: no {ARCHIVE_META} (not made by pack)")
    meta = read_yaml(meta_path)
    files = meta.get("files") if isinstance(meta, dict) else None
    index = files.get("ualm_index") if isinstance(files, dict) else None
    if not isinstance(index, str):
        raise PretrainedFormatError(f"{archive}: no ualm_index in its {ARCHIVE_META}")
    if os.path.basename(index) != INDEX_FILE:
        raise PretrainedFormatError(f"{archive}: ualm_index is not {INDEX_FILE}")
    full = os.path.abspath(os.path.join(out, index))
    if not is_within(full, out):
        raise PretrainedFormatError(
            f"{archive}: ualm_index {index!r} lies outside the archive"
        )
    return os.path.dirname(full)


@dataclasses.dataclass
class PretrainedParts:
    """Everything inference needs, built from a packed model."""

    files: PretrainedFiles
    model: Any  # UALMModel
    tokenizer: Any  # TextTokenizer
    codec: Any  # AbsCodec
    enhancer: Optional[Any]  # AbsEnhancer
    decode: Dict[str, Any]


def build_model(files: PretrainedFiles, device: str = "cpu"):
    """The UALM model of a packed directory, weights loaded, in eval mode.

    Built by ``build_model_from_config``, as in training, so a bad config is
    refused with training's message, prefixed with the file's path.
    """
    from espnet2.ualm.model.factory import build_model_from_config
    from espnet2.ualm.tokens.vocabulary import UALMVocabulary

    conf = read_yaml(files.model_config) or {}
    vocab = UALMVocabulary.load(files.vocabulary)
    with torch.device("cpu"):
        try:
            model = build_model_from_config(conf, vocab)
        except ValueError as e:
            raise PretrainedFormatError(f"{files.model_config}: {e}") from e
    load_weights(model, files.model_weights)
    return model.to(device).eval()


def build_enhancer(files: PretrainedFiles, device: str = "cpu"):
    """The packed enhancer, weights loaded, in eval mode."""
    from espnet2.ualm.enhancer import enhancer_choices

    conf = read_yaml(files.enhancer_config) or {}
    if not isinstance(conf, dict) or "enhancer" not in conf:
        raise PretrainedFormatError(
            f"{files.enhancer_config}: no 'enhancer:' entry (the enhancer's name)"
        )
    enhancer = enhancer_choices.get_class(conf["enhancer"])(
        **(conf.get("enhancer_conf") or {})
    )
    if files.enhancer_weights:
        load_weights(enhancer, files.enhancer_weights)
    return enhancer.to(device).eval()


def load_parts(
    source: str,
    device: str = "cpu",
    cache_dir: Optional[str] = None,
    local_files_only: bool = False,
    with_enhancer: bool = True,
) -> PretrainedParts:
    """Model, tokenizer, codec, enhancer and decoding settings of ``source``."""
    from espnet2.ualm.codec.config import codec_from_config
    from espnet2.ualm.text.tokenizer import load_text_tokenizer

    root = resolve_source(source, cache_dir, local_files_only)
    files = read_index(root)
    logging.info(f"loading UALM from {root}")
    verify_digests(files)
    model = build_model(files, device)
    tokenizer = load_text_tokenizer(files.text_tokenizer)
    codec = codec_from_config(files.codec_config, files.codec_model_dir).eval()
    codec.to(device)
    enhancer = None
    if with_enhancer and files.enhancer_config:
        enhancer = build_enhancer(files, device)
    decode: Dict[str, Any] = {}
    if files.decode_config:
        decode = read_yaml(files.decode_config) or {}
    return PretrainedParts(files, model, tokenizer, codec, enhancer, decode)
