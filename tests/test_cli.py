"""The ``nmllm`` parser: every subcommand's help builds without importing a heavy library."""

import json
import subprocess
import sys

HEAVY = ("torch", "numba", "amaranth", "scipy", "matplotlib", "dask", "transformers", "numpy", "yaml", "tqdm")

_WALK = """
import argparse, json, sys
from nmllm.cli import build_parser

def walk(parser, path):
    helps = {" ".join(path): parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                helps.update(walk(sub, path + [name]))
    return helps

helps = walk(build_parser(), ["nmllm"])
print(json.dumps({"commands": sorted(helps), "heavy": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


def _walk() -> dict:
    out = subprocess.run([sys.executable, "-c", _WALK], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_every_help_builds_without_heavy_imports():
    result = _walk()
    assert result["heavy"] == []
    for name in ("nmllm demo", "nmllm train", "nmllm eval perplexity", "nmllm eval rouge", "nmllm compile",
                 "nmllm simulate", "nmllm activity", "nmllm verilog", "nmllm vivado", "nmllm sim", "nmllm generate", "nmllm spike study", "nmllm prune",
                 "nmllm decode", "nmllm sweep", "nmllm ablation", "nmllm scaling", "nmllm crossbar-sweep",
                 "nmllm checkpoint convert"):
        assert name in result["commands"]


def test_help_of_a_subcommand_exits_zero_and_stays_light():
    code = ("import sys\nfrom nmllm.cli import main\ntry:\n    main(['prune', '--help'])\nexcept SystemExit as e:\n"
            f"    assert e.code == 0\nprint([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"
