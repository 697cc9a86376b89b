"""``nmllm vivado``: write the VCK190 Vivado scripts for one layer-top configuration (``sim/fpga/vivado.py``),
and run them where ``vivado`` is on ``PATH`` (``--run``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["register"]


def _run(args) -> int:
    from sim.fpga.vivado import PART, write_vivado

    out = Path(args.out)
    for path in write_vivado(out, hidden=args.hidden, glu=args.glu, lanes=args.lanes, clock_mhz=args.clock_mhz):
        print(path)
    print(f"part {PART}, clock {args.clock_mhz:g} MHz; run: cd {out} && vivado -mode batch -source build.tcl")
    if args.run:
        vivado = shutil.which("vivado")
        if vivado is None:
            raise RuntimeError("vivado is not on PATH; the scripts were written, run them where Vivado is installed")
        for script in ("build.tcl", "package_kernel.tcl"):
            done = subprocess.run([vivado, "-mode", "batch", "-nojournal", "-source", script], cwd=out)
            if done.returncode:
                raise RuntimeError(f"vivado -source {script} failed (exit code {done.returncode}); its log is in {out}")
    return 0


def register(subparsers) -> None:
    """Add the ``vivado`` subcommand."""
    p = subparsers.add_parser("vivado", help="write (and with --run, run) the VCK190 Vivado scripts of the layer top")
    p.add_argument("--out", default="rtl/vivado/neurocore_top", help="output folder (default: rtl/vivado/neurocore_top)")
    p.add_argument("--hidden", type=int, default=256, help="hidden size d (default 256, the bundled model)")
    p.add_argument("--glu", type=int, default=640, help="GLU width m (default 640)")
    p.add_argument("--lanes", type=int, default=8, help="lanes per ternary core (default 8)")
    p.add_argument("--clock-mhz", type=float, default=200.0, help="target clock in MHz (default 200)")
    p.add_argument("--run", action="store_true", help="run build.tcl and package_kernel.tcl with vivado")
    p.set_defaults(func=_run)
