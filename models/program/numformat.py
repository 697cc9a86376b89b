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

The MatMul-free integer program (used by :mod:`models.program.integer_program`)
-----------------------------------------------------------------------
Fixed-point formats (``Q`` = fractional bits of a signed integer):

=====================  ===========================  ===========================================
value                  storage                      note
=====================  ===========================  ===========================================
embedding              int16, Q ``EMBED_FRAC``      shifted to the residual format on lookup
residual stream ``x``  int32, Q ``RESID_FRAC``      saturating adds
norm gains ``g``       int32, Q ``GAIN_FRAC``       RMSNorm weights (products of two norms too)
projection outputs     int32, Q ``OUT_FRAC``        BitLinear results, logits
gates ``f``, sigmoid   uint16, Q ``GATE_FRAC``      in [0, 1]
lower bound ``lb``     uint16, Q ``GATE_FRAC``      per layer and channel
MLGRU state ``h``      ``STATE_BITS``, Q OUT_FRAC   saturating, held between tokens
spike counts q, k, v   small ints over T timesteps  q in [0, T], k in {0, 1}, v in [-T, T]
attention KV state S   ``ATTN_STATE_BITS``, Q        saturating, per head (dh x dh), held between
                       ``ATTN_STATE_FRAC``           tokens, decayed by ``S - (S >> s_h)``
attention output       ``ATTN_OUT_BITS``, Q          sum of state rows selected by q spikes
                       ``ATTN_STATE_FRAC``
=====================  ===========================  ===========================================

Spike linear attention (:mod:`models.program.spike_attention`): a projection output ``y`` (Q ``OUT_FRAC``) becomes a
spike count ``clamp(round_shift(y, OUT_FRAC), lo, hi)`` — an integrate-and-fire neuron with threshold 1
driven by ``y`` for ``T = SPIKE_TIMESTEPS`` timesteps — emitted as that many binary (signed for v) spikes.

BitLinear in integers (:func:`absmax_quantize`, :func:`bitlinear_scale`): the absmax code
``round(127 z / max|z|)`` of ``z = RMSNorm(u) * g`` does not depend on the RMS factor, so the codes come
from ``z = u * g`` directly through one per-token reciprocal; the RMS factor ``1/sqrt(mean(u^2))``
(:func:`rsqrt`, a piecewise-linear table) joins the weight scale and ``max|z|`` in one per-token
multiplier applied to every accumulator. RMSNorm epsilons are below the format's resolution and are
not represented. Sigmoid is a piecewise-linear table over ``[-SIGMOID_RANGE, SIGMOID_RANGE)``
(:data:`SIGMOID_TABLE`), clamped to its end values outside; ``SiLU(y) = y * sigmoid(y)``. The GLU gate is SiLU,
or (:data:`GLU_ACTIVATIONS`, :func:`glu_act_q`) ``ReLU(y) = max(y, 0)`` or ``ReLU²(y) = saturate(round_shift(max(y,
0)**2, OUT_FRAC), RESID_BITS)``, all in Q ``OUT_FRAC``.

Input sparsity (:func:`sparsify_codes`, :func:`check_input_sparsity`): optional, per projection kind
(:data:`SPARSITY_KINDS`), applied to a BitLinear's absmax codes after quantisation and before the ternary
accumulation; the per-token scale still comes from the dense ``max|z|`` and sum of squares. A
``threshold`` ``t`` in ``[0, QUANT_MAX]`` zeroes every code with ``|code| < t`` (0 and 1 change
nothing); a ``topk`` ``k`` in ``[1, fan_in]`` keeps the ``k`` codes of largest magnitude, ties broken by
the lower input index, and zeroes the rest (fewer than ``k`` non-zero codes: nothing changes). Both
together keep the ``k`` largest of those at least ``t`` (the two commute). Absent settings are off, so a
program without them computes exactly what it did before.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ROUNDING", "OVERFLOW", "ACT_BITS", "ACT_BITS_ALLOWED", "WEIGHT_CODE_BITS", "TERNARY_CODES",
    "RESERVED_CODE", "MAX_FAN_IN", "MULTIPLIER_BITS",
    "check_act_bits", "act_range", "acc_bits", "saturate", "round_shift",
    "encode_ternary", "decode_ternary", "quantize_multiplier", "requantize",
    "EMBED_FRAC", "RESID_FRAC", "GAIN_FRAC", "GAIN_BITS", "OUT_FRAC", "GATE_FRAC", "STATE_BITS", "RESID_BITS",
    "SPIKE_TIMESTEPS", "ATTN_STATE_FRAC", "ATTN_STATE_BITS", "ATTN_OUT_BITS", "MAX_DECAY_SHIFT",
    "QUANT_MAX", "RECIP_BITS", "SIGMOID_RANGE", "SIGMOID_STEP_BITS", "SIGMOID_TABLE", "RSQRT_TABLE",
    "RSQRT_TABLE_BITS", "to_fixed", "pwl_lookup", "sigmoid_q", "silu_q", "rsqrt", "absmax_quantize",
    "bitlinear_scale", "apply_scale", "SPARSITY_KINDS", "SPARSITY_KEYS", "sparsity_kind", "check_input_sparsity",
    "sparsify_codes", "GLU_ACTIVATIONS", "glu_act_q",
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


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _where(cond, a, b):
    """``where`` of NumPy or torch, whichever ``cond`` belongs to."""
    if _is_torch(cond):
        import torch
        return torch.where(cond, a, b)
    return np.where(cond, a, b)


def _clip(x, lo, hi):
    if _is_torch(x):
        return x.clamp(lo, hi)
    return np.clip(x, lo, hi)


def _table(table: np.ndarray, like):
    """``table`` as an array of the same library (and device) as ``like``."""
    if _is_torch(like):
        import torch
        return torch.as_tensor(table, device=like.device)
    return table


def bit_length(x):
    """Bit length of non-negative integers, element-wise (``int.bit_length`` for arrays; < 2**63; 0 for
    negatives). Arrays: a binary search over the shift, six passes, in ``x``'s dtype and library."""
    if isinstance(x, (int, np.integer)):
        return int(x).bit_length()
    n, v = x * 0, x
    for s in (32, 16, 8, 4, 2, 1):
        big = (v >> s) > 0
        n, v = _where(big, n + s, n), _where(big, v >> s, v)
    return n + (v > 0)


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
    """Clamp a signed integer (or integer array, NumPy or torch) to a ``bits``-bit two's complement word."""
    if bits < 1:
        raise ValueError(f"Width must be at least 1 bit, not {bits}")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if isinstance(value, (int, np.integer)):
        return max(lo, min(hi, int(value)))
    return _clip(value, lo, hi)


def round_shift(value, shift):
    """``value / 2**shift`` rounded half away from zero, in integers.

    ``value`` is a Python int or an int64 array (NumPy or torch); ``shift`` a non-negative int or an
    array of them broadcasting against ``value``.
    """
    if isinstance(shift, (int, np.integer)) and shift < 0:
        raise ValueError(f"Shift must be non-negative, not {shift}")
    if isinstance(value, (int, np.integer)) and isinstance(shift, (int, np.integer)):
        v, sh = int(value), int(shift)
        mag = (abs(v) + ((1 << sh) >> 1)) >> sh
        return -mag if v < 0 else mag
    half = (1 << shift) >> 1
    mag = (abs(value) + half) >> shift
    return _where(value < 0, -mag, mag)


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



# ----------------------------------------------------------------------------------------------
# The MatMul-free integer program's formats and operations. Every function below works element-wise
# (per token along the last axis) on int64 NumPy arrays or torch tensors alike, so the torch integer
# view runs exactly these definitions; the Numba golden model is an independent implementation of them.

#: Fractional bits of the stored embedding (int16).
EMBED_FRAC = 12
#: Fractional bits of the residual stream (int32).
RESID_FRAC = 16
#: Width of the residual stream and of every BitLinear input and output.
RESID_BITS = 32
#: Fractional bits of RMSNorm gains ...
GAIN_FRAC = 12
#: ... stored in int16 (range ±8): ``z = u * gain`` then fits 48 bits and is never saturated.
GAIN_BITS = 16
#: Fractional bits of projection outputs (and logits, and the MLGRU state).
OUT_FRAC = 16
#: Fractional bits of gates, sigmoid outputs and lower bounds (unsigned, 1.0 = 2**GATE_FRAC).
GATE_FRAC = 15
#: Width of the MLGRU state ``h`` (Q OUT_FRAC, so the range is ±2**(STATE_BITS-1-OUT_FRAC) = ±128).
STATE_BITS = 24
#: Timesteps of the spike-coded attention inputs (q and v counts are at most this).
SPIKE_TIMESTEPS = 4
#: Fractional bits of the spike-attention KV state (a key-value spike pair adds ``2**ATTN_STATE_FRAC``).
ATTN_STATE_FRAC = 8
#: Width of the spike-attention KV state words (saturating).
ATTN_STATE_BITS = 24
#: Width of the spike-attention output words (saturating).
ATTN_OUT_BITS = 32
#: Largest per-head decay shift ``s_h`` (decay ``1 - 2**-s_h`` per token); with ``s_h <= ATTN_STATE_FRAC``
#: the flooring of the decay costs less than one key-value pair's worth of state.
MAX_DECAY_SHIFT = 8
#: Largest activation code the absmax quantizer produces.
QUANT_MAX = 127
#: Significant bits of the per-token reciprocal used by the absmax quantizer.
RECIP_BITS = 16
#: ``z`` is rounded to at most this many bits before the reciprocal multiply (keeps products < 2**63).
Z_BITS = 30
#: Inputs are rounded to at most this many bits before squaring (keeps sums of squares < 2**63).
SS_BITS = 20
#: The sigmoid table covers [-SIGMOID_RANGE, SIGMOID_RANGE] ...
SIGMOID_RANGE = 16
#: ... in steps of 2**-SIGMOID_STEP_BITS, with linear interpolation between entries.
SIGMOID_STEP_BITS = 4
#: Output scale of the reciprocal-square-root table.
RSQRT_TABLE_BITS = 18


def _round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def to_fixed(values, frac_bits: int, bits: int) -> np.ndarray:
    """Real values to saturated ``bits``-bit integers with ``frac_bits`` fractional bits (half away)."""
    v = np.asarray(values, dtype=np.float64) * float(1 << frac_bits)
    q = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return saturate(q, bits).astype(np.int64)


#: sigmoid(-R + k / 2**STEP) in Q GATE_FRAC for k = 0 .. 2*R*2**STEP (entry 0 is -R, the last +R).
SIGMOID_TABLE = np.array(
    [_round_half_away((1 << GATE_FRAC) / (1 + math.exp(-(-SIGMOID_RANGE + k / (1 << SIGMOID_STEP_BITS)))))
     for k in range(2 * SIGMOID_RANGE * (1 << SIGMOID_STEP_BITS) + 1)], dtype=np.int64)

#: round(2**RSQRT_TABLE_BITS / sqrt(j)) for j = 64 .. 256 (index j - 64).
RSQRT_TABLE = np.array([_round_half_away((1 << RSQRT_TABLE_BITS) / math.sqrt(j)) for j in range(64, 257)],
                       dtype=np.int64)


def pwl_lookup(table: np.ndarray, index, frac, frac_bits: int):
    """``t[i] + round_shift((t[i+1] - t[i]) * frac, frac_bits)``: linear interpolation in a table."""
    t = _table(table, index)
    lo = t[index]
    return lo + round_shift((t[index + 1] - lo) * frac, frac_bits)


def sigmoid_q(y):
    """Sigmoid of Q OUT_FRAC integers in Q GATE_FRAC: :data:`SIGMOID_TABLE` interpolated, its end
    values outside ``[-SIGMOID_RANGE, SIGMOID_RANGE]``."""
    shift = OUT_FRAC - SIGMOID_STEP_BITS
    last = len(SIGMOID_TABLE) - 1
    pos = _clip(y + (SIGMOID_RANGE << OUT_FRAC), 0, last << shift)  # offset from the left end
    index = _clip(pos >> shift, 0, last - 1)
    frac = pos - (index << shift)  # equals 1 << shift only at the right end: the last entry
    return pwl_lookup(SIGMOID_TABLE, index, frac, shift)


def silu_q(y):
    """SiLU of Q OUT_FRAC integers, in Q OUT_FRAC: ``round_shift(y * sigmoid_q(y), GATE_FRAC)``."""
    return round_shift(y * sigmoid_q(y), GATE_FRAC)


#: Non-linearities of the GLU gate, by the integer code the golden model's kernel takes (their index).
GLU_ACTIVATIONS = ("silu", "relu", "relu2")


def glu_act_q(name: str, y):
    """The GLU gate non-linearity ``name`` of :data:`GLU_ACTIVATIONS` on Q OUT_FRAC integers, in Q OUT_FRAC."""
    if name == "silu":
        return silu_q(y)
    r = _where(y > 0, y, y * 0)
    if name == "relu":
        return r
    if name == "relu2":
        return saturate(round_shift(r * r, OUT_FRAC), RESID_BITS)  # |y| < 2**31: r * r < 2**62
    raise ValueError(f"unknown GLU activation {name!r}; choose one of {', '.join(GLU_ACTIVATIONS)}")


def rsqrt(ss):
    """``1 / sqrt(ss)`` of positive int64 arrays as ``(mantissa, shift)``, ``≈ mantissa * 2**-shift``.

    ``ss`` is normalised by an even power of two to a mantissa ``q`` in ``[2**14, 2**16)``; ``1/sqrt``
    of it comes from :data:`RSQRT_TABLE` at ``q``'s top 8 bits, interpolated on its low 8 bits.
    Relative error below 1e-4 (the 16-bit mantissa and the interpolation).
    """
    e = bit_length(ss) - 16
    e = e + (e & 1)  # even, so that sqrt(2**e) is a power of two
    up, down = _clip(-e, 0, 62), _clip(e, 0, 62)
    q = (ss << up) >> down
    # 1/sqrt(ss) = 2**(-e/2) / sqrt(q) = 2**(-e/2) / (16 * sqrt(q / 256))
    return pwl_lookup(RSQRT_TABLE, (q >> 8) - 64, q & 0xFF, 8), RSQRT_TABLE_BITS + 4 + (e >> 1)


def sum_of_squares(u):
    """Per-token ``(ss, k)``: ``ss = sum(round_shift(u, k)**2)`` over the last axis, with ``k`` the
    smallest shift that brings ``max|u|`` within :data:`SS_BITS` bits (``1/rms(u) = 2**-k * sqrt(n/ss)``)."""
    mu = abs(u).max(-1, keepdims=True) if not _is_torch(u) else abs(u).amax(-1, keepdim=True)
    k = _clip(bit_length(mu) - SS_BITS, 0, 62)
    uk = round_shift(u, k)
    ss = (uk * uk).sum(-1, keepdims=True) if not _is_torch(u) else (uk * uk).sum(-1, keepdim=True)
    return ss, k


def absmax_quantize(z):
    """Per-token absmax activation codes: ``round(127 z / max|z|)`` through one reciprocal.

    ``z`` is first rounded to :data:`Z_BITS` bits (``z_k = round_shift(z, kz)``); the reciprocal is
    ``round(127 * 2**sq / max|z_k|)`` with :data:`RECIP_BITS` significant bits. Returns ``(codes in
    [-127, 127], max|z|)`` along the last axis (keepdims); an all-zero token gives zero codes, max 0.
    """
    m = abs(z).max(-1, keepdims=True) if not _is_torch(z) else abs(z).amax(-1, keepdim=True)
    kz = _clip(bit_length(m) - Z_BITS, 0, 62)
    zk = round_shift(z, kz)
    mk = round_shift(m, kz)
    nonzero = mk > 0
    mk1 = _where(nonzero, mk, mk * 0 + 1)
    sq = bit_length(mk1) + (RECIP_BITS - 7)
    recip = ((QUANT_MAX << sq) + (mk1 >> 1)) // mk1
    codes = saturate(round_shift(zk * recip, sq), ACT_BITS)
    return _where(nonzero, codes, codes * 0), m


def bitlinear_scale(static_multiplier: int, static_shift: int, zmax, ss, k):
    """Per-token ``(multiplier, shift)`` of a BitLinear's accumulators: ``static * zmax * 2**-k *
    rsqrt(ss)``, the multiplier rounded to :data:`MULTIPLIER_BITS` bits. ``static`` carries the weight
    scale, ``sqrt(fan_in)``, ``1/127`` and the format shifts (:mod:`models.program.integer_program`). Tokens
    with ``zmax == 0`` get multiplier 0."""
    live = zmax > 0
    rm, rs = rsqrt(_where(live, ss, ss * 0 + 1))
    bm = _clip(bit_length(zmax) - 16, 0, 62)
    p = static_multiplier * rm * round_shift(zmax, bm)
    bp = _clip(bit_length(p) - MULTIPLIER_BITS, 0, 62)
    mult = round_shift(p, bp)
    return _where(live, mult, mult * 0), static_shift + rs - bm - bp + k


#: Largest left shift :func:`apply_scale` performs (products stay below 2**63 before saturation).
MAX_LEFT_SHIFT = 22


def apply_scale(acc, multiplier, shift, out_bits: int = RESID_BITS):
    """``saturate(round_shift(acc * multiplier, shift), out_bits)`` element-wise; a negative shift
    multiplies by ``2**-shift`` (at most :data:`MAX_LEFT_SHIFT`)."""
    prod = acc * multiplier
    right = round_shift(prod, _clip(shift, 0, 62))
    left = prod << _clip(-shift, 0, MAX_LEFT_SHIFT)
    return saturate(_where(shift >= 0, right, left), out_bits)



# ----------------------------------------------------------------------------------------------
# Input sparsity of the BitLinear codes (see the module docstring).

#: Projection kinds a sparsity setting addresses: the token mixer's input projections (i/f/g, or q/k/v of
#: the spike attention), its output projection, the GLU's gate and down projections, and ``lm_head``.
SPARSITY_KINDS = ("ifg", "o", "gate", "down", "lm_head")
#: The knobs of one kind's setting.
SPARSITY_KEYS = ("threshold", "topk")
_KIND_OF = {"i_proj": "ifg", "f_proj": "ifg", "g_proj": "ifg", "q_proj": "ifg", "k_proj": "ifg", "v_proj": "ifg",
            "o_proj": "o", "gate_proj": "gate", "down_proj": "down", "lm_head": "lm_head"}


def sparsity_kind(projection: str) -> str:
    """The :data:`SPARSITY_KINDS` entry of a projection name (``i_proj`` ... ``down_proj``, ``lm_head``)."""
    if projection not in _KIND_OF:
        raise ValueError(f"projection {projection!r} has no sparsity kind; known: {', '.join(_KIND_OF)}")
    return _KIND_OF[projection]


def _knob(kind: str, key: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"input sparsity {kind}.{key} must be an integer in [{lo}, {hi}], not {value!r}")
    return int(value)


def check_input_sparsity(settings, fan_ins: dict[str, int]) -> dict[str, dict[str, int]]:
    """The canonical form of input-sparsity ``settings`` (``{kind: {"threshold": t, "topk": k}}``, either
    key optional; None or ``{}`` is off), or ``ValueError`` naming the first setting the spec cannot
    express. ``fan_ins`` maps each kind to its fan-in (the range of ``topk``). The canonical form keeps only
    settings that change something: ``threshold >= 2``, ``topk < fan_in``."""
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ValueError(f"input sparsity must be a mapping of projection kind to settings, not {settings!r}")
    out = {}
    for kind, knobs in settings.items():
        if kind not in SPARSITY_KINDS:
            raise ValueError(f"unknown projection kind {kind!r} in input sparsity; use {', '.join(SPARSITY_KINDS)}")
        if not isinstance(knobs, dict) or set(knobs) - set(SPARSITY_KEYS):
            raise ValueError(f"input sparsity of {kind} must be a mapping with keys among {', '.join(SPARSITY_KEYS)}, "
                             f"not {knobs!r}")
        t = _knob(kind, "threshold", knobs.get("threshold", 0), 0, QUANT_MAX)
        k = _knob(kind, "topk", knobs.get("topk", fan_ins[kind]), 1, fan_ins[kind])
        kept = {**({"threshold": t} if t >= 2 else {}), **({"topk": k} if k < fan_ins[kind] else {})}
        if kept:
            out[kind] = kept
    return out


def sparsify_codes(codes, threshold: int = 0, topk: int = 0):
    """Activation codes (..., fan_in), NumPy or torch, with :func:`check_input_sparsity`'s rule applied per
    token: ``|code| < threshold`` zeroed, then all but the ``topk`` largest magnitudes (ties: lower index
    first) zeroed; ``topk`` 0 is off. Returns a new array of the same type and dtype."""
    n = codes.shape[-1]
    if _is_torch(codes):
        import torch
        mag, idx = abs(codes).to(torch.int64), torch.arange(n, device=codes.device)
    else:
        mag, idx = np.abs(codes).astype(np.int64), np.arange(n)
    keep = mag >= threshold
    if 0 < topk < n:
        key = _where(keep, mag, mag * 0) * n + (n - 1 - idx)  # unique per token: magnitude, then lower index
        if _is_torch(key):
            kth = key.topk(topk, dim=-1).values[..., -1:]
        else:
            kth = np.partition(key, n - topk, axis=-1)[..., n - topk:n - topk + 1]
        keep = keep & (key >= kth)
    return _where(keep, codes, codes * 0)
