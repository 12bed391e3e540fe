"""One-file packed models with ESPnet's ``pack`` (its archive layout and
``meta.yaml``), so ``espnet_model_zoo`` users recognise the file."""

import contextlib
import os
from typing import Iterator

from espnet2.ualm.pretrained.layout import INDEX_FILE, read_index


@contextlib.contextmanager
def _cwd(path: str) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def pack_pretrained_dir(pretrained_dir: str, outpath: str) -> str:
    """Archives a packed-model directory (``.zip`` or ``.tar.gz`` by suffix).

    ESPnet's ``pack`` stores paths relative to the working directory, so it
    runs from the directory's parent: the archive holds ``<name>/...`` and its
    ``meta.yaml`` names ``<name>/ualm.yaml`` as ``ualm_index``.
    """
    from espnet2.main_funcs.pack_funcs import pack

    read_index(pretrained_dir)  # refuse to pack an incomplete directory
    pretrained_dir = os.path.abspath(pretrained_dir)
    outpath = os.path.abspath(outpath)
    parent, name = os.path.split(pretrained_dir)
    with _cwd(parent):
        others = sorted(
            os.path.join(name, entry)
            for entry in os.listdir(name)
            if entry != INDEX_FILE  # added once, as a named file
        )
        pack(
            files={"ualm_index": os.path.join(name, INDEX_FILE)},
            yaml_files={},
            outpath=outpath,
            option=others,
        )
    return outpath
