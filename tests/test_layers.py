"""The layer contracts of ``pyproject.toml`` (import-linter) hold, and they bite on an upward import."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "hw", "verif", "sim", "experiments", "nmllm")
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_layer_contracts_are_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def _copy_tree(dst: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", dst)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("*.pyc", "__pycache__", "*.safetensors",
                                                                               "*.json", "*.jsonl"))


@pytest.mark.parametrize("module, line, contract", [
    ("models/program/numformat.py", "import sim.system.model", "Layers"),
    ("hw/fixed.py", "from verif import simulators", "Layers"),
    ("sim/system/energy.py", "import matplotlib", "plot nothing"),
    ("models/text/corpus.py", "import argparse", "plot nothing"),
    ("models/text/tokenizer.py", "import models.mmfree.checkpoint", "cycles"),
])
def test_contracts_bite_on_a_forbidden_import(tmp_path, module, line, contract):
    """A copy of the tree with one forbidden import added fails the lint, naming the broken contract."""
    _copy_tree(tmp_path)
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract.lower() in ln.lower() for ln in broken), result.stdout
