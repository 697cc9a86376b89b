"""Spike conversion of a pre-trained Llama-family transformer (SmolLM2-135M): spike-coded linear inputs.

What is converted
-----------------
Every ``nn.Linear`` of the model reads its input as a **spike train** (:mod:`models.transformer.coding`):
the input is encoded with a per-layer threshold ``theta`` and the linear layer accumulates the decoded
spikes through weights quantized as the hardware holds them (int8 per output channel, or ternary where it
survives). Linear layers that read the same tensor share one spike train — a **site**:

=================  ==========================  =========================================
site               linear layers               input
=================  ==========================  =========================================
``L.attn_in``      ``q_proj k_proj v_proj``    RMSNorm of the residual stream
``L.attn_out``     ``o_proj``                  attention output (heads concatenated)
``L.mlp_in``       ``gate_proj up_proj``       RMSNorm of the residual stream
``L.mlp_out``      ``down_proj``               ``SiLU(gate) * up``
``lm_head``        ``lm_head``                 final RMSNorm
=================  ==========================  =========================================

What stays dense (stated, not hidden): the embedding lookup, RMSNorm, rotary embedding, the attention
score and value products (activation x activation), softmax, SiLU and the residual adds run in float32
on the decoded values — the hybrid in which the synaptic work (every weight x activation product) is
event-driven and the non-linear units are dense.

Thresholds
----------
:func:`calibrate` runs the dense model on **corpus text** (``<data>/corpus``, Wikipedia + Gutenberg,
never the evaluation sets) and keeps a random sample of ``|x|`` per site. For each site and coding x
timesteps, ``theta`` is the candidate of a geometric grid below the site's calibration maximum (and the
sample quantiles) that minimizes the mean squared coding error on that sample — a per-layer, per-T
choice, so a site at 2 timesteps clips harder than one at 16.

Events (filled into :class:`models.program.events.LayerEvents` per site)
------------------------------------------------------------------
In the event vocabulary of :mod:`models.program.events` (a spike of the train is an input event):

* ``input_events``: spikes of the site's train (once per site, however many linear layers read it);
* ``synaptic_ops`` and ``zero_weight_slots``: ``sum over input neurons of spikes x non-zero (zero)
  weights in that input's column``, for every linear layer of the site (a bit-plane spike is a shifted
  add, still one op);
* ``bit_spikes``: the site's values as sign-magnitude bit planes (:meth:`Coding.bit_spikes`; equal to
  ``input_events`` for ``bitplane`` and ``ttfs``);
* ``dense_macs``: ``fan_in x fan_out`` per token for every linear layer;
* ``neuron_updates``: ``fan_out`` per token (accumulator read-out);
* ``weight_bytes_read``: ``spikes x fan_out x weight bits / 8`` (a synapse row per input spike);
* ``activation_bytes``: the spike trains at one bit per neuron per step plus outputs at 4 bytes.

**Per-channel thresholds** (``thresholds="channel"``): one ``theta`` per input neuron,
``c * max|x_k|`` over the calibration text with one factor ``c`` per site chosen the same way on the
samples divided by their channel's maximum. A spike then carries its neuron's ``theta`` as a graded
payload (Loihi 2 sends graded spikes); it keeps the rare massive activations of a few channels (the
attention-sink outliers of ``mlp_out`` inputs) without coarsening every other channel.

Timesteps may differ per site (a **mixed schedule**: a dict ``site -> T`` with a default).
:class:`SpikeModel` runs the spike trains literally (``simulate=True``: ``T`` accumulations of binary
spikes through the weights) or in closed form (default; the same numbers up to float summation order,
which the tests check).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.program.events import LayerEvents, reach, weights_per_input
from models.transformer.coding import CODINGS, Coding

__all__ = ["SUPPORTED_LAYER_TYPES", "SITE_KINDS", "UnsupportedModelError", "check_supported", "find_sites",
           "Calibration", "calibrate", "calibration_token_batches", "choose_threshold", "quantize_weight",
           "SpikeLinear", "SpikeModel", "convert", "parse_schedule"]

#: Module classes the converter knows how to run (every other class is refused, by name).
SUPPORTED_LAYER_TYPES = frozenset({
    "LlamaForCausalLM", "LlamaModel", "LlamaDecoderLayer", "LlamaAttention", "LlamaMLP", "LlamaRMSNorm",
    "LlamaRotaryEmbedding", "Linear", "Embedding", "ModuleList", "SiLU", "SiLUActivation", "Identity",
    "Dropout", "SpikeLinear",
})

#: The sites of one decoder layer: name -> the linear layers that read the site's spike train.
SITE_KINDS = {
    "attn_in": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "attn_out": ("self_attn.o_proj",),
    "mlp_in": ("mlp.gate_proj", "mlp.up_proj"),
    "mlp_out": ("mlp.down_proj",),
}

WEIGHT_FORMATS = ("float", "int8", "ternary")


class UnsupportedModelError(ValueError):
    """The model holds a layer type (or is an architecture) the spike converter does not support."""


def check_supported(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModelError` naming every unsupported layer type (with where it first is)."""
    bad: dict[str, str] = {}
    for name, module in model.named_modules():
        t = type(module).__name__
        if t not in SUPPORTED_LAYER_TYPES and t not in bad:
            bad[t] = name or "<root>"
    cfg = getattr(model, "config", None)
    mt = getattr(cfg, "model_type", None)
    if bad:
        listed = ", ".join(f"{t} (at {where})" for t, where in bad.items())
        raise UnsupportedModelError(f"cannot spike-convert model_type {mt!r}: unsupported layer type(s) {listed}; "
                                    "the converter supports Llama-family models (LlamaForCausalLM)")
    act = getattr(cfg, "hidden_act", "silu")
    if act != "silu":
        raise UnsupportedModelError(f"cannot spike-convert: activation {act!r} is not supported (only 'silu')")
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        raise UnsupportedModelError("cannot spike-convert: linear layers with bias are not supported")


def find_sites(model: nn.Module) -> dict[str, list[tuple[str, nn.Module]]]:
    """Site name -> ``[(full linear name, module)]`` in model order (see the module docstring)."""
    sites: dict[str, list[tuple[str, nn.Module]]] = {}
    modules = dict(model.named_modules())
    for i, _ in enumerate(model.model.layers):
        for kind, rels in SITE_KINDS.items():
            sites[f"{i}.{kind}"] = [(f"model.layers.{i}.{r}", modules[f"model.layers.{i}.{r}"]) for r in rels]
    sites["lm_head"] = [("lm_head", model.lm_head)]
    return sites


# ---------------------------------------------------------------------------- calibration
def calibration_token_batches(tokenizer, n_tokens: int = 4096, seq_len: int = 256,
                              root: Optional[str | os.PathLike] = None, bytes_per_file: int = 20000) -> torch.Tensor:
    """``(B, seq_len)`` token ids of corpus text (``<data>/corpus``: the first ``bytes_per_file`` bytes of
    every other Wikipedia shard and Gutenberg book, interleaved), ``B = ceil(n_tokens / seq_len)``."""
    from models.text.corpus import corpus_files

    files = corpus_files(root)
    wiki = [f for f in files if "wikipedia" in f.parent.name][::2]
    books = [f for f in files if "gutenberg" in f.parent.name][::2]
    order = [f for pair in zip(wiki, books) for f in pair] + wiki[len(books):] + books[len(wiki):]
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    ids: list[int] = []
    need = math.ceil(n_tokens / seq_len) * seq_len
    for path in order:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(bytes_per_file)
        ids.extend(backend.encode(text, add_special_tokens=False).ids)
        if len(ids) >= need:
            break
    if len(ids) < need:
        raise ValueError(f"corpus gave only {len(ids)} tokens, {need} needed for calibration")
    return torch.tensor(ids[:need], dtype=torch.long).view(-1, seq_len)


@dataclass
class Calibration:
    """Per site: a random sample of ``|x|`` (float32), the input channel of each sample, the maximum seen
    and the maximum per input channel, from ``tokens`` corpus tokens."""

    samples: dict[str, torch.Tensor]
    absmax: dict[str, float]
    tokens: int
    source: str = "corpus"
    sample_channels: Optional[dict[str, torch.Tensor]] = None
    channel_absmax: Optional[dict[str, torch.Tensor]] = None
    _cache: dict = field(default_factory=dict, repr=False)

    def threshold(self, site: str, coding: Coding, per_channel: bool = False):
        """``theta`` of ``site`` for ``coding``: a float (one threshold for the site), or with
        ``per_channel`` a ``(fan_in,)`` tensor ``c * channel_absmax`` with the factor ``c`` chosen by
        :func:`choose_threshold` on the samples divided by their channel's maximum."""
        key = (site, coding, per_channel)
        if key not in self._cache:
            if not per_channel:
                self._cache[key] = choose_threshold(self.samples[site], coding, self.absmax[site])
            else:
                if self.channel_absmax is None or self.sample_channels is None:
                    raise ValueError("this calibration has no per-channel statistics; calibrate again")
                cmax = self.channel_absmax[site].clamp(min=1e-8)
                norm = self.samples[site] / cmax[self.sample_channels[site].long()]
                c = choose_threshold(norm, coding, 1.0)
                self._cache[key] = (c * cmax).float()
        return self._cache[key]


@torch.no_grad()
def calibrate(model: nn.Module, batches: torch.Tensor, max_samples: int = 1 << 16, seed: int = 0,
              batch_size: int = 4, progress: bool = False) -> Calibration:
    """Run the (dense) model on ``batches`` and sample ``|x|`` at every site."""
    sites = find_sites(model)
    gen = torch.Generator().manual_seed(seed)
    pools: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    chans: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    amax: dict[str, float] = {s: 0.0 for s in sites}
    cmax: dict[str, torch.Tensor] = {}
    n_batches = math.ceil(batches.shape[0] / batch_size)
    per_batch = max(1, max_samples // n_batches)
    handles = []

    def hook_for(site):
        def hook(module, args):
            K = args[0].shape[-1]
            x = args[0].detach().abs().reshape(-1).float()
            amax[site] = max(amax[site], float(x.max()))
            cm = x.view(-1, K).amax(0)
            cmax[site] = cm if site not in cmax else torch.maximum(cmax[site], cm)
            ch = torch.arange(x.numel()) % K
            if x.numel() > per_batch:
                idx = torch.randint(0, x.numel(), (per_batch,), generator=gen)
                x, ch = x[idx], ch[idx]
            pools[site].append(x)
            chans[site].append(ch.to(torch.int32))
        return hook

    for site, linears in sites.items():
        handles.append(linears[0][1].register_forward_pre_hook(hook_for(site)))
    prev = [m.dense for m in model.modules() if isinstance(m, SpikeLinear)]
    for m in model.modules():
        if isinstance(m, SpikeLinear):
            m.dense = True
    it = range(0, batches.shape[0], batch_size)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="calibrate", unit="batch")
    try:
        for b in it:
            model(input_ids=batches[b:b + batch_size], use_cache=False)
    finally:
        for h in handles:
            h.remove()
        for m, d in zip([m for m in model.modules() if isinstance(m, SpikeLinear)], prev):
            m.dense = d
    return Calibration({s: torch.cat(p) for s, p in pools.items()}, amax, int(batches.numel()),
                       sample_channels={s: torch.cat(c) for s, c in chans.items()}, channel_absmax=cmax)


def choose_threshold(abs_samples: torch.Tensor, coding: Coding, absmax: Optional[float] = None,
                     max_search: int = 4096) -> float:
    """The ``theta`` minimizing the mean squared coding error of ``abs_samples`` (see the module docstring).

    Candidates: ``absmax * 2**(-j/4)`` for ``j = 0..47`` and the 0.9 ... 0.99999 quantiles of the sample;
    the error is measured on an evenly spaced subset of at most ``max_search`` sorted samples (the
    largest sample always kept)."""
    x = abs_samples.float()
    top = float(absmax if absmax is not None else x.max())
    if top <= 0:
        return 1.0
    qs = torch.tensor([0.9, 0.99, 0.999, 0.9999, 0.99999])
    cands = [top * 2.0 ** (-j / 4) for j in range(48)]
    cands += [float(v) for v in torch.quantile(x[: 1 << 24], qs) if v > 0]
    if x.numel() > max_search:
        xs = torch.sort(x).values
        idx = torch.linspace(0, xs.numel() - 1, max_search).round().long()
        x = xs[idx]
    th = torch.tensor(cands, dtype=torch.float32)[:, None]
    err = (coding.quantize_value(x[None, :], th) - x[None, :]).square().mean(dim=1)
    return float(cands[int(torch.argmin(err))])           # first minimum: the largest such candidate


# ---------------------------------------------------------------------------- weights
def quantize_weight(w: torch.Tensor, fmt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(codes, scale)`` of a weight ``(out, in)``: int8 absmax per output channel (codes in [-127, 127]),
    or ternary absmean per output channel (codes in {-1, 0, 1}); rounding half away from zero.
    ``codes * scale[:, None]`` is the weight the hardware computes with."""
    w = w.detach().float()
    if fmt == "int8":
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        codes = (torch.sign(w) * torch.floor(w.abs() / scale[:, None] + 0.5)).clamp(-127, 127)
    elif fmt == "ternary":
        scale = w.abs().mean(dim=1).clamp(min=1e-12)
        codes = (torch.sign(w) * torch.floor(w.abs() / scale[:, None] + 0.5)).clamp(-1, 1)
    else:
        raise ValueError(f"unknown weight format {fmt!r}; choose int8 or ternary")
    return codes.to(torch.int8), scale


# ---------------------------------------------------------------------------- the spiking linear layer
class _SiteState:
    """Shared by the linear layers of one site: coding, threshold, event counters, recorders."""

    def __init__(self, name: str):
        self.name = name
        self.coding: Optional[Coding] = None
        self.theta: float | torch.Tensor = 1.0
        self.events = LayerEvents()
        self.tokens = 0
        self.recorders: list[Callable[[str, torch.Tensor, torch.Tensor], None]] = []


class SpikeLinear(nn.Module):
    """``nn.Linear`` whose input is a spike train (or, with ``dense``, the original float layer)."""

    def __init__(self, name: str, linear: nn.Linear, site: _SiteState, primary: bool):
        super().__init__()
        if linear.bias is not None:
            raise UnsupportedModelError(f"{name}: linear layers with bias are not supported")
        self.name, self.site, self.primary = name, site, primary
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight                      # the original float weight (shared, e.g. tied lm_head)
        self.dense = False
        self.simulate = False
        self.counting = True
        self.set_weight_format("int8")

    def set_weight_format(self, fmt: str) -> None:
        if fmt not in WEIGHT_FORMATS:
            raise ValueError(f"unknown weight format {fmt!r}; choose one of {', '.join(WEIGHT_FORMATS)}")
        self.weight_format = fmt
        if fmt == "float":
            self.w_eff = None
            self.nnz_col = np.full(self.in_features, self.out_features, dtype=np.int64)
            self.weight_bits = 32
            return
        codes, scale = quantize_weight(self.weight, fmt)
        self.w_eff = (codes.float() * scale[:, None]).contiguous()
        self.nnz_col = weights_per_input(codes.numpy())
        self.weight_bits = 8 if fmt == "int8" else 2

    def extra_repr(self) -> str:
        c = self.site.coding
        th = self.site.theta
        th = f"{th:.4g}" if isinstance(th, float) else f"per channel, max {float(th.max()):.4g}"
        return (f"{self.name}: in={self.in_features}, out={self.out_features}, weights={self.weight_format}, "
                f"coding={c.name if c else None}, T={c.timesteps if c else None}, theta={th}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dense:
            return F.linear(x, self.weight)
        w = self.weight if self.w_eff is None else self.w_eff
        site, coding = self.site, self.site.coding
        if coding is None:                               # weights quantized, activations dense
            return F.linear(x, w)
        theta = site.theta
        codes = coding.quantize(x, theta)
        if self.simulate:                                # literal: T accumulations of binary spike trains
            train = coding.encode(x, theta)
            steps = coding.train_weights(theta)
            y = None
            for t in range(coding.timesteps):
                acc = F.linear(train[t].to(x.dtype) * steps[t], w)     # graded by the step (and channel)
                y = acc if y is None else y + acc
        else:
            y = F.linear(coding.dequantize(codes, theta).to(x.dtype), w)
        if self.counting:
            self._count(codes, coding)
        return y

    @torch.no_grad()
    def _count(self, codes: torch.Tensor, coding: Coding) -> None:
        spikes = coding.spike_count(codes)               # (..., K): input events per value
        K, N = self.in_features, self.out_features
        rows = spikes.numel() // K
        per_in = spikes.reshape(-1, K).sum(0, dtype=torch.int64).cpu().numpy()
        n_spikes = int(per_in.sum())
        ev = self.site.events
        ops, slots = reach(per_in, self.nnz_col, N)
        ev.synaptic_ops += ops
        ev.zero_weight_slots += slots
        ev.dense_macs += rows * K * N
        ev.neuron_updates += rows * N
        ev.weight_bytes_read += (n_spikes * N * self.weight_bits) // 8
        ev.activation_bytes += rows * N * 4
        if self.primary:
            ev.input_events += n_spikes
            ev.bit_spikes += int(coding.bit_spikes(codes).sum())
            ev.activation_bytes += (rows * K * coding.timesteps + 7) // 8
            self.site.tokens += rows
            for rec in self.site.recorders:
                rec(self.site.name, spikes, codes)


# ---------------------------------------------------------------------------- the converted model
def parse_schedule(text: str) -> dict[str, int]:
    """``"8"`` or ``"default=4,0.mlp_out=16,lm_head=8"`` or a JSON file path -> ``{site or 'default': T}``."""
    text = str(text).strip()
    if text.endswith(".json") and Path(text).is_file():
        raw = json.loads(Path(text).read_text())
        sched = raw.get("schedule", raw)
        return {str(k): int(v) for k, v in sched.items()}
    if "=" not in text:
        try:
            return {"default": int(text)}
        except ValueError:
            raise ValueError(f"timesteps {text!r} is not an integer, a 'site=T,...' list or a .json file") from None
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise ValueError(f"schedule entry {part!r} is not 'site=T'")
        k, v = part.split("=", 1)
        out[k.strip()] = int(v)
    return out


class SpikeModel:
    """A Llama whose linear layers are :class:`SpikeLinear` (converted in place), with its configuration,
    calibration and event counters. Build it with :func:`convert`."""

    def __init__(self, model: nn.Module, calibration: Calibration):
        self.model = model
        self.calibration = calibration
        self.sites: dict[str, _SiteState] = {}
        self.linears: dict[str, SpikeLinear] = {}
        self.coding_name: Optional[str] = None
        self.schedule: dict[str, int] = {}
        self.ternary: set[str] = set()
        self.thresholds = "tensor"

    # -------------------------------------------------------------- configuration
    def configure(self, coding: Optional[str], timesteps: int | dict[str, int] = 8, weights: str = "int8",
                  ternary: Iterable[str] = (), thresholds: Optional[str] = None) -> "SpikeModel":
        """Set the coding (``None``: activations dense), timesteps (an int, or ``{site: T, 'default': T}``;
        ``T = 0`` keeps that site's activations dense),
        the weight format of every linear layer and the linear layers (full names) held ternary."""
        if coding is not None and coding not in CODINGS:
            raise ValueError(f"unknown spike coding {coding!r}; choose one of {', '.join(CODINGS)}")
        sched = {"default": timesteps} if isinstance(timesteps, int) else dict(timesteps)
        unknown = [k for k in sched if k != "default" and k not in self.sites]
        if unknown:
            raise ValueError(f"schedule names unknown site {unknown[0]!r}; sites are e.g. 0.attn_in, 0.mlp_out, lm_head")
        missing = [s for s in self.sites if s not in sched] and "default" not in sched
        if missing:
            raise ValueError("schedule has no 'default' and does not name every site")
        thresholds = thresholds or self.thresholds
        if thresholds not in ("tensor", "channel"):
            raise ValueError(f"thresholds must be 'tensor' (one per site) or 'channel' (one per input neuron), not {thresholds!r}")
        ternary = set(ternary)
        bad = [n for n in ternary if n not in self.linears]
        if bad:
            raise ValueError(f"ternary names unknown linear layer {bad[0]!r}")
        for name, site in self.sites.items():
            T = int(sched.get(name, sched.get("default")))
            site.coding = None if coding is None or T == 0 else Coding(coding, T)
            site.theta = 1.0 if site.coding is None else self.calibration.threshold(name, site.coding, thresholds == "channel")
        for name, lin in self.linears.items():
            fmt = "ternary" if name in ternary else weights
            if fmt != lin.weight_format:
                lin.set_weight_format(fmt)
            lin.dense = False
        self.coding_name = coding
        self.thresholds = thresholds
        self.schedule = {s: (st.coding.timesteps if st.coding else 0) for s, st in self.sites.items()}
        self.ternary = ternary
        self.reset_events()
        return self

    def set_dense(self, dense: bool = True) -> None:
        """Every linear layer back to its original float weight and dense input (or not)."""
        for lin in self.linears.values():
            lin.dense = dense

    def set_simulate(self, simulate: bool = True) -> None:
        """Run literal spike trains (T accumulations) instead of the closed form."""
        for lin in self.linears.values():
            lin.simulate = simulate

    def set_counting(self, counting: bool) -> None:
        for lin in self.linears.values():
            lin.counting = counting

    def describe(self) -> dict:
        Ts = sorted(set(self.schedule.values()))
        return {"coding": self.coding_name or "none",
                "timesteps": Ts[0] if len(Ts) == 1 else "mixed",
                "weights": next(iter(self.linears.values())).weight_format if not self.ternary else
                f"int8 + {len(self.ternary)} ternary",
                "mean_timesteps": sum(self.schedule.values()) / max(len(self.schedule), 1),
                "thresholds": self.thresholds}

    # -------------------------------------------------------------- events
    def reset_events(self) -> None:
        for s in self.sites.values():
            s.events = LayerEvents()
            s.tokens = 0

    def event_state(self) -> dict:
        """The running counts (tokens and events per site) as JSON, for a resumed run to continue them."""
        return {n: {"tokens": s.tokens, "events": vars(s.events).copy()} for n, s in self.sites.items()}

    def restore_events(self, state: dict) -> None:
        """Continue the counts :meth:`event_state` saved."""
        for n, d in state.items():
            self.sites[n].tokens = d["tokens"]
            self.sites[n].events = LayerEvents(**d["events"])

    def tokens_seen(self) -> int:
        return self.sites["lm_head"].tokens if "lm_head" in self.sites else 0

    def events(self) -> dict[str, LayerEvents]:
        """Summed counts per site since the last reset."""
        return {n: s.events for n, s in self.sites.items()}

    def events_per_token(self) -> dict:
        """``{"tokens", "total": {...}, "sites": {site: {...}}, "layers": {layer: {...}}}``, per token
        (every site sees every token, so one token count divides all)."""
        tok = max(self.sites[next(iter(self.sites))].tokens, 1)
        sites = {n: s.events.scaled(1.0 / tok) for n, s in self.sites.items()}
        total, layers = LayerEvents(), {}
        for n, s in self.sites.items():
            total = total + s.events
            layer = n.split(".")[0]
            layers[layer] = layers.get(layer, LayerEvents()) + s.events
        return {"tokens": tok, "total": total.scaled(1.0 / tok),
                "layers": {k: v.scaled(1.0 / tok) for k, v in layers.items()}, "sites": sites}

    # -------------------------------------------------------------- running
    def logits_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        model = self.model

        @torch.no_grad()
        def fn(ids: torch.Tensor) -> torch.Tensor:
            return model(input_ids=ids, use_cache=False).logits

        return fn


def convert(model: nn.Module, calibration: Optional[Calibration] = None, calib_batches: Optional[torch.Tensor] = None,
            coding: Optional[str] = "rate", timesteps: int | dict[str, int] = 8, weights: str = "int8",
            ternary: Iterable[str] = (), thresholds: str = "tensor", progress: bool = False) -> SpikeModel:
    """Convert ``model`` in place (every ``nn.Linear`` -> :class:`SpikeLinear`) and configure it.

    Thresholds come from ``calibration`` or, if none is given, from :func:`calibrate` on ``calib_batches``
    (corpus token ids). Raises :class:`UnsupportedModelError` naming any layer type it cannot run."""
    check_supported(model)
    if calibration is None:
        if calib_batches is None:
            raise ValueError("give a calibration or calibration token batches (corpus text, not the test set)")
        calibration = calibrate(model, calib_batches, progress=progress)
    sm = SpikeModel(model, calibration)
    modules = dict(model.named_modules())
    for site_name, linears in find_sites(model).items():
        state = _SiteState(site_name)
        sm.sites[site_name] = state
        for j, (full, lin) in enumerate(linears):
            if isinstance(lin, SpikeLinear):
                raise ValueError(f"{full} is already converted")
            sl = SpikeLinear(full, lin, state, primary=(j == 0))
            parent_name, _, attr = full.rpartition(".")
            setattr(modules[parent_name] if parent_name else model, attr, sl)
            sm.linears[full] = sl
    leftover = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    if leftover:
        raise UnsupportedModelError(f"linear layer {leftover[0]} is outside every known site of a Llama layer")
    sm.configure(coding, timesteps, weights, ternary, thresholds)
    return sm
