"""``nmllm train``: quantization-aware training of the MatMul-free LM on the CPU (:mod:`models.mmfree.train`)."""

from __future__ import annotations

import json

__all__ = ["register"]


def _run(args) -> int:
    from models.mmfree.train import Trainer, load_train_config

    for flag, value in (("--max-steps", args.max_steps), ("--stop-after", args.stop_after)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be a positive integer, not {value}")
    cfg = load_train_config(args.config)
    if args.max_steps is not None:
        cfg["train"]["max_steps"] = args.max_steps
    if args.init_from is not None:
        from pathlib import Path
        if not (Path(args.init_from) / "config.json").is_file():
            raise FileNotFoundError(f"--init-from {args.init_from} is not a checkpoint directory (no config.json)")
        cfg["train"]["init_from"] = args.init_from
    summary = Trainer(cfg, args.out, progress=not args.no_progress, step_delay=args.step_delay,
                      stop_after=args.stop_after).run(resume=args.resume)
    print(json.dumps(summary))
    return 0


def register(subparsers) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser("train", help="quantization-aware training of the MatMul-free LM on the CPU",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="training config YAML (models/configs/*.yaml)")
    p.add_argument("--out", required=True, help="run directory (tokenizer, token cache, checkpoints, log, final/)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    p.add_argument("--max-steps", type=int, default=None,
                   help="override train.max_steps (also on --resume: the cosine schedule is re-fitted to the new total from the current step)")
    p.add_argument("--stop-after", type=int, default=None,
                   help="checkpoint and stop after this step (the schedule still spans max_steps)")
    p.add_argument("--init-from", default=None,
                   help="fine-tune: start from this checkpoint's weights and tokenizer (e.g. models/bundled)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--step-delay", type=float, default=0.0,
                   help="sleep this many seconds after every step (to test kill/resume on tiny configs)")
    p.set_defaults(func=_run)
