"""A spike-converted Llama-family transformer on a neuromorphic preset: mapping, KV cache and cost per token.

The converter (:mod:`models.transformer.convert`) turns every linear layer into an event-driven synaptic
stage and counts, per site and token, the events of :mod:`models.program.events`. This module maps those
stages onto a preset (:mod:`sim.system.energy`) and costs a token from the **measured** events; it is an
analytical model (counts x per-event costs, stage times added up), not the SimPy simulation of
:mod:`sim.system.model`, which takes MatMul-free shapes only. What it assumes, stated in every report:

* **Stages** (one per converter site, names as the converter's): ``L.attn_in`` (q, k, v), ``L.attn_out``
  (o), ``L.mlp_in`` (gate, up), ``L.mlp_out`` (down), ``lm_head``. A stage's cores hold its weights in
  synapse memory (int8: 8 bits, ternary: the preset's ``weight_bits``; binary spikes need
  :data:`~sim.system.hwconfig.BINARY_AXONS` synapse rows per input) or, on crossbar presets, in arrays with
  each int8 weight bit-sliced into 7 one-bit magnitude slices of a differential pair (a ternary weight: one
  pair). Cores = max(memory, output neurons) over the per-core capacity.
* **Events**: the converter's per-token synaptic ops, zero-weight slots, input events (spikes) and neuron
  updates of each site, unchanged. Every spike is one packet to every core of the stage (a graded target
  could merge a value's spikes into one packet: not modelled).
* **Operations the neurocores cannot run as synapses** — RMSNorm, RoPE, QK^T, softmax, AV, SiLU x up and
  the residual adds — run on the preset's ``nonlinear_unit``: the programmable neurocores
  (``nonlinear_eval`` per element or multiply-accumulate) or the embedded x86 cores (``offload_op`` plus
  two ``offload_io`` per element, shared by the x86 cores of the chips in use).
* **KV cache**: ``layers x 2 x kv_heads x head_dim`` values per token at ``kv_bits`` (8: an assumption; the
  converter keeps them float), in the neurocores' synapse memory (binary spikes: x the binary axons, as the
  products read them as synapse rows); it grows with the context and so do the chips.
* **Host**: the embedding lookup and the sampling run on the host; per token the host sends the embedding
  row (``hidden`` values) and every ``lm_head`` core returns its local (max, index): chip<->host traffic,
  costed per packet at the preset's ``chip_link`` energy and latency.
* **Time**: one barrier-synchronised timestep per stage and per non-synaptic step; decode runs them one after
  another; prefill pipelines the prompt (``TTFT = (P - 1) x the slowest step + one token``). Idle-neuron
  servicing is not charged.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

from sim.system.energy import Preset
from sim.system.hwconfig import BINARY_AXONS

__all__ = ["SITE_KINDS", "TransformerShape", "NotMappedError", "check_pair", "map_transformer",
           "kv_cache", "token_cost", "summary_cost"]

#: Site kinds of one decoder layer, in execution order (as :data:`models.transformer.convert.SITE_KINDS`).
SITE_KINDS = ("attn_in", "attn_out", "mlp_in", "mlp_out")
#: Architectures whose layers the mapping knows (the converter's supported Llama family).
_MAPPABLE = ("LlamaForCausalLM",)
_BY_TYPE = {"llama": "LlamaForCausalLM"}
#: Presets whose cores are this repository's ternary RTL core (no int8 weights, no attention unit).
_TERNARY_RTL = ("vck190",)
#: Magnitude bit slices of one int8 weight on one-bit crossbar cells (sign: the differential pair).
_INT8_SLICES = 7


class NotMappedError(ValueError):
    """The model, its weights or its spike coding cannot be carried by the target (one line: why, and the fix)."""


def check_pair(coding: str, thresholds: str, preset: Preset) -> str:
    """The spike format the conversion runs in on ``preset`` (its own ``spike_format`` where that carries the
    conversion), or :class:`NotMappedError` when the preset cannot carry it.

    A spike coding with one threshold per site sends one-bit spikes (``binary``; graded hardware carries
    them as packets too); per-channel thresholds make every spike carry its neuron's threshold as a
    payload, and ``none`` sends the activations as values: both need ``graded``."""
    need = "binary" if coding != "none" and thresholds == "tensor" else "graded"
    carried = preset.spike_formats
    ok = need in carried or (need == "binary" and "graded" in carried)
    if not ok:
        why = "per-channel thresholds" if coding != "none" else "dense activations (coding none)"
        raise NotMappedError(f"{preset.name} cannot carry {why}: it needs graded spikes and {preset.name} carries only "
                             f"{', '.join(carried)}; use --thresholds tensor with a spike coding, or another target")
    own = preset.hardware.spike_format
    return own if own == need or own == "graded" else need


@dataclass(frozen=True)
class TransformerShape:
    """The linear and attention shapes of a Llama-family model."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    context: int

    @classmethod
    def from_config(cls, cfg) -> "TransformerShape":
        """From a Hugging Face config; :class:`NotMappedError` for an architecture the mapping does not know."""
        archs = getattr(cfg, "architectures", None)      # a GGUF config names only its model_type
        arch = archs[0] if archs else _BY_TYPE.get(getattr(cfg, "model_type", None), type(cfg).__name__)
        if arch not in _MAPPABLE:
            raise NotMappedError(f"the compiler maps {', '.join(_MAPPABLE)} (the spike converter's Llama family), "
                                 f"not {arch}: convert a Llama-family model such as smollm2-135m")
        if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
            raise NotMappedError(f"{arch} with biases cannot be mapped: its linear layers must be bias-free")
        heads = int(cfg.num_attention_heads)
        return cls(hidden=int(cfg.hidden_size), layers=int(cfg.num_hidden_layers), heads=heads,
                   kv_heads=int(getattr(cfg, "num_key_value_heads", None) or heads),
                   head_dim=int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads),
                   intermediate=int(cfg.intermediate_size), vocab=int(cfg.vocab_size),
                   context=int(cfg.max_position_embeddings))

    def linear(self, kind: str) -> tuple[int, int]:
        """``(fan_in, fan_out)`` of a site kind (all its linear layers side by side)."""
        h, hd = self.hidden, self.head_dim
        return {"attn_in": (h, (self.heads + 2 * self.kv_heads) * hd), "attn_out": (self.heads * hd, h),
                "mlp_in": (h, 2 * self.intermediate), "mlp_out": (self.intermediate, h),
                "lm_head": (h, self.vocab)}[kind]

    def sites(self) -> list[str]:
        return [f"{i}.{k}" for i in range(self.layers) for k in SITE_KINDS] + ["lm_head"]

    @property
    def kv_values_per_token(self) -> int:
        return self.layers * 2 * self.kv_heads * self.head_dim


def _kind(site: str) -> str:
    return site.split(".", 1)[1] if "." in site else site


def _cores(preset: Preset, fan_in: int, fan_out: int, weight_bits: int, fmt: str) -> int:
    hw = preset.hardware
    neurons = math.ceil(fan_out / hw.neurons_per_core)
    if hw.has_crossbars:
        cells = hw.xbar_cells_per_weight * (_INT8_SLICES if weight_bits == 8 else 1)
        arrays = math.ceil(fan_in / hw.xbar_rows) * math.ceil(fan_out * cells / hw.xbar_cols)
        return max(neurons, math.ceil(arrays / hw.xbar_tiles_per_core))
    rows = BINARY_AXONS if fmt == "binary" else 1
    return max(neurons, math.ceil(fan_in * rows * fan_out * weight_bits / 8 / hw.synapse_mem_bytes))


def kv_cache(shape: TransformerShape, preset: Preset, context: int, fmt: str, kv_bits: int = 8) -> dict:
    """Bytes and neurocores of the KV cache at ``context`` tokens (synapse memory; binary: x the axons)."""
    hw = preset.hardware
    rows = BINARY_AXONS if fmt == "binary" else 1
    nbytes = shape.kv_values_per_token * context * kv_bits / 8 * rows
    neurons = shape.layers * shape.heads * context          # one score neuron per head and position
    cores = max(math.ceil(nbytes / hw.synapse_mem_bytes), math.ceil(neurons / hw.neurons_per_core))
    return {"context": context, "bytes": nbytes, "cores": cores, "kv_bits": kv_bits, "binary_rows": rows}


def map_transformer(shape: TransformerShape, preset: Preset, weights: str, fmt: str, context: int,
                    kv_bits: int = 8) -> dict:
    """Cores per stage, the KV cache at ``context`` and the chips it all needs (``weights``: int8 or ternary)."""
    if weights not in ("int8", "ternary"):
        raise NotMappedError(f"the hardware holds int8 or ternary weights, not {weights}: pass --weights int8")
    hw = preset.hardware
    if preset.name in _TERNARY_RTL:
        raise NotMappedError(f"{preset.name}: not mapped (" + ("ternary weights, but its RTL core has no attention unit)"
                             if weights == "ternary" else "int8 weights)"))
    wbits = 8 if weights == "int8" else hw.weight_bits
    stages = {}
    for site in shape.sites():
        fan_in, fan_out = shape.linear(_kind(site))
        stages[site] = {"fan_in": fan_in, "fan_out": fan_out, "cores": _cores(preset, fan_in, fan_out, wbits, fmt)}
    kv = kv_cache(shape, preset, context, fmt, kv_bits)
    cores = sum(s["cores"] for s in stages.values()) + kv["cores"]
    return {"preset": preset.name, "weights": weights, "weight_bits": wbits, "spike_format": fmt, "stages": stages,
            "kv": kv, "cores": cores, "chips": math.ceil(cores / hw.cores_per_chip), "shape": asdict(shape)}


def _barrier_ns(preset: Preset, chips: int) -> float:
    hw = preset.hardware
    gx = math.ceil(math.sqrt(chips))
    gy = math.ceil(chips / gx)
    tiles = chips * hw.tiles_x * hw.tiles_y
    return (preset.ns("barrier_1tile") + (preset.ns("barrier_32tiles") - preset.ns("barrier_1tile")) * math.log2(tiles) / 5.0
            + (gx - 1 + gy - 1) * preset.ns("chip_link"))


def _crossbar(preset: Preset, fan_in: int, fan_out: int, weight_bits: int) -> dict:
    from models.program.crossbar import Periphery
    from sim.crossbar.costs import mvm_cost, mvm_events

    hw = preset.hardware
    periphery = Periphery(act_bits=hw.xbar_input_bits)
    slices = _INT8_SLICES if weight_bits == 8 else 1
    ev = mvm_events(fan_in, fan_out * slices, hw.xbar_rows, hw.xbar_cols // hw.xbar_cells_per_weight, periphery,
                    hw.xbar_cols_per_adc)
    return mvm_cost(ev, periphery, _periphery_costs())


@functools.lru_cache(maxsize=1)
def _periphery_costs():
    from sim.crossbar.costs import PeripheryCosts

    return PeripheryCosts.load()


def token_cost(mapping: dict, preset: Preset, site_events: dict[str, dict], context: int) -> dict:
    """Energy (J, by category, static apart) and time (s) of one token at ``context`` attended positions.

    ``site_events``: the converter's per-token events per site (``SpikeModel.events_per_token()["sites"]``).
    The returned ``counts`` give the synaptic events used, per site, as measured."""
    shape = TransformerShape(**mapping["shape"])
    missing = [s for s in shape.sites() if s not in site_events]
    if missing:
        raise NotMappedError(f"no measured events for site {missing[0]}: the events must come from this model's conversion")
    hw, p = preset.hardware, preset
    x86 = hw.nonlinear_unit == "x86"
    chips = mapping["chips"]
    el_pj = p.pj("offload_op") + 2 * p.pj("offload_io") if x86 else p.pj("nonlinear_eval")
    el_ns = p.ns("offload_op") + 2 * p.ns("offload_io") if x86 else p.ns("nonlinear_eval")
    hop_pj = (p.pj("hop_ew") + p.pj("hop_ns")) / 2 * (hw.tiles_x + hw.tiles_y) / 3     # mean XY distance on a chip
    hop_ns = (p.ns("hop_ew") + p.ns("hop_ns")) / 2 * (hw.tiles_x + hw.tiles_y) / 3
    barrier = _barrier_ns(p, chips)
    e = dict.fromkeys(("synaptic_ops", "neurons", "noc", "chip_link", "host_link", "nonlinear", "attention",
                       "kv_write", "crossbar"), 0.0)
    steps, counts = [], {}

    def elementwise(name: str, n: float, cores: int) -> None:
        """``n`` elements on the non-linear unit (x86: the chips' x86 cores; else ``cores`` neurocores)."""
        units = hw.x86_cores_per_chip * chips if x86 else max(cores, 1)
        e["attention" if name in ("qk", "av") else "nonlinear"] += n * el_pj
        steps.append((name, n / units * el_ns + barrier))

    h, hd, ctx = shape.hidden, shape.head_dim, context
    kv_cores_layer = max(mapping["kv"]["cores"] // shape.layers, 1)
    for site in shape.sites():
        st, ev, kind = mapping["stages"][site], site_events[site], _kind(site)
        if kind == "attn_in":
            elementwise("rmsnorm", h, st["cores"])
        elif kind in ("mlp_in", "lm_head"):              # the residual add before the norm
            elementwise("rmsnorm+residual", 2 * h, st["cores"])
        counts[site] = {k: ev[k] for k in ("input_events", "synaptic_ops", "zero_weight_slots", "neuron_updates")}
        packets = ev["input_events"] * st["cores"]
        crossing = 1.0 - 1.0 / math.ceil(st["cores"] / hw.cores_per_chip)   # share of packets to another chip
        e["noc"] += ev["input_events"] * p.pj("axon_out") + packets * (hop_pj + p.pj("local_spike"))
        e["chip_link"] += packets * crossing * p.pj("chip_link")
        e["neurons"] += ev["neuron_updates"] * p.pj("neuron_update")
        t = ev["neuron_updates"] / st["cores"] * p.ns("neuron_update") + ev["input_events"] * p.ns("axon_out") / st["cores"] + hop_ns
        if hw.has_crossbars:
            mvm = _crossbar(p, st["fan_in"], st["fan_out"], mapping["weight_bits"])
            e["crossbar"] += mvm["total_pj"]
            t += mvm["latency_ns"]
        else:
            e["synaptic_ops"] += ev["synaptic_ops"] * p.pj("synaptic_op")
            t += (ev["synaptic_ops"] * p.ns("synaptic_op") + ev["zero_weight_slots"] * p.ns("synapse_slot")) / st["cores"]
        steps.append((site, t + barrier))
        if kind == "attn_in":
            elementwise("rope", (shape.heads + shape.kv_heads) * hd, st["cores"])
            e["kv_write"] += 2 * shape.kv_heads * hd * p.pj("state_update")
            elementwise("qk", shape.heads * hd * ctx, kv_cores_layer)
            elementwise("softmax", 3 * shape.heads * ctx, kv_cores_layer)     # max, exp, normalise per score
            elementwise("av", shape.heads * ctx * hd, kv_cores_layer)
        elif kind == "mlp_in":
            elementwise("silu*up", 2 * shape.intermediate, st["cores"])
    host_packets = h * hw.packets_per_value + 2 * mapping["stages"]["lm_head"]["cores"]
    e["host_link"] = host_packets * p.pj("chip_link")
    steps.append(("host", p.ns("chip_link") + host_packets * p.ns("chip_link_packet")))
    seconds = sum(t for _, t in steps) * 1e-9
    by_step: dict[str, float] = {}
    for name, t in steps:                                 # summed over layers: where a token's time goes
        by_step[_kind(name)] = by_step.get(_kind(name), 0.0) + t * 1e-9
    dynamic = {k: v * 1e-12 for k, v in e.items()}
    return {"context": context, "seconds": seconds, "slowest_step_s": max(t for _, t in steps) * 1e-9,
            "steps": len(steps), "time_by_step_s": by_step, "dynamic_j": dynamic, "dynamic_total_j": sum(dynamic.values()),
            "static_j": chips * p.static_w * seconds, "counts": counts, "host_packets": host_packets}


def summary_cost(mapping: dict, preset: Preset, site_events: dict[str, dict], prompt_tokens: int, new_tokens: int) -> dict:
    """Prefill of ``prompt_tokens`` and decode of ``new_tokens`` (``new_tokens - 1`` forwards after the first).

    Tokens/s and J per generated token are those of a decode forward at the mean decode context."""
    if prompt_tokens < 1 or new_tokens < 1:
        raise ValueError(f"a summary needs a prompt and a generated token, got {prompt_tokens} and {new_tokens}")
    chips, lo, hi = mapping["chips"], *preset.static_range
    pre_mid = token_cost(mapping, preset, site_events, max(prompt_tokens // 2, 1))
    first = token_cost(mapping, preset, site_events, prompt_tokens)
    dec = token_cost(mapping, preset, site_events, prompt_tokens + new_tokens // 2)
    ttft = (prompt_tokens - 1) * pre_mid["slowest_step_s"] + first["seconds"]
    n_dec = new_tokens - 1
    pre_dyn = prompt_tokens * pre_mid["dynamic_total_j"]
    dec_dyn = n_dec * dec["dynamic_total_j"]
    t_total = ttft + n_dec * dec["seconds"]
    static = chips * preset.static_w * t_total
    return {"preset": preset.name, "chips": chips, "cores": mapping["cores"], "spike_format": mapping["spike_format"],
            "boundary": preset.boundary, "estimate": preset.estimate,
            "prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "ttft_s": ttft,
            "tokens_per_s": 1.0 / dec["seconds"], "j_per_token": {"dynamic": dec["dynamic_total_j"],
                                                                  "static": dec["static_j"]},
            "j_per_summary": {"prefill_dynamic": pre_dyn, "decode_dynamic": dec_dyn, "static": static,
                              "static_range": [chips * lo * t_total, chips * hi * t_total],
                              "total": pre_dyn + dec_dyn + static},
            "decode_breakdown_j": dec["dynamic_j"], "decode_time_by_step_s": dec["time_by_step_s"],
            "host_packets_per_token": dec["host_packets"],
            "seconds": t_total}
