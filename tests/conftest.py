"""Shared pytest set-up: the repository root is importable (for ``verif``)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hypothesis import settings  # noqa: E402

# Property tests check values, not speed: no per-example deadline (a loaded CI machine made one flaky).
settings.register_profile("nmllm", deadline=None)
settings.load_profile("nmllm")
