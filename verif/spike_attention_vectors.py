"""Stimulus and expected words for the spike attention unit, computed by the golden model.

One state sequence runs through every phase (the unit keeps its KV state from phase to phase, as the
golden reference does); expected outputs come from :func:`models.program.spike_attention.head_step`. Phases:
``random`` (``n_random`` tokens of random spike trains — canonical :func:`spike_trains` and arbitrary
binary trains — with a few ``clear`` tokens and noise in the ignored k/clear fields of later beats,
random stalls), ``throughput_no_stalls`` (per-token cycles checked against
:func:`hw.spike_attention.cycles_per_token`) and the named corner cases ``all_zero_spikes``,
``max_q_fan_in``, ``state_growth_from_zero``, ``all_keys_all_values_max`` / ``all_keys_all_values_min`` (a
host-written state near its limits, then every key, value and q spike: positive and negative saturation
of the state and of the output), ``reserved_value_code`` and ``clear_restarts``.

Saturation is reachable only in some configurations: with ``s <= 8`` the decay removes at least
``|S| >> 8`` per token, so the state saturates only if ``T * 2**ATTN_STATE_FRAC`` exceeds ``2**15``
(``T > 128``), and the output only if ``dh * T > 256``. Each phase records whether the golden state and
output hit their limits (``state_saturated``, ``output_saturated``).
"""

from __future__ import annotations

import numpy as np

from hw.spike_attention import SpikeAttention, cycles_per_token, state_memory_image, token_beats
from models.program import numformat as nf
from models.program.spike_attention import head_step, spike_trains

__all__ = ["Reference", "make_vectors", "make_sequence_vectors", "random_token"]

STATE_MAX = (1 << (nf.ATTN_STATE_BITS - 1)) - 1
OUT_MAX = (1 << (nf.ATTN_OUT_BITS - 1)) - 1


class Reference:
    """The golden head with its state, advanced token by token (the unit's state follows it)."""

    def __init__(self, unit: SpikeAttention):
        self.dh, self.T, self.shift = unit.head_dim, unit.timesteps, unit.decay_shift
        self.S = np.zeros((self.dh, self.dh), dtype=np.int64)
        self.state_hit = {"max": False, "min": False}
        self.out_hit = {"max": False, "min": False}
        self.q_spikes: list[int] = []

    def token(self, k, v_trains, q_trains, clear: bool) -> list[int]:
        if clear:
            self.S[:] = 0
        o, _ = head_step(self.S, self.shift, np.asarray(k), np.asarray(v_trains), np.asarray(q_trains))
        self.state_hit["max"] |= bool((self.S == STATE_MAX).any())
        self.state_hit["min"] |= bool((self.S == -STATE_MAX - 1).any())
        self.out_hit["max"] |= bool((o == OUT_MAX).any())
        self.out_hit["min"] |= bool((o == -OUT_MAX - 1).any())
        self.q_spikes.append(int(np.asarray(q_trains).sum()))
        return o.tolist()


def random_token(rng: np.random.Generator, dh: int, T: int, sparse_q: bool = False):
    """(k, v_trains, q_trains) of one random token: canonical spike trains of random counts or arbitrary
    binary trains, at a random spike density; ``sparse_q`` keeps q counts small (long-``T`` configs)."""
    density = rng.choice([0.0, 0.1, 0.5, 0.9, 1.0], p=[0.05, 0.3, 0.35, 0.2, 0.1])
    k = (rng.random(dh) < rng.choice([0.0, 0.2, 0.5, 1.0])).astype(np.int64)
    q_cap = min(T, 3) if sparse_q and rng.random() < 0.9 else T
    if rng.random() < 0.5:  # counts -> the spec's spike trains
        n_v = np.where(rng.random(dh) < density, rng.integers(-T, T + 1, size=dh), 0)
        n_q = np.where(rng.random(dh) < density, rng.integers(0, q_cap + 1, size=dh), 0)
        return k, spike_trains(n_v, T), spike_trains(n_q, T)
    v = np.where(rng.random((T, dh)) < density, rng.choice([-1, 1], size=(T, dh)), 0)
    q = (rng.random((T, dh)) < density * q_cap / T).astype(np.int64)
    return k, v.astype(np.int8), q


def _phase(name: str, unit: SpikeAttention, ref: Reference, tokens, stalls: bool, *, writes=(),
           rng: np.random.Generator | None = None, timed: bool = False, raw_beats=None) -> dict:
    """A harness phase of ``tokens`` = [(k, v_trains, q_trains, clear)]; ``rng`` fills the ignored
    fields of later beats with noise; ``raw_beats`` replaces the packed beats (same expected words)."""
    T, dh = unit.timesteps, unit.head_dim
    beats, expect, cycles = [], [], []
    for n, (k, v, q, clear) in enumerate(tokens):
        noise = {}
        if rng is not None and T > 1:
            noise = dict(later_k=rng.integers(0, 2, size=(T - 1, dh)), later_clear=rng.integers(0, 2, size=T - 1))
        beats += token_beats(k, v, q, clear, **noise) if raw_beats is None else raw_beats[n]
        expect += ref.token(k, v, q, clear)
        cycles.append(cycles_per_token(dh, T, unit.lanes, int(np.asarray(q).sum())))
    phase = {"name": name, "writes": [list(w) for w in writes], "feeds": {"spikes": beats},
             "expect": {"res": expect}, "stalls": stalls, "width": {"res": dh}, "vectors": len(tokens),
             "state_saturated": dict(ref.state_hit), "output_saturated": dict(ref.out_hit)}
    if timed:
        phase["cycles_per_token"] = cycles  # the no-stall phase checks the cycle formula token by token
    ref.state_hit = {"max": False, "min": False}
    ref.out_hit = {"max": False, "min": False}
    return phase


def make_vectors(unit: SpikeAttention, *, seed: int, n_random: int) -> dict:
    """Every phase for ``unit`` (see the module docstring), one state sequence throughout."""
    rng = np.random.default_rng(seed)
    dh, T, P = unit.head_dim, unit.timesteps, unit.lanes
    ref = Reference(unit)
    sparse = T > 16
    zeros_t = np.zeros((T, dh), dtype=np.int64)
    ones_k = np.ones(dh, dtype=np.int64)
    all_q = np.ones((T, dh), dtype=np.int64)
    v_max, v_min = spike_trains(np.full(dh, T), T), spike_trains(np.full(dh, -T), T)

    def rand(count, clear_p=0.01):
        out = []
        for n in range(count):
            k, v, q = random_token(rng, dh, T, sparse)
            out.append((k, v, q, n == 0 or rng.random() < clear_p))
        return out

    phases = [_phase("random", unit, ref, rand(n_random), True, rng=rng)]
    phases.append(_phase("throughput_no_stalls", unit, ref, rand(16, 0.0), False, timed=True))
    phases.append(_phase("all_zero_spikes", unit, ref, [(np.zeros(dh, dtype=np.int64), zeros_t, zeros_t, False)] * 3,
                         True, rng=rng))
    phases.append(_phase("max_q_fan_in", unit, ref,
                         [(rng.integers(0, 2, size=dh), rand(1)[0][1], all_q, False) for _ in range(4)], True))
    # every key and every value spike from a cleared state: the state grows towards its fixed point
    phases.append(_phase("state_growth_from_zero", unit, ref, [(ones_k, v_max, all_q, n == 0) for n in range(12)],
                         True))
    # a host-written state near its limits, then every key, value and q spike: the state saturates at
    # ATTN_STATE_BITS and the output at ATTN_OUT_BITS where the configuration can reach them (T > 128,
    # dh * T > 256); one row holds random words
    for name, value, v in (("all_keys_all_values_max", STATE_MAX, v_max),
                           ("all_keys_all_values_min", -STATE_MAX - 1, v_min)):
        S0 = value - np.sign(value) * rng.integers(0, 1 << 12, size=(dh, dh))
        S0[0, :] = rng.integers(-STATE_MAX - 1, STATE_MAX + 1, size=dh)
        ref.S[:] = S0
        phases.append(_phase(name, unit, ref, [(ones_k, v, all_q, False) for _ in range(3)], True,
                             writes=[("state", 0, state_memory_image(S0, P))]))
    # the reserved value code 0b10 reads as zero
    k, v, q = rand(1)[0][:3]
    v = np.where(rng.random((T, dh)) < 0.5, 0, v)
    raw = token_beats(k, v, q)
    reserved = [b | sum(0b10 << (dh + 2 * j) for j in range(dh) if v[t, j] == 0 and (t + j) % 2 == 0)
                for t, b in enumerate(raw)]
    phases.append(_phase("reserved_value_code", unit, ref, [(k, v, q, False)], True, raw_beats=[reserved]))
    phases.append(_phase("clear_restarts", unit, ref, [(ones_k, v_max, all_q, False), (ones_k, v_max, all_q, True)]
                         + rand(2, 0.0), True))
    return {"unit": "spike_attention", "seed": seed, "phases": phases}


def make_sequence_vectors(unit: SpikeAttention, sequences, *, stalls_copy: bool = True) -> dict:
    """Phases for given spike-count sequences (the real-weights bench): each sequence is
    ``(name, n_q (L, dh), n_k (L, dh), n_v (L, dh))`` and starts with ``clear``; first without stalls
    (per-token cycles checked against the formula), then, with ``stalls_copy``, the same tokens again with
    random stalls on both streams."""
    ref = Reference(unit)
    T = unit.timesteps
    phases = []
    for name, nq, nk, nv in sequences:
        tokens = [(np.asarray(nk[n], dtype=np.int64), spike_trains(nv[n], T), spike_trains(nq[n], T), n == 0)
                  for n in range(len(nq))]
        phases.append(_phase(name, unit, ref, tokens, False, timed=True))
        if stalls_copy:
            phases.append(_phase(f"{name}_stalled", unit, ref, tokens, True))
    return {"unit": "spike_attention", "seed": 0, "phases": phases}
