"""The README's layout section matches the tree: every path it names exists, every package is named."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "hw", "verif", "sim", "experiments", "nmllm")


def _layout_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Layout\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def _named_paths(section: str) -> list[str]:
    """Paths in the layout table (the reserved homes listed below it may not exist yet)."""
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    spans = re.findall(r"`([^`]*)`", table)
    return [n for n in spans if "/" in n and " " not in n]


def test_every_named_path_exists():
    paths = _named_paths(_layout_section())
    assert len(paths) > 20
    for name in paths:
        pattern = name.replace("<unit>", "*").replace("<name>", "*")
        assert list(ROOT.glob(pattern.rstrip("/"))), f"README layout names {name!r}, which does not exist"


def test_every_package_is_named():
    section = _layout_section()
    named = {p.rstrip("/") for p in _named_paths(section)}
    for pkg in PACKAGES:
        for init in sorted((ROOT / pkg).rglob("__init__.py")):
            folder = init.parent.relative_to(ROOT).as_posix()
            top_level_implied = "/" not in folder and any(n.startswith(folder + "/") for n in named)
            assert folder in named or top_level_implied, f"README layout does not name the package {folder}/"
