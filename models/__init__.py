"""Models and the integer program they lower to: the library every other package reads (imports none of them)."""

import os
from pathlib import Path

#: Numba's cache of compiled functions lives outside the repository: ``$NUMBA_CACHE_DIR`` when set, else
#: ``$XDG_CACHE_HOME/nmllm/numba`` (``~/.cache/nmllm/numba``). Set here, before any module imports numba.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                                              / "nmllm" / "numba"))
