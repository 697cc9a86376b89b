"""A non-editable ``pip install .`` gives a working ``nmllm`` (the dependencies come from this environment)."""

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_non_editable_install_runs_help(tmp_path):
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((ROOT / name).read_bytes())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # this environment's packages (pip, setuptools, the pinned dependencies) are visible; the project is not:
    # a path listed in a .pth file is added as it is, its own .pth files (the editable finder) are not run
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages() + [sysconfig.get_paths()["purelib"]]) + "\n")
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(src)],
                   cwd=tmp_path, check=True, timeout=300, env={**os.environ, "PIP_NO_INPUT": "1"})
    where = subprocess.run([py, "-c", "import models, nmllm, verif; print(models.__file__, verif.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(purelib) in where and str(ROOT) not in where
    for args in (["--help"], ["demo", "--help"]):
        out = subprocess.run([str(venv / "bin" / "nmllm"), *args], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert "usage: nmllm" in out.stdout
