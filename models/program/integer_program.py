"""The integer program of a MatMul-free LM: every weight, gain and scale as the hardware holds it.

:meth:`IntegerProgram.from_model` quantizes a trained :class:`models.mmfree.model.MMFreeForCausalLM` to the
number-format spec (:mod:`models.program.numformat`): ternary weight codes per projection, RMSNorm gains in
Q ``GAIN_FRAC``, a static 16-bit multiplier and shift per projection, forget-gate lower bounds in
Q ``GATE_FRAC`` and the embedding in int16 Q ``EMBED_FRAC``. The torch integer view
(:mod:`models.program.integer_view`) and the Numba golden model (:mod:`models.program.golden`) both execute it.

The static scale of a projection with weights ``W`` (fan-in ``n``) stands for
``mean|W| * sqrt(n) * 2**(OUT_FRAC - GAIN_FRAC) / 127``: with the per-token ``max|z|`` and
``rsqrt(sum u^2)`` (:func:`models.program.numformat.bitlinear_scale`) it turns an accumulator into the
projection's output in Q ``OUT_FRAC``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.program import numformat as nf

__all__ = ["ProgramError", "Projection", "Layer", "IntegerProgram", "PROJECTIONS", "layer_projections"]

#: The ternary projections of one MLGRU layer, in execution order.
PROJECTIONS = ("i_proj", "f_proj", "g_proj", "o_proj", "gate_proj", "down_proj")
#: Those of the MLGRU token mixer (checkpoint prefix ``attn``); the rest are the GLU's (``mlp``).
MLGRU_PROJECTIONS = ("i_proj", "f_proj", "g_proj", "o_proj")
#: The token-mixer projections of the spike attention (``attn.q_proj`` ...).
SPIKE_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
_MIXER_PROJECTIONS = {"mlgru": MLGRU_PROJECTIONS, "spike_attention": SPIKE_PROJECTIONS}


def layer_projections(token_mixer: str) -> tuple[str, ...]:
    """The ternary projections of one layer with this token mixer, in execution order."""
    if token_mixer not in _MIXER_PROJECTIONS:
        raise ProgramError(f"unknown token mixer {token_mixer!r}: choose one of {', '.join(_MIXER_PROJECTIONS)}")
    return _MIXER_PROJECTIONS[token_mixer] + ("gate_proj", "down_proj")

#: Largest fan-in a BitLinear may have (keeps every sum of squares below 2**63).
MAX_BITLINEAR_FAN_IN = 1 << 22


class ProgramError(ValueError):
    """An integer program that is inconsistent or outside the number-format spec."""


@dataclass
class Projection:
    """One BitLinear: ternary ``codes`` (out, in) as int8, its RMSNorm ``gain`` (in,) in Q GAIN_FRAC, and
    the static ``(multiplier, shift)`` of its output scale."""

    codes: np.ndarray
    gain: np.ndarray
    multiplier: int
    shift: int

    @property
    def fan_in(self) -> int:
        return int(self.codes.shape[1])

    @property
    def fan_out(self) -> int:
        return int(self.codes.shape[0])

    @classmethod
    def from_float(cls, weight: np.ndarray, norm_weight: np.ndarray, zero_threshold: float | None = None) -> "Projection":
        """Absmean-ternarize ``weight`` (out, in) as the float view does and fix the scales; ``zero_threshold``
        ``t`` zeroes ``|w| <= t * mean|W|`` (None: ``round(w / mean|W|)``)."""
        w = np.asarray(weight, dtype=np.float64)
        mean_abs = max(float(np.abs(w).mean()), 1e-5)
        if zero_threshold is None:
            codes = np.clip(np.round(w / mean_abs), -1, 1).astype(np.int8)  # torch.round: half to even
        else:
            codes = (np.sign(w) * (np.abs(w) > zero_threshold * mean_abs)).astype(np.int8)
        scale = mean_abs * math.sqrt(w.shape[1]) * 2.0 ** (nf.OUT_FRAC - nf.GAIN_FRAC) / nf.QUANT_MAX
        multiplier, shift = nf.quantize_multiplier(scale)
        gain = _gain(norm_weight, "BitLinear norm weight")
        return cls(codes=codes, gain=gain, multiplier=multiplier, shift=shift)

    def check(self, name: str, fan_in: int, fan_out: int) -> None:
        """Raise :class:`ProgramError` unless this projection is a ``fan_in -> fan_out`` BitLinear of the spec."""
        if self.codes.shape != (fan_out, fan_in):
            raise ProgramError(f"{name}: weight codes have shape {tuple(self.codes.shape)}, "
                               f"expected {(fan_out, fan_in)}")
        if self.codes.dtype != np.int8 or not np.isin(self.codes, (-1, 0, 1)).all():
            raise ProgramError(f"{name}: weight codes must be int8 in {{-1, 0, +1}} (ternary), "
                               f"got {self.codes.dtype}")
        if self.gain.shape != (fan_in,):
            raise ProgramError(f"{name}: gain has shape {tuple(self.gain.shape)}, expected {(fan_in,)}")
        _check_range(f"{name}: gain", self.gain, nf.GAIN_BITS)
        if fan_in > MAX_BITLINEAR_FAN_IN:
            raise ProgramError(f"{name}: fan-in {fan_in} exceeds the spec's {MAX_BITLINEAR_FAN_IN}")
        if not (0 < self.multiplier < 1 << nf.MULTIPLIER_BITS) or self.shift < 0:
            raise ProgramError(f"{name}: static scale ({self.multiplier}, {self.shift}) is not a "
                               f"{nf.MULTIPLIER_BITS}-bit multiplier with a right shift")


def _fixed_or_refuse(values: np.ndarray, frac: int, bits: int, name: str) -> np.ndarray:
    """``values`` in Q ``frac`` of ``bits`` bits; refuses (rather than clips) values outside the range."""
    limit = 2.0 ** (bits - 1 - frac)
    w = np.asarray(values, dtype=np.float64)
    if w.size and np.abs(w).max() >= limit:
        raise ProgramError(f"{name}: value {np.abs(w).max():.3g} is outside the spec's range ±{limit:g} "
                           f"(int{bits} Q{frac}); retrain with smaller values or widen the format in "
                           f"models/program/numformat.py")
    return nf.to_fixed(w, frac, bits)


def _gain(weight: np.ndarray, name: str) -> np.ndarray:
    """An RMSNorm weight in Q GAIN_FRAC int16 (refused outside ±8)."""
    return _fixed_or_refuse(weight, nf.GAIN_FRAC, nf.GAIN_BITS, name)


def _projection_shapes(d: int, e: int, m: int) -> dict[str, tuple[int, int]]:
    """(fan-in, fan-out) of every projection name of either token mixer."""
    return {**{n: (d, e) for n in ("i_proj", "f_proj", "g_proj", "q_proj", "k_proj", "v_proj")},
            "o_proj": (e, d), "gate_proj": (d, 2 * m), "down_proj": (m, d)}


def _check_range(name: str, values: np.ndarray, bits: int, unsigned: bool = False) -> None:
    lo, hi = (0, (1 << bits) - 1) if unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if values.size and (values.min() < lo or values.max() > hi):
        raise ProgramError(f"{name}: values outside [{lo}, {hi}] ({'u' if unsigned else ''}int{bits})")


@dataclass
class Layer:
    """One block: token mixer (MLGRU or spike attention) and GLU channel mixer, as integers."""

    attn_gain: np.ndarray           # attn_norm.weight, Q GAIN_FRAC
    g_norm_gain: np.ndarray         # attn.g_norm.weight, Q GAIN_FRAC (unit gains: spike attention has none)
    lower_bound: np.ndarray         # forget-gate lower bound, Q GATE_FRAC (zeros: none)
    mlp_gain: np.ndarray            # mlp_norm.weight, Q GAIN_FRAC
    proj: dict[str, Projection] = field(default_factory=dict)


@dataclass
class IntegerProgram:
    """A whole MatMul-free LM in the number-format spec."""

    vocab_size: int
    hidden_size: int
    input_dim: int
    intermediate_size: int
    embedding: np.ndarray           # (vocab, hidden) int16, Q EMBED_FRAC
    layers: list[Layer]
    final_gain: np.ndarray          # model.norm.weight, Q GAIN_FRAC
    lm_head: Projection
    token_mixer: str = "mlgru"      # or "spike_attention" (then the three fields below apply)
    num_heads: int = 1
    timesteps: int = nf.SPIKE_TIMESTEPS
    decay_shifts: tuple = ()
    #: per projection kind, the sparsity of the BitLinear input codes (:func:`numformat.check_input_sparsity`)
    input_sparsity: dict = field(default_factory=dict)
    #: the GLU gate non-linearity (:data:`numformat.GLU_ACTIVATIONS`)
    glu_activation: str = "silu"

    @property
    def projections(self) -> tuple[str, ...]:
        """The ternary projections of each layer, in execution order."""
        return layer_projections(self.token_mixer)

    def kind_fan_ins(self) -> dict[str, int]:
        """Fan-in of each projection kind of :data:`numformat.SPARSITY_KINDS`."""
        return {"ifg": self.hidden_size, "o": self.input_dim, "gate": self.hidden_size,
                "down": self.intermediate_size, "lm_head": self.hidden_size}

    def sparsity(self, projection: str) -> tuple[int, int]:
        """``(threshold, topk)`` of a projection's input codes (``0, 0``: off)."""
        s = self.input_sparsity.get(nf.sparsity_kind(projection), {})
        return s.get("threshold", 0), s.get("topk", 0)

    def with_input_sparsity(self, settings) -> "IntegerProgram":
        """A copy of this program (sharing its arrays) with input-sparsity ``settings``, validated."""
        return dataclasses.replace(self, input_sparsity=settings).validate()

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def from_model(cls, model) -> "IntegerProgram":
        """Quantize a :class:`models.mmfree.model.MMFreeForCausalLM` (its float QAT view) to the spec."""
        import torch

        cfg = model.config
        names = layer_projections(cfg.token_mixer)
        spike = cfg.token_mixer == "spike_attention"
        with torch.no_grad():
            t = lambda x: x.detach().double().cpu().numpy()  # noqa: E731
            lbs = model.model.layer_lower_bounds()
            layers = []
            for li, blk in enumerate(model.model.layers):
                owner = {n: blk.mlp if n in ("gate_proj", "down_proj") else blk.attn for n in names}
                zt = cfg.weight_zero_threshold
                proj = {n: Projection.from_float(t(getattr(owner[n], n).weight), t(getattr(owner[n], n).norm.weight), zt)
                        for n in names}
                lb = np.zeros(cfg.input_dim) if lbs is None or li == 0 else t(lbs[li])
                g_norm = np.ones(cfg.input_dim) if spike else t(blk.attn.g_norm.weight)
                layers.append(Layer(
                    attn_gain=_gain(t(blk.attn_norm.weight), f"layer {li} attn_norm.weight"),
                    g_norm_gain=_gain(g_norm, f"layer {li} attn.g_norm.weight"),
                    lower_bound=np.clip(nf.to_fixed(lb, nf.GATE_FRAC, nf.GATE_FRAC + 2), 0, 1 << nf.GATE_FRAC),
                    mlp_gain=_gain(t(blk.mlp_norm.weight), f"layer {li} mlp_norm.weight"),
                    proj=proj))
            program = cls(
                vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, input_dim=cfg.input_dim,
                intermediate_size=cfg.mlp_intermediate_size,
                embedding=_fixed_or_refuse(t(model.model.embeddings.weight), nf.EMBED_FRAC, 16,
                                           "model.embeddings.weight"),
                layers=layers,
                final_gain=_gain(t(model.model.norm.weight), "model.norm.weight"),
                lm_head=Projection.from_float(t(model.lm_head.weight), t(model.lm_head.norm.weight), zt),
                input_sparsity=cfg.input_sparsity or {}, glu_activation=cfg.glu_activation, **cls._mixer_fields(cfg))
        program.validate()
        return program

    @staticmethod
    def _mixer_fields(cfg) -> dict:
        if cfg.token_mixer == "mlgru":
            return {}
        return dict(token_mixer=cfg.token_mixer, num_heads=cfg.num_heads, timesteps=cfg.spike_timesteps,
                    decay_shifts=tuple(cfg.decay_shifts))

    @classmethod
    def random(cls, config, seed: int = 0, zero_fraction: float = 0.4) -> "IntegerProgram":
        """A program of ``config``'s shape with random ternary weights (``zero_fraction`` of them 0) and
        unit gains — the upstream dimensions without a trained checkpoint (benchmarks, cost studies)."""
        rng = np.random.default_rng(seed)
        d, e, m, v = config.hidden_size, config.input_dim, config.mlp_intermediate_size, config.vocab_size
        unit = 1 << nf.GAIN_FRAC
        p = [(1 - zero_fraction) / 2, zero_fraction, (1 - zero_fraction) / 2]

        def proj(fan_in: int, fan_out: int) -> Projection:
            codes = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(fan_out, fan_in), p=p)
            scale = 0.02 * math.sqrt(fan_in) * 2.0 ** (nf.OUT_FRAC - nf.GAIN_FRAC) / nf.QUANT_MAX
            return Projection(codes, np.full(fan_in, unit, dtype=np.int64), *nf.quantize_multiplier(scale))

        shapes = _projection_shapes(d, e, m)
        layers = [Layer(attn_gain=np.full(d, unit, dtype=np.int64), g_norm_gain=np.full(e, unit, dtype=np.int64),
                        lower_bound=np.zeros(e, dtype=np.int64), mlp_gain=np.full(d, unit, dtype=np.int64),
                        proj={n: proj(*shapes[n]) for n in layer_projections(config.token_mixer)})
                  for _ in range(config.num_hidden_layers)]
        emb = rng.normal(0, 0.5, size=(v, d)) * (1 << nf.EMBED_FRAC)
        return cls(vocab_size=v, hidden_size=d, input_dim=e, intermediate_size=m,
                   embedding=nf.saturate(np.round(emb).astype(np.int64), 16).astype(np.int16), layers=layers,
                   final_gain=np.full(d, unit, dtype=np.int64), lm_head=proj(d, v), **cls._mixer_fields(config))

    # ------------------------------------------------------------------------------ checks
    def validate(self) -> "IntegerProgram":
        """Raise :class:`ProgramError` (one line naming the part) unless shapes and formats are consistent."""
        d, e, m, v = self.hidden_size, self.input_dim, self.intermediate_size, self.vocab_size
        if d != e:
            raise ProgramError(f"input_dim {e} != hidden_size {d}: the integer program supports expand_ratio 1 only")
        if self.embedding.shape != (v, d):
            raise ProgramError(f"embedding has shape {tuple(self.embedding.shape)}, expected {(v, d)}")
        _check_range("embedding", self.embedding, 16)
        if self.final_gain.shape != (d,):
            raise ProgramError(f"final_gain has shape {tuple(self.final_gain.shape)}, expected {(d,)}")
        _check_range("final_gain", self.final_gain, nf.GAIN_BITS)
        if not self.layers:
            raise ProgramError("the program has no layers")
        shapes = _projection_shapes(d, e, m)
        names = self.projections
        if self.token_mixer == "spike_attention":
            from models.program.spike_attention import check_decay_shifts, check_timesteps
            if e % self.num_heads:
                raise ProgramError(f"input_dim {e} is not divisible by num_heads {self.num_heads}")
            check_timesteps(self.timesteps)
            check_decay_shifts(self.decay_shifts, self.num_heads)
        for li, layer in enumerate(self.layers):
            for name in names:
                fi, fo = shapes[name]
                if name not in layer.proj:
                    raise ProgramError(f"layer {li}: projection {name} is missing")
                layer.proj[name].check(f"layer {li} {name}", fi, fo)
            for name, vec, n in (("attn_gain", layer.attn_gain, d), ("g_norm_gain", layer.g_norm_gain, e),
                                 ("mlp_gain", layer.mlp_gain, d), ("lower_bound", layer.lower_bound, e)):
                if vec.shape != (n,):
                    raise ProgramError(f"layer {li}: {name} has shape {tuple(vec.shape)}, expected {(n,)}")
                if name != "lower_bound":
                    _check_range(f"layer {li}: {name}", vec, nf.GAIN_BITS)
            _check_range(f"layer {li}: lower_bound", layer.lower_bound, nf.GATE_FRAC + 1, unsigned=True)
            if layer.lower_bound.max(initial=0) > 1 << nf.GATE_FRAC:
                raise ProgramError(f"layer {li}: lower_bound above 1.0 (2**{nf.GATE_FRAC})")
        self.lm_head.check("lm_head", d, v)
        if self.glu_activation not in nf.GLU_ACTIVATIONS:
            raise ProgramError(f"unknown GLU activation {self.glu_activation!r}; the spec has "
                               f"{', '.join(nf.GLU_ACTIVATIONS)}")
        try:
            self.input_sparsity = nf.check_input_sparsity(self.input_sparsity, self.kind_fan_ins())
        except ValueError as err:
            raise ProgramError(str(err)) from None
        return self

    # ------------------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the program as one ``.npz`` (arrays) with its scales and shapes in a JSON entry."""
        arrays = {"embedding": self.embedding, "final_gain": self.final_gain,
                  "lm_head.codes": self.lm_head.codes, "lm_head.gain": self.lm_head.gain}
        scales = {"lm_head": [self.lm_head.multiplier, self.lm_head.shift]}
        for li, layer in enumerate(self.layers):
            for name in ("attn_gain", "g_norm_gain", "lower_bound", "mlp_gain"):
                arrays[f"layers.{li}.{name}"] = getattr(layer, name)
            for name, p in layer.proj.items():
                arrays[f"layers.{li}.{name}.codes"] = p.codes
                arrays[f"layers.{li}.{name}.gain"] = p.gain
                scales[f"layers.{li}.{name}"] = [p.multiplier, p.shift]
        meta = {"format": "nmllm-integer-program-1", "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size, "input_dim": self.input_dim,
                "intermediate_size": self.intermediate_size, "layers": len(self.layers), "scales": scales,
                "token_mixer": self.token_mixer, "num_heads": self.num_heads, "timesteps": self.timesteps,
                "decay_shifts": list(self.decay_shifts), "input_sparsity": self.input_sparsity,
                "glu_activation": self.glu_activation}
        path = Path(path)
        np.savez_compressed(path, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "IntegerProgram":
        """Read a program written by :meth:`save`, validating it before returning."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"integer program {path} does not exist; write one with IntegerProgram.save")
        with np.load(path) as f:
            if "__meta__" not in f:
                raise ProgramError(f"{path} is not an integer program (no __meta__ entry)")
            meta = json.loads(bytes(f["__meta__"]).decode())
            if meta.get("format") != "nmllm-integer-program-1":
                raise ProgramError(f"{path}: unknown program format {meta.get('format')!r}")
            a = {k: f[k] for k in f.files}
        sc = meta["scales"]
        mixer = meta.get("token_mixer", "mlgru")

        def proj(prefix: str) -> Projection:
            try:
                return Projection(a[f"{prefix}.codes"], a[f"{prefix}.gain"], *sc[prefix])
            except KeyError as exc:
                raise ProgramError(f"{path}: entry {exc.args[0]} is missing") from None

        layers = [Layer(attn_gain=a[f"layers.{li}.attn_gain"], g_norm_gain=a[f"layers.{li}.g_norm_gain"],
                        lower_bound=a[f"layers.{li}.lower_bound"], mlp_gain=a[f"layers.{li}.mlp_gain"],
                        proj={n: proj(f"layers.{li}.{n}") for n in layer_projections(mixer)})
                  for li in range(meta["layers"])]
        return cls(vocab_size=meta["vocab_size"], hidden_size=meta["hidden_size"], input_dim=meta["input_dim"],
                   intermediate_size=meta["intermediate_size"], embedding=a["embedding"], layers=layers,
                   final_gain=a["final_gain"], lm_head=proj("lm_head"), token_mixer=mixer,
                   num_heads=meta.get("num_heads", 1), timesteps=meta.get("timesteps", nf.SPIKE_TIMESTEPS),
                   decay_shifts=tuple(meta.get("decay_shifts", ())),
                   input_sparsity=meta.get("input_sparsity", {}),
                   glu_activation=meta.get("glu_activation", "silu")).validate()
