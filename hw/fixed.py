"""The number-format spec's integer rules as Amaranth logic.

Each builder adds combinational logic to a module and returns a signal that holds exactly what the
function of the same name in :mod:`models.program.numformat` computes on one element: :func:`round_shift`
(round half away from zero), :func:`saturate`, :func:`bit_length`. Operands are first captured in
signals, so an expression used twice is emitted once.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, Value, signed, unsigned

__all__ = ["bit_length", "round_shift", "saturate", "at_least_zero"]


def _sig(m: Module, value, name: str) -> Signal:
    value = Value.cast(value)
    s = Signal(value.shape(), name=name)
    m.d.comb += s.eq(value)
    return s


def bit_length(m: Module, x, name: str = "bitlen") -> Signal:
    """``int.bit_length`` of an unsigned value: one more than the index of its highest set bit."""
    x = _sig(m, x, f"{name}_x")
    n = Signal(range(len(x) + 1), name=name)
    for i in range(len(x)):  # the last assignment that fires wins: the highest set bit
        with m.If(x[i]):
            m.d.comb += n.eq(i + 1)
    return n


def round_shift(m: Module, value, shift, name: str = "rshift") -> Signal:
    """``value / 2**shift`` rounded half away from zero; ``shift`` an unsigned value or a constant.

    Uses ``(|v| + 2**(s-1)) >> s == ((|v| >> (s-1)) + 1) >> 1`` for ``s >= 1``.
    """
    value = _sig(m, value, f"{name}_v")
    mag = _sig(m, abs(value), f"{name}_mag")
    if isinstance(shift, int):
        if shift == 0:
            return value
        r = _sig(m, ((mag >> (shift - 1)) + 1) >> 1, f"{name}_r")
    else:
        shift = _sig(m, shift, f"{name}_s")
        sm1 = (shift - 1)[:len(shift)]
        r = _sig(m, Mux(shift == 0, mag, ((mag >> sm1) + 1) >> 1), f"{name}_r")
    shape = signed(len(r) + 1) if value.shape().signed else unsigned(len(r))
    out = Signal(shape, name=name)
    m.d.comb += out.eq(Mux(value < 0, -r, r) if value.shape().signed else r)
    return out


def saturate(m: Module, value, bits: int, name: str = "sat") -> Signal:
    """Clamp a signed ``value`` to a ``bits``-bit two's complement word (a ``signed(bits)`` signal)."""
    value = _sig(m, value, f"{name}_v")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    out = Signal(signed(bits), name=name)
    with m.If(value > hi):
        m.d.comb += out.eq(hi)
    with m.Elif(value < lo):
        m.d.comb += out.eq(lo)
    with m.Else():
        m.d.comb += out.eq(value)
    return out


def at_least_zero(m: Module, value, name: str = "pos") -> Signal:
    """``max(value, 0)`` as an unsigned signal."""
    value = _sig(m, value, f"{name}_v")
    out = Signal(Shape(max(len(value) - (1 if value.shape().signed else 0), 1)), name=name)
    m.d.comb += out.eq(Mux(value < 0, 0, value))
    return out
