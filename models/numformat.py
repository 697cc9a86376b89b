"""The number-format spec: the one contract between the torch integer view, the golden model and the RTL.

Every integer the hardware holds is defined here, once. The Numba golden model and the Amaranth
generators read their widths and rules from this module, so a format change is one edit here and the
cocotb testbenches then prove that the RTL still agrees.

Conventions
-----------
Rounding
    One rule everywhere: **round half away from zero** (``ROUNDING``). It is what the released
    MatMul-free fused BitLinear does, and it is symmetric, so a negated input gives a negated output.
    An integer division by ``2**shift`` under this rule is :func:`round_shift`.
Overflow
    Never wraps silently: every narrowing is a **saturation** to the target width (:func:`saturate`).
Activations
    Signed two's complement of ``act_bits`` bits, ``act_bits`` in :data:`ACT_BITS_ALLOWED` (8 is the
    MatMul-free default: absmax int8 per token). The hardware accepts the full range
    ``[-2**(b-1), 2**(b-1) - 1]``; the quantizer produces the symmetric ``[-(2**(b-1) - 1), 2**(b-1) - 1]``.
Ternary weights
    Stored as 2-bit codes, the 2-bit two's complement of the weight: ``+1 -> 0b01``, ``0 -> 0b00``,
    ``-1 -> 0b11``. Code ``0b10`` is reserved and never written (:func:`encode_ternary` refuses any
    weight outside {-1, 0, +1}); hardware that reads it treats it as zero.
Ternary x int accumulate
    ``acc = sum_k w[k] * x[k]`` in a signed accumulator of :func:`acc_bits` bits, the smallest width that
    holds the worst case ``fan_in * 2**(act_bits-1)`` of either sign, so the accumulator itself cannot
    overflow. The result leaves the accumulator through :func:`saturate` to the consumer's width.
Real-valued scales
    Become an integer multiplier and a right shift (the gemmlowp/TFLite integer-only convention):
    ``y = saturate(round_shift(acc * multiplier, shift), out_bits)`` with a ``MULTIPLIER_BITS``-bit
    unsigned multiplier (:func:`quantize_multiplier`, :func:`requantize`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ROUNDING", "OVERFLOW", "ACT_BITS", "ACT_BITS_ALLOWED", "WEIGHT_CODE_BITS", "TERNARY_CODES",
    "RESERVED_CODE", "MAX_FAN_IN", "MULTIPLIER_BITS",
    "check_act_bits", "act_range", "acc_bits", "saturate", "round_shift",
    "encode_ternary", "decode_ternary", "quantize_multiplier", "requantize",
]

#: The one rounding rule of the integer program.
ROUNDING = "half_away_from_zero"
#: What every narrowing does when the value does not fit.
OVERFLOW = "saturate"

#: Default activation width (absmax int8 per token, as the MatMul-free LM).
ACT_BITS = 8
#: Activation widths the spec defines (low widths carry spike counts).
ACT_BITS_ALLOWED = (2, 4, 8)

#: Bits of one stored ternary weight.
WEIGHT_CODE_BITS = 2
#: Weight value -> stored 2-bit code.
TERNARY_CODES = {0: 0b00, 1: 0b01, -1: 0b11}
#: The code no weight maps to; hardware reads it as zero.
RESERVED_CODE = 0b10

#: Largest fan-in the spec supports (keeps every accumulator within 32 bits at int8).
MAX_FAN_IN = 1 << 20

#: Width of the unsigned integer multiplier that stands for a real-valued scale.
MULTIPLIER_BITS = 16


def check_act_bits(act_bits: int) -> int:
    """Return ``act_bits`` if the spec defines that activation width, else raise ``ValueError``."""
    if not isinstance(act_bits, int) or isinstance(act_bits, bool):
        raise TypeError(f"Activation width must be an integer, not {act_bits!r}")
    if act_bits not in ACT_BITS_ALLOWED:
        allowed = ", ".join(str(b) for b in ACT_BITS_ALLOWED)
        raise ValueError(
            f"Activation width {act_bits} is not allowed by the number-format spec; use one of {allowed}")
    return act_bits


def act_range(act_bits: int = ACT_BITS) -> tuple[int, int]:
    """Inclusive ``(min, max)`` of a signed activation of ``act_bits`` bits."""
    check_act_bits(act_bits)
    return -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1


def _check_fan_in(fan_in: int) -> None:
    if not isinstance(fan_in, int) or isinstance(fan_in, bool):
        raise TypeError(f"Fan-in must be an integer, not {fan_in!r}")
    if not 1 <= fan_in <= MAX_FAN_IN:
        raise ValueError(f"Fan-in must be between 1 and {MAX_FAN_IN}, not {fan_in}")


def acc_bits(fan_in: int, act_bits: int = ACT_BITS) -> int:
    """Signed accumulator width for ``fan_in`` ternary x ``act_bits`` products.

    The worst case is every weight ``-1`` against every activation ``-2**(act_bits-1)`` (or ``+1``
    against it), giving ``±fan_in * 2**(act_bits-1)``; the returned width holds both signs.
    """
    _check_fan_in(fan_in)
    check_act_bits(act_bits)
    worst = fan_in << (act_bits - 1)
    # signed width w holds [-2**(w-1), 2**(w-1) - 1]; +worst needs worst <= 2**(w-1) - 1
    return (worst).bit_length() + 1


def saturate(value, bits: int):
    """Clamp a signed integer (or integer array) to the range of a ``bits``-bit two's complement word."""
    if bits < 1:
        raise ValueError(f"Width must be at least 1 bit, not {bits}")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if isinstance(value, np.ndarray):
        return np.clip(value, lo, hi)
    return max(lo, min(hi, int(value)))


def round_shift(value, shift: int):
    """``value / 2**shift`` rounded half away from zero, in integers (scalar or int64 array)."""
    if shift < 0:
        raise ValueError(f"Shift must be non-negative, not {shift}")
    if shift == 0:
        return value
    half = 1 << (shift - 1)
    if isinstance(value, np.ndarray):
        v = value.astype(np.int64)
        mag = (np.abs(v) + half) >> shift
        return np.where(v < 0, -mag, mag)
    v = int(value)
    mag = (abs(v) + half) >> shift
    return -mag if v < 0 else mag


def encode_ternary(weights) -> np.ndarray:
    """Map an array of weights in {-1, 0, +1} to their 2-bit codes (``uint8``).

    Raises ``ValueError`` naming the first offending value and its index if any weight is not ternary.
    """
    w = np.asarray(weights)
    if w.dtype.kind == "f":
        bad = ~np.isin(w, (-1.0, 0.0, 1.0))
    elif w.dtype.kind in "iu":
        bad = ~np.isin(w, (-1, 0, 1))
    else:
        raise TypeError(f"Ternary weights must be a numeric array, not {w.dtype}")
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"Weight {w[idx].item()!r} at index {idx} is not ternary; the spec stores only -1, 0 and +1 "
            f"(quantize with absmean ternarization first)")
    return np.ascontiguousarray((w.astype(np.int8) & 0b11).astype(np.uint8))


def decode_ternary(codes) -> np.ndarray:
    """Map 2-bit codes back to weights (``int8``); the reserved code reads as zero, as in hardware."""
    c = np.asarray(codes).astype(np.uint8) & 0b11
    return np.where(c == 0b01, 1, np.where(c == 0b11, -1, 0)).astype(np.int8)


def quantize_multiplier(scale: float, multiplier_bits: int = MULTIPLIER_BITS) -> tuple[int, int]:
    """Represent a positive real ``scale`` as ``(multiplier, shift)`` with ``scale ≈ multiplier / 2**shift``.

    The multiplier is normalised into ``[2**(multiplier_bits-1), 2**multiplier_bits)`` so it keeps
    ``multiplier_bits`` significant bits; the multiplier itself is rounded half away from zero.
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"A scale must be a positive finite number, not {scale!r}")
    mantissa, exponent = math.frexp(scale)  # scale = mantissa * 2**exponent, mantissa in [0.5, 1)
    shift = multiplier_bits - exponent
    multiplier = int(math.floor(mantissa * (1 << multiplier_bits) + 0.5))
    if multiplier == 1 << multiplier_bits:  # rounding carried into the next power of two
        multiplier >>= 1
        shift -= 1
    if shift < 0:
        raise ValueError(f"Scale {scale!r} is too large for a {multiplier_bits}-bit multiplier and a right shift")
    return multiplier, shift


def requantize(acc, multiplier: int, shift: int, out_bits: int):
    """``saturate(round_shift(acc * multiplier, shift), out_bits)``: a real rescale done in integers."""
    if isinstance(acc, np.ndarray):
        prod = acc.astype(np.int64) * np.int64(multiplier)
    else:
        prod = int(acc) * int(multiplier)
    return saturate(round_shift(prod, shift), out_bits)
