"""Declared versions are the tested ones: every requirement of the installer
(tools/requirements*.txt, the file of this environment's combination) and of
setup.py admits the installed version, the two supported combinations
(Python 3.12/3.13 with ESPnet 202611, the default; Python 3.11 with ESPnet
202511) are named alike in tools/Makefile, the requirements files and
setup.py, and transformers stays below 5.40, which removes the
``past_key_values=`` argument the cached decode passes."""

import ast
import os
import re
from importlib import metadata
from typing import List

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRST_UNSUPPORTED_TRANSFORMERS = Version("5.40")
# installer file -> (ESPnet release, Python versions), as tools/Makefile has them
COMBINATIONS = {
    "tools/requirements.txt": ("202611", ("3.12", "3.13")),
    "tools/requirements-espnet202511.txt": ("202511", ("3.11",)),
}
DEFAULT_INSTALLER = "tools/requirements.txt"


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


def _pin(reqs: List[Requirement], name: str) -> str:
    (req,) = [r for r in reqs if r.name == name]
    (spec,) = req.specifier
    assert spec.operator == "==", f"{req}: not a pin"
    return spec.version


INSTALLERS = {
    where: _requirements_txt(os.path.join(ROOT, where)) for where in COMBINATIONS
}


def _this_installer() -> str:
    """The installer file of this environment: the one pinning its ESPnet."""
    installed = metadata.version("espnet")
    (where,) = [w for w in INSTALLERS if _pin(INSTALLERS[w], "espnet") == installed]
    return where


DECLARED = {
    "installer": INSTALLERS[_this_installer()],
    "tools/requirements-dev.txt": _requirements_txt(
        os.path.join(ROOT, "tools", "requirements-dev.txt")
    ),
    "setup.py": _setup_py_requirements(),
}


@pytest.mark.parametrize("where", sorted(DECLARED))
def test_installed_versions_satisfy_the_declared_requirements(where):
    wrong = []
    for req in DECLARED[where]:
        if req.marker is not None and not req.marker.evaluate():
            continue
        installed = metadata.version(req.name)
        if not req.specifier.contains(installed, prereleases=True):
            wrong.append(f"{req} (installed {installed})")
    assert not wrong, f"{where}: {wrong}"


@pytest.mark.parametrize("where", sorted(COMBINATIONS))
def test_each_installer_file_is_one_combination(where):
    espnet, pythons = COMBINATIONS[where]
    reqs = INSTALLERS[where]
    assert _pin(reqs, "espnet") == espnet
    assert _pin(reqs, "torch") == _pin(reqs, "torchaudio"), "torch != torchaudio"
    # setup.py's markers choose the same ESPnet for the same Pythons
    for python in pythons:
        env = {"python_version": python, "python_full_version": python + ".0"}
        chosen = [
            r
            for r in _setup_py_requirements()
            if r.name == "espnet" and (r.marker is None or r.marker.evaluate(env))
        ]
        assert [str(r.specifier) for r in chosen] == [f"=={espnet}"], (python, chosen)


def test_the_makefile_selects_the_combinations():
    text = open(os.path.join(ROOT, "tools", "Makefile"), encoding="utf-8").read()
    default = re.search(r"^DEFAULT_ESPNET := (\S+)$", text, re.M).group(1)
    assert default == COMBINATIONS[DEFAULT_INSTALLER][0]
    for where, (espnet, pythons) in COMBINATIONS.items():
        block = re.search(
            rf"ifeq \(\$\(ESPNET\),{espnet}\)\n(.*?)\nelse", text, re.S
        ).group(1)
        assert f"REQUIREMENTS := {os.path.basename(where)}" in block, block
        assert f"PY_VERSIONS := {' '.join(pythons)}" in block, block


@pytest.mark.parametrize("where", sorted(COMBINATIONS) + ["setup.py"])
def test_transformers_is_bounded_below_the_api_removal(where):
    reqs = INSTALLERS.get(where) or DECLARED["setup.py"]
    (req,) = [r for r in reqs if r.name == "transformers"]
    assert not req.specifier.contains(FIRST_UNSUPPORTED_TRANSFORMERS), (
        f"{where}: {req} admits transformers {FIRST_UNSUPPORTED_TRANSFORMERS}"
    )


def test_the_installer_pins_the_tested_transformers_release():
    (req,) = [r for r in DECLARED["installer"] if r.name == "transformers"]
    tested = Version(metadata.version("transformers"))
    assert req.specifier.contains(tested)
    following = f"{tested.major}.{tested.minor + 1}"
    assert not req.specifier.contains(following), f"{req} admits untested {following}"
