"""Bit-sliced ternary x int8 matrix-vector product: no weight decode, no multiply (Numba).

Layout (why): a projection ``W`` (fan_out, fan_in) is held *output-major as two bit masks*, in words of
64 inputs, word-major: ``plus[w, j]`` has bit ``i`` set where ``W[j, 64 w + i] == +1``, ``zero[w, j]``
where it is 0 (a -1 sets neither; inputs past fan_in set neither). That is 2 bits per weight, the size of
the packed 2-bit codes, plus one int64 row sum per output. An int8 activation vector ``x`` becomes the
8 bit planes ``q[b, w]`` of ``u = x + 128`` (1 .. 255; 0 past fan_in), built once per projection and
token (:func:`planes`). Since ``w + 1`` is 0, 1 or 2 (a +1 weight lifts ``u`` one bit level up),

    sum_i (w_i + 1) u_i = sum_L 2**L popcount(level_L),   level_L = (zero & q_L) | (plus & q_(L-1)),

the two terms of a level being disjoint, and ``y_j = sum_i w_i x_i = S_j - sum_i u_i - 128 sum_i w_i``:
nine popcounts, 23 bit operations and a shift-add chain per 64 inputs and output, no multiply. The loop
over outputs is innermost, so the compiler vectorises it (``VPOPCNTQ`` where the CPU has AVX-512
VPOPCNTDQ, a bit-trick popcount on a generic x86-64). Every output is an independent integer sum, so
blocks of outputs run on threads (``prange``) with results identical for any thread count.

This kernel does dense work: it reads every weight for every input, zero or not. It is an executor, not
the cost model; the event counts of the event-driven hardware (:mod:`models.program.events`) come from
the quantised activations and the weights' per-input non-zero counts, never from this kernel.
"""

from __future__ import annotations

from types import FunctionType

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

__all__ = ["WORD", "BLOCK", "BitslicedWeights", "popcount", "planes", "accumulate_block", "compiled", "matvec"]

#: Inputs per mask word.
WORD = 64
#: Outputs per block: the unit of work of one thread (and the accumulator run kept in L1).
BLOCK = 128


@intrinsic
def popcount(typingctx, v):
    """Set bits of an int64 (``llvm.ctpop``: one ``POPCNT``/``VPOPCNTQ`` where the CPU has it)."""
    if v != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.int64(types.int64), codegen


def _masks(select: np.ndarray, words: int) -> np.ndarray:
    """Boolean (fan_out, fan_in) → int64 (words, fan_out): bit ``i`` of word ``w`` is input ``64 w + i``."""
    fan_out, fan_in = select.shape
    padded = np.zeros((fan_out, words * WORD), dtype=bool)
    padded[:, :fan_in] = select
    packed = np.packbits(padded.reshape(fan_out, words, WORD), axis=-1, bitorder="little")
    return np.ascontiguousarray(packed.view(np.uint64)[..., 0].T).view(np.int64)


class BitslicedWeights:
    """One ternary matrix in the bit-sliced layout: ``plus`` and ``zero`` masks (words, fan_out) and
    ``rowsum`` (fan_out,), the sum of each output's weights."""

    def __init__(self, weights: np.ndarray):
        w = np.asarray(weights)
        if w.ndim != 2 or not np.isin(w, (-1, 0, 1)).all():
            raise ValueError(f"bit-sliced weights need a 2-D (fan_out, fan_in) array of -1, 0, +1, not shape {w.shape}")
        self.fan_out, self.fan_in = w.shape
        self.words = -(-self.fan_in // WORD)
        self.plus = _masks(w == 1, self.words)
        self.zero = _masks(w == 0, self.words)
        self.rowsum = w.sum(axis=1, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        """Bytes held: both masks and the row sums."""
        return self.plus.nbytes + self.zero.nbytes + self.rowsum.nbytes


@numba.njit(cache=True, nogil=True)
def planes(x, q):
    """Bit planes ``q`` (8, words) of ``u = x + 128`` for int codes ``x`` in [-128, 127] (padding inputs:
    ``u = 0``); returns ``sum(u)``."""
    n = x.shape[0]
    usum = np.int64(0)
    for w in range(q.shape[1]):
        xs = x[w * WORD:min(n, (w + 1) * WORD)]  # a view from index 0: the loops below vectorise
        for b in range(8):
            word = np.int64(0)
            for i in range(xs.shape[0]):
                word |= ((np.int64(xs[i]) + 128) >> b & 1) << i
            q[b, w] = word
        for i in range(xs.shape[0]):
            usum += np.int64(xs[i]) + 128
    return usum


@numba.njit(cache=True, nogil=True, inline="always")
def accumulate_block(plus, zero, rowsum, q, usum, j0, j1, acc):
    """``acc[j] = sum_i W[j, i] x_i`` for outputs ``j0 <= j < j1`` (``q``, ``usum`` from :func:`planes`)."""
    out = acc[j0:j1]  # views from index 0: provably in bounds, so the loop over outputs vectorises
    base = rowsum[j0:j1]
    for j in range(out.shape[0]):
        out[j] = -usum - 128 * base[j]
    for w in range(plus.shape[0]):
        q0, q1, q2, q3 = q[0, w], q[1, w], q[2, w], q[3, w]
        q4, q5, q6, q7 = q[4, w], q[5, w], q[6, w], q[7, w]
        pw, zw = plus[w, j0:j1], zero[w, j0:j1]
        for j in range(out.shape[0]):
            p, z = pw[j], zw[j]
            s = popcount(p & q7)
            s = (s << 1) + popcount((z & q7) | (p & q6))
            s = (s << 1) + popcount((z & q6) | (p & q5))
            s = (s << 1) + popcount((z & q5) | (p & q4))
            s = (s << 1) + popcount((z & q4) | (p & q3))
            s = (s << 1) + popcount((z & q3) | (p & q2))
            s = (s << 1) + popcount((z & q2) | (p & q1))
            s = (s << 1) + popcount((z & q1) | (p & q0))
            out[j] += (s << 1) + popcount(z & q0)


def _accumulate(plus, zero, rowsum, q, usum, acc):
    """Every output, blocks of :data:`BLOCK` outputs over threads."""
    fan_out = acc.shape[0]
    for blk in numba.prange((fan_out + BLOCK - 1) // BLOCK):
        j0 = blk * BLOCK
        accumulate_block(plus, zero, rowsum, q, usum, j0, min(fan_out, j0 + BLOCK), acc)


def compiled(fn, parallel: bool):
    """``fn`` compiled serial or with ``prange`` over threads; the two get their own names, hence their own
    entries in Numba's on-disk cache (which keys a function by its qualified name, not its flags)."""
    name = f"{fn.__name__}_{'parallel' if parallel else 'serial'}"
    copy = FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    return numba.njit(cache=True, nogil=True, parallel=parallel)(copy)


_accumulate_serial = compiled(_accumulate, parallel=False)
_accumulate_parallel = compiled(_accumulate, parallel=True)


def matvec(weights: BitslicedWeights, x: np.ndarray) -> np.ndarray:
    """``W @ x`` (int64, exact) of int codes ``x`` in [-128, 127], on ``numba.get_num_threads()`` threads."""
    x = np.asarray(x)
    if x.shape != (weights.fan_in,):
        raise ValueError(f"activation shape {x.shape} does not match the weights' fan-in {weights.fan_in}")
    if x.size and (x.min() < -128 or x.max() > 127):
        raise ValueError("bit-sliced activations must be int8 codes in [-128, 127]")
    q = np.empty((8, weights.words), dtype=np.int64)
    usum = planes(x.astype(np.int64), q)
    acc = np.empty(weights.fan_out, dtype=np.int64)
    run = _accumulate_parallel if numba.get_num_threads() > 1 else _accumulate_serial
    run(weights.plus, weights.zero, weights.rowsum, q, usum, acc)
    return acc
