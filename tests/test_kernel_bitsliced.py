"""The bit-sliced ternary kernel against the exact integer product, on one thread and several, and its layout."""

from contextlib import contextmanager

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from models.program.bitsliced import BLOCK, WORD, BitslicedWeights, matvec, planes, popcount


@numba.njit
def _popcount_of(v):
    return popcount(v)


cases = st.tuples(st.integers(1, 140), st.integers(1, 140)).flatmap(lambda s: st.tuples(
    hnp.arrays(np.int8, s, elements=st.sampled_from([-1, 0, 1])),
    hnp.arrays(np.int64, (s[1],), elements=st.integers(-128, 127))))


@contextmanager
def threads(n: int):
    """Numba's thread count set to ``n`` (at most ``NUMBA_NUM_THREADS``) inside the block."""
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


@settings(max_examples=30, deadline=None)
@given(cases)
def test_matvec_is_the_exact_product(case):
    w, x = case
    with threads(1):
        assert matvec(BitslicedWeights(w), x).tolist() == (w.astype(np.int64) @ x).tolist()


def test_threads_over_output_blocks_give_the_same_integers():
    """Several blocks of outputs (BLOCK = 128) on 1 and 2 threads: the same integers, the exact product."""
    rng = np.random.default_rng(0)
    w = rng.integers(-1, 2, size=(3 * BLOCK + 5, 200)).astype(np.int8)
    x = rng.integers(-128, 128, size=200)
    sliced = BitslicedWeights(w)
    with threads(1):
        one = matvec(sliced, x)
    with threads(2):
        two = matvec(sliced, x)
    assert one.tolist() == two.tolist() == (w.astype(np.int64) @ x).tolist()


def test_extremes_and_word_edges():
    """Every weight against -128 and 127, at fan-ins around a word boundary (padding must count nothing)."""
    for fan_in in (WORD - 1, WORD, WORD + 1, 3 * WORD):
        for wv, xv in ((-1, -128), (1, -128), (1, 127), (-1, 127), (0, -128)):
            w = np.full((5, fan_in), wv, dtype=np.int8)
            x = np.full(fan_in, xv, dtype=np.int64)
            assert matvec(BitslicedWeights(w), x).tolist() == [wv * xv * fan_in] * 5


def test_layout_is_two_masks_of_64_input_words():
    w = np.zeros((2, 70), dtype=np.int8)
    w[0, 0], w[0, 65], w[1, 3] = 1, -1, 1
    b = BitslicedWeights(w)
    assert b.plus.shape == b.zero.shape == (2, 2) and b.plus.dtype == np.int64
    assert b.plus[0].tolist() == [1, 1 << 3] and b.plus[1].tolist() == [0, 0]  # [word, output]
    # zero: the 0 weights of the 70 real inputs; inputs 70..127 (padding) are neither +1 nor 0
    assert b.zero[0, 0] == ~1 and b.zero[1, 0] == ((1 << 6) - 1) & ~(1 << 1)
    assert b.rowsum.tolist() == [0, 1]
    assert b.nbytes == 2 * 2 * 2 * 8 + 2 * 8  # 2 bits per weight slot plus one row sum per output


def test_planes_are_the_bits_of_x_plus_128():
    x = np.array([-128, -1, 0, 127], dtype=np.int64)
    q = np.zeros((8, 1), dtype=np.int64)
    assert planes(x, q) == sum(int(v) + 128 for v in x)
    for b in range(8):
        assert q[b, 0] == sum((((int(v) + 128) >> b) & 1) << i for i, v in enumerate(x))


@given(st.integers(-(1 << 63), (1 << 63) - 1))
def test_popcount_intrinsic(v):
    assert _popcount_of(np.int64(v)) == bin(v & ((1 << 64) - 1)).count("1")


def test_bad_operands_are_refused():
    with pytest.raises(ValueError, match="need a 2-D"):
        BitslicedWeights(np.full((2, 2), 2, dtype=np.int8))
    b = BitslicedWeights(np.ones((2, 3), dtype=np.int8))
    with pytest.raises(ValueError, match=r"activation shape \(4,\) does not match the weights' fan-in 3"):
        matvec(b, np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match=r"int8 codes in \[-128, 127\]"):
        matvec(b, np.array([0, 128, 0]))
