"""Where the source checkout is, for commands that need its testbenches (``verif/``) or build folders."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["repo_root"]


def repo_root() -> Path:
    """The checkout this package runs from, made importable; raises if ``verif/`` is not beside it."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "verif" / "registry.py").exists():
        raise RuntimeError(f"{root} is not a NeuromorphicLLM source checkout (no verif/); "
                           "install with `pip install -e .` from a clone to run the RTL flow")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root
