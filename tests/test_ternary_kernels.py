"""The Numba golden ternary matrix-vector product against a literal Python loop, and its event counts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from models.program import events as vocab
from models.program import numformat
from models.program.ternary_kernels import ternary_matvec, ternary_matvec_batch


def slow_matvec(weights, x, out_bits):
    """``weights`` (out, fan_in) ternary ints; the spec: exact sum, then saturate to ``out_bits``."""
    lo, hi = -(2 ** (out_bits - 1)), 2 ** (out_bits - 1) - 1
    out = []
    for row in weights:
        s = sum(int(w) * int(a) for w, a in zip(row, x))
        out.append(min(hi, max(lo, s)))
    return out


shapes = st.tuples(st.integers(1, 40), st.integers(1, 24))


@settings(max_examples=60, deadline=None)
@given(shapes.flatmap(lambda s: st.tuples(
    hnp.arrays(np.int8, s, elements=st.sampled_from([-1, 0, 1])),
    hnp.arrays(np.int64, (s[1],), elements=st.integers(-128, 127)),
    st.integers(2, 24))))
def test_matvec_equals_literal_sum_with_saturation(case):
    weights, x, out_bits = case
    codes = numformat.encode_ternary(weights.T)
    got, events = ternary_matvec(codes, x, out_bits)
    assert got.tolist() == slow_matvec(weights, x, out_bits)
    nz = x != 0
    assert events.input_events == vocab.input_events(x) == int(nz.sum())
    assert events.synaptic_ops == vocab.synaptic_ops(x, weights) == int((weights[:, nz] != 0).sum())
    assert events.weight_codes_read == int(nz.sum()) * weights.shape[0]


def test_default_width_never_saturates_at_max_fan_in_extremes():
    k = 4096
    codes = numformat.encode_ternary(-np.ones((k, 3), dtype=np.int8))
    got, _ = ternary_matvec(codes, np.full(k, -128))
    assert got.tolist() == [128 * k] * 3


def test_all_zero_input_costs_no_events():
    codes = numformat.encode_ternary(np.ones((64, 8), dtype=np.int8))
    got, events = ternary_matvec(codes, np.zeros(64, dtype=np.int64))
    assert got.tolist() == [0] * 8
    assert (events.input_events, events.synaptic_ops, events.weight_codes_read) == (0, 0, 0)


def test_batch_equals_rows():
    rng = np.random.default_rng(0)
    codes = numformat.encode_ternary(rng.integers(-1, 2, size=(32, 5)))
    xs = rng.integers(-128, 128, size=(7, 32))
    assert ternary_matvec_batch(codes, xs).tolist() == [ternary_matvec(codes, x)[0].tolist() for x in xs]


def test_bad_operands_are_refused():
    codes = numformat.encode_ternary(np.ones((4, 2), dtype=np.int8))
    with pytest.raises(ValueError, match="Activation length 5 does not match the weights' fan-in 4"):
        ternary_matvec(codes, np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match=r"Activations must lie in \[-8, 7\] for 4-bit activations"):
        ternary_matvec(codes, np.array([8, 0, 0, 0]), act_bits=4)
    with pytest.raises(ValueError, match="Activation width 5 is not allowed"):
        ternary_matvec(codes, np.zeros(4, dtype=np.int64), act_bits=5)
    with pytest.raises(ValueError, match="must be uint8 2-bit codes"):
        ternary_matvec(codes.astype(np.int64), np.zeros(4, dtype=np.int64))
