"""Event-driven ternary x int matrix-vector product (Numba), bit-exact to the number-format spec: the
reference of the RTL matvec and crossbar vectors (the golden model's own kernel is :mod:`models.program.bitsliced`).

Weights are held as 2-bit codes (:func:`models.program.numformat.encode_ternary`) in an ``(fan_in, out)`` array:
row ``k`` holds every synapse that input ``k`` drives, so one input event (a non-zero activation) reads
one contiguous row and a zero activation reads nothing. That is the event-driven cost model the
hardware follows: work grows with the number of non-zero inputs, not with the dense shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from models.program import numformat

__all__ = ["MatVecEvents", "ternary_matvec", "ternary_matvec_batch"]


@dataclass(frozen=True)
class MatVecEvents:
    """Event counts of one ternary matrix-vector product, in the vocabulary of :mod:`models.program.events`.

    Attributes
    ----------
    input_events : int
        Non-zero activations (each one is an event into the array).
    synaptic_ops : int
        Input event x non-zero weight it reaches (``sum over input events of the non-zero weights in
        that input's row``): accumulator updates.
    weight_codes_read : int
        2-bit weight codes read: one full row per input event.
    """

    input_events: int
    synaptic_ops: int
    weight_codes_read: int


@numba.njit(cache=True, nogil=True)
def _matvec_kernel(codes, x, lo, hi, out):
    fan_in, n_out = codes.shape
    events = 0
    synops = 0
    acc = np.zeros(n_out, dtype=np.int64)
    for k in range(fan_in):
        xk = np.int64(x[k])
        if xk == 0:
            continue
        events += 1
        row = codes[k]
        for j in range(n_out):
            c = row[j]
            if c == 1:
                acc[j] += xk
                synops += 1
            elif c == 3:
                acc[j] -= xk
                synops += 1
    for j in range(n_out):
        v = acc[j]
        out[j] = lo if v < lo else (hi if v > hi else v)
    return events, synops


def _check_operands(codes: np.ndarray, x: np.ndarray, act_bits: int) -> None:
    numformat.check_act_bits(act_bits)
    if codes.ndim != 2:
        raise ValueError(f"Weight codes must be a 2-D (fan_in, out) array, not shape {codes.shape}")
    if codes.dtype != np.uint8:
        raise ValueError(f"Weight codes must be uint8 2-bit codes (numformat.encode_ternary), not {codes.dtype}")
    if x.shape[-1] != codes.shape[0]:
        raise ValueError(f"Activation length {x.shape[-1]} does not match the weights' fan-in {codes.shape[0]}")
    lo, hi = numformat.act_range(act_bits)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"Activations must lie in [{lo}, {hi}] for {act_bits}-bit activations")


def ternary_matvec(codes: np.ndarray, x: np.ndarray, out_bits: int | None = None,
                   act_bits: int = numformat.ACT_BITS) -> tuple[np.ndarray, MatVecEvents]:
    """``y = saturate(W @ x, out_bits)`` for ternary ``W`` (as codes, shape ``(fan_in, out)``) and integer ``x``.

    ``out_bits`` defaults to the worst-case accumulator width of the spec (no saturation possible).
    Returns ``(y as int64, event counts)``.
    """
    codes = np.ascontiguousarray(codes)
    x = np.asarray(x)
    _check_operands(codes, x, act_bits)
    if out_bits is None:
        out_bits = numformat.acc_bits(codes.shape[0], act_bits)
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    out = np.empty(codes.shape[1], dtype=np.int64)
    events, synops = _matvec_kernel(codes, x.astype(np.int64), lo, hi, out)
    return out, MatVecEvents(int(events), int(synops), int(events) * codes.shape[1])


def ternary_matvec_batch(codes: np.ndarray, xs: np.ndarray, out_bits: int | None = None,
                         act_bits: int = numformat.ACT_BITS) -> np.ndarray:
    """Apply :func:`ternary_matvec` to every row of ``xs`` (shape ``(n, fan_in)``); returns ``(n, out)``."""
    xs = np.atleast_2d(np.asarray(xs))
    return np.stack([ternary_matvec(codes, x, out_bits, act_bits)[0] for x in xs]) if len(xs) else \
        np.empty((0, codes.shape[1]), dtype=np.int64)
