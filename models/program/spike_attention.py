"""Spike-based linear attention: the computation the spike attention unit executes, defined once.

One head of width ``dh`` per token:

1. **Spikes.** The q, k, v projection outputs become spike counts (:func:`spike_counts`, an
   integrate-and-fire neuron with threshold 1 over ``T`` timesteps): ``n_q`` in ``[0, T]``, ``n_k`` in
   ``{0, 1}`` (a key fires once or not), ``n_v`` in ``[-T, T]`` (signed spikes). On the wire they are binary
   spike trains (:func:`spike_trains`): ``n`` spikes on the first ``n`` timesteps.
2. **KV state, additions only.** ``S`` (``dh x dh``, Q ``ATTN_STATE_FRAC``, ``ATTN_STATE_BITS`` wide) is
   decayed by a shift and grows by one ``±2**ATTN_STATE_FRAC`` per (key spike, value spike) pair::

       S[i, j] <- saturate(S[i, j] - (S[i, j] >> s_h) + k[i] * n_v[j] * 2**ATTN_STATE_FRAC)

   ``>>`` is the arithmetic (flooring) shift; ``s_h`` is the head's decay shift (decay ``1 - 2**-s_h``).
3. **Output, AND + additions.** Every q spike at timestep ``t`` on channel ``i`` adds state row ``i``::

       o[j] = saturate(sum_t sum_{i : q_t[i] = 1} S[i, j], ATTN_OUT_BITS)

No value is multiplied by an activation: spikes only gate additions. The normalisation of linear
attention (dividing by ``q . sum k``) is not needed here: the output feeds the ``o_proj`` BitLinear, whose
RMSNorm + absmax quantiser is invariant to a per-token scale — the integer program already computes that
per-token scale (reciprocal square-root table), so the hardware normalises for free.

This module holds the three executable forms and the event counts:

* :func:`head_step` — the Numba, event-driven golden model of one head and token (what the RTL is
  checked against), with its :class:`AttentionEvents`;
* :func:`exact_attention` — the same integers in torch for a whole batch of sequences (float64, exact),
  what the model computes at inference;
* :func:`parallel_attention` — the real-valued form with decay ``1 - 2**-s_h`` and no flooring (the
  differentiable surrogate used in training, and the float reference of the error bound
  :func:`state_error_bound`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from models.program import numformat as nf

__all__ = ["spike_counts", "spike_counts_int", "spike_trains", "default_decay_shifts", "check_decay_shifts",
           "check_timesteps", "AttentionEvents", "head_step", "exact_attention", "parallel_attention",
           "state_error_bound"]

_STATE_MAX = (1 << (nf.ATTN_STATE_BITS - 1)) - 1
_OUT_MAX = (1 << (nf.ATTN_OUT_BITS - 1)) - 1


# ---------------------------------------------------------------------------- settings
def check_timesteps(T) -> int:
    """``T`` as an int, or a one-line ValueError when it is not a positive integer."""
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T <= 0:
        raise ValueError(f"spike timesteps T must be a positive integer, got {T!r}: use e.g. T={nf.SPIKE_TIMESTEPS}")
    return int(T)


def default_decay_shifts(num_heads: int) -> list[int]:
    """Per-head decay shifts spread evenly over ``2 .. MAX_DECAY_SHIFT`` (short to long memory)."""
    if num_heads == 1:
        return [nf.MAX_DECAY_SHIFT // 2]
    lo, hi = 2, nf.MAX_DECAY_SHIFT
    return [lo + round(h * (hi - lo) / (num_heads - 1)) for h in range(num_heads)]


def check_decay_shifts(shifts, num_heads: int) -> list[int]:
    """Validated per-head decay shifts (one per head, each an int in ``[1, MAX_DECAY_SHIFT]``)."""
    shifts = list(shifts)
    if len(shifts) != num_heads:
        raise ValueError(f"spike_decay_shifts has {len(shifts)} entries but there are {num_heads} heads: give one shift per head")
    for s in shifts:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 1 <= s <= nf.MAX_DECAY_SHIFT:
            raise ValueError(f"decay shift {s!r} is outside [1, {nf.MAX_DECAY_SHIFT}]: the state would overflow or never decay")
    return [int(s) for s in shifts]


# ---------------------------------------------------------------------------- spikes
class _CountSTE(torch.autograd.Function):
    """``clamp(round_half_away(y), lo, hi)``; gradient 1 inside ``[lo - 1/2, hi + 1/2]``, else 0."""

    @staticmethod
    def forward(ctx, y, lo, hi):  # noqa: D102
        ctx.save_for_backward(y)
        ctx.lo, ctx.hi = lo, hi
        return (torch.sign(y) * torch.floor(torch.abs(y) + 0.5)).clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (y,) = ctx.saved_tensors
        inside = (y >= ctx.lo - 0.5) & (y <= ctx.hi + 0.5)
        return grad * inside.to(grad.dtype), None, None


def spike_counts(y: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Spike counts of real-valued inputs ``y`` (threshold 1, ``T`` timesteps): integer-valued floats in
    ``[lo, hi]``, with a straight-through gradient inside the range."""
    return _CountSTE.apply(y, lo, hi)


def spike_counts_int(y_q, lo: int, hi: int):
    """The same counts from Q ``OUT_FRAC`` integers (the integer program's projection outputs)."""
    return np.clip(nf.round_shift(np.asarray(y_q, dtype=np.int64), nf.OUT_FRAC), lo, hi)


def spike_trains(counts, T: int) -> np.ndarray:
    """Binary spike trains ``(T, ...)`` of counts ``|n| <= T``: ``sign(n)`` on the first ``|n|`` timesteps."""
    T = check_timesteps(T)
    n = np.asarray(counts, dtype=np.int64)
    if np.abs(n).max(initial=0) > T:
        raise ValueError(f"a spike count of {int(np.abs(n).max())} does not fit in T={T} timesteps")
    t = np.arange(T).reshape((T,) + (1,) * n.ndim)
    return (np.sign(n) * (t < np.abs(n))).astype(np.int8)


# ---------------------------------------------------------------------------- golden (Numba, event-driven)
@dataclass
class AttentionEvents:
    """Events of the spike attention for some tokens and heads.

    ``spikes`` q, k and v spikes; ``kv_adds`` one state addition per (key spike, value spike) pair;
    ``out_adds`` one addition per q spike and state column; ``state_updates`` cells decayed (read +
    written once per token)."""

    spikes: int = 0
    kv_adds: int = 0
    out_adds: int = 0
    state_updates: int = 0

    def __add__(self, other: "AttentionEvents") -> "AttentionEvents":
        return AttentionEvents(self.spikes + other.spikes, self.kv_adds + other.kv_adds,
                               self.out_adds + other.out_adds, self.state_updates + other.state_updates)


@numba.njit(cache=True)
def _head_step(S, shift, k, v_trains, q_trains, frac, state_max, out_max, o):
    dh = S.shape[0]
    T = v_trains.shape[0]
    kv = 0
    outs = 0
    spikes = 0
    for i in range(dh):                       # decay pass: every cell once per token
        for j in range(dh):
            S[i, j] -= S[i, j] >> shift
    for t in range(T):                        # one addition per (key spike, value spike) pair
        for j in range(dh):
            vs = v_trains[t, j]
            if vs == 0:
                continue
            spikes += 1
            for i in range(dh):
                if k[i] != 0:
                    S[i, j] += vs << frac
                    kv += 1
    for i in range(dh):
        spikes += k[i]
        for j in range(dh):
            if S[i, j] > state_max:
                S[i, j] = state_max
            elif S[i, j] < -state_max - 1:
                S[i, j] = -state_max - 1
    for j in range(dh):
        o[j] = 0
    for t in range(T):                        # every q spike adds one state row
        for i in range(dh):
            if q_trains[t, i] != 0:
                spikes += 1
                for j in range(dh):
                    o[j] += S[i, j]
                outs += dh
    for j in range(dh):
        if o[j] > out_max:
            o[j] = out_max
        elif o[j] < -out_max - 1:
            o[j] = -out_max - 1
    return spikes, kv, outs


def head_step(S: np.ndarray, shift: int, k: np.ndarray, v_trains: np.ndarray, q_trains: np.ndarray
              ) -> tuple[np.ndarray, AttentionEvents]:
    """One head, one token: updates the int64 state ``S`` (dh, dh) in place and returns the output
    ``o`` (dh,) int64 with the events. ``k`` (dh,) in {0, 1}; ``v_trains`` (T, dh) in {-1, 0, 1};
    ``q_trains`` (T, dh) in {0, 1} (see :func:`spike_trains`)."""
    dh = S.shape[0]
    if S.shape != (dh, dh) or S.dtype != np.int64:
        raise ValueError(f"state must be a square int64 array, got {S.shape} {S.dtype}")
    if k.shape != (dh,) or v_trains.shape[1:] != (dh,) or q_trains.shape != v_trains.shape:
        raise ValueError(f"spike shapes k {k.shape}, v {v_trains.shape}, q {q_trains.shape} do not match head width {dh}")
    o = np.zeros(dh, dtype=np.int64)
    spikes, kv, outs = _head_step(S, int(shift), k.astype(np.int64), v_trains.astype(np.int64),
                                  q_trains.astype(np.int64), nf.ATTN_STATE_FRAC, _STATE_MAX, _OUT_MAX, o)
    return o, AttentionEvents(spikes=int(spikes), kv_adds=int(kv), out_adds=int(outs), state_updates=dh * dh)


# ---------------------------------------------------------------------------- torch forms
def _shift_tensor(shifts, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor([float(2 ** s) for s in shifts], dtype=like.dtype).view(1, -1, 1, 1)


@torch.no_grad()
def exact_attention(nq: torch.Tensor, nk: torch.Tensor, nv: torch.Tensor, shifts,
                    state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The golden integers for whole sequences: counts (B, L, H, dh) → outputs (B, L, H, dh) in Q
    ``ATTN_STATE_FRAC`` and the last state (B, H, dh, dh); float64 throughout (every value is an integer
    below 2**53, so this is exact)."""
    B, L, H, dh = nq.shape
    q, k, v = (x.to(torch.float64) for x in (nq, nk, nv))
    S = q.new_zeros(B, H, dh, dh) if state is None else state.to(torch.float64).clone()
    div = _shift_tensor(shifts, S)
    one = float(2 ** nf.ATTN_STATE_FRAC)
    out = torch.empty(B, L, H, dh, dtype=torch.float64)
    for t in range(L):
        S = S - torch.floor(S / div) + one * (k[:, t, :, :, None] * v[:, t, :, None, :])
        S.clamp_(-_STATE_MAX - 1, _STATE_MAX)
        out[:, t] = torch.einsum("bhi,bhij->bhj", q[:, t], S).clamp_(-_OUT_MAX - 1, _OUT_MAX)
    return out, S


def parallel_attention(nq: torch.Tensor, nk: torch.Tensor, nv: torch.Tensor, shifts) -> torch.Tensor:
    """Real-valued reference: ``o_t = sum_{s <= t} gamma_h**(t-s) (q_t . k_s) v_s * 2**ATTN_STATE_FRAC``
    with ``gamma_h = 1 - 2**-s_h``, as batched matrix products (B, L, H, dh) → (B, L, H, dh);
    differentiable (training uses it as the surrogate of :func:`exact_attention`)."""
    B, L, H, dh = nq.shape
    gamma = 1.0 - 2.0 ** -torch.tensor(shifts, dtype=torch.float64)
    pos = torch.arange(L, dtype=torch.float64)
    diff = pos.view(L, 1) - pos.view(1, L)
    decay = torch.where(diff >= 0, gamma.view(H, 1, 1) ** diff.clamp(min=0), torch.zeros(()))
    q, k, v = (x.transpose(1, 2) for x in (nq, nk, nv))           # (B, H, L, dh)
    scores = (q @ k.transpose(-1, -2)) * decay.to(q.dtype)
    return (scores @ v).transpose(1, 2) * float(2 ** nf.ATTN_STATE_FRAC)


def state_error_bound(shift: int) -> float:
    """Largest ``|S_exact - S_real|`` of one state cell (in Q ``ATTN_STATE_FRAC`` units) without saturation:
    each token's flooring adds an error in ``[0, 1)`` that then decays by ``gamma``, so the total is below
    ``sum_n gamma**n = 2**shift``."""
    return float(2 ** shift)
