"""Spike codings: encode -> decode round trips exact at each coding's promised resolution; literal spike
trains agree with the closed form the converter runs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.program import events as vocab
from models.transformer.coding import CODINGS, MAX_TIMESTEPS, Coding, round_half_away

TS = (1, 2, 3, 7, 16)


def grid(coding: Coding, theta: float) -> torch.Tensor:
    """Every value the coding represents exactly (its resolution), both signs and zero."""
    codes = torch.arange(-coding.max_code, coding.max_code + 1, dtype=torch.int32)
    return coding.dequantize(codes, theta)


@pytest.mark.parametrize("name", CODINGS)
@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("theta", [1.0, 0.375, 6.0])
def test_grid_round_trip_is_exact(name, T, theta):
    c = Coding(name, T)
    x = grid(c, theta)
    if name == "bitplane" and T == 16:
        x = x[:: 97]                                   # 131071 values: a stride through them
    train = c.encode(x, theta)
    assert train.shape == (T, *x.shape) and train.dtype == torch.int8
    assert set(train.unique().tolist()) <= {-1, 0, 1}
    assert torch.equal(c.decode(train, theta), x)      # encode -> decode exact
    assert torch.equal(c.quantize_value(x, theta), x)  # closed form exact
    assert torch.equal(train.abs().sum(0).to(torch.int32), c.spike_count(c.quantize(x, theta)))
    assert int(train.abs().sum(0).max()) <= c.max_spikes_per_value


@pytest.mark.parametrize("name", CODINGS)
@pytest.mark.parametrize("T", TS)
def test_train_matches_closed_form_on_any_input(name, T):
    c = Coding(name, T)
    g = torch.Generator().manual_seed(T)
    x = torch.randn(4, 257, generator=g) * 3.0
    theta = torch.tensor(2.5)
    train = c.encode(x, theta)
    assert torch.equal(c.decode(train, theta), c.quantize_value(x, theta))
    assert torch.equal(train.abs().sum(0).to(torch.int32), c.spike_count(c.quantize(x, theta)))


@settings(max_examples=80, deadline=None)
@given(T=st.integers(1, 16), k=st.integers(-1 << 20, 1 << 20), shift=st.integers(0, 24), th_exp=st.integers(-3, 3))
def test_rate_if_neuron_is_round_half_away_on_dyadic_inputs(T, k, shift, th_exp):
    """The IF neuron (membrane from theta/2, reset by subtraction) counts round(T|x|/theta), halves away
    from zero, clipped at T — for dyadic inputs (exact in float64), ties included."""
    theta = 2.0 ** th_exp
    x = torch.tensor([k / 2.0 ** shift], dtype=torch.float32)
    c = Coding("rate", T)
    n = int(c.encode(x, theta).sum())
    exact = k * T / (2.0 ** shift * theta)            # exact in float64 for these ranges
    want = int(min(T, abs(exact) // 1 + (1 if abs(exact) % 1 >= 0.5 else 0)))
    assert n == (want if k >= 0 else -want)
    assert int(c.quantize(x, theta)) == n


@pytest.mark.parametrize("name", ["rate", "unary", "ttfs-linear", "bitplane"])
@pytest.mark.parametrize("T", TS)
def test_uniform_codings_error_bounded_by_half_step(name, T):
    c = Coding(name, T)
    theta = 1.7
    x = torch.linspace(-theta, theta, 2001)
    err = (c.quantize_value(x, theta) - x).abs().max()
    assert float(err) <= theta / c.max_code / 2 + 1e-6 * theta   # + float32 rounding of x and the level


@pytest.mark.parametrize("T", TS)
def test_ttfs_is_nearest_power_of_two_level(T):
    c = Coding("ttfs", T)
    theta = 1.0
    levels = torch.tensor([0.0] + [2.0 ** -t for t in range(T)])
    x = torch.linspace(0, 1.2, 3001)
    q = c.quantize_value(x, theta)
    xc = x.clamp(max=1.0)
    best = (xc[:, None] - levels[None, :]).abs().min(dim=1).values
    assert torch.allclose((q - xc).abs(), best, atol=1e-7)
    assert torch.equal(c.quantize_value(-x, theta), -q)   # symmetric


def test_clipping_and_sign():
    for name in CODINGS:
        c = Coding(name, 4)
        assert float(c.quantize_value(torch.tensor(100.0), 2.0)) == 2.0
        assert float(c.quantize_value(torch.tensor(-100.0), 2.0)) == -2.0
        assert float(c.quantize_value(torch.tensor(0.0), 2.0)) == 0.0


def test_bitplane_seven_planes_is_int8():
    c = Coding("bitplane", 7)
    assert c.max_code == 127
    x = torch.arange(-127, 128, dtype=torch.float32)
    assert torch.equal(c.quantize(x, 127.0), x.to(torch.int32))
    assert torch.equal(round_half_away(torch.tensor([-2.5, -0.5, 0.5, 1.5, 2.4])), torch.tensor([-3.0, -1.0, 1.0, 2.0, 2.0]))


def test_spike_counts():
    x = torch.tensor([0.0, 1.0, 0.5, -0.75])
    assert Coding("rate", 4).spike_count(Coding("rate", 4).quantize(x, 1.0)).tolist() == [0, 4, 2, 3]
    assert Coding("ttfs", 4).spike_count(Coding("ttfs", 4).quantize(x, 1.0)).tolist() == [0, 1, 1, 1]
    bp = Coding("bitplane", 3)                          # D = 7: 1.0 -> 7 (3 spikes), 0.5 -> 4 (1), .75 -> 5 (2)
    assert bp.quantize(x, 1.0).tolist() == [0, 7, 4, -5]
    assert bp.spike_count(bp.quantize(x, 1.0)).tolist() == [0, 3, 1, 2]
    # sign-magnitude: -1 is one spike of the negative neuron, not the eight one-bits of two's complement
    int8 = Coding("bitplane", 7)
    q = torch.tensor([-1, -127, 127, 0, 64], dtype=torch.int32)
    assert int8.spike_count(q).tolist() == [1, 7, 7, 0, 1]
    assert int8.encode(int8.dequantize(q, 1.0), 1.0).abs().sum(0).tolist() == [1, 7, 7, 0, 1]


@pytest.mark.parametrize("name", CODINGS)
@pytest.mark.parametrize("T", (1, 4, 9))
def test_bit_spikes_are_the_vocabulary_of_the_levels(name, T):
    """``levels`` are the values in the coding's finest step; bit spikes are their sign-magnitude one-bits."""
    c = Coding(name, T)
    q = torch.arange(-c.max_code, c.max_code + 1, dtype=torch.int32)
    finest = c.step_weights()[-1]
    assert torch.allclose(c.levels(q).double() * finest, c.dequantize(q, 1.0).double(), rtol=1e-6, atol=0)
    assert c.bit_spikes(q).tolist() == vocab.bit_spikes(c.levels(q).numpy()).tolist()
    if name in ("bitplane", "ttfs"):
        assert torch.equal(c.bit_spikes(q), c.spike_count(q))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown spike coding 'poisson'"):
        Coding("poisson", 4)
    with pytest.raises(ValueError, match=f"between 1 and {MAX_TIMESTEPS}"):
        Coding("rate", 0)
    with pytest.raises(TypeError, match="timesteps must be an integer"):
        Coding("rate", 2.0)
    with pytest.raises(ValueError, match="spike train has 3 steps"):
        Coding("rate", 4).decode(torch.zeros(3, 2, dtype=torch.int8), 1.0)
