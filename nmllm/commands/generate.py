"""``nmllm generate``: greedy text generation on the golden model, or on the whole-model accelerator's RTL.

``--target rtl`` builds the model's memory image, runs the accelerator (``hw/accelerator``) through its cocotb
testbench on Verilator or Icarus (``verif.accelerator_flow``), and compares every token and logit word with the
golden model; a mismatch exits 1 naming the first differing word. It prints the text, the cycles per token
(``CYCLES_TOKEN``) and the wall times. ``--model tiny`` is the seeded random d16 m32 2-layer 128-token program
the accelerator's bench measures (prompt: token ids).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from verif.simulators import SIMULATORS

__all__ = ["register"]

#: The seeded random program of ``docs/accelerator/tiny.json`` and its accelerator configuration.
TINY = {"shape": dict(hidden=16, glu=32, layers=2, vocab=128), "seed": 1, "lanes": 4, "data_width": 128,
        "context": 128}
#: Bus width of a checkpoint's accelerator (as ``docs/accelerator/bundled.json``).
DATA_WIDTH = 512


def _check_target(args) -> None:
    """Refuse bad arguments before anything slow."""
    if args.tokens < 1:
        raise ValueError(f"--tokens {args.tokens}: generate at least 1 token")
    if args.target == "rtl":
        from verif.simulators import available_simulators, missing_simulators
        if args.simulator not in SIMULATORS:
            raise ValueError(f"unknown simulator {args.simulator!r}; use one of {', '.join(SIMULATORS)}")
        if args.simulator not in available_simulators():
            hint = next(m for m in missing_simulators() if m.startswith(args.simulator))
            raise RuntimeError(f"simulator {hint} is not installed; install it or pick another --simulator")


def _tiny_prompt(text: str) -> list[int]:
    try:
        ids = [int(t) for t in re.split(r"[,\s]+", text.strip()) if t]
    except ValueError:
        raise ValueError(f"--prompt {text!r}: the tiny model takes token ids such as '5 9 17'") from None
    bad = [t for t in ids if not 0 <= t < TINY["shape"]["vocab"]]
    if not ids or bad:
        raise ValueError(f"--prompt {text!r}: give token ids in 0..{TINY['shape']['vocab'] - 1}, such as '5 9 17'")
    return ids


def _model(args) -> dict:
    """The model's prompt ids, context, decoder and a loader of its integer program (not called yet)."""
    if args.model == "tiny":
        def program():
            from verif.accelerator_vectors import tiny_program
            return tiny_program(**TINY["shape"], seed=TINY["seed"])
        return {"prompt": _tiny_prompt(args.prompt), "context": TINY["context"], "program": program,
                "source": f"seeded random program (seed {TINY['seed']})", "decode": lambda ids: " ".join(map(str, ids)),
                "accelerator": {**TINY["shape"], "lanes": TINY["lanes"], "data_width": TINY["data_width"]}}
    from models.mmfree.config import MMFreeConfig
    from models.text.tokenizer import BOS_ID, decode, encode, load_tokenizer

    folder = Path(args.model)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"--model {args.model}: no config.json there; pass a checkpoint folder or 'tiny'")
    cfg = MMFreeConfig.from_json(folder / "config.json")
    if args.target == "rtl" and cfg.token_mixer != "mlgru":
        raise ValueError(f"--model {args.model} is a {cfg.token_mixer} model; the accelerator runs MLGRU models "
                         f"only: use --target golden")
    tok = load_tokenizer(folder)
    hidden, glu, vocab = cfg.hidden_size, cfg.mlp_intermediate_size, cfg.vocab_size
    lanes = next(p for p in (8, 4, 2, 1) if hidden % p == 0 and (2 * glu) % p == 0 and vocab % p == 0)

    def program():
        from models.mmfree.checkpoint import load_checkpoint
        from models.program.integer_program import IntegerProgram
        return IntegerProgram.from_model(load_checkpoint(folder))

    return {"prompt": [BOS_ID] + encode(tok, args.prompt), "context": cfg.max_position_embeddings,
            "program": program, "source": f"checkpoint {folder}", "decode": lambda ids: decode(tok, ids),
            "accelerator": dict(hidden=hidden, glu=glu, layers=cfg.num_hidden_layers, vocab=vocab, lanes=lanes,
                                data_width=DATA_WIDTH)}


def _golden(program, prompt: list[int], n_tokens: int) -> list[int]:
    import numpy as np

    from models.program.golden import GoldenModel
    golden = GoldenModel(program)
    for t in prompt[:-1]:
        golden.step(t)
    out, tok = [], prompt[-1]
    for _ in range(n_tokens):
        tok = int(np.argmax(golden.step(tok)))
        out.append(tok)
    return out


def _with_progress(desc: str, fn):
    """``fn()`` with a progress line showing the elapsed time while it runs."""
    import threading

    from tqdm import tqdm
    stop = threading.Event()
    with tqdm(desc=desc, bar_format="{desc}: {elapsed} elapsed", file=sys.stderr) as bar:
        def tick() -> None:
            while not stop.wait(1.0):
                bar.refresh()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            return fn()
        finally:
            stop.set()
            ticker.join()


def first_mismatch(result) -> str:
    """The first failed check of a failed accelerator run (from its simulator log), or the run's detail."""
    log = re.search(r"log: (\S+)$", result.detail)
    if log and Path(log.group(1)).is_file():
        for line in Path(log.group(1)).read_text(errors="replace").splitlines():
            hit = re.search(r"AssertionError: (.+)$", line)
            if hit:
                return hit.group(1).strip()
    return result.detail


def run_rtl(cfg: dict, simulator: str, spec: dict) -> tuple[object, str | None]:
    """Run the accelerator at ``cfg`` on ``simulator`` with ``spec``; (result, first mismatch or None)."""
    from verif.accelerator_flow import run_accelerator
    result = _with_progress(f"building and running the accelerator on {simulator}",
                            lambda: run_accelerator(cfg, simulator, spec))
    return result, None if result.passed else first_mismatch(result)


def _run(args) -> int:
    _check_target(args)
    model = _model(args)
    prompt = model["prompt"]
    if len(prompt) > model["context"]:
        raise ValueError(f"--prompt is {len(prompt)} tokens, longer than the model's context of {model['context']}; "
                         f"shorten it")
    t0 = time.perf_counter()
    program = model["program"]()
    print(f"{model['source']}: prompt of {len(prompt)} tokens, {args.tokens} greedy tokens on {args.target}"
          + (f" ({args.simulator})" if args.target == "rtl" else ""))
    if args.target == "golden":
        tokens = _golden(program, prompt, args.tokens)
        wall = time.perf_counter() - t0
        print(f"text: {model['decode'](prompt + tokens)!r}")
        print(f"tokens: {tokens}")
        print(f"wall time {wall:.2f} s")
        return 0
    from hw.accelerator.top import Accelerator
    from verif.accelerator_vectors import make_prompt_vectors
    spec = make_prompt_vectors(Accelerator(**model["accelerator"]), program, prompt=prompt, n_tokens=args.tokens,
                               source=model["source"])
    result, mismatch = run_rtl(model["accelerator"], args.simulator, spec)
    if mismatch is not None:
        print(f"nmllm generate: RTL differs from the golden model: {mismatch}", file=sys.stderr)
        return 1
    tokens = spec["phases"][-1]["tokens"]
    counters = result.summary["phases"][spec["phases"][-1]["name"]]
    print(f"text: {model['decode'](prompt + tokens)!r}")
    print(f"tokens: {tokens} (RTL = golden: {result.vectors:,} token and logit words compared)")
    print(f"cycles per token: {counters['cycles_token']:,} (the last token); cycles in all: {result.cycles:,}")
    print(f"wall time {time.perf_counter() - t0:.1f} s (simulator build {result.build_s:.1f} s, "
          f"run {result.run_s:.1f} s)")
    return 0


def register(subparsers) -> None:
    """Add the ``generate`` subcommand."""
    p = subparsers.add_parser("generate", help="greedy text generation on the golden model or the accelerator RTL",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/bundled",
                   help="checkpoint folder (default models/bundled), or 'tiny': the accelerator bench's seeded program")
    p.add_argument("--prompt", default="The", help="prompt text (for --model tiny: token ids such as '5 9 17')")
    p.add_argument("--tokens", type=int, default=8, help="greedy tokens to generate (default 8)")
    p.add_argument("--target", choices=("golden", "rtl"), default="golden",
                   help="golden model, or the accelerator RTL in a simulator (default golden)")
    p.add_argument("--simulator", default="verilator", help=f"for --target rtl: {' or '.join(SIMULATORS)}")
    p.set_defaults(func=_run)
