"""UALM plugin for ESPnet.

The plugin installs its modules *into* the ``espnet2`` package of an installed
ESPnet (``espnet2.ualm``, ``espnet2.tasks.ualm``, ``espnet2.bin.ualm_*``)
without shipping any ESPnet file: there is deliberately no
``espnet2/__init__.py``, ``espnet2/tasks/__init__.py`` or
``espnet2/bin/__init__.py`` in this repository, so a regular install only adds
files next to ESPnet's own.

Editable installs (``pip install -e .``) work through setuptools' own
editable finder, which maps ``espnet2.ualm``, ``espnet2.tasks.*`` and
``espnet2.bin.*`` names it cannot find in ESPnet to this checkout
(``test/test_install.py`` checks both install modes).
"""

import glob
import os

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _plugin_packages() -> list:
    """Every folder below espnet2/ualm that holds an __init__.py."""
    pkgs = []
    for init in glob.glob("espnet2/ualm/**/__init__.py", recursive=True):
        pkgs.append(os.path.dirname(init).replace(os.sep, "."))
    return sorted(pkgs)


def _plugin_modules() -> list:
    """Single-file modules placed into ESPnet's own packages."""
    mods = []
    paths = glob.glob("espnet2/tasks/ualm*.py") + glob.glob("espnet2/bin/ualm_*.py")
    for path in sorted(paths):
        mods.append(path[:-3].replace(os.sep, "."))
    return mods


setup(
    name="espnet-ualm",
    version="0.1.0",
    description="UALM: Unified Audio Language Model, as an ESPnet plugin",
    long_description=open(os.path.join(ROOT, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # ESPnet 202611 runs on Python 3.12 and 3.13; ESPnet 202511 below that
    python_requires=">=3.10,<3.14",
    packages=_plugin_packages(),
    py_modules=_plugin_modules(),
    install_requires=[
        # the two tested combinations (tools/requirements*.txt)
        'espnet==202611; python_version >= "3.12"',
        'espnet==202511; python_version < "3.12"',
        "torch",
        "torchaudio",
        "transformers>=5.24,<5.40",  # 5.40 removes past_key_values= (decode)
        "sentencepiece",
        "kaldiio",
        "soundfile",
        "tqdm",
    ],
    extras_require={
        "gpu": ["deepspeed", "flash-attn"],
        # the web demo (espnet2.bin.ualm_demo); tools/requirements-demo.txt
        "demo": ["gradio>=6.31,<7"],
    },
)
