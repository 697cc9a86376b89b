"""Stimulus and expected words for the layer top: real weights of a small model, golden ``layer_step``.

The program comes from :meth:`models.program.integer_program.IntegerProgram.from_model`: the bundled trained
checkpoint (``models/bundled/``) when it exists, otherwise a random-initialised model of the ``tiny``
preset whose RMSNorm weights and lower-bound parameters are perturbed (so every gain and the
lower-bound mix carry non-trivial values). Layer 0 runs ``n_tokens`` consecutive tokens (embeddings
of random token ids) with the state carried; layer 1 runs a few more on layer 0's outputs (its lower
bounds are non-zero). Expected words are :meth:`models.program.golden.GoldenModel.layer_step`'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.neurocore_top import ID_WORD, REGISTERS, NeurocoreTop, layer_load_frames
from models.program.golden import GoldenModel
from models.program.integer_program import IntegerProgram

__all__ = ["make_vectors", "make_bench_vectors", "small_program"]

BUNDLED = Path(__file__).resolve().parent.parent / "models" / "bundled"


def small_program(hidden: int, glu: int, seed: int = 0) -> tuple[IntegerProgram, str]:
    """The integer program the layer top is checked with, and where it came from."""
    import torch

    if (BUNDLED / "config.json").exists():
        from models.mmfree.checkpoint import load_checkpoint
        model = load_checkpoint(BUNDLED)
        if model.config.hidden_size == hidden and model.config.mlp_intermediate_size == glu:
            return IntegerProgram.from_model(model), f"bundled checkpoint {BUNDLED}"
    from models.mmfree.config import preset
    from models.mmfree.model import MMFreeForCausalLM
    torch.manual_seed(seed)
    model = MMFreeForCausalLM(preset("tiny", hidden_size=hidden, intermediate_size=glu))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.mul_(1 + 0.3 * torch.randn_like(p))
        model.model.lower_bounds.normal_(0, 1)
    return IntegerProgram.from_model(model), f"random-initialised tiny model (seed {seed}, hidden {hidden}, GLU {glu})"


def _u32(x) -> list[int]:
    return [int(v) & 0xFFFFFFFF for v in x]


def make_vectors(unit: NeurocoreTop, *, seed: int, n_tokens: int = 24, n_layer1: int = 8) -> dict:
    """Load frames, per-token inputs and the golden outputs of layer 0 (``n_tokens`` tokens) and
    layer 1 (``n_layer1`` tokens), layer 0's state ``h`` after its tokens (32-bit words, read back through
    ``STATE``), plus the register values the testbench checks."""
    program, source = small_program(unit.hidden, unit.glu, seed=0)
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, program.vocab_size, size=n_tokens)
    golden = GoldenModel(program)
    xs0, ys0 = [], []
    for t in tokens:
        x = golden.embed(int(t))
        xs0.append(_u32(x))
        golden.layer_step(0, x)
        ys0.append([int(v) for v in x])
    state0 = _u32(golden.state[0])
    xs1, ys1 = [], []
    for y in ys0[:n_layer1]:
        x = np.array(y, dtype=np.int64)
        xs1.append(_u32(x))
        golden.layer_step(1, x)
        ys1.append([int(v) for v in x])
    return {
        "unit": "neurocore_top", "seed": seed, "program": source,
        "registers": REGISTERS,
        "read_only": {"HIDDEN": unit.hidden, "GLU": unit.glu, "LANES": unit.lanes,
                      "CLOCK_MHZ": int(round(unit.clock_mhz)), "ID": ID_WORD},
        "layers": [
            {"name": "layer0", "frames": layer_load_frames(program.layers[0], unit.lanes), "inputs": xs0,
             "expected": ys0, "state": state0},
            {"name": "layer1", "frames": layer_load_frames(program.layers[1], unit.lanes), "inputs": xs1,
             "expected": ys1},
        ],
    }


def make_bench_vectors(unit: NeurocoreTop, program: IntegerProgram, *, n_tokens: int, seed: int = 0) -> dict:
    """A lean run for ``bench/bench_neurocore.py``: load layer 0 of ``program``, ``n_tokens`` tokens with the
    state carried, every output word still compared, no pauses on the streams."""
    rng = np.random.default_rng(seed)
    golden = GoldenModel(program)
    xs, ys = [], []
    for t in rng.integers(0, program.vocab_size, size=n_tokens):
        x = golden.embed(int(t))
        xs.append(_u32(x))
        golden.layer_step(0, x)
        ys.append([int(v) for v in x])
    return {"unit": "neurocore_top", "mode": "bench", "seed": seed, "program": "bench", "registers": REGISTERS,
            "read_only": {}, "layers": [{"name": "layer0", "frames": layer_load_frames(program.layers[0], unit.lanes),
                                         "inputs": xs, "expected": ys}]}
