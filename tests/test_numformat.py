"""The number-format spec against a slow, literal pure-Python reading of it."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.program import numformat


def slow_round_half_away(q: Fraction) -> int:
    """Round a rational number to the nearest integer, ties away from zero (the spec's words)."""
    sign = -1 if q < 0 else 1
    mag = abs(q)
    whole = int(mag)  # floor of a non-negative number
    return sign * (whole + 1 if mag - whole >= Fraction(1, 2) else whole)


def slow_saturate(v: int, bits: int) -> int:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return lo if v < lo else hi if v > hi else v


@given(st.integers(-2**40, 2**40), st.integers(0, 30))
def test_round_shift_is_round_half_away_from_zero(value, shift):
    assert numformat.round_shift(value, shift) == slow_round_half_away(Fraction(value, 2**shift))


@given(st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=20), st.integers(0, 30))
def test_round_shift_array_equals_scalar(values, shift):
    got = numformat.round_shift(np.array(values, dtype=np.int64), shift)
    assert got.tolist() == [numformat.round_shift(v, shift) for v in values]


def test_round_shift_ties_go_away_from_zero():
    assert [numformat.round_shift(v, 1) for v in (-3, -1, 1, 3)] == [-2, -1, 1, 2]


@given(st.integers(-2**40, 2**40), st.integers(1, 40))
def test_saturate_clamps_to_twos_complement_range(value, bits):
    assert numformat.saturate(value, bits) == slow_saturate(value, bits)
    assert numformat.saturate(np.array([value]), bits)[0] == slow_saturate(value, bits)


@given(st.integers(1, numformat.MAX_FAN_IN), st.sampled_from(numformat.ACT_BITS_ALLOWED))
def test_acc_bits_is_the_smallest_width_holding_the_worst_case(fan_in, act_bits):
    width = numformat.acc_bits(fan_in, act_bits)
    worst = fan_in * 2 ** (act_bits - 1)
    assert slow_saturate(worst, width) == worst and slow_saturate(-worst, width) == -worst
    assert slow_saturate(worst, width - 1) != worst


@given(st.lists(st.sampled_from([-1, 0, 1]), min_size=1, max_size=64))
def test_ternary_codes_round_trip(weights):
    codes = numformat.encode_ternary(np.array(weights))
    assert set(codes.tolist()) <= {0b00, 0b01, 0b11}
    assert numformat.decode_ternary(codes).tolist() == weights


def test_ternary_code_table_is_twos_complement():
    for w, code in numformat.TERNARY_CODES.items():
        assert numformat.encode_ternary(np.array([w]))[0] == code
    assert numformat.decode_ternary(np.array([numformat.RESERVED_CODE]))[0] == 0


def test_non_ternary_weight_is_refused_with_its_index():
    with pytest.raises(ValueError, match=r"Weight 2 at index \(1,\) is not ternary"):
        numformat.encode_ternary(np.array([1, 2, 0]))


@pytest.mark.parametrize("bits", [0, 1, 3, 7, 16])
def test_unsupported_activation_width_is_refused(bits):
    with pytest.raises(ValueError, match=f"Activation width {bits} is not allowed by the number-format spec"):
        numformat.check_act_bits(bits)


@given(st.floats(1e-6, 1e4, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_keeps_multiplier_bits_of_precision(scale):
    m, shift = numformat.quantize_multiplier(scale)
    assert 2 ** (numformat.MULTIPLIER_BITS - 1) <= m < 2 ** numformat.MULTIPLIER_BITS
    assert abs(Fraction(m, 2**shift) - Fraction(scale)) <= Fraction(scale) / 2 ** (numformat.MULTIPLIER_BITS - 1)


@settings(max_examples=200)
@given(st.integers(-2**24, 2**24), st.floats(1e-4, 10.0), st.sampled_from([8, 16]))
def test_requantize_equals_rational_reading(acc, scale, out_bits):
    m, shift = numformat.quantize_multiplier(scale)
    expected = slow_saturate(slow_round_half_away(Fraction(acc * m, 2**shift)), out_bits)
    assert numformat.requantize(acc, m, shift, out_bits) == expected
    assert numformat.requantize(np.array([acc]), m, shift, out_bits)[0] == expected


def test_bit_length_of_arrays_is_int_bit_length_in_numpy_and_torch():
    """Element-wise ``bit_length`` (six shift passes, not 63) equals ``int.bit_length`` on every power of two and
    its neighbours up to 2**63 - 1, random values, zero and negatives (0), keeping the dtype and library."""
    import torch

    pows = [1 << k for k in range(63)]
    values = sorted({0, (1 << 63) - 1, *pows, *(p - 1 for p in pows), *(p + 1 for p in pows if p + 1 < 1 << 63),
                     *np.random.default_rng(0).integers(0, 1 << 62, 2000).tolist()})
    want = [v.bit_length() for v in values]
    x = np.array(values, dtype=np.int64)
    for arr in (x, torch.from_numpy(x)):
        got = numformat.bit_length(arr)
        assert type(got) is type(arr) and got.dtype == arr.dtype and got.tolist() == want
    small = np.array([0, 1, 2, 3, 255, 256, (1 << 31) - 1], dtype=np.int32)
    got = numformat.bit_length(small)
    assert got.dtype == np.int32 and got.tolist() == [int(v).bit_length() for v in small]
    assert numformat.bit_length(np.array([-1, -(1 << 40)])).tolist() == [0, 0]
    assert numformat.bit_length(np.int64(5)) == 3
