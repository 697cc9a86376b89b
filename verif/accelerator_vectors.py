"""Stimulus and expected words for the model-level accelerator: memory images, host phases, golden tokens and logits.

The program is a seeded random MatMul-free program of the accelerator's shape
(:meth:`IntegerProgram.random`) whose RMSNorm gains, lower bounds and ``lm_head`` gain are then perturbed,
so every gain and the lower-bound mix carry non-trivial values. Each phase is one start of the accelerator
through AXI4-Lite (arguments, then ``ap_start``); its expected ``STATUS``, token words and logits come from
:class:`models.program.golden.GoldenModel`, whose state is carried from phase to phase exactly as the
hardware carries it. Named corner cases: a start with no buffers, a token run before any load, a header
with no magic, an image built for another lane count, one corrupted weight byte (the checksum must catch
it), a misaligned pointer, the last embedding row, a stop at EOS, a token outside the vocabulary, a run
without logits, the prompt fed one start per token, the state saved to device memory (every word compared with
the golden model's ``h``) and restored after other tokens changed it, and a save with no or a misaligned state
buffer.
"""

from __future__ import annotations

import numpy as np

from hw.accelerator.image import HEADER_FIELDS, HEADER_WORDS, build_image
from hw.accelerator.top import ERRORS, FLAGS, ID_WORD, LOADED_BIT, REGISTERS, Accelerator
from models.mmfree.config import preset
from models.program import numformat as nf
from models.program.golden import GoldenModel
from models.program.integer_program import IntegerProgram

__all__ = ["make_vectors", "make_bench_vectors", "make_prompt_vectors", "make_session_vectors", "tiny_program",
           "state_words", "MEM_SIZE", "HIGH"]

#: Bytes of the simulated device memory; pointers carry HIGH in their upper word (addresses wrap modulo MEM_SIZE).
MEM_SIZE = 1 << 22
HIGH = 1 << 32
IMAGE, OTHER_IMAGE, BAD_IMAGE, EMPTY = 0x2000, 0x40000, 0x80000, 0xC0000
OUT, LOGITS, STATE = 0xD0000, 0x100000, 0x300000


def tiny_program(*, hidden: int, glu: int, layers: int, vocab: int, seed: int) -> IntegerProgram:
    """A seeded random program of this shape with perturbed gains and lower bounds."""
    cfg = preset("tiny", hidden_size=hidden, intermediate_size=glu, num_hidden_layers=layers, vocab_size=vocab)
    program = IntegerProgram.random(cfg, seed=seed)
    rng = np.random.default_rng(seed + 1)
    unit = 1 << nf.GAIN_FRAC

    def gain(n: int) -> np.ndarray:
        return np.clip(np.round(unit * (1 + 0.3 * rng.standard_normal(n))), 1, (1 << 15) - 1).astype(np.int64)

    for li, layer in enumerate(program.layers):
        layer.attn_gain, layer.mlp_gain, layer.g_norm_gain = gain(hidden), gain(hidden), gain(hidden)
        if li:
            layer.lower_bound = rng.integers(0, 1 << nf.GATE_FRAC, size=hidden).astype(np.int64)
        for p in layer.proj.values():
            p.gain = gain(p.fan_in)
    program.final_gain, program.lm_head.gain = gain(hidden), gain(hidden)
    return program.validate()


def _words(logits) -> list[int]:
    return [int(v) for v in logits]


def state_words(state: np.ndarray) -> list[int]:
    """The accelerator's saved-state words of a golden state (layers x d): ``h`` layer-major, each a 32-bit
    two's-complement word."""
    return [int(v) & 0xFFFFFFFF for v in np.asarray(state).ravel()]


def make_vectors(unit: Accelerator, *, seed: int, n_prompt: int = 3, n_gen: int = 4) -> dict:
    """Images, memory layout and the host phases with their golden results."""
    d, V = unit.hidden, unit.vocab
    program = tiny_program(hidden=d, glu=unit.glu, layers=unit.layers, vocab=V, seed=seed)
    image = build_image(program, unit.lanes)
    other_lanes = next(p for p in (8, 4, 2, 1) if p != unit.lanes and d % p == 0 and (2 * unit.glu) % p == 0
                       and V % p == 0)
    other = build_image(program, other_lanes)
    # one corrupted weight byte: a byte of layer 0's first weight frame (after its descriptor and header words)
    bad = bytearray(image)
    load_off = int(np.frombuffer(image[:4 * HEADER_WORDS], dtype="<u4")[HEADER_FIELDS["load_offset"]])
    bad[load_off + 8 + 5] ^= 0x10
    golden = GoldenModel(program)
    rng = np.random.default_rng(seed)
    err = lambda *names: sum(1 << ERRORS[n] for n in names)  # noqa: E731
    loaded = 1 << LOADED_BIT
    phases: list[dict] = []

    def phase(name: str, *, status: int, image_at: int = IMAGE, out_at: int = OUT, logits: bool = True,
              token: int = 0, n: int = 0, flags=(), eos: int = 0, steps=None, state_at: int = 0) -> None:
        k = len(phases)
        args = {"IMAGE": HIGH + image_at if image_at else 0, "OUT": HIGH + out_at + 0x400 * k if out_at else 0,
                "LOGITS": HIGH + LOGITS + 0x10000 * k if logits else 0, "TOKEN": token, "N_TOKENS": n,
                "FLAGS": sum(1 << FLAGS[f] for f in flags), "EOS": eos, "STATE": HIGH + state_at if state_at else 0}
        tokens, outs = [], []
        for t, logit in steps or []:
            tokens.append(t)
            outs.append(_words(logit))
        phases.append({"name": name, "args": args, "status": status, "tokens": tokens,
                       "logits": outs if logits else []})
        if "save_state" in flags and status == loaded:
            phases[-1]["state"] = state_words(golden.state)

    def run(first: int, n: int, eos: int | None = None) -> list:
        steps, tok = [], first
        for _ in range(n):
            logit = golden.step(tok)
            tok = int(np.argmax(logit))
            steps.append((tok, logit))
            if tok == eos:
                break
        return steps

    phase("start_with_no_buffers", image_at=0, n=1, status=err("no_buffers"))
    phase("token_before_any_load", n=1, status=err("not_loaded"))
    phase("header_without_magic", image_at=EMPTY, flags=("load",), status=err("bad_magic"))
    phase(f"image_for_{other_lanes}_lanes", image_at=OTHER_IMAGE, flags=("load",), status=err("config_mismatch"))
    phase("corrupted_weight_byte", image_at=BAD_IMAGE, flags=("load",), n=1, status=err("checksum"))
    phase("misaligned_image_pointer", image_at=IMAGE + 4, flags=("load",), status=err("address_fault"))
    prompt = [int(t) for t in rng.integers(4, V, size=n_prompt)]
    golden.reset()
    phase("load_and_first_prompt_token", flags=("load", "reset_state"), token=prompt[0], n=1, status=loaded,
          steps=run(prompt[0], 1))
    for i, t in enumerate(prompt[1:], 1):
        phase(f"prompt_token_{i}", token=t, n=1, status=loaded, steps=run(t, 1))
    start = phases[-1]["tokens"][-1]
    phase("generate_argmax_fed_back", token=start, n=n_gen, status=loaded, steps=run(start, n_gen))
    start = phases[-1]["tokens"][-1]
    phase("generate_without_logits", token=start, n=2, logits=False, status=loaded, steps=run(start, 2))
    start = phases[-1]["tokens"][-1]
    phase("generate_then_save_state", token=start, n=2, flags=("save_state",), state_at=STATE, status=loaded,
          steps=run(start, 2))
    saved, resume = golden.snapshot(), phases[-1]["tokens"][-1]
    phase("save_with_no_state_buffer", flags=("save_state",), status=loaded | err("no_buffers"))
    phase("misaligned_state_pointer", flags=("restore_state",), state_at=STATE + 0x20,
          status=loaded | err("address_fault"))
    golden.reset()
    phase("reset_then_last_embedding_row", flags=("reset_state",), token=V - 1, n=2, status=loaded,
          steps=run(V - 1, 2))
    snap = golden.snapshot()
    eos = run(prompt[0], 3)[-1][0]
    golden.restore(snap)
    phase("stop_at_eos", token=prompt[0], n=8, flags=("stop_at_eos",), eos=eos, status=loaded,
          steps=run(prompt[0], 8, eos=eos))
    golden.restore(saved)
    phase("restore_state_generate_and_save_again", token=resume, n=2, flags=("restore_state", "save_state"),
          state_at=STATE, status=loaded, steps=run(resume, 2))
    phase("token_outside_vocabulary", token=V, n=1, status=loaded | err("bad_token"))
    return {
        "unit": "accelerator", "seed": seed, "program": f"seeded random program (seed {seed})",
        "registers": REGISTERS, "mem_size": MEM_SIZE, "data_width": unit.data_width,
        "images": {str(IMAGE): image.hex(), str(OTHER_IMAGE): other.hex(), str(BAD_IMAGE): bytes(bad).hex()},
        "hash": [int(v) for v in np.frombuffer(image[8:16], dtype="<u4")],
        "read_only": {"ID": ID_WORD, "HIDDEN": d, "VOCAB": V},
        "vocab": V, "hidden": d, "phases": phases,
    }


def make_bench_vectors(unit: Accelerator, program: IntegerProgram, *, first: int, n_tokens: int,
                       source: str) -> dict:
    """A lean run for measurements: load ``program``, clear the state, then ``n_tokens`` greedy steps from
    token ``first`` in one start, no pauses on the buses; every token and logit word is still compared."""
    return make_prompt_vectors(unit, program, prompt=[first], n_tokens=n_tokens, source=source)


def make_prompt_vectors(unit: Accelerator, program: IntegerProgram, *, prompt: list[int], n_tokens: int,
                        source: str) -> dict:
    """Greedy generation after a prompt, no pauses on the buses: load ``program`` and clear the state with the
    first prompt token, one start per further prompt token, then ``n_tokens`` greedy steps from the last one in
    one start (the argmax fed back on the device). Every token and logit word of every start is compared."""
    return make_session_vectors(unit, program, starts=[(t, 1) for t in prompt[:-1]] + [(prompt[-1], n_tokens)],
                                source=source)


def make_session_vectors(unit: Accelerator, program: IntegerProgram, *, starts: list[tuple[int, int]], source: str,
                         state: np.ndarray | None = None, save: bool = False) -> dict:
    """One simulator session, no pauses on the buses: load ``program``, then one start per ``(token, n)`` of
    ``starts`` (``n`` greedy steps from ``token``, the argmax fed back on the device). The first start clears the
    state, or, with ``state`` (layers x d, the golden ``h`` a previous session saved), restores it from device
    memory where the host put it; with ``save`` the last start saves ``h`` there, every word compared with the
    golden model's, so a long run resumes in a new session from the state its last session saved."""
    image = build_image(program, unit.lanes)
    golden = GoldenModel(program)
    if state is not None:
        golden.restore((np.asarray(state, dtype=np.int64), golden.attn_state.copy()))
    steps: list[list] = []
    for first, n in starts:
        tok, run = first, []
        for _ in range(n):
            logit = golden.step(tok)
            tok = int(np.argmax(logit))
            run.append((tok, _words(logit)))
        steps.append(run)
    total = sum(len(run) for run in steps)
    state_at = -(-(IMAGE + len(image)) // 4096) * 4096
    out = state_at + -(-4 * unit.layers * unit.hidden // 4096) * 4096
    logits = out + -(-4 * total // 4096) * 4096
    size = 1 << (logits + 4 * unit.vocab * total - 1).bit_length()
    images = {str(IMAGE): image.hex()}
    if state is not None:
        images[str(state_at)] = np.array(state_words(state), dtype="<u4").tobytes().hex()
    phases, done = [], 0
    for k, ((first, n), run) in enumerate(zip(starts, steps)):
        name = ("load_and_generate" if len(starts) == 1 else "load_and_prompt_token_0" if k == 0
                else "generate" if k == len(starts) - 1 else f"prompt_token_{k}")
        flags = 0
        if k == 0:
            flags = (1 << FLAGS["load"]) | (1 << FLAGS["restore_state" if state is not None else "reset_state"])
        if save and k == len(starts) - 1:
            flags |= 1 << FLAGS["save_state"]
        phases.append({"name": name, "status": 1 << LOADED_BIT, "tokens": [t for t, _ in run],
                       "logits": [w for _, w in run],
                       "args": {"IMAGE": HIGH + IMAGE, "OUT": HIGH + out + 4 * done,
                                "LOGITS": HIGH + logits + 4 * unit.vocab * done, "TOKEN": first, "N_TOKENS": n,
                                "FLAGS": flags, "EOS": 0, "STATE": HIGH + state_at}})
        done += n
    if save:
        phases[-1]["state"] = state_words(golden.state)
    return {
        "unit": "accelerator", "mode": "bench", "seed": 0, "program": source, "registers": REGISTERS,
        "mem_size": size, "data_width": unit.data_width, "images": images,
        "hash": [int(v) for v in np.frombuffer(image[8:16], dtype="<u4")],
        "read_only": {"ID": ID_WORD, "HIDDEN": unit.hidden, "VOCAB": unit.vocab}, "vocab": unit.vocab,
        "hidden": unit.hidden, "phases": phases,
    }
