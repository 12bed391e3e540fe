"""The plugin installs into ESPnet's espnet2 package without replacing its files."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ESPNET_FILES = (
    "espnet2/__init__.py",
    "espnet2/tasks/__init__.py",
    "espnet2/bin/__init__.py",
)


def _run(code: str, env=None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # ESPnet modules may print notices on import: keep the lines the code tagged.
    return " ".join(
        line[len("@@") :] for line in out.stdout.splitlines() if line.startswith("@@")
    )


def test_espnet_modules_still_import_beside_the_plugin():
    out = _run(
        "import espnet2, espnet2.tasks.asr, espnet2.train.trainer, "
        "espnet2.tasks.ualm, espnet2.ualm.codec\n"
        "print('@@' + espnet2.__file__); print('@@' + espnet2.tasks.ualm.__file__)"
    )
    espnet_init, task_file = out.split()
    assert "site-packages" in espnet_init  # ESPnet's own package, not ours
    assert os.path.exists(task_file)


def test_ualm_train_help_runs():
    out = subprocess.run(
        [sys.executable, "-m", "espnet2.bin.ualm_train", "--help"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "--codec" in out.stdout and "--text_tokenizer" in out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            ROOT,
        ],
        check=True,
        timeout=600,
        cwd=str(dist),
    )
    (path,) = [p for p in dist.iterdir() if p.suffix == ".whl"]
    return path


def test_wheel_ships_plugin_files_and_no_espnet_file(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for espnet_file in ESPNET_FILES:
        assert espnet_file not in names
    assert "espnet2/tasks/ualm.py" in names
    assert "espnet2/bin/ualm_train.py" in names
    assert "espnet2/ualm/codec/abs_codec.py" in names
    assert not [n for n in names if n.startswith("espnet2/") and "ualm" not in n]


def test_regular_install_next_to_espnet(wheel, tmp_path):
    """A regular install unpacks the wheel into the site directory holding ESPnet.

    ESPnet is copied to a scratch site directory so the test never touches the
    real environment; then the wheel is unpacked over it as pip would.
    """
    import espnet2

    site = tmp_path / "site"
    shutil.copytree(os.path.dirname(espnet2.__file__), site / "espnet2")
    before = {f: (site / f).read_bytes() for f in ESPNET_FILES}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith("espnet2/"):
                zf.extract(name, site)
    for f in ESPNET_FILES:
        assert (site / f).read_bytes() == before[f], f"{f} was overwritten"
    env = dict(os.environ, PYTHONPATH=str(site))
    out = _run(
        "import espnet2.ualm, espnet2.tasks.ualm, espnet2.tasks.asr\n"
        "print('@@' + espnet2.ualm.__file__); print('@@' + espnet2.tasks.asr.__file__)",
        env=env,
    )
    ualm_file, asr_file = out.split()
    assert ualm_file.startswith(str(site)) and asr_file.startswith(str(site))
