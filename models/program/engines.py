"""Executors of one MatMul-free model, as interchangeable logits callables (ids (B, T) → logits).

``float``   the float QAT view (PyTorch, fake-quantized BitLinears);
``fp32``    the same network with the quantizers off (the dense baseline);
``integer`` the torch integer view of the integer program (:mod:`models.program.integer_view`);
``golden``  the Numba golden model (:mod:`models.program.golden`), token by token, the rows of a batch
            over ``NUMBA_NUM_THREADS`` threads (:meth:`~models.program.golden.GoldenModel.run_batch`).

``integer`` and ``golden`` return the same integer logits (scaled to reals by ``2**-OUT_FRAC``), so a
perplexity through either is the same number.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from models.program import numformat as nf

__all__ = ["ENGINES", "logits_fn", "program_logits_fn"]

ENGINES = ("float", "fp32", "integer", "golden")


def logits_fn(model, engine: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable mapping token ids (B, T) to float logits (B, T, vocab) through ``engine``."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine in ("float", "fp32"):
        model.eval().set_quantize(engine == "float")
        return lambda ids: model(ids)
    from models.program.integer_program import IntegerProgram
    return program_logits_fn(IntegerProgram.from_model(model), engine)


def program_logits_fn(program, engine: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The ``integer`` or ``golden`` engine of an :class:`~models.program.integer_program.IntegerProgram`."""
    if engine == "integer":
        from models.program.integer_view import IntegerView
        return IntegerView(program).logits_float
    if engine != "golden":
        raise ValueError(f"an integer program runs on the integer or golden engine, not {engine!r}")
    from models.program.golden import GoldenModel
    golden = GoldenModel(program)

    def run(ids: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(golden.run_batch(ids.tolist()).astype(np.float32) / (1 << nf.OUT_FRAC))

    return run
