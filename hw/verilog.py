"""Verilog emission: every hardware unit at its default configuration, reproducibly.

``emit_src=False`` keeps source paths out of the text, so the same design gives byte-identical
Verilog on every machine. :data:`UNITS` is the list ``make verilog`` (``nmllm verilog``) writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from amaranth.back import verilog
from amaranth.lib import wiring

from hw.crossbar_tile import CrossbarTile
from hw.elementwise import Elementwise
from hw.neurocore_top import NeurocoreTop
from hw.spike_attention import BUNDLED_HEAD, SpikeAttention
from hw.ternary_core import TernaryCore
from hw.ternary_matvec import TernaryMatVec

__all__ = ["UNITS", "emit", "port_list", "write_all"]

#: Verilog module name -> factory of the unit at its default configuration.
UNITS: dict[str, Callable[[], wiring.Component]] = {
    "ternary_matvec": lambda: TernaryMatVec(lanes=8, fan_in=256, out_features=64),
    "crossbar_tile": lambda: CrossbarTile(rows=64, cols=32, dac_bits=1, cell_bits=5, adc_bits=6, noise_bits=3,
                                          cols_per_adc=8),
    "ternary_core": lambda: TernaryCore(lanes=8, fan_in=256, out_features=64),
    "elementwise": lambda: Elementwise(channels=256, glu_width=640, fan_in=256),
    "neurocore_top": lambda: NeurocoreTop(hidden=256, glu=640, lanes=8, clock_mhz=200),
    "spike_attention": lambda: SpikeAttention(**BUNDLED_HEAD),
}


def emit(component: wiring.Component, name: str) -> str:
    """Verilog text of ``component`` as module ``name`` (no source locations: reproducible)."""
    return verilog.convert(component, name=name, emit_src=False)


def port_list(component: wiring.Component) -> dict:
    """The component's ports (Verilog names, directions, widths) as JSON-able metadata.

    Reading the metadata does not elaborate the component, so it is marked as used on purpose.
    """
    component._MustUse__silence = True
    return component.metadata.as_json()


def write_all(out_dir: Path) -> list[Path]:
    """Write ``<name>.v`` and ``<name>.ports.json`` for every unit of :data:`UNITS` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, factory in UNITS.items():
        component = factory()
        v_path = out_dir / f"{name}.v"
        v_path.write_text(emit(component, name))
        p_path = out_dir / f"{name}.ports.json"
        p_path.write_text(json.dumps(port_list(component), indent=2, sort_keys=True) + "\n")
        written += [v_path, p_path]
    return written
