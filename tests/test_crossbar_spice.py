"""The IR-drop solver against ngspice on random 16x16 and 64x64 arrays: column currents within 0.5 %.

ngspice is required (Debian package ``ngspice``; ``.ci/run`` installs it): without it these tests fail
and say how to install it.
"""

import numpy as np
import pytest

from sim.crossbar.ir_drop import WireParams, column_currents, transfer_matrix
from sim.crossbar.spice import INSTALL_HINT, netlist, ngspice_path, parse_currents, spice_column_currents

TOLERANCE = 0.005

# 16x16 at 10 ohm per cell and 64x64 at 2.5 ohm: both with an IR drop well beyond the tolerance, so the
# comparison can tell the nodal solve from an ideal (wire-free) array
CASES = {"16x16": (16, 16, WireParams(r_wl=10.0, r_bl=10.0), 1), "64x64": (64, 64, WireParams(), 2)}


def require_ngspice():
    assert ngspice_path() is not None, f"ngspice is not installed; install it with `{INSTALL_HINT}`"


@pytest.mark.parametrize("case", sorted(CASES))
def test_ir_drop_solver_agrees_with_ngspice(case):
    require_ngspice()
    rows, cols, wires, seed = CASES[case]
    rng = np.random.default_rng(seed)
    g = rng.uniform(1e-6, 100e-6, size=(rows, cols))   # random conductances, 10 kOhm .. 1 MOhm
    v = rng.uniform(0.0, 0.2, size=rows)               # random read voltages
    spice = spice_column_currents(g, v, wires)
    ideal = v @ g
    assert (np.abs(ideal - spice) / np.abs(spice)).max() > 3 * TOLERANCE  # the drop is visible
    for method in ("direct", "pcg"):
        ours = column_currents(g, v, wires, method=method)
        err = np.abs(ours - spice) / np.abs(spice)
        assert err.max() < TOLERANCE, f"{case} {method}: worst column differs by {100 * err.max():.4f} %"
    via_transfer = v @ transfer_matrix(g, wires)
    assert (np.abs(via_transfer - spice) / np.abs(spice)).max() < TOLERANCE


def test_netlist_is_the_documented_circuit():
    text = netlist(np.array([[1e-5, 2e-5]]), np.array([0.1]), WireParams(r_wl=2.0, r_bl=3.0))
    lines = text.splitlines()
    assert "VIN0 in0 0 DC 0.10000000000000001" in lines
    assert "RW0_0 in0 w0_0 2" in lines and "RW0_1 w0_0 w0_1 2" in lines
    cell = [ln for ln in lines if ln.startswith("RC0_1 w0_1 b0_1 ")]
    assert len(cell) == 1 and float(cell[0].split()[-1]) == pytest.approx(50e3)
    assert "RB1_1 b0_1 s1 3" in lines and "VS1 s1 0 DC 0" in lines
    assert "print i(vs1)" in lines


def test_missing_column_in_ngspice_output_is_reported():
    with pytest.raises(RuntimeError, match="ngspice output lacks the current of 1 columns"):
        parse_currents("i(vs0) = 1.0e-06\n", 2)
