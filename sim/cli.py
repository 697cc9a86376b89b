"""``nmllm``: the one command-line front for models, hardware and system.

Each subcommand lives with the code it runs and adds itself through a ``register(subparsers)``
function; this module only collects them. Errors a user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from models import beam_search, perplexity, pruning, rouge_eval, spike_cmds, train

from . import ablation, demo, system_cmds, verilog_cmd, vivado_cmd
from .sweep import cli as sweep_cli

__all__ = ["build_parser", "main"]

COMMANDS = (demo, train, perplexity, spike_cmds, pruning, beam_search, system_cmds, verilog_cmd, vivado_cmd, sweep_cli,
            ablation)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nmllm", description="NeuromorphicLLM: LLMs on neuromorphic hardware")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        added = module.register(sub)
        if module is perplexity:  # `eval` gains `rouge` and Hugging Face models for `perplexity`
            rouge_eval.register_rouge(added)
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
