"""The MatMul-free language model (``hgrn_bit``) in PyTorch: the float QAT view.

This computes what the released ridgerchu/matmulfreellm code computes (``mmfreelm/models/hgrn_bit``,
``mmfreelm/layers/hgrn_bit.py``, ``mmfreelm/ops/fusedbitnet.py``), written from its description, not
copied:

BitLinear (``FusedBitLinear`` upstream)
    ``y = RMSNorm(x) * norm.weight`` with eps 1e-6 (the fused kernel is always called with its default
    eps 1e-6; the module's own ``eps=1e-8`` is never used), then activations absmax-int8 per token:
    ``s_a = 127 / max(max|y|, 1e-5)``, ``q_a = clamp(round_half_away(y * s_a), -128, 127)`` (the Triton
    kernel's ``tl.math.round`` rounds half away from zero), weights absmean-ternary per tensor:
    ``s_w = 1 / max(mean|W|, 1e-5)``, ``q_w = clamp(round(W * s_w), -1, 1)`` (``torch.round``, half to
    even, as upstream's ``weight_quant``), and ``out = (q_a / s_a) @ (q_w / s_w)^T``. Training uses the
    straight-through estimator: the quantisers pass gradients unchanged.
MLGRU token mixer (``HGRNBitAttention``)
    ``f = sigmoid(W_f x)``, ``f = lb + (1 - lb) * f`` (layers > 0), ``i = SiLU(W_i x) * (1 - f)``,
    ``h_t = f_t * h_{t-1} + i_t``, ``o = W_o(RMSNorm(W_g x) * SiLU(h))`` where the RMSNorm is
    ``g_norm`` with eps ``rms_norm_eps`` (``FusedRMSNormSwishGate``). The lower bounds of all layers come
    from one parameter ``P = model.lower_bounds`` of shape (layers, hidden): ``p = softmax(P, 0)``,
    ``lb = cumsum(p, 0) - p[0]`` (so ``lb[0] = 0``).
GLU channel mixer (``HGRNBitMLP``)
    ``[g, u] = W_gate x`` (split in halves), ``out = W_down(SiLU(g) * u)`` (this project's option
    ``config.glu_activation``: ReLU or ReLU² in place of SiLU).
Block
    ``r = x + MLGRU(attn_norm(x))``, ``out = r + GLU(mlp_norm(r))``.
Model
    full-precision embedding → blocks → ``model.norm`` → ternary BitLinear ``lm_head`` (with its own
    RMSNorm ``lm_head.norm``).

Integer-view hook: the quantisers are the small module-level functions :func:`act_quant` and
:func:`weight_quant` (integer codes and scales), :func:`round_half_away`, and the non-linearities are
called through :func:`sigmoid` and :func:`silu`; :meth:`MMFreeForCausalLM.named_bitlinears` lists every
ternary layer. An integer executor reads the same parameters and replaces those functions.
"""

from __future__ import annotations

import math
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.mmfree.config import MMFreeConfig
from models.program.numformat import sparsify_codes, sparsity_kind
from models.program.spike_attention import exact_attention, parallel_attention, spike_counts

#: eps of the RMSNorm fused into every BitLinear (upstream's fused kernel default, whatever the config).
BITLINEAR_NORM_EPS = 1e-6
#: floor of the absmax / absmean used by the quantisers (upstream ``clamp_(min=1e-5)``).
QUANT_EPS = 1e-5


# ---------------------------------------------------------------------------- quantisers
def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest, ties away from zero (``torch.round`` rounds ties to even)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def act_quant(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax int8 quantisation per token (last dim): returns integer-valued codes in [-128, 127]
    (float dtype) and the per-token scale ``127 / max(max|x|, 1e-5)`` (shape ``x.shape[:-1] + (1,)``).
    ``x ≈ codes / scale``."""
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=QUANT_EPS)
    q = round_half_away(x * scale).clamp(-128, 127)
    return q, scale


def weight_quant(w: torch.Tensor, zero_threshold: Optional[float] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmean ternary quantisation per tensor: returns codes in {-1, 0, 1} (float dtype) and the
    scalar scale ``1 / max(mean|W|, 1e-5)``. ``W ≈ codes / scale``. ``zero_threshold`` ``t`` zeroes
    ``|w| <= t * mean|W|`` instead of rounding (``config.weight_zero_threshold``)."""
    scale = 1.0 / w.abs().mean().clamp(min=QUANT_EPS)
    if zero_threshold is None:
        q = torch.round(w * scale).clamp(-1, 1)
    else:
        q = torch.sign(w) * ((w * scale).abs() > zero_threshold).to(w.dtype)
    return q, scale


def act_fake_quant(x: torch.Tensor, sparsity: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """``codes / scale`` of :func:`act_quant` (the value the float view computes with), the codes with the
    spec's input ``sparsity`` ``(threshold, topk)`` applied (:func:`models.program.numformat.sparsify_codes`)."""
    q, s = act_quant(x)
    if sparsity != (0, 0):
        q = sparsify_codes(q, *sparsity)
    return q / s


def weight_fake_quant(w: torch.Tensor, zero_threshold: Optional[float] = None) -> torch.Tensor:
    """``codes / scale`` of :func:`weight_quant`."""
    q, s = weight_quant(w, zero_threshold)
    return q / s


class _STE(torch.autograd.Function):
    """Straight-through estimator: forward ``fn(x)``, backward identity."""

    @staticmethod
    def forward(ctx, x, fn):  # noqa: D102
        return fn(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        return grad, None


def ste(x: torch.Tensor, fn) -> torch.Tensor:
    """``fn(x)`` in the forward pass, identity gradient in the backward pass."""
    return _STE.apply(x, fn)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Logistic function (replaced by the number-format spec's form in an integer view)."""
    return torch.sigmoid(x)


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU / swish ``x * sigmoid(x)``."""
    return F.silu(x)


#: The GLU gate non-linearities (``config.glu_activation``).
GLU_ACTS = {"silu": silu, "relu": F.relu, "relu2": lambda x: F.relu(x).square()}


# ---------------------------------------------------------------------------- recurrence
class _LinearRecurrence(torch.autograd.Function):
    """``h_t = f_t * h_{t-1} + x_t`` over dim 1 of (B, T, D) tensors, with an explicit backward
    (``dx_t = g_t + f_{t+1} dx_{t+1}``, ``df_t = dx_t h_{t-1}``, ``dh_0 = f_0 dx_0``), which is much
    cheaper on a CPU than letting autograd record T small steps."""

    @staticmethod
    def forward(ctx, x, f, h0):  # noqa: D102
        xt = x.transpose(0, 1).contiguous()
        ft = f.transpose(0, 1).contiguous()
        out = torch.empty_like(xt)
        h = h0
        for t in range(xt.shape[0]):
            torch.addcmul(xt[t], ft[t], h, out=out[t])
            h = out[t]
        ctx.save_for_backward(ft, out, h0)
        return out.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        ft, out, h0 = ctx.saved_tensors
        g = grad.transpose(0, 1).contiguous()
        dx = torch.empty_like(g)
        T = g.shape[0]
        dx[T - 1] = g[T - 1]
        for t in range(T - 2, -1, -1):
            torch.addcmul(g[t], ft[t + 1], dx[t + 1], out=dx[t])
        h_prev = torch.cat([h0.unsqueeze(0), out[:-1]], dim=0)
        df = dx * h_prev
        dh0 = dx[0] * ft[0]
        return dx.transpose(0, 1), df.transpose(0, 1), dh0


def linear_recurrence(x: torch.Tensor, f: torch.Tensor, h0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """All states ``h_t = f_t * h_{t-1} + x_t`` for x, f of shape (B, T, D); ``h0`` (B, D) or zeros."""
    if h0 is None:
        h0 = x.new_zeros(x.shape[0], x.shape[2])
    return _LinearRecurrence.apply(x, f, h0)


# ---------------------------------------------------------------------------- modules
class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dim (no bias)."""

    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class BitLinear(nn.Module):
    """RMSNorm (own weight, eps 1e-6) → int8 absmax activations → ternary absmean weights → linear.

    ``quantize=False`` turns both quantisers off (the plain fp32 baseline of the same model).
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.norm = RMSNorm(in_features, eps=BITLINEAR_NORM_EPS)
        self.quantize = True
        #: the input-code sparsity ``(threshold, topk)`` of the spec (``(0, 0)``: off)
        self.sparsity = (0, 0)
        #: the weight quantiser's zero band (``config.weight_zero_threshold``; None: rounding)
        self.zero_threshold: Optional[float] = None
        #: when True, :attr:`code_l1` holds the last forward's mean ``|y| / max|y|`` (the input codes' mean
        #: magnitude / 127, differentiable): the activation-sparsity penalty of training
        self.track_l1 = False
        self.code_l1: Optional[torch.Tensor] = None
        self._wq_cache: Optional[tuple[tuple, torch.Tensor]] = None

    def quantized_weight(self) -> torch.Tensor:
        """``weight_fake_quant(weight)``; without autograd it is cached until the weight changes
        (token-by-token decoding would otherwise re-quantise every matrix for every token)."""
        w = self.weight
        if torch.is_grad_enabled() and w.requires_grad:
            return ste(w, lambda v: weight_fake_quant(v, self.zero_threshold))
        key = (w.data_ptr(), w._version, w.dtype, tuple(w.shape), self.zero_threshold)
        if self._wq_cache is None or self._wq_cache[0] != key:
            self._wq_cache = (key, weight_fake_quant(w.detach(), self.zero_threshold))
        return self._wq_cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.norm(x)
        w = self.weight
        if self.track_l1:
            self.code_l1 = (y.abs().mean(-1) / y.abs().amax(-1).clamp(min=QUANT_EPS)).mean()
        if self.quantize:
            y = ste(y, lambda v: act_fake_quant(v, self.sparsity))
            w = self.quantized_weight()
        return F.linear(y, w)

    def extra_repr(self) -> str:  # noqa: D102
        return f"in_features={self.in_features}, out_features={self.out_features}, quantize={self.quantize}"


class MLGRU(nn.Module):
    """MatMul-free linear GRU token mixer (upstream ``HGRNBitAttention``, key prefix ``attn``)."""

    def __init__(self, config: MMFreeConfig, layer_idx: int):
        super().__init__()
        d, e = config.hidden_size, config.input_dim
        self.layer_idx = layer_idx
        self.i_proj = BitLinear(d, e)
        self.f_proj = BitLinear(d, e)
        self.g_proj = BitLinear(d, e)
        self.g_norm = RMSNorm(e, eps=config.rms_norm_eps)
        self.o_proj = BitLinear(e, d)

    def _gates(self, x: torch.Tensor, lower_bound: Optional[torch.Tensor]):
        f = sigmoid(self.f_proj(x))
        if lower_bound is not None and self.layer_idx > 0:
            f = lower_bound + (1 - lower_bound) * f
        i = silu(self.i_proj(x)) * (1 - f)
        return i, f

    def _out(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.o_proj(self.g_norm(self.g_proj(x)) * silu(h))

    def forward(self, x: torch.Tensor, lower_bound: Optional[torch.Tensor] = None,
                state: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, hidden) → (output (B, T, hidden), last state h_T (B, input_dim))."""
        i, f = self._gates(x, lower_bound)
        h = linear_recurrence(i, f, state)
        return self._out(x, h), h[:, -1]

    def step(self, x: torch.Tensor, lower_bound: Optional[torch.Tensor], state: torch.Tensor):
        """One token: x (B, hidden), state h_{t-1} (B, input_dim) → (output (B, hidden), h_t)."""
        i, f = self._gates(x, lower_bound)
        h = torch.addcmul(i, f, state)
        return self._out(x, h), h


class SpikeLinearAttention(nn.Module):
    """Spike-based linear attention token mixer (``token_mixer="spike_attention"``, key prefix ``attn``).

    ``q, k, v = q_proj(x), k_proj(x), v_proj(x)`` (ternary BitLinears, as every projection), turned into
    spike counts over ``T = spike_timesteps`` (q in [0, T], k in {0, 1}, v in [-T, T]), mixed per head by
    the additions-only KV state of :mod:`models.program.spike_attention`, then ``o_proj``. The forward pass always
    computes the exact integers of the golden model; with autograd on, the gradient comes from the
    real-valued parallel form (:func:`parallel_attention`, the same computation without the flooring of
    the decay) — a straight-through estimator for the flooring.
    """

    def __init__(self, config: MMFreeConfig, layer_idx: int):
        super().__init__()
        d, e = config.hidden_size, config.input_dim
        self.layer_idx = layer_idx
        self.num_heads, self.head_dim = config.num_heads, e // config.num_heads
        self.timesteps = config.spike_timesteps
        self.shifts = config.decay_shifts
        self.q_proj = BitLinear(d, e)
        self.k_proj = BitLinear(d, e)
        self.v_proj = BitLinear(d, e)
        self.o_proj = BitLinear(e, d)

    def counts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Spike counts ``(n_q, n_k, n_v)``, each (..., heads, head_dim), of hidden states x (..., hidden)."""
        T = self.timesteps
        heads = lambda y: y.view(*y.shape[:-1], self.num_heads, self.head_dim)  # noqa: E731
        return (heads(spike_counts(self.q_proj(x), 0, T)), heads(spike_counts(self.k_proj(x), 0, 1)),
                heads(spike_counts(self.v_proj(x), -T, T)))

    def forward(self, x: torch.Tensor, lower_bound: Optional[torch.Tensor] = None,
                state: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, hidden) → (output (B, L, hidden), last KV state (B, heads, head_dim, head_dim)).
        ``lower_bound`` is ignored (there is no forget gate)."""
        nq, nk, nv = self.counts(x)
        exact, last = exact_attention(nq, nk, nv, self.shifts, state)
        o = exact.to(x.dtype)
        if torch.is_grad_enabled() and nq.requires_grad:
            real = parallel_attention(nq, nk, nv, self.shifts)
            o = real + (o - real).detach()
        return self.o_proj(o.flatten(-2)), last.to(x.dtype)

    def step(self, x: torch.Tensor, lower_bound: Optional[torch.Tensor], state: torch.Tensor):
        """One token: x (B, hidden), state (B, heads, head_dim, head_dim) → (output (B, hidden), state)."""
        out, last = self.forward(x.unsqueeze(1), lower_bound, state)
        return out.squeeze(1), last


#: Token mixers by ``config.token_mixer``.
TOKEN_MIXERS = {"mlgru": MLGRU, "spike_attention": SpikeLinearAttention}


class GLU(nn.Module):
    """Gated linear unit channel mixer (upstream ``HGRNBitMLP``, key prefix ``mlp``)."""

    def __init__(self, config: MMFreeConfig):
        super().__init__()
        m = config.mlp_intermediate_size
        self.intermediate_size = m
        self.gate_proj = BitLinear(config.hidden_size, 2 * m)
        self.down_proj = BitLinear(m, config.hidden_size)
        self.act = GLU_ACTS[config.glu_activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        g, u = self.gate_proj(x).chunk(2, dim=-1)
        return self.down_proj(self.act(g) * u)


class Block(nn.Module):
    """``r = x + attn(attn_norm(x))``, ``out = r + mlp(mlp_norm(r))``."""

    def __init__(self, config: MMFreeConfig, layer_idx: int):
        super().__init__()
        self.attn_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.attn = TOKEN_MIXERS[config.token_mixer](config, layer_idx)
        self.mlp_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = GLU(config)

    def forward(self, x, lower_bound=None, state=None):  # noqa: D102
        a, h = self.attn(self.attn_norm(x), lower_bound, state)
        r = x + a
        return r + self.mlp(self.mlp_norm(r)), h

    def step(self, x, lower_bound, state):  # noqa: D102
        a, h = self.attn.step(self.attn_norm(x), lower_bound, state)
        r = x + a
        return r + self.mlp(self.mlp_norm(r)), h


class MMFreeModel(nn.Module):
    """Embedding, blocks and final norm (upstream ``HGRNBitModel``, key prefix ``model``)."""

    def __init__(self, config: MMFreeConfig):
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        if config.use_lower_bound:
            self.lower_bounds = nn.Parameter(torch.zeros(config.num_hidden_layers, config.hidden_size))
        else:
            self.lower_bounds = None
        self.layers = nn.ModuleList([Block(config, i) for i in range(config.num_hidden_layers)])
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def layer_lower_bounds(self) -> Optional[torch.Tensor]:
        """(layers, hidden) lower bounds ``cumsum(softmax(P, 0), 0) - softmax(P, 0)[0]``, or None."""
        if self.lower_bounds is None:
            return None
        p = self.lower_bounds.softmax(0)
        return p.cumsum(0) - p[0]

    def forward(self, input_ids: torch.Tensor, state: Optional[torch.Tensor] = None):
        """ids (B, T) → (normed hidden states (B, T, hidden), final states (layers, B, input_dim))."""
        x = self.embeddings(input_ids)
        lbs = self.layer_lower_bounds()
        finals = []
        for li, layer in enumerate(self.layers):
            x, h = layer(x, None if lbs is None else lbs[li], None if state is None else state[li])
            finals.append(h)
        return self.norm(x), torch.stack(finals)

    def step(self, input_ids: torch.Tensor, state: torch.Tensor):
        """ids (B,) → (normed hidden (B, hidden), new states (layers, B, input_dim))."""
        x = self.embeddings(input_ids)
        lbs = self.layer_lower_bounds()
        new = []
        for li, layer in enumerate(self.layers):
            x, h = layer.step(x, None if lbs is None else lbs[li], state[li])
            new.append(h)
        return self.norm(x), torch.stack(new)


class MMFreeForCausalLM(nn.Module):
    """Causal LM (upstream ``HGRNBitForCausalLM``): ``model`` + ternary BitLinear ``lm_head``.

    The ``state_dict`` keys are the upstream checkpoint keys (see ``models/mmfree/checkpoint.py``).
    """

    def __init__(self, config: MMFreeConfig, init: bool = True):
        super().__init__()
        self.config = config
        self.model = MMFreeModel(config)
        self.lm_head = BitLinear(config.hidden_size, config.vocab_size)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embeddings.weight
        settings = config.input_sparsity or {}
        for name, m in self.named_bitlinears():
            knobs = settings.get(sparsity_kind(name.rsplit(".", 1)[-1]), {})
            m.sparsity = (knobs.get("threshold", 0), knobs.get("topk", 0))
            m.zero_threshold = config.weight_zero_threshold
        if init:
            self.reset_parameters()

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Upstream initialisation: the MLGRU projections are Xavier-uniform with gain 2^-2.5 (set by
        ``HGRNBitAttention`` itself); the other BitLinears and the embedding are N(0, initializer_range)
        with ``down_proj`` divided by sqrt(2 * layers) (GPT-2 residual scaling); norms 1, lower bounds 0."""
        cfg = self.config
        std = cfg.initializer_range
        for layer in self.model.layers:
            attn = layer.attn
            if isinstance(attn, SpikeLinearAttention):
                for p in (attn.q_proj, attn.k_proj, attn.v_proj):   # outputs of about 1.3 threshold units
                    nn.init.normal_(p.weight, 0.0, 2.0 / math.sqrt(cfg.hidden_size))
                nn.init.xavier_uniform_(attn.o_proj.weight, gain=2 ** -2.5)
            else:
                for p in (attn.i_proj, attn.f_proj, attn.g_proj, attn.o_proj):
                    nn.init.xavier_uniform_(p.weight, gain=2 ** -2.5)
            nn.init.normal_(layer.mlp.gate_proj.weight, 0.0, std)
            nn.init.normal_(layer.mlp.down_proj.weight, 0.0, std)
            layer.mlp.down_proj.weight /= math.sqrt(2 * cfg.num_hidden_layers)
        nn.init.normal_(self.model.embeddings.weight, 0.0, std)
        if not cfg.tie_word_embeddings:
            nn.init.normal_(self.lm_head.weight, 0.0, std)
        if cfg.pad_token_id is not None:
            self.model.embeddings.weight[cfg.pad_token_id].zero_()
        for m in self.modules():
            if isinstance(m, RMSNorm):
                m.weight.fill_(1.0)
        if self.model.lower_bounds is not None:
            self.model.lower_bounds.zero_()

    # ------------------------------------------------------------------ hooks
    def named_bitlinears(self) -> Iterator[tuple[str, BitLinear]]:
        """Every ternary layer with its checkpoint prefix (``model.layers.0.attn.i_proj`` ...)."""
        for name, m in self.named_modules():
            if isinstance(m, BitLinear):
                yield name, m

    def set_quantize(self, on: bool) -> "MMFreeForCausalLM":
        """Turn the quantisers of every BitLinear on (QAT / float view) or off (plain fp32 baseline)."""
        for _, m in self.named_bitlinears():
            m.quantize = bool(on)
        return self

    def init_state(self, batch_size: int) -> torch.Tensor:
        """Zero recurrent state: (layers, batch, input_dim) for MLGRU, (layers, batch, heads, head_dim,
        head_dim) for spike attention."""
        cfg, p = self.config, self.model.embeddings.weight
        if cfg.token_mixer == "spike_attention":
            dh = cfg.input_dim // cfg.num_heads
            return p.new_zeros(cfg.num_hidden_layers, batch_size, cfg.num_heads, dh, dh)
        return p.new_zeros(cfg.num_hidden_layers, batch_size, cfg.input_dim)

    # ------------------------------------------------------------------ compute
    def forward(self, input_ids: torch.Tensor, state: Optional[torch.Tensor] = None,
                return_state: bool = False):
        """ids (B, T) → logits (B, T, vocab); with ``return_state`` also the states after the last
        token (layers, B, input_dim), to continue with :meth:`step` or another ``forward``."""
        h, final = self.model(input_ids, state)
        logits = self.lm_head(h)
        return (logits, final) if return_state else logits

    def step(self, input_ids: torch.Tensor, state: Optional[torch.Tensor] = None):
        """Token-by-token decoding: ids (B,) and states (layers, B, input_dim) or None →
        (logits (B, vocab), new states)."""
        if state is None:
            state = self.init_state(input_ids.shape[0])
        h, new = self.model.step(input_ids, state)
        return self.lm_head(h), new

    def num_parameters(self) -> int:
        """Number of distinct parameter elements."""
        return sum(p.numel() for p in self.parameters())
