"""``nmllm checkpoint convert``: load, validate and re-save a MatMul-free checkpoint (:mod:`models.mmfree.checkpoint`)."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["register"]


def _convert(args) -> int:
    """Re-save ``args.src`` as ``args.dst`` in ``args.dtype``; ``tokenizer.json`` is copied along when present."""
    import torch

    from models.mmfree.checkpoint import load_checkpoint, save_checkpoint

    model = load_checkpoint(args.src)
    out = save_checkpoint(model, args.dst, dtype=getattr(torch, args.dtype))
    tok = Path(args.src) / "tokenizer.json"
    if tok.exists():
        shutil.copyfile(tok, out / "tokenizer.json")
    print(f"{args.src} -> {out} ({args.dtype}, {model.num_parameters()} parameters)")
    return 0


def register(subparsers) -> None:
    """Add ``checkpoint`` with its ``convert`` subcommand."""
    ck = subparsers.add_parser("checkpoint", help="checkpoint utilities (convert)")
    sub = ck.add_subparsers(dest="checkpoint_command", required=True)
    conv = sub.add_parser("convert", help="re-save a checkpoint directory (optionally in another dtype)",
                          description=__doc__.split("\n\n")[0])
    conv.add_argument("src", help="checkpoint directory to read")
    conv.add_argument("dst", help="checkpoint directory to write")
    conv.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                      help="weight dtype of the copy (default float32)")
    conv.set_defaults(func=_convert)
