"""The Vivado scripts: generated for a configuration, valid Tcl, every file they read exists, bad
configurations refused."""

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nmllm.commands import vivado as vivado_cmd
from sim.fpga.vivado import PART, TCL_FILES, write_vivado

# Runs a script in tclsh with every Vivado command stubbed: each call is logged, so the script must parse
# and run to its end, and the test sees which files it reads.
HARNESS = r"""
proc unknown {args} { puts "CALL [join $args { }]"; return "" }
source [lindex $argv 0]
puts "END"
"""


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    out = tmp_path_factory.mktemp("vivado")
    write_vivado(out, hidden=16, glu=16, lanes=4, clock_mhz=250)
    return out


def _tclsh(script: Path, tmp: Path) -> list[str]:
    harness = tmp / "harness.tcl"
    harness.write_text(HARNESS)
    done = subprocess.run([shutil.which("tclsh"), str(harness), str(script)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "END", done.stdout[-500:]
    return lines


def test_tclsh_is_installed():
    assert shutil.which("tclsh"), "tclsh is needed to check the Vivado scripts (apt-get install tcl)"


@pytest.mark.parametrize("name", TCL_FILES)
def test_script_is_valid_tcl_and_reads_only_existing_files(scripts, tmp_path, name):
    calls = _tclsh(scripts / name, tmp_path)
    reads = [c.split()[-1] for c in calls if c.startswith(("CALL read_verilog", "CALL read_xdc"))]
    assert reads, "the script reads no sources"
    for path in reads:
        assert Path(path).exists(), f"{name} reads {path}, which does not exist"


def test_build_script_runs_the_whole_flow_for_the_vck190_part(scripts, tmp_path):
    calls = [c.split()[1] for c in _tclsh(scripts / "build.tcl", tmp_path) if c.startswith("CALL")]
    for step in ("synth_design", "opt_design", "place_design", "route_design", "report_utilization",
                 "report_timing_summary", "report_power", "report_drc"):
        assert step in calls, f"build.tcl does not call {step}"
    assert calls.index("synth_design") < calls.index("place_design") < calls.index("route_design")
    text = (scripts / "build.tcl").read_text()
    assert f"set part {PART}" in text and "-mode out_of_context" in text


def test_xdc_constrains_ap_clk_at_the_requested_clock(scripts):
    xdc = (scripts / "neurocore_top.xdc").read_text()
    assert re.search(r"create_clock -period 4\.000 -name ap_clk \[get_ports ap_clk\]", xdc), xdc


def test_kernel_script_declares_every_axi_port_and_register(scripts):
    text = (scripts / "package_kernel.tcl").read_text()
    verilog = (scripts / "neurocore_top.v").read_text()
    for bus in ("s_axis_act", "m_axis_act", "s_axis_load", "s_axi_control"):
        assert bus in text and f"{bus}_" in verilog
    for reg in ("CTRL", "STATUS", "CYCLES", "TOKENS"):
        assert f"ipx::add_register {reg} " in text
    assert "package_xo" in text and "sdx_kernel_type rtl" in text


@pytest.mark.parametrize("clock_mhz,message", [
    (1000, "Clock frequency 1000 MHz is outside the 10-500 MHz the Vivado script can constrain for the XCVC1902"),
    (0.5, "Clock frequency 0.5 MHz is outside the 10-500 MHz"),
])
def test_a_clock_the_script_cannot_constrain_is_refused(tmp_path, clock_mhz, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        write_vivado(tmp_path, hidden=16, glu=16, lanes=4, clock_mhz=clock_mhz)
    assert not list(tmp_path.iterdir()), "nothing is written for a refused configuration"


@pytest.mark.slow
def test_cli_writes_the_scripts(tmp_path):
    parser = argparse.ArgumentParser(prog="nmllm")
    sub = parser.add_subparsers(dest="command", required=True)
    vivado_cmd.register(sub)
    args = parser.parse_args(["vivado", "--out", str(tmp_path), "--hidden", "16", "--glu", "16", "--lanes", "4",
                              "--clock-mhz", "150"])
    assert args.func(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["neurocore_top.v", "neurocore_top.xdc", *TCL_FILES])
    assert "-period 6.667" in (tmp_path / "neurocore_top.xdc").read_text()
