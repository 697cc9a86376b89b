"""Every RTL testbench: the unit, the configurations it is checked at, its stimulus and cocotb module.

Adding a hardware unit's testbench is one entry in :data:`BENCHES` (see the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from amaranth.lib import wiring

from hw.accelerator.top import Accelerator
from hw.crossbar_tile import CrossbarTile
from hw.elementwise import Elementwise
from hw.neurocore_top import NeurocoreTop
from hw.spike_attention import SpikeAttention
from hw.ternary_core import TernaryCore
from hw.ternary_matvec import TernaryMatVec

from verif import (accelerator_vectors, crossbar_tile_vectors, elementwise_vectors, neurocore_top_vectors,
               spike_attention_vectors, ternary_core_vectors, ternary_matvec_vectors)

__all__ = ["UnitBench", "BENCHES"]


@dataclass(frozen=True)
class UnitBench:
    """One unit's testbench.

    ``configs`` maps a configuration name to the unit's constructor keywords; ``vectors(component,
    seed)`` returns the stimulus JSON the cocotb module ``tb_module`` reads.
    """

    unit: str
    build: Callable[..., wiring.Component]
    vectors: Callable[[wiring.Component, int], dict]
    tb_module: str
    configs: dict[str, dict] = field(default_factory=dict)


BENCHES: dict[str, UnitBench] = {
    "ternary_matvec": UnitBench(
        unit="ternary_matvec",
        build=lambda **kw: TernaryMatVec(**kw),
        vectors=lambda unit, seed: ternary_matvec_vectors.make_vectors(unit, seed=seed, n_random=1000),
        tb_module="verif.tb_ternary_matvec",
        configs={
            "p4_k64_n16": dict(lanes=4, fan_in=64, out_features=16),
            "p8_k128_n16_out12": dict(lanes=8, fan_in=128, out_features=16, out_bits=12),
        },
    ),
    "ternary_core": UnitBench(
        unit="ternary_core",
        build=lambda **kw: TernaryCore(**kw),
        vectors=lambda unit, seed: ternary_core_vectors.make_vectors(unit, seed=seed, n_random=1000),
        tb_module="verif.tb_ternary_core",
        configs={"p4_k64_n16": dict(lanes=4, fan_in=64, out_features=16)},
    ),
    "crossbar_tile": UnitBench(
        unit="crossbar_tile",
        build=lambda **kw: CrossbarTile(**kw),
        vectors=lambda unit, seed: crossbar_tile_vectors.make_vectors(unit, seed=seed, n_random=1000),
        tb_module="verif.tb_crossbar_tile",
        # tile size, DAC bits and ADC sharing vary; each run checks its cycles against mvm_cycles
        configs={
            "r8_c8_d1_cpa2_rd2_cv3": dict(rows=8, cols=8, dac_bits=1, cell_bits=5, adc_bits=6, noise_bits=3,
                                          cols_per_adc=2, read_cycles=2, conv_cycles=3),
            "r16_c12_d2_cpa4_rd5_cv1": dict(rows=16, cols=12, dac_bits=2, cell_bits=5, adc_bits=8, noise_bits=3,
                                            cols_per_adc=4, read_cycles=5, conv_cycles=1),
            "r32_c16_d4_cpa16_rd3_cv1": dict(rows=32, cols=16, dac_bits=4, cell_bits=5, adc_bits=8, noise_bits=4,
                                             cols_per_adc=16, read_cycles=3, conv_cycles=1),
        },
    ),
    "elementwise": UnitBench(
        unit="elementwise",
        build=lambda **kw: Elementwise(**kw),
        vectors=lambda unit, seed: elementwise_vectors.make_vectors(unit, seed=seed, n_random=1000),
        tb_module="verif.tb_elementwise",
        configs={"e16_m16_n32": dict(channels=16, glu_width=16, fan_in=32)},
    ),
    "neurocore_top": UnitBench(
        unit="neurocore_top",
        build=lambda **kw: NeurocoreTop(**kw),
        vectors=lambda unit, seed: neurocore_top_vectors.make_vectors(unit, seed=seed),
        tb_module="verif.tb_neurocore_top",
        configs={"d32_m64_p4": dict(hidden=32, glu=64, lanes=4)},
    ),
    "spike_attention": UnitBench(
        unit="spike_attention",
        build=lambda **kw: SpikeAttention(**kw),
        vectors=lambda unit, seed: spike_attention_vectors.make_vectors(unit, seed=seed, n_random=1000),
        tb_module="verif.tb_spike_attention",
        configs={
            "dh16_t4_s4_p4": dict(head_dim=16, timesteps=4, decay_shift=4, lanes=4),
            # T > 128 and dh * T > 256: the state and the output can saturate (one column group: lanes = dh)
            "dh4_t136_s8_p4": dict(head_dim=4, timesteps=136, decay_shift=8, lanes=4),
        },
    ),
    "accelerator": UnitBench(
        unit="accelerator",
        build=lambda **kw: Accelerator(**kw),
        vectors=lambda unit, seed: accelerator_vectors.make_vectors(unit, seed=seed),
        tb_module="verif.tb_accelerator",
        configs={"d16_m32_l2_v128_p4_w128": dict(hidden=16, glu=32, layers=2, vocab=128, lanes=4, data_width=128)},
    ),
}
