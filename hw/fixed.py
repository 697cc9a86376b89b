"""The number-format spec's integer rules as Amaranth expressions.

Each builder returns a combinational expression that computes exactly what the function of the same
name in :mod:`models.numformat` computes on one element: :func:`round_shift` (round half away from
zero), :func:`saturate`, :func:`bit_length`. Widths are left to Amaranth's arithmetic rules; the caller
assigns the result to a signal of the format's width.
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, Value, signed

__all__ = ["bit_length", "round_shift", "round_shift_const", "saturate", "clamp"]


def bit_length(x: Value) -> Value:
    """``int.bit_length`` of an unsigned value: one more than the index of its highest set bit."""
    x = Value.cast(x)
    n = Const(0, range(len(x) + 1))
    for i in range(len(x)):
        n = Mux(x[i], i + 1, n)
    return n


def round_shift(value: Value, shift: Value) -> Value:
    """``value / 2**shift`` rounded half away from zero, for a signed ``value`` and unsigned ``shift``.

    Uses ``(|v| + 2**(s-1)) >> s == ((|v| >> (s-1)) + 1) >> 1`` for ``s >= 1``, so no adder wider than
    the value is needed.
    """
    value = Value.cast(value)
    shift = Value.cast(shift)
    mag = abs(value)
    sm1 = (shift - 1)[:len(shift)]
    rounded = (((mag >> sm1) + 1) >> 1)
    r = Mux(shift == 0, mag, rounded)
    return Mux(value < 0, -r, r)


def round_shift_const(value: Value, shift: int) -> Value:
    """:func:`round_shift` by a constant ``shift``."""
    value = Value.cast(value)
    if shift == 0:
        return value
    mag = abs(value)
    r = ((mag >> (shift - 1)) + 1) >> 1
    return Mux(value < 0, -r, r)


def saturate(value: Value, bits: int) -> Value:
    """Clamp a signed ``value`` to a ``bits``-bit two's complement word (result is ``signed(bits)``)."""
    value = Value.cast(value)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    clamped = Mux(value > hi, Const(hi, signed(bits)), Mux(value < lo, Const(lo, signed(bits)), value))
    return clamped[:bits].as_signed()


def clamp(value: Value, lo: int, hi: int) -> Value:
    """``min(max(value, lo), hi)`` for constants ``lo <= hi``."""
    value = Value.cast(value)
    return Mux(value < lo, lo, Mux(value > hi, hi, value))
