"""``nmllm``: the one command-line front for models, hardware, system model and experiments.

The registry below names the module of every subcommand; each module adds its own parser through a
``register(subparsers)`` function and keeps its heavy imports (torch, numba, amaranth, ...) inside the
functions that run, so building the whole parser (``nmllm --help``) stays fast. Errors a user can fix
print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

#: Modules that register subcommands, in the order ``nmllm --help`` lists them.
COMMAND_MODULES = (
    "nmllm.demo",
    "nmllm.commands.train",
    "nmllm.commands.eval",
    "nmllm.commands.system",
    "nmllm.commands.verilog",
    "nmllm.commands.vivado",
    "nmllm.commands.rtl_sim",
    "nmllm.commands.generate",
    "nmllm.commands.checkpoint",
    "nmllm.commands.sparsity",
    "experiments.spike_study",
    "experiments.pruning_sweep",
    "experiments.decode",
    "experiments.summarize",
    "experiments.summarize_study",
    "experiments.sweep",
    "experiments.ablation",
    "experiments.scaling",
    "experiments.crossbar_perplexity",
    "experiments.adapt",
    "experiments.docs",
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand (imports only the command modules, never their libraries)."""
    parser = argparse.ArgumentParser(prog="nmllm", description="NeuromorphicLLM: LLMs on neuromorphic hardware")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"nmllm {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
