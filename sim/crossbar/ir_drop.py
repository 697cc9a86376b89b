"""IR drop: nodal analysis of a crossbar's word-line / bit-line resistive network.

Topology (the SPICE netlist of :mod:`sim.crossbar.spice` is the same circuit)::

    V_i ─ r_wl ─ WL(i,0) ─ r_wl ─ WL(i,1) ─ … ─ WL(i,C-1)        word line i, driven at the left, open end
                   │ G(i,0)          │ G(i,1)
                 BL(i,0)           BL(i,1)                         bit line j runs down the rows:
                   ⋮                 ⋮                             BL(0,j) open end … BL(R-1,j) ─ r_bl ─ 0 V
                                                                   (the sense amplifier's virtual ground)

Every word-line and bit-line segment between neighbouring cells is ``r_wl`` / ``r_bl``; the column
current is the current into the virtual ground. The network is linear, so the column currents are
``I = V @ M`` for a transfer matrix ``M`` that depends on the conductances only (:func:`transfer_matrix`).

Solvers: the nodal matrix is assembled with ``scipy.sparse`` (:func:`nodal_matrix`) and solved directly
(SuperLU) for small arrays; large arrays (a 256 x 512 physical array has 262,144 nodes) use a Numba
preconditioned conjugate-gradient solve (the matrix is symmetric positive definite), preconditioned by
a symmetric block Gauss-Seidel sweep whose blocks are the exactly solved (tridiagonal) word lines and
bit lines. Both agree with ngspice (tests/test_crossbar_spice.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["WireParams", "nodal_matrix", "column_currents", "transfer_matrix", "DIRECT_MAX_NODES"]

#: Networks up to this many nodes are solved directly (SuperLU); larger ones by PCG.
DIRECT_MAX_NODES = 20_000


@dataclass(frozen=True)
class WireParams:
    """Wire resistance per cell pitch, in ohms (both > 0).

    Default 2.5 ohm: a copper line at a 22 nm half-pitch, 44 nm cell pitch and a 22 x 44 nm cross-section
    with the size-effect resistivity of such narrow lines, about 5 uOhm cm (Steinhoegl et al., J. Appl.
    Phys. 97, 023706, 2005): 5e-8 Ohm m x 44 nm / (22 nm x 44 nm) = 2.3 ohm, rounded up.
    """

    r_wl: float = 2.5
    r_bl: float = 2.5

    def __post_init__(self):
        for name, label in (("r_wl", "Word-line resistance"), ("r_bl", "Bit-line resistance")):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{label} per cell must be a positive number of ohms, not {v!r}")


def _check(g: np.ndarray, v: np.ndarray | None = None) -> None:
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"Conductances must be a non-empty 2-D (rows, cols) array, not shape {g.shape}")
    if not np.isfinite(g).all() or (g < 0).any():
        raise ValueError("Conductances must be finite and non-negative")
    if v is not None and v.shape[0] != g.shape[0]:
        raise ValueError(f"{v.shape[0]} input voltages do not match the array's {g.shape[0]} rows")


def nodal_matrix(g: np.ndarray, wires: WireParams) -> sp.csc_matrix:
    """The nodal conductance matrix (``2 R C`` square): word-line node ``i*C + j``, bit-line ``R*C + i*C + j``."""
    g = np.asarray(g, dtype=np.float64)
    _check(g)
    r, c = g.shape
    n = r * c
    gw, gb = 1.0 / wires.r_wl, 1.0 / wires.r_bl
    idx = np.arange(n).reshape(r, c)
    a = np.concatenate([idx[:, :-1].ravel(), n + idx[:-1, :].ravel(), idx.ravel()])
    b = np.concatenate([idx[:, 1:].ravel(), n + idx[1:, :].ravel(), n + idx.ravel()])
    cond = np.concatenate([np.full(r * (c - 1), gw), np.full((r - 1) * c, gb), g.ravel()])
    diag = np.bincount(a, cond, 2 * n) + np.bincount(b, cond, 2 * n)
    diag[idx[:, 0]] += gw            # driver segment of every word line
    diag[n + idx[-1, :]] += gb       # sense segment of every bit line
    rows = np.concatenate([np.arange(2 * n), a, b])
    cols = np.concatenate([np.arange(2 * n), b, a])
    vals = np.concatenate([diag, -cond, -cond])
    return sp.csc_matrix((vals, (rows, cols)), shape=(2 * n, 2 * n))


def _direct(g: np.ndarray, v: np.ndarray, wires: WireParams) -> np.ndarray:
    r, c = g.shape
    lu = spla.splu(nodal_matrix(g, wires), permc_spec="MMD_AT_PLUS_A")
    rhs = np.zeros((2 * r * c, v.shape[1]))
    rhs[np.arange(r) * c] = v / wires.r_wl
    x = lu.solve(rhs)
    return x[r * c + (r - 1) * c + np.arange(c)] / wires.r_bl


@numba.njit(cache=True, nogil=True)
def _factor(g, gw, gb):
    """Thomas-algorithm factors of every word line (along j) and bit line (along i), cell terms included."""
    r, c = g.shape
    cw, iw = np.empty((r, c)), np.empty((r, c))
    cb, ib = np.empty((r, c)), np.empty((r, c))
    for i in range(r):
        for j in range(c):
            d = g[i, j] + (2.0 * gw if j < c - 1 else gw)
            if j > 0:
                d += gw * cw[i, j - 1]
            iw[i, j] = 1.0 / d
            cw[i, j] = -gw * iw[i, j]
    for i in range(r):
        for j in range(c):
            d = g[i, j] + (2.0 * gb if i > 0 else gb)
            if i > 0:
                d += gb * cb[i - 1, j]
            ib[i, j] = 1.0 / d
            cb[i, j] = -gb * ib[i, j]
    return cw, iw, cb, ib


@numba.njit(cache=True, nogil=True)
def _wl_solve(cw, iw, gw, rhs, z):
    r, c = iw.shape
    for i in range(r):
        prev = 0.0
        for j in range(c):
            prev = (rhs[i, j] + gw * prev) * iw[i, j]
            z[i, j] = prev
        for j in range(c - 2, -1, -1):
            z[i, j] -= cw[i, j] * z[i, j + 1]


@numba.njit(cache=True, nogil=True)
def _bl_solve(cb, ib, gb, rhs, z):
    r, c = ib.shape
    for j in range(c):
        z[0, j] = rhs[0, j] * ib[0, j]
    for i in range(1, r):
        for j in range(c):
            z[i, j] = (rhs[i, j] + gb * z[i - 1, j]) * ib[i, j]
    for i in range(r - 2, -1, -1):
        for j in range(c):
            z[i, j] -= cb[i, j] * z[i + 1, j]


@numba.njit(cache=True, nogil=True)
def _precondition(g, f, gw, gb, rw, rb, zw, zb, tmp):
    """Symmetric block Gauss-Seidel: word lines, then bit lines, then word lines again."""
    cw, iw, cb, ib = f
    _wl_solve(cw, iw, gw, rw, zw)
    tmp[:, :] = rb + g * zw
    _bl_solve(cb, ib, gb, tmp, zb)
    tmp[:, :] = rw + g * zb
    _wl_solve(cw, iw, gw, tmp, zw)


@numba.njit(cache=True, nogil=True)
def _apply(g, gw, gb, pw, pb, qw, qb):
    """``q = A p`` for the nodal matrix ``A`` (word-line part ``w``, bit-line part ``b``)."""
    r, c = g.shape
    for i in range(r):
        for j in range(c):
            gij, w, b = g[i, j], pw[i, j], pb[i, j]
            vw = (gij + 2.0 * gw) * w - gij * b
            vw -= gw * pw[i, j - 1] if j > 0 else 0.0
            vw -= gw * pw[i, j + 1] if j < c - 1 else gw * w
            vb = (gij + 2.0 * gb) * b - gij * w
            vb -= gb * pb[i - 1, j] if i > 0 else gb * b
            vb -= gb * pb[i + 1, j] if i < r - 1 else 0.0
            qw[i, j], qb[i, j] = vw, vb


@numba.njit(cache=True, nogil=True)
def _dot(a, b, c, d):
    s = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            s += a[i, j] * b[i, j] + c[i, j] * d[i, j]
    return s


@numba.njit(cache=True, nogil=True)
def _pcg(g, v, gw, gb, tol, maxit):
    """Column currents (C, S) for the drive voltages ``v`` (R, S); returns (currents, worst iterations)."""
    r, c = g.shape
    f = _factor(g, gw, gb)
    out = np.zeros((c, v.shape[1]))
    worst = 0
    xw, xb = np.zeros((r, c)), np.zeros((r, c))
    rw, rb = np.zeros((r, c)), np.zeros((r, c))
    zw, zb, tmp = np.empty((r, c)), np.empty((r, c)), np.empty((r, c))
    pw, pb = np.empty((r, c)), np.empty((r, c))
    qw, qb = np.empty((r, c)), np.empty((r, c))
    for s in range(v.shape[1]):
        xw[:, :] = 0.0
        xb[:, :] = 0.0
        rw[:, :] = 0.0
        rb[:, :] = 0.0
        for i in range(r):
            rw[i, 0] = v[i, s] * gw
        bnorm = math.sqrt(_dot(rw, rw, rb, rb))
        if bnorm == 0.0:
            continue
        _precondition(g, f, gw, gb, rw, rb, zw, zb, tmp)
        pw[:, :] = zw
        pb[:, :] = zb
        rz = _dot(rw, zw, rb, zb)
        it = 0
        while True:
            _apply(g, gw, gb, pw, pb, qw, qb)
            alpha = rz / _dot(pw, qw, pb, qb)
            xw += alpha * pw
            xb += alpha * pb
            rw -= alpha * qw
            rb -= alpha * qb
            it += 1
            if math.sqrt(_dot(rw, rw, rb, rb)) <= tol * bnorm or it >= maxit:
                break
            _precondition(g, f, gw, gb, rw, rb, zw, zb, tmp)
            rz_new = _dot(rw, zw, rb, zb)
            beta = rz_new / rz
            rz = rz_new
            pw *= beta
            pw += zw
            pb *= beta
            pb += zb
        worst = max(worst, it)
        for j in range(c):
            out[j, s] = xb[r - 1, j] * gb
    return out, worst


def column_currents(g: np.ndarray, v: np.ndarray, wires: WireParams, *, method: str = "auto",
                    tol: float = 1e-11, maxit: int = 1000) -> np.ndarray:
    """Currents (amperes) into each column's virtual ground for word-line voltages ``v``.

    ``g`` is ``(R, C)`` siemens; ``v`` is ``(R,)`` or ``(R, S)`` volts (S independent inputs); the result
    is ``(C,)`` or ``(C, S)``. ``method``: ``"direct"`` (SuperLU), ``"pcg"`` or ``"auto"`` (direct up to
    :data:`DIRECT_MAX_NODES` nodes).
    """
    g = np.ascontiguousarray(g, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    vec = v.ndim == 1
    v2 = np.ascontiguousarray(v[:, None] if vec else v)
    _check(g, v2)
    if method not in ("auto", "direct", "pcg"):
        raise ValueError(f"Unknown IR-drop solver {method!r}; use 'auto', 'direct' or 'pcg'")
    if method == "direct" or (method == "auto" and 2 * g.size <= DIRECT_MAX_NODES):
        out = _direct(g, v2, wires)
    else:
        out, iters = _pcg(g, v2, 1.0 / wires.r_wl, 1.0 / wires.r_bl, tol, maxit)
        if iters >= maxit:
            raise RuntimeError(f"IR-drop PCG did not reach tolerance {tol:g} in {maxit} iterations")
    return out[:, 0] if vec else out


def transfer_matrix(g: np.ndarray, wires: WireParams, *, method: str = "auto", chunk: int = 64) -> np.ndarray:
    """``M`` (R, C) with ``column_currents(g, v) == v @ M`` for every ``v``: one solve per driven row."""
    g = np.ascontiguousarray(g, dtype=np.float64)
    _check(g)
    r = g.shape[0]
    out = np.empty(g.shape)
    for lo in range(0, r, chunk):
        hi = min(r, lo + chunk)
        v = np.zeros((r, hi - lo))
        v[np.arange(lo, hi), np.arange(hi - lo)] = 1.0
        out[lo:hi] = column_currents(g, v, wires, method=method).T
    return out
