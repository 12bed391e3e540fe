"""ualm.sh refuses bad option values before doing any work: a one-line error
naming the option and the value, and a nonzero exit (never "nothing run, 0")."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
RECIPE = os.path.join(ROOT, "egs2", "ualm", "mini")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A copy of the mini setup directory (the run must not write into the checkout)."""
    dst = tmp_path_factory.mktemp("mini")
    for name in ("run.sh", "cmd.sh", "path.sh", "db.sh"):
        shutil.copy(os.path.join(RECIPE, name), dst)
    shutil.copytree(os.path.join(RECIPE, "conf"), dst / "conf")
    os.symlink(os.path.join(ROOT, "egs2", "ualm", "ualm.sh"), dst / "ualm.sh")
    os.symlink(os.path.join(ROOT, "egs2", "ualm", "scripts"), dst / "scripts")
    return dst


def _run(setup, *args):
    out = subprocess.run(
        ["bash", "run.sh", *args],
        cwd=setup,
        env=dict(os.environ, UALM_MAIN_ROOT=ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.returncode, out.stdout + out.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stage", "abc"], "--stage must be a stage number from 1 to 23, got 'abc'"),
        (["--stage", "0"], "--stage must be a stage number from 1 to 23, got '0'"),
        (["--stage", "24"], "got '24'"),
        (["--stop_stage", "x"], "--stop_stage must be a stage number"),
        (["--stage", "5", "--stop_stage", "3"], "from --stage (5) on, got '3'"),
        (["--nj", "0"], "--nj must be a positive integer, got '0'"),
        (["--inference_nj", "-2"], "--inference_nj must be a positive integer"),
        (["--enhancer_in_background", "yes"], "must be true or false, got 'yes'"),
        (["--no_such_option", "1"], "invalid option --no_such_option"),
        (["--inference_tasks", "foo"], "--inference_tasks: no task 'foo'"),
        (["--test_sets", "nope_test"], "--test_sets: 'nope_test' belongs to no"),
    ],
)
def test_bad_option_values_fail_before_any_work(setup, args, message):
    rc, log = _run(setup, *args)
    assert rc != 0, log
    assert message in log, log
    assert "Stage 1" not in log and not os.path.exists(setup / "data"), log
