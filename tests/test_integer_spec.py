"""The integer-program operations of the number-format spec against slow, literal pure-Python readings,
and NumPy against torch (the torch integer view runs the very same functions)."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.program import numformat as nf


def rha(q: Fraction) -> int:
    """Round half away from zero, literally."""
    sign = -1 if q < 0 else 1
    whole = int(abs(q))
    return sign * (whole + 1 if abs(q) - whole >= Fraction(1, 2) else whole)


def slow_sigmoid(y: int) -> int:
    """Table value at the step below ``y``, interpolated linearly, end values outside the range."""
    step = Fraction(1, 2 ** nf.SIGMOID_STEP_BITS)
    x = Fraction(y, 2 ** nf.OUT_FRAC)
    table = [rha(Fraction(2 ** nf.GATE_FRAC) / (1 + Fraction(math.exp(-float(-nf.SIGMOID_RANGE + k * step)))))
             for k in range(len(nf.SIGMOID_TABLE))]
    if x <= -nf.SIGMOID_RANGE:
        return table[0]
    if x >= nf.SIGMOID_RANGE:
        return table[-1]
    pos = (x + nf.SIGMOID_RANGE) / step
    i = int(pos)
    return table[i] + rha((table[i + 1] - table[i]) * (pos - i))


def test_tables_are_the_formulas():
    for k, v in enumerate(nf.SIGMOID_TABLE):
        x = -nf.SIGMOID_RANGE + k / 2 ** nf.SIGMOID_STEP_BITS
        assert abs(v - 2 ** nf.GATE_FRAC / (1 + math.exp(-x))) <= 0.5
    for j, v in zip(range(64, 257), nf.RSQRT_TABLE):
        assert abs(v - 2 ** nf.RSQRT_TABLE_BITS / math.sqrt(j)) <= 0.5


@settings(max_examples=150, deadline=None)
@given(st.integers(-(20 << nf.OUT_FRAC), 20 << nf.OUT_FRAC))
def test_sigmoid_is_the_interpolated_table(y):
    assert int(nf.sigmoid_q(np.array([y]))[0]) == slow_sigmoid(y)


@pytest.mark.slow
@given(st.lists(st.integers(-(40 << nf.OUT_FRAC), 40 << nf.OUT_FRAC), min_size=1, max_size=30))
def test_sigmoid_and_silu_agree_between_numpy_and_torch(ys):
    a = np.array(ys, dtype=np.int64)
    assert nf.sigmoid_q(a).tolist() == nf.sigmoid_q(torch.tensor(a)).tolist()
    assert nf.silu_q(a).tolist() == nf.silu_q(torch.tensor(a)).tolist()
    assert nf.silu_q(a).tolist() == [rha(Fraction(y * slow_sigmoid(y), 2 ** nf.GATE_FRAC)) for y in ys]


def test_sigmoid_is_accurate_and_saturates_outside_its_range():
    y = np.linspace(-16, 16, 2001)
    got = nf.sigmoid_q(nf.to_fixed(y, nf.OUT_FRAC, 32)) / 2 ** nf.GATE_FRAC
    assert np.abs(got - 1 / (1 + np.exp(-y))).max() < 1e-4
    far = nf.sigmoid_q(np.array([-(100 << nf.OUT_FRAC), 100 << nf.OUT_FRAC]))
    assert far.tolist() == [nf.SIGMOID_TABLE[0], nf.SIGMOID_TABLE[-1]]


@settings(max_examples=200)
@given(st.integers(1, 2**62))
def test_rsqrt_follows_its_definition_and_is_accurate(ss):
    mant, shift = nf.rsqrt(np.array([ss], dtype=np.int64))
    e = ss.bit_length() - 16
    e += e % 2
    q = ss >> e if e >= 0 else ss << -e
    t = [rha(Fraction(2 ** nf.RSQRT_TABLE_BITS) / Fraction(math.sqrt(j))) for j in (q >> 8, (q >> 8) + 1)]
    assert int(mant[0]) == t[0] + rha(Fraction((t[1] - t[0]) * (q & 0xFF), 256))
    assert abs(float(mant[0]) * 2.0 ** -int(shift[0]) * math.sqrt(ss) - 1) < 1e-4
    m2, s2 = nf.rsqrt(torch.tensor([ss]))
    assert (int(m2[0]), int(s2[0])) == (int(mant[0]), int(shift[0]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-2**45, 2**45), min_size=1, max_size=40))
def test_absmax_quantize_is_round_127_z_over_max(z):
    codes, m = nf.absmax_quantize(np.array([z], dtype=np.int64))
    mm = max(abs(v) for v in z)
    assert int(m[0, 0]) == mm
    if mm == 0:
        assert codes.tolist() == [[0] * len(z)]
        return
    kz = max(0, mm.bit_length() - nf.Z_BITS)
    mk = rha(Fraction(mm, 2**kz))
    sq = mk.bit_length() + nf.RECIP_BITS - 7
    recip = rha(Fraction(127 * 2**sq, mk))
    want = [max(-128, min(127, rha(Fraction(rha(Fraction(v, 2**kz)) * recip, 2**sq)))) for v in z]
    assert codes[0].tolist() == want
    # within one code of the exact rational rounding, and the max maps to ±127
    assert all(abs(w - rha(Fraction(127 * v, mm))) <= 1 for w, v in zip(want, z))
    assert max(abs(w) for w in want) == 127
    c2, m2 = nf.absmax_quantize(torch.tensor([z]))
    assert c2.tolist() == codes.tolist() and m2.tolist() == m.tolist()


@settings(max_examples=150)
@given(st.integers(1, 2**16 - 1), st.integers(0, 40), st.integers(1, 2**50), st.integers(1, 2**60), st.integers(0, 20))
def test_bitlinear_scale_approximates_its_real_value(mult, shift, zmax, ss, k):
    m, s = nf.bitlinear_scale(mult, shift, np.array([zmax]), np.array([ss]), np.array([k]))
    real = Fraction(mult, 2**shift) * zmax / Fraction(2**k) / Fraction(math.sqrt(ss))
    got = Fraction(int(m[0]), 2 ** int(s[0])) if int(s[0]) >= 0 else Fraction(int(m[0]) * 2 ** -int(s[0]))
    assert abs(got / real - 1) < 1e-3
    assert int(m[0]) < 2 ** nf.MULTIPLIER_BITS
    m2, s2 = nf.bitlinear_scale(mult, shift, torch.tensor([zmax]), torch.tensor([ss]), torch.tensor([k]))
    assert (int(m2[0]), int(s2[0])) == (int(m[0]), int(s[0]))


def test_bitlinear_scale_of_an_all_zero_token_is_zero():
    m, _ = nf.bitlinear_scale(40000, 20, np.array([0]), np.array([0]), np.array([0]))
    assert m.tolist() == [0]


@given(st.integers(-2**24, 2**24), st.integers(0, 2**16 - 1), st.integers(-22, 40))
def test_apply_scale_rounds_and_saturates(acc, mult, shift):
    got = int(nf.apply_scale(np.array([acc]), np.array([mult]), np.array([shift]))[0])
    exact = Fraction(acc * mult, 2**shift) if shift >= 0 else Fraction(acc * mult * 2 ** -shift)
    assert got == max(-2**31, min(2**31 - 1, rha(exact)))


@given(st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=30))
def test_sum_of_squares_keeps_within_ss_bits(u):
    ss, k = nf.sum_of_squares(np.array([u], dtype=np.int64))
    mu = max(abs(v) for v in u)
    kk = max(0, mu.bit_length() - nf.SS_BITS)
    assert int(k[0, 0]) == kk
    assert int(ss[0, 0]) == sum(rha(Fraction(v, 2**kk)) ** 2 for v in u)
