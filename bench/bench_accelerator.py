"""The bundled model on the accelerator RTL: greedy tokens after a WikiText-2 prompt, equal to the golden model.

The run is cut into sessions of ``--session`` tokens, each a fresh simulator: it loads the memory image, restores
the MLGRU state ``h`` the previous session saved (the first one clears it and feeds the prompt, one start per
token), generates its tokens with the argmax fed back on the device, and saves ``h`` to device memory; every
token, logit and saved state word is compared with the golden model. A session's tokens, state and counters
are stored in a resumable partial file after it passes, so a killed run resumes at the next session (the
state it restores is the one the last session saved, equal word for word to the golden state). The final
record, with cycles per token of every start and provenance, is ``docs/accelerator/wikitext_bundled.json``.

Run: ``nice -n 5 python bench/bench_accelerator.py`` (again, with the same options, to resume).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
DATA_WIDTH = 512


def _prompt(tok, text_path: Path, n: int) -> tuple[str, list[int]]:
    """The first non-empty line of the WikiText-2 text and its first ``n`` token ids (``BOS`` first)."""
    from models.text.tokenizer import BOS_ID, encode

    line = next(s.strip() for s in text_path.read_text(encoding="utf-8").splitlines() if s.strip())
    return line, ([BOS_ID] + encode(tok, line))[:n]


def main(argv=None) -> None:
    import argparse

    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--tokens", type=int, default=32, help="greedy tokens after the prompt (default 32)")
    p.add_argument("--session", type=int, default=8, help="tokens per simulator session (default 8)")
    p.add_argument("--prompt-tokens", type=int, default=5, help="prompt tokens fed, BOS included (default 5)")
    p.add_argument("--model", default=str(REPO / "models" / "bundled"))
    p.add_argument("--text", default=str(REPO.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"))
    p.add_argument("--partial", default=str(REPO / "runs" / "accelerator" / "wikitext_bundled.partial.json"))
    p.add_argument("--out", default=str(REPO / "docs" / "accelerator" / "wikitext_bundled.json"))
    args = p.parse_args(argv)
    for name in ("tokens", "session", "prompt_tokens"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be a positive integer")
    model_dir, text = Path(args.model), Path(args.text)
    if not (model_dir / "config.json").is_file():
        raise SystemExit(f"--model {model_dir}: no checkpoint there")
    if not text.is_file():
        raise SystemExit(f"--text {text}: no such file (the WikiText-2 test split)")

    from experiments.provenance import provenance
    from experiments.resume import Results
    from hw.accelerator.top import Accelerator
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.integer_program import IntegerProgram
    from models.text.tokenizer import decode, load_tokenizer
    from verif.accelerator_flow import measure
    from verif.accelerator_vectors import make_session_vectors

    tok = load_tokenizer(model_dir)
    line, prompt = _prompt(tok, text, args.prompt_tokens)
    program = IntegerProgram.from_model(load_checkpoint(model_dir))
    L, d = len(program.layers), program.hidden_size
    cfg = dict(hidden=d, glu=program.intermediate_size, layers=L, vocab=program.vocab_size, lanes=8,
               data_width=DATA_WIDTH)
    unit = Accelerator(**cfg)
    source = f"checkpoint {model_dir.name}"
    sizes = [min(args.session, args.tokens - s) for s in range(0, args.tokens, args.session)]
    res = Results(args.partial, {"model": str(model_dir), "text": str(text), "prompt_tokens": args.prompt_tokens,
                                 "tokens": args.tokens, "session": args.session, "simulator": args.simulator,
                                 "config": cfg})
    keys = [f"session{k}" for k in range(len(sizes))]
    for key in res.pending(keys, desc=f"accelerator sessions on {args.simulator}", unit="session"):
        k = keys.index(key)
        if k == 0:
            starts, state = [(t, 1) for t in prompt[:-1]] + [(prompt[-1], sizes[0])], None
        else:
            last = res[keys[k - 1]]
            starts = [(last["tokens"][-1], sizes[k])]
            state = np.array(last["state"], dtype=np.uint32).view(np.int32).reshape(L, d)
        spec = make_session_vectors(unit, program, starts=starts, source=source, state=state, save=True)
        t0 = time.perf_counter()
        rec = measure(cfg, args.simulator, spec)
        if not rec["passed"]:
            raise SystemExit(f"{key}: the RTL differs from the golden model; see build/sim/accelerator/ sim.log")
        res.put(key, {"tokens": spec["phases"][-1]["tokens"], "state": spec["phases"][-1]["state"],
                      "starts": [{"token": t, "n": n} for t, n in starts], "run": rec,
                      "wall_s": round(time.perf_counter() - t0, 1)})
        print(f"{key}: {rec['words_compared']:,} words equal, {rec['cycles']:,} cycles, run {rec['run_s']} s",
              flush=True)
    sessions = [res[k] for k in keys]
    generated = [t for s in sessions for t in s["tokens"]]
    cycles_token = [ph["cycles_token"] for s in sessions for ph in s["run"]["phases"].values()]
    run_s = sum(s["run"]["run_s"] for s in sessions)
    cycles = sum(s["run"]["cycles"] for s in sessions)
    res.finish(args.out, {
        "what": (f"the bundled checkpoint on the accelerator RTL ({args.simulator}, d{d} m{cfg['glu']}, {L} layers, "
                 f"vocab {cfg['vocab']}, 8 lanes, {DATA_WIDTH}-bit bus, no bus pauses): {args.tokens} greedy tokens "
                 f"after a {len(prompt)}-token WikiText-2 prompt, in {len(sizes)} simulator sessions joined by "
                 f"saving and restoring h in device memory; every token, logit and state word equal to the "
                 f"golden model"),
        "prompt_text": line, "prompt": prompt, "tokens": generated, "text": decode(tok, prompt + generated),
        "cycles_token_per_start": cycles_token, "cycles_all_sessions": cycles,
        "simulated_cycles_per_s": round(cycles / run_s, 1),
        "words_compared": sum(s["run"]["words_compared"] for s in sessions),
        "sessions": [{k: v for k, v in s.items() if k != "state"} for s in sessions],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "provenance": provenance(),
    })
    print(f"{args.tokens} tokens equal to the golden model; {args.out}")


if __name__ == "__main__":
    main()
