"""Learning mode of a crossbar preset: what an adapted token costs on top of the inference token.

In-situ adaptation (``nmllm adapt``) keeps an analog adapter ``A`` (``out x fan_in``) on arrays of its own beside
``lm_head``. One adapted token is the inference token the system model simulates (:class:`sim.system.model.Report`:
its latency, static and dynamic energy) plus, in this order:

1. **forward read** of the adapter: one bit-serial MVM of ``fan_in x out`` on the preset's crossbar tiles, events,
   energy and latency from the crossbar model (:func:`sim.crossbar.costs.mvm_events`, :func:`~sim.crossbar.costs.mvm_cost`);
2. **error vector** ``d = softmax - onehot`` on the neurocores: ``out`` non-linear evaluations (exponentials) and
   ``out`` state updates (normalisation), the ``out`` values buffered into the row drivers (input events), spread
   over ``ceil(out / neurons_per_core)`` cores, plus one barrier for the sum;
3. **extra reads** the rule makes per token (Tiki-Taka's transfer reads, the transposed read of a backward pass),
   each costed as one more full MVM of the array (an upper bound: a column read drives one word line);
4. **update**: ``slots`` pulse slots of ``pulse_time_s`` each (every line of the array in parallel), the devices'
   pulses at ``pulse_energy_j`` each, and every line firing as one 1-bit DAC event of the periphery table (an
   ASSUMPTION: the stochastic pulse driver is priced as the read DAC).

The adapter's steps run after the token's ``lm_head`` input is ready and are added serially to the token's
latency (an upper bound: the forward read could overlap ``lm_head``). Static energy is the preset's static power
over its chips for the adapted token's whole time; dynamic energy is the inference token's plus the four steps
above. Endurance: the busiest device's pulses per token against the device's endurance give the adapted tokens
(and, at the adapted token rate, the seconds) until it wears out.

:func:`digital_adapter_token` prices the same adapter held digitally (fixed-point weights in SRAM, updated by a
digital SGD unit) from :data:`DIGITAL_PJ` (Horowitz, ISSCC 2014): energy only, no latency model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from models.program.crossbar import Periphery
from sim.crossbar.costs import PeripheryCosts, mvm_cost, mvm_events
from sim.system.energy import Preset

__all__ = ["UpdateCounts", "DIGITAL_PJ", "adapter_mvm", "learning_token", "digital_adapter_token"]

#: Energies (pJ) of the digital adapter's operations, Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm).
DIGITAL_PJ = {
    "mult_8b": {"value": 0.2, "source": "Horowitz ISSCC 2014: 8-bit integer multiply 0.2 pJ"},
    "add_8b": {"value": 0.03, "source": "Horowitz ISSCC 2014: 8-bit integer add 0.03 pJ"},
    "add_32b": {"value": 0.1, "source": "Horowitz ISSCC 2014: 32-bit integer add 0.1 pJ"},
    "sram_byte": {"value": 1.25, "source": "Horowitz ISSCC 2014: 64-bit read from an 8 KB SRAM 10 pJ = 1.25 pJ per "
                                             "byte (a write costed as a read)"},
}


def _count(name: str, v, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} finite number, not {v!r}")
    return float(v)


@dataclass(frozen=True)
class UpdateCounts:
    """What the learner measured per adapted token: pulses, line firings, pulse slots, extra reads, the busiest
    device's pulses; and the device's pulse energy, pulse time and endurance."""

    pulses: float
    line_fires: float
    slots: float
    reads: float
    max_pulses_per_device: float
    pulse_energy_j: float
    pulse_time_s: float
    endurance: float

    def __post_init__(self):
        for name in ("pulses", "line_fires", "slots", "reads", "max_pulses_per_device", "pulse_energy_j"):
            _count(name.replace("_", " "), getattr(self, name))
        _count("pulse time", self.pulse_time_s, positive=True)
        if not (isinstance(self.endurance, (int, float)) and self.endurance > 0):
            raise ValueError(f"endurance must be a positive number of pulses, not {self.endurance!r}")


def adapter_mvm(preset: Preset, out: int, fan_in: int, costs: PeripheryCosts | None = None,
                adc_bits: int = 8) -> dict:
    """Energy (J), latency (s), tiles and ADC conversions of one forward read of a ``fan_in x out`` adapter on the
    preset's crossbar tiles (its rows, pair columns, columns per ADC and input bits)."""
    hw = preset.hardware
    if not hw.has_crossbars:
        raise ValueError(f"preset {preset.name} has no crossbar arrays to hold an analog adapter: use a crossbar "
                         f"preset (for example crossbar)")
    costs = costs or PeripheryCosts.load()
    periphery = Periphery(act_bits=hw.xbar_input_bits, adc_bits=adc_bits)
    cols = hw.xbar_cols // hw.xbar_cells_per_weight
    ev = mvm_events(fan_in, out, min(hw.xbar_rows, fan_in), min(cols, out), periphery, hw.xbar_cols_per_adc)
    c = mvm_cost(ev, periphery, costs)
    return {"energy_j": c["total_pj"] * 1e-12, "latency_s": c["latency_ns"] * 1e-9,
            "tiles": ev.row_tiles * ev.col_tiles, "adc_conversions": ev.adc_conversions}


def learning_token(inference, preset: Preset, out: int, fan_in: int, counts: UpdateCounts,
                   costs: PeripheryCosts | None = None) -> dict:
    """The adapted token: ``inference`` (a :class:`sim.system.model.Report` of the same preset) plus the adapter's
    forward read, error vector, extra reads and update (see the module docstring). Energies in J, times in s."""
    if inference.preset != preset.name:
        raise ValueError(f"the inference report is of preset {inference.preset}, not {preset.name}: simulate the "
                         f"token on the preset that holds the adapter")
    for name, v in (("adapter outputs", out), ("adapter fan-in", fan_in)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    costs = costs or PeripheryCosts.load()
    hw = preset.hardware
    mvm = adapter_mvm(preset, out, fan_in, costs)
    cores = math.ceil(out / hw.neurons_per_core)
    per_core = math.ceil(out / cores)
    energy = {
        "forward_read": mvm["energy_j"],
        "error_vector": out * (preset.pj("nonlinear_eval") + preset.pj("state_update") + preset.pj("input_event")) * 1e-12,
        "extra_reads": counts.reads * mvm["energy_j"],
        "line_drive": counts.line_fires * costs.dac_energy_pj(1) * 1e-12,
        "device_writes": counts.pulses * counts.pulse_energy_j,
    }
    latency = {
        "forward_read": mvm["latency_s"],
        "error_vector": (per_core * (preset.ns("nonlinear_eval") + preset.ns("state_update") + preset.ns("input_event"))
                         + preset.ns("barrier_1tile")) * 1e-9,
        "extra_reads": counts.reads * mvm["latency_s"],
        "update": counts.slots * counts.pulse_time_s,
    }
    added_s = sum(latency.values())
    token_s = inference.token_latency_s + added_s
    static = preset.static_w * hw.chips * token_s
    dynamic = inference.dynamic_j + sum(energy.values())
    lifetime = counts.endurance / counts.max_pulses_per_device if counts.max_pulses_per_device else math.inf
    return {
        "preset": preset.name, "chips": hw.chips, "adapter": {"out": out, "fan_in": fan_in, "tiles": mvm["tiles"],
                                                               "adc_conversions_per_read": mvm["adc_conversions"]},
        "counts": asdict(counts),
        "inference": {"token_latency_s": inference.token_latency_s, "static_j": inference.static_j,
                      "dynamic_j": inference.dynamic_j},
        "added_energy_j": energy, "added_latency_s": latency,
        "token_latency_s": token_s, "tokens_per_s": 1.0 / token_s, "static_j": static, "dynamic_j": dynamic,
        "energy_per_token_j": static + dynamic,
        "latency_ratio": token_s / inference.token_latency_s,
        "energy_ratio": (static + dynamic) / (inference.static_j + inference.dynamic_j),
        "endurance_tokens": lifetime, "endurance_s": lifetime * token_s,
    }


def digital_adapter_token(out: int, fan_in: int, weight_bits: int, writes: float) -> dict:
    """Energy (J) of one adapted token of the same adapter held digitally: ``weight_bits`` fixed-point weights in
    SRAM. Forward: every weight read and multiplied (8-bit operands), a 32-bit accumulation; update: every product
    ``lr d_i x_j`` formed (8-bit multiply) and stochastically rounded (an 8-bit add against a random number),
    each of the ``writes`` weights that change read and written back. Random-number generation is not priced."""
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or not 2 <= weight_bits <= 16:
        raise ValueError(f"weight bits must be an integer in [2, 16], not {weight_bits!r}")
    writes = _count("weight writes", writes)
    n, b = out * fan_in, weight_bits / 8.0
    pj = {k: v["value"] for k, v in DIGITAL_PJ.items()}
    energy = {"forward": n * (pj["mult_8b"] + pj["add_32b"] + b * pj["sram_byte"]) * 1e-12,
              "update_arithmetic": n * (pj["mult_8b"] + pj["add_8b"]) * 1e-12,
              "update_memory": writes * 2 * b * pj["sram_byte"] * 1e-12}
    return {"energy_j": energy, "total_j": sum(energy.values()), "weights": n, "weight_bits": weight_bits,
            "writes": writes, "constants": DIGITAL_PJ}
