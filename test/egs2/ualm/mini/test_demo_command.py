"""The main job ends with the one command that serves its model in the web
demo (ualm.sh's last lines), naming the packed archive by absolute path."""

import os
import subprocess

from test_recipe_integration import ROOT, _copy_recipe


def _finish(setup: str) -> str:
    out = subprocess.run(
        # stage 13 without --hf_repo does nothing: only the end of the job runs
        ["bash", "run.sh", "--stage", "13", "--stop_stage", "13"],
        cwd=setup,
        env=dict(os.environ, UALM_MAIN_ROOT=ROOT),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def test_the_main_job_prints_the_demo_command(tmp_path):
    setup = _copy_recipe(str(tmp_path / "mini"))
    assert "ualm_demo" not in _finish(setup)  # nothing trained yet: no command
    exp = os.path.join(setup, "exp", "ualm_unified")
    os.makedirs(os.path.join(exp, "packed"))
    open(os.path.join(exp, "packed", "ualm.yaml"), "w").close()
    log = _finish(setup)
    assert (
        f"(cd {ROOT} && make -s -C tools demo && tools/venv/bin/python -m "
        f"espnet2.bin.ualm_demo --model {os.path.realpath(exp)}/packed)"
    ) in log
    open(os.path.join(exp, "ualm_mini.zip"), "w").close()
    assert f"--model {os.path.realpath(exp)}/ualm_mini.zip)" in _finish(setup)
