"""Declared versions are the tested ones: every requirement of the installer
(tools/requirements.txt) and of setup.py admits the installed version, and
transformers stays below 5.40, which removes the ``past_key_values=``
argument the cached decode passes."""

import ast
import os
from importlib import metadata
from typing import List

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRST_UNSUPPORTED_TRANSFORMERS = Version("5.40")


def _requirements_txt(path: str) -> List[Requirement]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                out.append(Requirement(line.split(" --", 1)[0]))
    return out


def _setup_py_requirements() -> List[Requirement]:
    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return [Requirement(s) for s in ast.literal_eval(node.value)]
    raise AssertionError("setup.py has no install_requires")


DECLARED = {
    "tools/requirements.txt": _requirements_txt(
        os.path.join(ROOT, "tools", "requirements.txt")
    ),
    "tools/requirements-dev.txt": _requirements_txt(
        os.path.join(ROOT, "tools", "requirements-dev.txt")
    ),
    "setup.py": _setup_py_requirements(),
}


@pytest.mark.parametrize("where", sorted(DECLARED))
def test_installed_versions_satisfy_the_declared_requirements(where):
    wrong = []
    for req in DECLARED[where]:
        installed = metadata.version(req.name)
        if not req.specifier.contains(installed, prereleases=True):
            wrong.append(f"{req} (installed {installed})")
    assert not wrong, f"{where}: {wrong}"


@pytest.mark.parametrize("where", ["tools/requirements.txt", "setup.py"])
def test_transformers_is_bounded_below_the_api_removal(where):
    (req,) = [r for r in DECLARED[where] if r.name == "transformers"]
    assert not req.specifier.contains(FIRST_UNSUPPORTED_TRANSFORMERS), (
        f"{where}: {req} admits transformers {FIRST_UNSUPPORTED_TRANSFORMERS}"
    )


def test_the_installer_pins_the_tested_transformers_release():
    (req,) = [r for r in DECLARED["tools/requirements.txt"] if r.name == "transformers"]
    tested = Version(metadata.version("transformers"))
    assert req.specifier.contains(tested)
    following = f"{tested.major}.{tested.minor + 1}"
    assert not req.specifier.contains(following), f"{req} admits untested {following}"
