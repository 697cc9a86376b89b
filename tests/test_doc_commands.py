"""Every command in the README's and docs' shell blocks names a real subcommand with valid flags, script or target."""

import re
import shlex
from pathlib import Path

import pytest

from nmllm.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "models").glob("*/README.md"))]


def _shell_lines(text: str) -> list[str]:
    """Command lines of the ```sh / ```bash blocks, backslash continuations joined, comments dropped."""
    lines = []
    for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", line)  # environment assignments
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _commands():
    for page in PAGES:
        for line in _shell_lines(page.read_text()):
            if line.startswith(("nmllm ", "python ", "make ")):
                yield pytest.param(line, id=f"{page.relative_to(ROOT)}: {line[:60]}")


@pytest.mark.parametrize("line", list(_commands()))
def test_documented_command_is_valid(line):
    argv = shlex.split(line)
    if argv[0] == "nmllm":
        build_parser().parse_args(argv[1:])  # exits (fails the test) on an unknown command or flag
    elif argv[0] == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
        assert all(t in targets for t in argv[1:] if "=" not in t)
    elif argv[1] == "-m":
        assert argv[2] == "pytest", f"use the nmllm command, not {line!r}"
        for path in argv[3:]:
            assert path.startswith("-") or (ROOT / path.split("::")[0]).exists(), f"{line!r}: no {path}"
    else:
        assert (ROOT / argv[1]).exists(), f"{line!r}: no {argv[1]}"
