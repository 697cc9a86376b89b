"""The torch integer view: the integer program of :mod:`models.program.integer_program` run in torch int64.

Every operation is a :mod:`models.program.numformat` function applied to torch tensors, batched over tokens;
only the MLGRU state update runs token by token. Ternary accumulations go through float32 matrix
products, which are exact here: ``|acc| <= 127 * fan_in < 2**24``. The logits (Q ``OUT_FRAC``
integers) must equal the Numba golden model's exactly; as reals (``logits / 2**OUT_FRAC``) they are
what perplexity is computed from.
"""

from __future__ import annotations

import numpy as np
import torch

from models.program import numformat as nf
from models.program.integer_program import IntegerProgram, Projection
from models.program.spike_attention import exact_attention

__all__ = ["IntegerView"]


def _sat(x: torch.Tensor, bits: int = nf.RESID_BITS) -> torch.Tensor:
    return nf.saturate(x, bits)


class _TorchProjection:
    """A :class:`Projection` with its tensors on torch; ``accumulate`` replaces the exact ternary
    accumulation (e.g. by crossbar tiles): ``accumulate(name, codes (out, in) int8, x (n, in) int8)``
    returns the ``(n, out)`` accumulators."""

    def __init__(self, p: Projection, name: str = "", accumulate=None, sparsity: tuple[int, int] = (0, 0)):
        self.name, self.codes, self.accumulate, self.sparsity = name, p.codes, accumulate, sparsity
        self.weight = torch.as_tensor(p.codes, dtype=torch.float32)
        self.gain = torch.as_tensor(p.gain, dtype=torch.int64)
        self.multiplier, self.shift = p.multiplier, p.shift
        if 127 * p.fan_in >= 1 << 24:
            raise ValueError(f"fan-in {p.fan_in} is too large for exact float32 accumulation in the torch view")

    def __call__(self, u: torch.Tensor, ss_k=None) -> torch.Tensor:
        """BitLinear of int64 ``u`` (..., fan_in) → Q OUT_FRAC (..., fan_out)."""
        ss, k = nf.sum_of_squares(u) if ss_k is None else ss_k
        codes, zmax = nf.absmax_quantize(u * self.gain)  # exact: |u * gain| < 2**47
        codes = nf.sparsify_codes(codes, *self.sparsity)
        if self.accumulate is None:
            acc = (codes.to(torch.float32) @ self.weight.T).to(torch.int64)
        else:
            flat = codes.reshape(-1, codes.shape[-1]).numpy().astype(np.int8)
            acc = torch.as_tensor(np.asarray(self.accumulate(self.name, self.codes, flat), dtype=np.int64))
            acc = acc.reshape(*codes.shape[:-1], -1)
        mult, shift = nf.bitlinear_scale(self.multiplier, self.shift, zmax, ss, k)
        return nf.apply_scale(acc, mult, shift)


class IntegerView:
    """Runs an :class:`IntegerProgram` on token ids; ``forward`` returns integer logits.

    ``accumulate`` (optional) computes every ternary accumulation instead of the exact product — the
    hook through which crossbar tiles execute the program (see ``_TorchProjection``); projections are
    named ``layers.{l}.{proj}`` and ``lm_head``.
    """

    def __init__(self, program: IntegerProgram, accumulate=None):
        program.validate()
        self.program = program
        self.embedding = torch.as_tensor(program.embedding, dtype=torch.int64)
        self.final_gain = torch.as_tensor(program.final_gain, dtype=torch.int64)
        self.lm_head = _TorchProjection(program.lm_head, "lm_head", accumulate, program.sparsity("lm_head"))
        self.layers = []
        for li, layer in enumerate(program.layers):
            self.layers.append({
                "attn_gain": torch.as_tensor(layer.attn_gain, dtype=torch.int64),
                "g_norm_gain": torch.as_tensor(layer.g_norm_gain, dtype=torch.int64),
                "lower_bound": torch.as_tensor(layer.lower_bound, dtype=torch.int64),
                "mlp_gain": torch.as_tensor(layer.mlp_gain, dtype=torch.int64),
                **{n: _TorchProjection(p, f"layers.{li}.{n}", accumulate, program.sparsity(n))
                   for n, p in layer.proj.items()},
            })

    def init_state(self, batch: int) -> torch.Tensor:
        """Zero recurrent state: MLGRU (layers, batch, input_dim) in Q OUT_FRAC, or spike attention
        (layers, batch, heads, head_dim, head_dim) in Q ATTN_STATE_FRAC."""
        p = self.program
        if p.token_mixer == "spike_attention":
            dh = p.input_dim // p.num_heads
            return torch.zeros(len(self.layers), batch, p.num_heads, dh, dh, dtype=torch.int64)
        return torch.zeros(len(self.layers), batch, p.input_dim, dtype=torch.int64)

    def _spike_mixer(self, L: dict, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spike attention: o_proj input (B, T, input_dim) in Q ATTN_STATE_FRAC and the last KV state."""
        p, ss_k = self.program, nf.sum_of_squares(u)
        T, heads = p.timesteps, p.num_heads

        def counts(name: str, lo: int, hi: int) -> torch.Tensor:
            n = nf.round_shift(L[name](u, ss_k), nf.OUT_FRAC).clamp(lo, hi)
            return n.view(*n.shape[:-1], heads, -1)

        o, last = exact_attention(counts("q_proj", 0, T), counts("k_proj", 0, 1), counts("v_proj", -T, T),
                                  p.decay_shifts, state)
        return o.to(torch.int64).flatten(-2), last.to(torch.int64)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, state: torch.Tensor | None = None):
        """ids (B, T) → (integer logits (B, T, vocab) in Q OUT_FRAC, final state (layers, B, input_dim))."""
        one = 1 << nf.GATE_FRAC
        x = self.embedding[input_ids] << (nf.RESID_FRAC - nf.EMBED_FRAC)
        state = self.init_state(input_ids.shape[0]) if state is None else state
        finals = []
        for li, L in enumerate(self.layers):
            u = _sat(nf.round_shift(x * L["attn_gain"], nf.GAIN_FRAC))
            if self.program.token_mixer == "spike_attention":
                v, last = self._spike_mixer(L, u, state[li])
                finals.append(last)
                x = self._channel_mixer(L, _sat(x + L["o_proj"](v)), self.program.glu_activation)
                continue
            # MLGRU token mixer
            ss_k = nf.sum_of_squares(u)
            yi, yf, yg = (L[n](u, ss_k) for n in ("i_proj", "f_proj", "g_proj"))
            lb = L["lower_bound"]
            f = lb + nf.round_shift((one - lb) * nf.sigmoid_q(yf), nf.GATE_FRAC)
            i = nf.round_shift(nf.silu_q(yi) * (one - f), nf.GATE_FRAC)
            h = state[li]
            hs = []
            for t in range(x.shape[1]):
                h = _sat(nf.round_shift(f[:, t] * h, nf.GATE_FRAC) + i[:, t], nf.STATE_BITS)
                hs.append(h)
            finals.append(h)
            h_all = torch.stack(hs, dim=1)
            v = _sat(nf.round_shift(_sat(nf.round_shift(yg * L["g_norm_gain"], nf.GAIN_FRAC)) * nf.silu_q(h_all),
                                    nf.OUT_FRAC))
            x = self._channel_mixer(L, _sat(x + L["o_proj"](v)), self.program.glu_activation)
        logits = self.lm_head(_sat(nf.round_shift(x * self.final_gain, nf.GAIN_FRAC)))
        return logits, torch.stack(finals)

    @staticmethod
    def _channel_mixer(L: dict, r: torch.Tensor, act: str) -> torch.Tensor:
        """GLU channel mixer with its residual: ``r + down(act(g) * u)`` (``act``: SiLU, ReLU or ReLU²)."""
        gu = L["gate_proj"](_sat(nf.round_shift(r * L["mlp_gain"], nf.GAIN_FRAC)))
        g, up = gu.chunk(2, dim=-1)
        return _sat(r + L["down_proj"](_sat(nf.round_shift(nf.glu_act_q(act, g) * up, nf.OUT_FRAC))))

    def logits_float(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits as reals (``integer / 2**OUT_FRAC``), float32 — for perplexity."""
        return self.forward(input_ids)[0].to(torch.float32) / (1 << nf.OUT_FRAC)
