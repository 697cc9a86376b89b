"""The spike attention unit: constructor checks, beat and state packing, Verilog, ports, the golden model
against the float reference within the spec's error bound, and the testbench's own checks.

The unit's cocotb runs on both simulators (1,000+ random tokens per configuration) are cases of
``tests/test_rtl.py`` (its registry entry); here a short run shows that a wrong word or a wrong cycle
count fails the bench.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hw.spike_attention import (BUNDLED_HEAD, SpikeAttention, cycles_per_token, dense_cycles_per_token,
                                state_memory_image, token_beats)
from hw.verilog import emit, port_list
from models.program import numformat as nf
from models.program.spike_attention import head_step, parallel_attention, spike_trains, state_error_bound
from verif.flow import run_bench
from verif.registry import BENCHES
from verif.simulators import available_simulators
from verif.spike_attention_vectors import make_vectors

FIXTURES = Path(__file__).parent / "fixtures"
STATE_MAX = (1 << (nf.ATTN_STATE_BITS - 1)) - 1


# ---------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("kw,message", [
    (dict(lanes=3), "Lane count 3 must divide the head width 16"),
    (dict(lanes=0), "Lane count must be at least 1, not 0"),
    (dict(head_dim=0, lanes=1), "Head width must be at least 1, not 0"),
    (dict(timesteps=0), "Spike timesteps must be at least 1, not 0"),
    (dict(decay_shift=0), r"Decay shift must be in \[1, 8\], not 0: the state would overflow or never decay"),
    (dict(decay_shift=nf.MAX_DECAY_SHIFT + 1), r"Decay shift must be in \[1, 8\], not 9"),
])
def test_bad_parameters_are_refused_in_one_line(kw, message):
    args = dict(head_dim=16, timesteps=4, decay_shift=4, lanes=4) | kw
    with pytest.raises(ValueError, match=message) as err:
        SpikeAttention(**args)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name,value", [("head_dim", 16.0), ("timesteps", True), ("decay_shift", "4"), ("lanes", None)])
def test_non_integer_parameters_are_refused(name, value):
    args = dict(head_dim=16, timesteps=4, decay_shift=4, lanes=4) | {name: value}
    with pytest.raises(TypeError, match="must be an integer"):
        SpikeAttention(**args)


def test_accumulator_holds_every_q_spike_of_the_largest_state():
    unit = SpikeAttention(head_dim=64, timesteps=8, decay_shift=2, lanes=8)
    worst = 64 * 8 * (STATE_MAX + 1)
    assert -worst >= -(1 << (unit.acc_bits - 1)) and worst - 64 * 8 <= (1 << (unit.acc_bits - 1)) - 1
    assert SpikeAttention(head_dim=4, timesteps=1, decay_shift=1, lanes=2).acc_bits == nf.ATTN_OUT_BITS


# ---------------------------------------------------------------------------- packing
def test_token_beats_pack_q_v_k_and_clear_in_beat_zero():
    k = np.array([1, 0, 1])
    v = np.array([[1, -1, 0], [0, 1, 0]])
    q = np.array([[0, 1, 1], [1, 0, 0]])
    b0, b1 = token_beats(k, v, q, clear=True)
    dh = 3
    assert b0 & 0b111 == 0b110 and b1 & 0b111 == 0b001                       # q, channel i at bit i
    assert (b0 >> dh) & 0b111111 == 0b00_11_01 and (b1 >> dh) & 0b111111 == 0b00_01_00  # v codes
    assert (b0 >> 3 * dh) & 0b111 == 0b101 and b0 >> 4 * dh == 1                # k, clear in beat 0
    assert b1 >> 3 * dh == 0
    noisy = token_beats(k, v, q, later_k=np.ones((1, 3), dtype=int), later_clear=[1])[1]
    assert noisy & ((1 << 3 * dh) - 1) == b1 and noisy >> 3 * dh == 0b1111


def test_token_beats_refuse_non_binary_spikes():
    with pytest.raises(ValueError, match="q spikes must be 0 or 1"):
        token_beats(np.zeros(2), np.zeros((1, 2)), np.array([[2, 0]]))
    with pytest.raises(ValueError, match="is not ternary"):
        token_beats(np.zeros(2), np.array([[2, 0]]), np.zeros((1, 2)))


def test_state_memory_image_packs_lanes_low_first_and_groups_row_major():
    S = np.arange(16).reshape(4, 4) - 8
    words = state_memory_image(S, lanes=2)
    mask = (1 << nf.ATTN_STATE_BITS) - 1
    assert len(words) == 8
    assert words[1] == (S[1, 0] & mask) | ((S[1, 1] & mask) << nf.ATTN_STATE_BITS)   # word g*dh + i: g 0, i 1
    assert words[4 + 2] == (S[2, 2] & mask) | ((S[2, 3] & mask) << nf.ATTN_STATE_BITS)
    with pytest.raises(ValueError, match="state values must fit 24 signed bits"):
        state_memory_image(np.full((2, 2), STATE_MAX + 1), lanes=2)


def test_event_skipping_cycle_formula():
    assert cycles_per_token(64, 4, 8, 0) == 4 + 512 + 8 + 64
    assert cycles_per_token(64, 4, 8, 40) == 4 + 512 + 8 * 42 + 64
    assert dense_cycles_per_token(64, 4, 8) == cycles_per_token(64, 4, 8, 256)


# ---------------------------------------------------------------------------- Verilog and ports
def test_verilog_is_reproducible_and_has_no_source_locations():
    a = emit(SpikeAttention(**BUNDLED_HEAD), "spike_attention")
    b = emit(SpikeAttention(**BUNDLED_HEAD), "spike_attention")
    assert a == b and "module spike_attention(" in a and "src =" not in a


@pytest.mark.parametrize("kw", [dict(head_dim=1, timesteps=1, decay_shift=1, lanes=1),
                                dict(head_dim=6, timesteps=3, decay_shift=8, lanes=2)])
def test_verilog_at_edge_configurations(kw):
    assert "module sa(" in emit(SpikeAttention(**kw), "sa")


def test_port_list_matches_checked_in_fixture():
    fixture = json.loads((FIXTURES / "spike_attention.ports.json").read_text())
    assert port_list(SpikeAttention(**BUNDLED_HEAD)) == fixture, (
        "the ports of spike_attention changed; if intended, regenerate tests/fixtures/spike_attention.ports.json")


# ---------------------------------------------------------------------------- golden vs float reference
def _random_counts(rng, L, H, dh, T):
    density = rng.choice([0.1, 0.5, 0.9], size=(L, H, 1))
    nq = np.where(rng.random((L, H, dh)) < density, rng.integers(0, T + 1, size=(L, H, dh)), 0)
    nk = (rng.random((L, H, dh)) < density).astype(np.int64)
    nv = np.where(rng.random((L, H, dh)) < density, rng.integers(-T, T + 1, size=(L, H, dh)), 0)
    return nq, nk, nv


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_golden_matches_float_reference_within_the_error_bound(seed):
    """``head_step`` (integers, flooring decay) against ``parallel_attention`` (real decay): every state
    cell within ``state_error_bound(s) = 2**s`` (Q ATTN_STATE_FRAC units) and every output within the sum
    of the row bounds over the token's q spikes. The flooring only ever decays less, so both errors are
    non-negative."""
    rng = np.random.default_rng(seed)
    L, dh, T = 300, 16, nf.SPIKE_TIMESTEPS
    shifts = [1, 2, 4, 6, 8]
    H = len(shifts)
    nq, nk, nv = _random_counts(rng, L, H, dh, T)
    real = parallel_attention(*(torch.tensor(x[None], dtype=torch.float64) for x in (nq, nk, nv)), shifts)[0].numpy()
    one = 2.0 ** nf.ATTN_STATE_FRAC
    worst_used = 0.0
    for h, s in enumerate(shifts):
        S = np.zeros((dh, dh), dtype=np.int64)
        S_real = np.zeros((dh, dh))
        gamma = 1.0 - 2.0 ** -s
        for t in range(L):
            o, _ = head_step(S, s, nk[t, h], spike_trains(nv[t, h], T), spike_trains(nq[t, h], T))
            S_real = gamma * S_real + one * np.outer(nk[t, h], nv[t, h])
            assert np.abs(S).max() < STATE_MAX, "the test needs sequences without saturation"
            cell = S - S_real
            assert cell.min() >= -1e-6 and cell.max() < state_error_bound(s), (h, t)
            bound = nq[t, h].sum() * state_error_bound(s)
            err = o - real[t, h]
            assert err.min() >= -1e-6 and err.max() <= bound, (h, t, err.max(), bound)
            worst_used = max(worst_used, cell.max() / state_error_bound(s))
    assert worst_used > 0.5  # the bound is not vacuous: the flooring error does build up


# ---------------------------------------------------------------------------- the testbench's stimulus
def test_saturation_corner_cases_saturate_where_reachable():
    bench = BENCHES["spike_attention"]
    sat = make_vectors(bench.build(**bench.configs["dh4_t136_s8_p4"]), seed=1, n_random=5)
    phases = {p["name"]: p for p in sat["phases"]}
    assert phases["all_keys_all_values_max"]["state_saturated"]["max"]
    assert phases["all_keys_all_values_max"]["output_saturated"]["max"]
    assert phases["all_keys_all_values_min"]["state_saturated"]["min"]
    assert phases["all_keys_all_values_min"]["output_saturated"]["min"]
    # at T <= 128 the decay always outweighs one token's key-value additions near the limits
    small = make_vectors(bench.build(**bench.configs["dh16_t4_s4_p4"]), seed=1, n_random=5)
    assert not any(any(p["state_saturated"].values()) for p in small["phases"])


def _short_vectors(config):
    bench = BENCHES["spike_attention"]
    return make_vectors(bench.build(**bench.configs[config]), seed=1, n_random=20)


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("corrupt", ["output_word", "cycle_count"])
def test_testbench_fails_on_a_wrong_word_or_cycle_count(corrupt):
    """Negative control (the last installed simulator, a short run): the comparisons are real."""
    good = _short_vectors("dh16_t4_s4_p4")
    bad = copy.deepcopy(good)
    if corrupt == "output_word":
        next(p for p in bad["phases"] if p["name"] == "reserved_value_code")["expect"]["res"][5] += 1
    else:
        next(p for p in bad["phases"] if "cycles_per_token" in p)["cycles_per_token"][3] += 1
    sim = available_simulators()[-1]
    result = run_bench("spike_attention", "dh16_t4_s4_p4", sim, vectors=bad)
    assert not result.passed and "1 of 1 cocotb tests failed" in result.detail
    assert run_bench("spike_attention", "dh16_t4_s4_p4", sim, vectors=good).passed
