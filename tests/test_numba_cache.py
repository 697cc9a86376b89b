"""Numba's compiled-function cache lives outside the repository (``models/__init__.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = "import {module}, numba; print(numba.config.CACHE_DIR)"


def _cache_dir(module: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    done = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], cwd=ROOT, capture_output=True,
                          text=True, env={**clean, **env}, check=True)
    return done.stdout.strip()


def test_the_cache_is_outside_the_repository_for_models_and_sim(tmp_path):
    for module in ("models.program.golden", "sim.system.model"):
        assert _cache_dir(module, XDG_CACHE_HOME=str(tmp_path)) == str(tmp_path / "nmllm" / "numba")
        assert not _cache_dir(module).startswith(str(ROOT))


def test_a_users_numba_cache_dir_wins(tmp_path):
    assert _cache_dir("models.program.golden", NUMBA_CACHE_DIR=str(tmp_path / "mine")) == str(tmp_path / "mine")
