"""``nmllm verilog``: write every hardware unit's Verilog and port list (:mod:`hw.verilog`, ``make verilog``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["register"]


def _run(args) -> int:
    from hw.verilog import write_all
    for path in write_all(Path(args.out)):
        print(path)
    return 0


def register(subparsers) -> None:
    """Add the ``verilog`` subcommand."""
    p = subparsers.add_parser("verilog", help="emit all RTL (reproducible Verilog + port lists)")
    p.add_argument("--out", default="rtl/generated", help="output folder (default: rtl/generated)")
    p.set_defaults(func=_run)
