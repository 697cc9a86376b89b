"""One way to expose an experiment as ``nmllm <name>`` and as ``python -m <module>``.

A module with an ``add_arguments(parser)`` and a ``command(args) -> int`` registers itself with
:func:`add_command` and runs standalone with :func:`run_module`; both print a user's mistake
(``ValueError``, ``FileNotFoundError``) as one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional

__all__ = ["add_command", "run_module"]


def _summary(doc: Optional[str]) -> str:
    return (doc or "").split("\n\n")[0]


def add_command(subparsers, name: str, help: str, doc: Optional[str], add_arguments: Callable,
                command: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """Add subcommand ``name`` (description: the first paragraph of ``doc``) running ``command``."""
    p = subparsers.add_parser(name, help=help, description=_summary(doc))
    add_arguments(p)
    p.set_defaults(func=command)
    return p


def run_module(prog: str, doc: Optional[str], add_arguments: Callable, command: Callable[[argparse.Namespace], int],
               argv: Optional[list[str]] = None) -> int:
    """Parse ``argv`` and run ``command``; a ``ValueError``/``FileNotFoundError`` prints one line, exit 2."""
    parser = argparse.ArgumentParser(prog=prog, description=_summary(doc))
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(command(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
